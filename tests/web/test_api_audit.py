"""Audit events: append-only in the database itself, each org sees its own trail, staff reads are audited."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from ringwell.features.accounts.models import OrgKind
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor


async def _record(web, org_id: str, action: str, n: int = 1) -> None:
    for i in range(n):
        await web.services.audit.record(action, Actor(user_id="u", org_id=org_id, role="owner"), org_id=org_id,
                                        target_type="thing", target_id=str(i))


async def test_the_database_refuses_to_edit_or_remove_an_audit_event(web):
    org = await web.org()
    await _record(web, org.id, "org.update")
    for statement in (update(AuditEvent).values(action="nothing.happened"), delete(AuditEvent)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with web.services.sessions() as session, session.begin():
                await session.execute(statement)
    async with web.services.sessions() as session:
        assert (await session.execute(text("SELECT action FROM audit_events"))).scalars().all() == ["org.update"]


async def test_an_org_pages_through_its_own_trail_only(web):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    await _record(web, a.org.id, "numbers.rent", 7)
    await _record(web, b.org.id, "users.create", 3)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await a.api.get(f"/api/v1/orgs/{a.org.id}/audit-events", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        assert all(item["org_id"] == a.org.id and item["action"] == "numbers.rent" for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    filtered = (await a.client.get(f"/api/v1/orgs/{a.org.id}/audit-events", params={"action": "users.create"})).json()
    assert filtered["items"] == []
    assert (await a.api.get(f"/api/v1/orgs/{b.org.id}/audit-events")).status_code == 404
    bad = await a.api.get(f"/api/v1/orgs/{a.org.id}/audit-events", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["error_id"] == "invalid_cursor"
    member = await web.member(a.org, "member")
    assert (await (await web.logged_in(member)).get(f"/api/v1/orgs/{a.org.id}/audit-events")).status_code == 403


async def test_a_staff_auditor_reads_any_trail_and_leaves_a_trace(web):
    a = await web.tenant("Alpha")
    await _record(web, a.org.id, "numbers.rent", 2)
    operator = await web.org("Operator", kind=OrgKind.OPERATOR)
    auditor = await web.logged_in(await web.member(operator, "auditor"))
    response = await auditor.get(f"/api/v1/orgs/{a.org.id}/audit-events",
                                 headers={"X-Access-Reason": "quarterly review"})
    assert response.status_code == 200
    # The access is recorded before the read, so the auditor's own visit heads what they see.
    assert [item["action"] for item in response.json()["items"]] == ["staff.access", "numbers.rent", "numbers.rent"]
    trail = (await a.api.get(f"/api/v1/orgs/{a.org.id}/audit-events")).json()["items"]
    assert trail[0]["action"] == "staff.access"
    assert trail[0]["actor_role"] == "auditor" and trail[0]["reason"] == "quarterly review"
    # Every org's trail is an operator route: customers are refused, auditors see all.
    assert (await a.api.get("/api/v1/operator/audit-events")).status_code == 403
    everything = (await auditor.get("/api/v1/operator/audit-events", params={"org_id": a.org.id})).json()
    assert {item["action"] for item in everything["items"]} == {"numbers.rent", "staff.access"}
    # Support staff may not read audit trails at all: for them the org does not exist.
    support = await web.logged_in(await web.member(operator, "support"))
    assert (await support.get(f"/api/v1/orgs/{a.org.id}/audit-events")).status_code == 404
