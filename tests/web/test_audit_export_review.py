"""The operator's audit routes: the auditor export (re-verifiable offline), the chain check and the
staff access review — for auditors only, and each leaving a trace in the trail."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import text

from ringwell.features.accounts.models import OrgKind
from ringwell.features.audit.service import Actor


async def _staff(web):
    operator = await web.org("Operator", kind=OrgKind.OPERATOR)
    auditor = await web.member(operator, "auditor")
    support = await web.member(operator, "support")
    return operator, auditor, support


async def test_an_auditor_exports_the_trail_and_can_recompute_every_hash(web):
    tenant = await web.tenant("Alpha")
    for i in range(3):
        await web.services.audit.record("numbers.rent", Actor(user_id=tenant.owner.user.id, org_id=tenant.org.id),
                                        org_id=tenant.org.id, target_id=str(i), details={"e164": f"+1555000{i}"})
    _, auditor, support = await _staff(web)
    client = await web.logged_in(auditor)
    response = await client.get("/api/v1/operator/audit-events/export", headers={"X-Access-Reason": "annual audit"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    prev = "0" * 64
    for line in lines:
        body = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert line["prev_hash"] == prev
        assert hashlib.sha256(prev.encode() + b"\n" + encoded).hexdigest() == line["hash"]
        prev = line["hash"]
    assert {"numbers.rent", "audit.export"} <= {line["action"] for line in lines}
    export_event = next(line for line in lines if line["action"] == "audit.export")
    assert export_event["reason"] == "annual audit" and export_event["actor_user_id"] == auditor.user.id
    # Neither customers nor support staff may take the trail away.
    assert (await tenant.api.get("/api/v1/operator/audit-events/export")).status_code == 403
    assert (await (await web.logged_in(support)).get("/api/v1/operator/audit-events/export")).status_code == 403
    # The org's own trail pages show each event's place in the chain.
    page = (await tenant.api.get(f"/api/v1/orgs/{tenant.org.id}/audit-events")).json()["items"]
    assert all(item["seq"] >= 1 and len(item["hash"]) == 64 for item in page)


async def test_the_chain_check_names_an_edited_event(web):
    _, auditor, _ = await _staff(web)
    await web.services.audit.record("org.update", Actor(user_id="u"), org_id=None)
    client = await web.logged_in(auditor)
    result = (await client.get("/api/v1/operator/audit-events/verify")).json()
    assert result["intact"] and result["message"].startswith("audit trail intact: ")
    async with web.server.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        victim = (await conn.execute(text("SELECT id FROM audit_events WHERE action = 'org.update'"))).scalar_one()
        await conn.execute(text("UPDATE audit_events SET outcome = 'denied' WHERE id = :id"), {"id": victim})
    result = (await client.get("/api/v1/operator/audit-events/verify")).json()
    assert not result["intact"] and result["problem"] == "edited" and result["event_id"] == victim


async def test_the_access_review_lists_every_staff_user_and_is_recorded(web):
    operator, auditor, support = await _staff(web)
    admin = await web.member(operator, "admin")
    customer = await web.tenant("Customer")  # its owner is not staff
    client = await web.logged_in(auditor)
    response = await client.get("/api/v1/operator/access-review")
    assert response.status_code == 200
    items = {item["user_id"]: item for item in response.json()["items"]}
    assert set(items) == {auditor.user.id, support.user.id, admin.user.id}
    assert customer.owner.user.id not in items
    assert items[support.user.id]["role"] == "support" and items[support.user.id]["mfa"] is False
    assert items[admin.user.id]["org"] == "Operator"
    trail = (await client.get("/api/v1/operator/audit-events", params={"action": "audit.access_review"})).json()
    (event,) = trail["items"]
    assert event["actor_user_id"] == auditor.user.id and event["details"]["staff"] == 3
    assert (await customer.api.get("/api/v1/operator/access-review")).status_code == 403


async def test_the_server_reviews_staff_access_every_30_days(web, caplog):
    from datetime import UTC, datetime, timedelta

    from ringwell.features.audit.review import review_if_due

    _operator, auditor, support = await _staff(web)
    audit = web.services.audit
    now = datetime.now(UTC)
    with caplog.at_level("WARNING", logger="ringwell.features.audit.review"):
        first = await review_if_due(audit, now)
    assert first is not None and {s.user_id for s in first} >= {auditor.user.id, support.user.id}
    assert f"staff user {support.user.id} (support) has no MFA" in caplog.text
    assert await review_if_due(audit, now + timedelta(days=29)) is None  # one was done 29 days ago
    assert await review_if_due(audit, now + timedelta(days=31)) is not None  # the next month's
    client = await web.logged_in(auditor)
    trail = (await client.get("/api/v1/operator/audit-events", params={"action": "audit.access_review"})).json()
    assert len(trail["items"]) == 2 and all(e["actor_user_id"] is None for e in trail["items"])
