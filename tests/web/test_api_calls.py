"""The call history API: list with filters and cursor pages, one call, the streamed CSV export,
and who sees which calls (members their own; another organization's call is simply not found)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.cdr import repository as repo
from ringwell.features.cdr.history import CSV_COLUMNS
from ringwell.storage.base import new_id

T0 = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def call(org_id, at, *, direction="internal", disposition="answered", caller_user=None, caller_ext="101",
         caller_number=None, callee_user=None, callee_ext="102", callee_number="102", charge=None, media=None):
    return {
        "id": new_id(), "org_id": org_id, "sip_call_id": f"{new_id()}@10.0.0.5", "direction": direction,
        "caller_user_id": caller_user, "caller_extension": caller_ext, "caller_number": caller_number,
        "callee_user_id": callee_user, "callee_extension": callee_ext, "callee_number": callee_number,
        "started_at": at, "answered_at": at + timedelta(seconds=2) if disposition == "answered" else None,
        "ended_at": at + timedelta(seconds=64), "last_alive_at": at + timedelta(seconds=64), "ring_seconds": 2.0,
        "talk_seconds": 62.0 if disposition == "answered" else None, "state": "closed", "disposition": disposition,
        "hangup_by": "callee", "sip_status": 200 if disposition == "answered" else 486, "codec": "opus",
        "billable_seconds": 120 if charge is not None else None, "charge_minor": charge,
        "currency": "USD" if charge is not None else None, "media": media,
    }


async def insert(web, rows):
    async with web.services.sessions() as session, session.begin():
        await repo.insert_calls(session, rows)


def newest_first(rows):
    return [row["id"] for row in sorted(rows, key=lambda r: (r["started_at"], r["id"]), reverse=True)]


async def ids_of(client, url, **params):
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def walk(client, url, limit, **params):
    """Every id over all pages, following next_cursor."""
    seen, cursor = [], None
    while True:
        response = await client.get(url, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_calls_newest_first_with_every_field_and_filters(web):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    out = call(a.org.id, T0, direction="outbound", caller_user=a.owner.user.id, caller_number="+14155550100",
               callee_ext=None, callee_number="+442079460000", charge=25,
               media={"caller": {"loss": 0.0, "jitter_ms": 3.1}})
    inbound = call(a.org.id, T0 - timedelta(hours=2), direction="inbound", caller_ext=None,
                   caller_number="+13125550199", callee_number="+14155550100")
    busy = call(a.org.id, T0 - timedelta(days=3), disposition="busy")
    theirs = call(b.org.id, T0 + timedelta(minutes=1), direction="outbound", caller_number="+14155550100",
                  callee_number="+442079460000")
    await insert(web, [out, inbound, busy, theirs])
    url = f"/api/v1/orgs/{a.org.id}/calls"

    response = await a.client.get(url)
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["items"]] == [out["id"], inbound["id"], busy["id"]]
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["from"] == "+14155550100" and first["from_extension"] == "101" and first["to"] == "+442079460000"
    assert first["direction"] == "outbound" and first["disposition"] == "answered" and first["hangup_by"] == "callee"
    assert first["started_at"] == "2026-03-10T12:00:00Z" and first["answered_at"] == "2026-03-10T12:00:02Z"
    assert first["ended_at"] == "2026-03-10T12:01:04Z"
    assert (first["ring_seconds"], first["talk_seconds"], first["billable_seconds"]) == (2.0, 62.0, 120)
    assert first["charge"] == {"minor": 25, "currency": "USD", "formatted": "0.25"}
    assert (first["sip_status"], first["codec"]) == (200, "opus")
    assert first["media"] == {"caller": {"loss": 0.0, "jitter_ms": 3.1}}
    assert body["items"][1]["charge"] is None and body["items"][1]["from"] == "+13125550199"

    assert await ids_of(a.client, url, direction="inbound") == [inbound["id"]]
    assert await ids_of(a.client, url, disposition="busy") == [busy["id"]]
    assert await ids_of(a.client, url, number="+1 415 555 0100") == [out["id"], inbound["id"]]
    assert await ids_of(a.client, url, number="102") == [inbound["id"], busy["id"]]
    assert await ids_of(a.client, url, since="2026-03-10T08:00:01-02:00") == [out["id"]]  # 10:00:01 UTC
    assert await ids_of(a.client, url, since="2026-03-01T00:00:00Z", until="2026-03-10T12:00:00Z") == [
        inbound["id"], busy["id"]]
    assert await ids_of(a.client, url, user_id=a.owner.user.id) == [out["id"]]
    assert await ids_of(a.api, url, direction="outbound") == [out["id"]]  # API keys see the org's calls too

    for params in [{"since": "2026-03-01T00:00:00"}, {"direction": "sideways"}, {"disposition": "meh"},
                   {"limit": 0}, {"limit": 201}, {"number": "x" * 65}, {"since": "yesterday"},
                   {"cursor": "c" * 257}]:
        refused = await a.client.get(url, params=params)
        assert refused.status_code == 422, params
        assert refused.json()["error_id"] == "invalid_request"
    bad = await a.client.get(url, params={"number": "drop table;"})
    assert bad.status_code == 422 and bad.json()["error_id"] == "invalid_call_query"
    ancient = await a.client.get(url, params={"since": "0001-01-01T00:00:00+01:00"})
    assert ancient.status_code == 422 and ancient.json()["error_id"] == "invalid_call_query"
    backwards = await a.client.get(url, params={"since": "2026-03-10T00:00:00Z", "until": "2026-03-01T00:00:00Z"})
    assert backwards.status_code == 422 and backwards.json()["details"] == {"field": "since"}
    for epoch in ("0", "1700000000", "-5.5"):  # not read as seconds since 1970
        assert (await a.client.get(url, params={"until": epoch})).status_code == 422


async def test_cursor_pages_cover_every_call_once_and_a_tampered_cursor_is_refused(web):
    a = await web.tenant()
    b = await web.tenant()
    # 75 calls on 6 distinct start times: pages end in the middle of runs of equal times.
    rows = [call(a.org.id, T0 - timedelta(minutes=i % 6)) for i in range(75)]
    await insert(web, rows + [call(b.org.id, T0) for _ in range(5)])
    url = f"/api/v1/orgs/{a.org.id}/calls"
    assert await walk(a.client, url, 10) == newest_first(rows)
    assert await walk(a.client, url, 200) == newest_first(rows)
    assert await walk(a.api, url, 7, disposition="answered") == newest_first(rows)

    page = (await a.client.get(url, params={"limit": 10})).json()
    cursor = page["next_cursor"]
    for tampered in [cursor[:-4], cursor + "!", "bm90IGpzb24", "eyJ0Ijoibm93IiwiaSI6IngifQ"]:
        refused = await a.client.get(url, params={"cursor": tampered})
        assert refused.status_code == 422, tampered
        assert refused.json()["error_id"] == "invalid_call_query"
    # The cursor only says where to continue: in another org it still shows only that org's calls.
    other = await b.client.get(f"/api/v1/orgs/{b.org.id}/calls", params={"cursor": cursor})
    assert other.status_code == 200
    assert all(item["id"] not in {r["id"] for r in rows} for item in other.json()["items"])


async def test_a_member_sees_only_their_own_calls(web):
    a = await web.tenant()
    alice = await web.member(a.org, "member")
    bob = await web.member(a.org, "member")
    alices = [call(a.org.id, T0 - timedelta(minutes=1), caller_user=alice.user.id, callee_user=bob.user.id),
              call(a.org.id, T0 - timedelta(minutes=3), direction="inbound", caller_ext=None,
                   caller_number="+13125550199", callee_user=alice.user.id)]
    others = [call(a.org.id, T0, caller_user=bob.user.id), call(a.org.id, T0 - timedelta(minutes=2))]
    await insert(web, alices + others)
    url = f"/api/v1/orgs/{a.org.id}/calls"
    client = await web.logged_in(alice)
    assert await ids_of(client, url) == newest_first(alices)
    # Asking for someone else's calls does not widen the view.
    assert await ids_of(client, url, user_id=bob.user.id) == newest_first(alices)
    assert await ids_of(client, url, direction="inbound") == [alices[1]["id"]]
    assert (await client.get(f"{url}/{alices[0]['id']}")).json()["id"] == alices[0]["id"]
    hidden = await client.get(f"{url}/{others[0]['id']}")
    assert hidden.status_code == 404 and hidden.json()["error_id"] == "call_not_found"
    export = await client.get(f"/api/v1/orgs/{a.org.id}/calls.csv")
    assert [row["id"] for row in csv.DictReader(io.StringIO(export.text))] == newest_first(alices)
    # The owner sees every call of the org, and bob his own.
    assert await ids_of(a.client, url) == newest_first(alices + others)
    assert await ids_of(await web.logged_in(bob), url) == newest_first([alices[0], others[0]])


async def test_one_call_and_another_orgs_call_is_not_found(web):
    a = await web.tenant()
    b = await web.tenant()
    mine, theirs = call(a.org.id, T0), call(b.org.id, T0)
    await insert(web, [mine, theirs])
    got = await a.client.get(f"/api/v1/orgs/{a.org.id}/calls/{mine['id']}")
    assert got.status_code == 200 and got.json()["id"] == mine["id"] and got.json()["to"] == "102"
    for call_id in (theirs["id"], new_id(), "x" * 80):
        missing = await a.client.get(f"/api/v1/orgs/{a.org.id}/calls/{call_id}")
        assert missing.status_code == 404 and missing.json()["error_id"] == "call_not_found"
    elsewhere = await a.client.get(f"/api/v1/orgs/{b.org.id}/calls/{theirs['id']}")
    assert elsewhere.status_code == 404 and elsewhere.json()["error_id"] == "organization_not_found"
    assert (await a.client.get(f"/api/v1/orgs/{b.org.id}/calls")).status_code == 404
    assert (await a.client.get(f"/api/v1/orgs/{b.org.id}/calls.csv")).status_code == 404
    assert (await web.client().get(f"/api/v1/orgs/{a.org.id}/calls")).status_code == 401


async def test_csv_export_has_a_header_the_rows_and_defused_formulas_and_is_audited(web):
    a = await web.tenant("Acme & Co")
    rows = [call(a.org.id, T0, direction="outbound", caller_number="+14155550100", callee_ext=None,
                 callee_number="+442079460000", charge=1305),
            call(a.org.id, T0 - timedelta(minutes=1), direction="inbound", caller_ext=None,
                 caller_number="=cmd|' /C calc'!A0", callee_number="@SUM(1+1)"),
            call(a.org.id, T0 - timedelta(minutes=2), disposition="busy", callee_number="-2+3")]
    await insert(web, rows)
    response = await a.client.get(f"/api/v1/orgs/{a.org.id}/calls.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    today = datetime.now(UTC).date().isoformat()
    assert response.headers["content-disposition"] == f'attachment; filename="calls-acme-co-{today}.csv"'
    table = list(csv.reader(io.StringIO(response.text)))
    assert tuple(table[0]) == CSV_COLUMNS
    records = [dict(zip(CSV_COLUMNS, line, strict=True)) for line in table[1:]]
    assert [r["id"] for r in records] == newest_first(rows)
    assert records[0]["from"] == "'+14155550100" and records[0]["to"] == "'+442079460000"
    assert (records[0]["charge"], records[0]["currency"], records[0]["started_at"]) == (
        "13.05", "USD", "2026-03-10T12:00:00Z")
    assert records[1]["from"] == "'=cmd|' /C calc'!A0" and records[1]["to"] == "'@SUM(1+1)"
    assert records[2]["to"] == "'-2+3" and records[2]["disposition"] == "busy"
    assert not any(cell.startswith(("=", "+", "-", "@")) for record in records for cell in record.values())

    filtered = await a.api.get(f"/api/v1/orgs/{a.org.id}/calls.csv",
                               params={"disposition": "busy", "since": "2026-03-01T00:00:00Z"})
    assert [line[0] for line in csv.reader(io.StringIO(filtered.text))] == ["id", rows[2]["id"]]
    async with web.services.sessions() as session:
        events = (await session.execute(select(AuditEvent).where(AuditEvent.action == "calls.export",
                                                                 AuditEvent.org_id == a.org.id)
                                        .order_by(AuditEvent.at))).scalars().all()
    assert [(e.actor_user_id, e.api_key_id is not None) for e in events] == [(a.owner.user.id, False), (None, True)]
    assert events[1].details == {"filter": {"since": "2026-03-01T00:00:00+00:00", "disposition": "busy"},
                                 "format": "csv"}
    # a number filter is someone's phone number: the event says one was used, not which
    by_number = await a.client.get(f"/api/v1/orgs/{a.org.id}/calls.csv", params={"number": "+442079460000"})
    assert [line[0] for line in csv.reader(io.StringIO(by_number.text))] == ["id", rows[0]["id"]]
    async with web.services.sessions() as session:
        last = (await session.execute(select(AuditEvent).where(AuditEvent.action == "calls.export",
                                                               AuditEvent.org_id == a.org.id)
                                      .order_by(AuditEvent.seq.desc()).limit(1))).scalar_one()
    assert last.details == {"filter": {"number": True}, "format": "csv"}
    assert "442079460000" not in json.dumps(last.details)

    refused = await a.client.get(f"/api/v1/orgs/{a.org.id}/calls.csv", params={"until": "2026-03-01T00:00:00"})
    assert refused.status_code == 422  # a naive time: refused before any download starts
    reader, _ = await web.api_client(a.org, ["calls.read"])
    assert (await reader.get(f"/api/v1/orgs/{a.org.id}/calls")).status_code == 200
    denied = await reader.get(f"/api/v1/orgs/{a.org.id}/calls.csv")
    assert denied.status_code == 403 and denied.json()["error_id"] == "permission_denied"


async def asgi_get(app, path, headers):
    """GET through the ASGI app itself, keeping every body message as the server sent it."""
    messages = []
    requested = False
    done = asyncio.Event()

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.wait_for(done.wait(), 60)  # the client stays until the whole response is sent
        return {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "https",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "ringwell.test", **headers}.items()],
             "server": ("ringwell.test", 443), "client": ("127.0.0.1", 40000)}
    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    chunks = [m["body"] for m in messages if m["type"] == "http.response.body" and m.get("body")]
    return start["status"], chunks


async def test_a_large_export_streams_in_chunks(web):
    a = await web.tenant()
    rows = [call(a.org.id, T0 - timedelta(seconds=i // 4)) for i in range(20_000)]
    for start in range(0, len(rows), 5000):
        await insert(web, rows[start:start + 5000])
    status, chunks = await asgi_get(web.app, f"/api/v1/orgs/{a.org.id}/calls.csv",
                                    {"authorization": f"Bearer {a.api_key}"})
    assert status == 200
    body = b"".join(chunks).decode()
    table = list(csv.reader(io.StringIO(body)))
    assert len(table) == 20_001 and tuple(table[0]) == CSV_COLUMNS
    assert [line[0] for line in table[1:]] == newest_first(rows)
    # Sent as it was read: many pieces, none holding more than a small part of the export.
    assert len(chunks) >= 20
    assert max(len(chunk) for chunk in chunks) < len(body) // 10
