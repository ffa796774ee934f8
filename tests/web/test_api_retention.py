"""Retention through the API and the CLI: legal holds placed and released by privacy staff only (audited),
the reports of retention runs, an org's own call record period within its country's bound, and
``ringwell admin retention [--dry-run] [--json]`` printing the report."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from ringwell.cli import main
from ringwell.features.audit.models import AuditEvent
from ringwell.features.cdr.models import CallRecord

API = "/api/v1"



async def test_legal_holds_are_privacy_staff_only_and_audited(web):
    a = await web.tenant()
    _, support = await web.staff("support")
    privacy_member, privacy = await web.staff("privacy")
    body = {"org_id": a.org.id, "user_id": a.owner.user.id, "reason": "case 17: litigation hold"}
    for client in (a.client, a.api, support):
        assert (await client.post(f"{API}/operator/legal-holds", json=body)).status_code == 403
        assert (await client.get(f"{API}/operator/legal-holds")).status_code == 403
        assert (await client.get(f"{API}/operator/retention/runs")).status_code == 403

    placed = await privacy.post(f"{API}/operator/legal-holds", json=body)
    assert placed.status_code == 201
    hold = placed.json()
    assert (hold["org_id"], hold["user_id"], hold["active"], hold["created_by"]) == (
        a.org.id, a.owner.user.id, True, privacy_member.user.id)
    listed = (await privacy.get(f"{API}/operator/legal-holds", params={"active": True})).json()["items"]
    assert [h["id"] for h in listed] == [hold["id"]]

    released = await privacy.post(f"{API}/operator/legal-holds/{hold['id']}/release")
    assert released.status_code == 200 and released.json()["active"] is False
    again = await privacy.post(f"{API}/operator/legal-holds/{hold['id']}/release")
    assert (again.status_code, again.json()["error_id"]) == (409, "legal_hold_released")
    assert (await privacy.post(f"{API}/operator/legal-holds/nope/release")).status_code == 404
    assert (await privacy.get(f"{API}/operator/legal-holds", params={"active": True})).json()["items"] == []
    bad = await privacy.post(f"{API}/operator/legal-holds", json={**body, "org_id": "no-such-org"})
    assert (bad.status_code, bad.json()["error_id"]) == (422, "invalid_legal_hold")

    async with web.services.sessions() as session:
        events = (await session.execute(select(AuditEvent.action, AuditEvent.actor_user_id, AuditEvent.org_id).where(
            AuditEvent.action.startswith("legal_hold.")).order_by(AuditEvent.at))).all()
    assert events == [("legal_hold.place", privacy_member.user.id, a.org.id),
                      ("legal_hold.release", privacy_member.user.id, a.org.id)]


async def test_an_orgs_call_record_period_is_bounded_by_its_country(web):
    us = await web.tenant()  # the test tenants are in the US: up to 7 years
    url = f"{API}/orgs/{us.org.id}"
    assert (await us.client.get(url)).json()["call_record_retention_days"] is None
    ok = await us.client.patch(url, json={"call_record_retention_days": 2557})
    assert ok.status_code == 200 and ok.json()["call_record_retention_days"] == 2557
    too_long = await us.client.patch(url, json={"call_record_retention_days": 2558})
    assert too_long.status_code == 422 and too_long.json()["details"]["field"] == "call_record_retention_days"
    back = await us.client.patch(url, json={"call_record_retention_days": None})
    assert back.json()["call_record_retention_days"] is None

    org = await web.org(f"Gmbh {secrets.token_hex(2)}", country="DE", currency="EUR")
    owner = await web.logged_in(await web.member(org, "owner"))
    url = f"{API}/orgs/{org.id}"
    refused = await owner.patch(url, json={"call_record_retention_days": 400})  # others: at most 12 months
    assert refused.status_code == 422 and "1-365" in refused.json()["message"]
    assert (await owner.patch(url, json={"call_record_retention_days": 90})).json()["call_record_retention_days"] == 90


async def test_the_cli_prints_the_report_and_the_run_is_listed(web, capsys):
    settings = web.services.settings
    (settings.data_dir / "ringwell.toml").write_text(
        f'secret_key = "{settings.secret_key}"\ndatabase_url = "{settings.database_url}"\n')
    a = await web.tenant()
    old = datetime.now(UTC) - timedelta(days=400)
    async with web.services.sessions() as session, session.begin():
        for at in (old, old, datetime.now(UTC)):
            session.add(CallRecord(org_id=a.org.id, sip_call_id=secrets.token_hex(6), direction="internal",
                                   callee_number="102", started_at=at, last_alive_at=at, state="closed"))
    data = str(settings.data_dir)

    assert await asyncio.to_thread(main, ["admin", "retention", "--dry-run", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "dry run (nothing deleted)" in out
    [line] = [row for row in out.splitlines() if row.startswith("call_records")]
    assert line.split() == ["call_records", "2", "0"]
    async with web.services.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(CallRecord))).scalar_one() == 3

    assert await asyncio.to_thread(main, ["admin", "retention", "--json", "--data-dir", data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is False and report["counts"]["call_records"] == {"purged": 2, "held": 0}
    async with web.services.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(CallRecord))).scalar_one() == 1

    _, privacy = await web.staff("privacy")
    runs = (await privacy.get(f"{API}/operator/retention/runs")).json()["items"]
    assert len(runs) == 1  # the dry run is not stored
    assert runs[0]["dry_run"] is False and runs[0]["counts"]["call_records"] == {"purged": 2, "held": 0}
