"""The breach register: privacy staff record incidents and send their notices through the API and the
operator console; auditors read; every change is audited; an overdue notice stands out on the page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from ringwell.features.accounts.models import OrgKind
from ringwell.features.audit.models import AuditEvent

URL = "/api/v1/operator/incidents"


async def staff(web, role="privacy", op=None):
    op = op or await web.org("Operator Ltd", kind=OrgKind.OPERATOR)
    member = await web.member(op, role)
    return op, member, await web.logged_in(member)


async def audit_actions(web):
    async with web.services.sessions() as session:
        rows = (await session.execute(select(AuditEvent).where(AuditEvent.action.startswith("incidents."))
                                      .order_by(AuditEvent.at))).scalars().all()
    return list(rows)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def clock(body, kind):
    (found,) = [c for c in body["clocks"] if c["kind"] == kind]
    return found


async def test_privacy_staff_record_an_incident_and_its_notices_stop_the_clocks(web):
    customer = await web.tenant()
    _, member, client = await staff(web)
    now = datetime.now(UTC)
    aware = now - timedelta(hours=10)
    created = await client.post(URL, json={
        "title": "Voicemail bucket readable", "description": "A misconfigured bucket", "severity": "high",
        "personal_data": True, "cpni": True, "detected_at": iso(aware), "determined_at": iso(aware),
        "org_ids": [customer.org.id], "people_affected": 120})
    assert created.status_code == 201, created.text
    body = created.json()
    incident_id = body["id"]
    authority = clock(body, "authority")
    assert authority["state"] == "pending"
    assert datetime.fromisoformat(authority["due_at"]) == aware + timedelta(hours=72)
    assert 61 * 3600 - 5 < authority["seconds_left"] <= 62 * 3600
    assert clock(body, "law_enforcement")["state"] == "pending"
    assert clock(body, "customers")["state"] == "pending"
    assert body["created_by"] == member.user.id and body["org_ids"] == [customer.org.id]

    # The authority notice, sent two hours ago with its case number.
    sent_at = now - timedelta(hours=2)
    marked = await client.post(f"{URL}/{incident_id}/notices/authority",
                               json={"at": iso(sent_at), "reference": "CNIL-2026-0042"})
    assert marked.status_code == 200, marked.text
    after = marked.json()
    assert clock(after, "authority")["state"] == "done"
    assert datetime.fromisoformat(clock(after, "authority")["done_at"]) == sent_at
    assert after["authority_reference"] == "CNIL-2026-0042"
    items = {i["key"]: i for i in after["checklist"]}
    assert items["notify_authority"]["done_at"] is not None and items["notify_authority"]["by"] == member.user.id
    again = await client.post(f"{URL}/{incident_id}/notices/authority", json={})
    assert again.status_code == 409 and again.json()["error_id"] == "incident_notice_already_sent"

    # A staff item, a note, and the facts corrected.
    ticked = await client.put(f"{URL}/{incident_id}/checklist/contain", json={"done": True})
    assert {i["key"]: i for i in ticked.json()["checklist"]}["contain"]["by"] == member.user.id
    noted = await client.post(f"{URL}/{incident_id}/notes", json={"text": "Bucket policy fixed at 14:00"})
    assert noted.status_code == 201 and [n["text"] for n in noted.json()["notes"]] == ["Bucket policy fixed at 14:00"]
    patched = await client.patch(f"{URL}/{incident_id}", json={"people_affected": 80})
    assert patched.status_code == 200 and patched.json()["people_affected"] == 80

    # Closing is refused while law enforcement and customers have not been told.
    refused = await client.post(f"{URL}/{incident_id}/close")
    assert refused.status_code == 409 and refused.json()["error_id"] == "incident_notices_pending"
    assert refused.json()["details"]["notices"] == ["law_enforcement", "customers"]
    await client.post(f"{URL}/{incident_id}/notices/law_enforcement", json={"reference": "FCC-123"})
    await client.put(f"{URL}/{incident_id}/checklist/notify_customers", json={})  # ticking it marks it sent
    closed = await client.post(f"{URL}/{incident_id}/close")
    assert closed.status_code == 200 and closed.json()["closed_at"] is not None
    assert {c["state"] for c in closed.json()["clocks"]} == {"done"}
    late = await client.patch(f"{URL}/{incident_id}", json={"title": "Changed after the fact"})
    assert late.status_code == 409 and late.json()["error_id"] == "incident_closed"
    assert (await client.post(f"{URL}/{incident_id}/notes", json={"text": "Root cause found"})).status_code == 201

    got = (await client.get(f"{URL}/{incident_id}")).json()
    assert got["title"] == "Voicemail bucket readable" and len(got["notes"]) == 2

    events = await audit_actions(web)
    assert [e.action for e in events] == [
        "incidents.create", "incidents.notice", "incidents.checklist", "incidents.note", "incidents.update",
        "incidents.notice", "incidents.notice", "incidents.close", "incidents.note"]
    assert {e.target_id for e in events} == {incident_id}
    assert {e.actor_user_id for e in events} == {member.user.id}
    assert events[1].details["reference"] == "CNIL-2026-0042"
    assert "Bucket policy" not in str([e.details for e in events])  # note text stays out of the trail


async def test_the_register_lists_open_incidents_first_most_urgent_first(web):
    _, _, client = await staff(web)
    now = datetime.now(UTC)

    async def create(title, hours_ago, **extra):
        response = await client.post(URL, json={"title": title, "personal_data": True, "cpni": False,
                                                "detected_at": iso(now - timedelta(hours=hours_ago)), **extra})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    done = await create("Closed one", 1)
    await client.post(f"{URL}/{done}/notices/authority", json={})
    assert (await client.post(f"{URL}/{done}/close")).status_code == 200
    await create("Recent", 2)
    late = await create("Late", 80)
    await create("Soon", 60)
    listed = (await client.get(URL)).json()["items"]
    assert [i["title"] for i in listed] == ["Late", "Soon", "Recent", "Closed one"]
    assert listed[0]["overdue"] and clock(listed[0], "authority")["state"] == "overdue"
    assert clock(listed[1], "authority")["state"] == "due_soon"
    assert listed[0]["id"] == late
    open_only = (await client.get(URL, params={"status": "open"})).json()["items"]
    assert [i["title"] for i in open_only] == ["Late", "Soon", "Recent"]


async def test_bad_input_is_refused(web):
    _, _, client = await staff(web)
    now = datetime.now(UTC)
    base = {"title": "x", "personal_data": True, "cpni": False, "detected_at": iso(now)}
    cases = [
        {**base, "detected_at": iso(now + timedelta(days=1))},  # in the future
        {**base, "detected_at": "2026-12-01T10:00:00"},  # no time zone
        {**base, "determined_at": iso(now - timedelta(days=1)), "detected_at": iso(now)},  # determined before aware
        {**base, "org_ids": ["00000000-0000-0000-0000-000000000000"]},  # no such org
        {**base, "severity": "apocalyptic"},
        {**base, "title": ""},
        {**base, "title": "nul\u0000byte"},  # PostgreSQL cannot store it: refused, not a 500
        {**base, "detected_at": "1850-01-01T00:00:00Z"},
    ]
    for body in cases:
        response = await client.post(URL, json=body)
        assert response.status_code == 422, (body, response.text)
    assert (await client.get(URL)).json()["items"] == []
    assert (await client.get(f"{URL}/nope")).json()["error_id"] == "incident_not_found"
    incident_id = (await client.post(URL, json=base)).json()["id"]
    for patch in ({"personal_data": None}, {"title": None}, {"detected_at": None}, {"description": "a\u0000b"},
                  {"law_enforcement_delay_until": iso(now - timedelta(days=3))}):
        response = await client.patch(f"{URL}/{incident_id}", json=patch)
        assert response.status_code == 422, (patch, response.text)
    note = await client.post(f"{URL}/{incident_id}/notes", json={"text": "\u0000"})
    assert note.status_code == 422
    unchanged = (await client.get(f"{URL}/{incident_id}")).json()
    assert unchanged["personal_data"] is True and unchanged["title"] == "x" and unchanged["notes"] == []
    assert [e.action for e in await audit_actions(web)] == ["incidents.create"]


async def test_only_privacy_staff_change_it_and_auditors_read_it(web):
    customer = await web.tenant()
    op, _, privacy = await staff(web)
    _, _, support = await staff(web, "support", op)
    _, _, auditor = await staff(web, "auditor", op)
    created = await privacy.post(URL, json={"title": "Laptop stolen", "personal_data": True, "cpni": False,
                                            "detected_at": iso(datetime.now(UTC))})
    incident_id = created.json()["id"]
    writes = [("POST", URL, {"title": "x", "personal_data": True, "cpni": False,
                             "detected_at": iso(datetime.now(UTC))}),
              ("PATCH", f"{URL}/{incident_id}", {"title": "changed"}),
              ("POST", f"{URL}/{incident_id}/notices/authority", {}),
              ("PUT", f"{URL}/{incident_id}/checklist/contain", {"done": True}),
              ("POST", f"{URL}/{incident_id}/notes", {"text": "hello"}),
              ("POST", f"{URL}/{incident_id}/close", None)]
    reads = [("GET", URL, None), ("GET", f"{URL}/{incident_id}", None)]
    for method, path, body in writes + reads:
        for client in (customer.client, customer.api, support):
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error_id"] == "permission_denied"
        assert (await web.client().request(method, path, json=body)).status_code == 401
    for method, path, body in writes:
        assert (await auditor.request(method, path, json=body)).status_code == 403, (method, path)
    for method, path, body in reads:
        assert (await auditor.request(method, path, json=body)).status_code == 200
    after = (await privacy.get(f"{URL}/{incident_id}")).json()
    assert after["title"] == "Laptop stolen" and after["notes"] == [] and after["authority_notified_at"] is None
    assert [e.action for e in await audit_actions(web)] == ["incidents.create"]
    # The portal page too.
    for client in (customer.client, support):
        assert (await client.get("/operator/incidents")).status_code == 403
        assert (await client.get(f"/operator/incidents/{incident_id}")).status_code == 403
    page = await auditor.get("/operator/incidents")
    assert page.status_code == 200 and "Laptop stolen" in page.text and "Record an incident" not in page.text
    refused = await auditor.post("/operator/incidents",
                                 data={"title": "x", "csrf_token": auditor.headers["X-CSRF-Token"]})
    assert refused.status_code == 403


def _row(html: str, title: str) -> str:
    match = re.search(r'<tr class="incident[^"]*"[^>]*>.*?</tr>', html[html.index(title) - 400:], re.S)
    assert match is not None
    return match.group(0)


async def test_the_console_highlights_an_overdue_clock(web):
    _, member, client = await staff(web)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday
    with time_machine.travel(start, tick=False):
        client = await web.logged_in(member)
        csrf = client.headers["X-CSRF-Token"]
        created = await client.post("/operator/incidents", data={
            "title": "Call records exported by a former employee", "severity": "high", "personal_data": "1",
            "cpni": "1", "people_affected": "300", "csrf_token": csrf})
        assert created.status_code == 303
        incident_url = created.headers["location"].split("?")[0]
        page = (await client.get("/operator/incidents")).text
        row = _row(page, "Call records exported")
        assert 'data-clock="authority" data-state="pending"' in row and "72 h 0 min left" not in row
        assert "3 d 0 h left" in row and "overdue" not in row
    with time_machine.travel(start + timedelta(hours=50), tick=False):
        client = await web.logged_in(member)
        row = _row((await client.get("/operator/incidents")).text, "Call records exported")
        assert 'class="badge warn" data-clock="authority" data-state="due_soon"' in row and "22 h 0 min left" in row
    with time_machine.travel(start + timedelta(hours=75), tick=False):
        client = await web.logged_in(member)
        page = (await client.get("/operator/incidents")).text
        row = _row(page, "Call records exported")
        assert 'class="incident overdue"' in row
        assert 'class="badge error" data-clock="authority" data-state="overdue"' in row
        assert "overdue by 3 h 0 min" in row
        # Law enforcement: 7 business days from Monday 2 March -> Wednesday 11 March, still running.
        assert 'data-clock="law_enforcement" data-state="pending"' in row
        detail = await client.get(incident_url)
        assert detail.status_code == 200 and "overdue by 3 h 0 min" in detail.text
        # Sending the notice from the page stops the clock.
        csrf = client.headers["X-CSRF-Token"]
        sent = await client.post(f"{incident_url}/notices/authority",
                                 data={"at": "2026-03-05T11:30", "reference": "ICO-77", "csrf_token": csrf})
        assert sent.status_code == 303
        row = _row((await client.get("/operator/incidents")).text, "Call records exported")
        assert 'class="badge ok" data-clock="authority" data-state="done"' in row and "sent 2026-03-05 11:30" in row
        assert 'class="incident"' in row
    actions = [e.action for e in await audit_actions(web)]
    assert actions == ["incidents.create", "incidents.notice"]


async def test_the_console_forms_tick_note_and_close(web):
    _, _, client = await staff(web)
    csrf = client.headers["X-CSRF-Token"]
    created = await client.post("/operator/incidents", data={"title": "Phishing of a support login",
                                                             "severity": "low", "csrf_token": csrf})
    url = created.headers["location"].split("?")[0]
    assert (await client.post(f"{url}/checklist/contain", data={"done": "1", "csrf_token": csrf})).status_code == 303
    assert (await client.post(f"{url}/notes", data={"text": "Password reset", "csrf_token": csrf})).status_code == 303
    bad = await client.post("/operator/incidents", data={"title": "", "csrf_token": csrf})
    assert bad.status_code == 422 and "give a title" in bad.text
    closed = await client.post(f"{url}/close", data={"csrf_token": csrf})
    assert closed.status_code == 303  # no personal data, no CPNI: no notice is due
    page = (await client.get(url)).text
    assert "Password reset" in page and "closed" in page and "Close the incident" not in page
    assert '<a href="/operator/incidents"' in (await client.get("/operator")).text  # a tab of the console
    assert [e.action for e in await audit_actions(web)] == [
        "incidents.create", "incidents.checklist", "incidents.note", "incidents.close"]
