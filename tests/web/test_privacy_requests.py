"""People's privacy requests in the portal and the API (SQLite and PostgreSQL): the fresh-login and
MFA gates, the export downloaded as a zip, deletion with its receipt, and the staff queue with
overdue requests first."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from ringwell.features.accounts.models import OrgKind, User
from ringwell.features.auth.models import WebSession
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.pbx.registrar import Binding
from ringwell.transport.source import Source


async def with_mfa(web, member) -> None:
    async with web.services.sessions() as session, session.begin():
        await session.execute(update(User).where(User.id == member.user.id).values(
            mfa_enabled_at=datetime.now(UTC)))


async def login_age(web, member, minutes: int) -> None:
    async with web.services.sessions() as session, session.begin():
        await session.execute(update(WebSession).where(WebSession.user_id == member.user.id).values(
            authenticated_at=datetime.now(UTC) - timedelta(minutes=minutes)))


async def test_mfa_must_be_on_before_any_request(web):
    org = await web.org()
    person = await web.member(org, "member")
    browser = await web.logged_in(person)
    page = await browser.get("/privacy/me")
    assert page.status_code == 303 and page.headers["location"] == "/privacy/me/check?reason=mfa_setup"
    check = await browser.get(page.headers["location"])
    assert "Turn on two-step verification first" in check.text and 'href="/settings/security"' in check.text
    api = await browser.post("/api/v1/me/privacy/requests", json={"kind": "export"})
    assert api.status_code == 403 and api.json()["error_id"] == "mfa_not_enabled"
    async with web.services.sessions() as session:
        assert (await session.execute(select(DataRequest))).first() is None


async def test_an_old_login_must_log_in_again(web):
    org = await web.org()
    person = await web.member(org, "member")
    await with_mfa(web, person)
    browser = await web.logged_in(person)
    await login_age(web, person, 11)
    page = await browser.get("/privacy/me")
    assert page.headers["location"] == "/privacy/me/check?reason=stale"
    assert "Please log in again" in (await browser.get("/privacy/me/check?reason=stale")).text
    api = await browser.post("/api/v1/me/privacy/requests", json={"kind": "deletion", "confirm": "DELETE"})
    assert api.status_code == 401 and api.json()["error_id"] == "fresh_login_required"
    relogin = await browser.post("/privacy/me/relogin")
    assert relogin.status_code == 303 and relogin.headers["location"] == "/login?next=/privacy/me"
    assert (await browser.get("/privacy/me")).headers["location"].startswith("/login")  # the session ended
    async with web.services.sessions() as session:
        assert await session.get(User, person.user.id) is not None  # nothing was deleted


async def test_fresh_login_with_mfa_downloads_the_export(web):
    org = await web.org()
    person = await web.member(org, "member")
    colleague = await web.member(org, "member")
    await with_mfa(web, person)
    browser = await web.logged_in(person)
    assert (await browser.get("/privacy/me")).status_code == 200
    made = await browser.post("/privacy/me/requests", data={"kind": "export"})
    assert made.status_code == 303 and made.headers["location"] == "/privacy/me?done=export"
    page = await browser.get("/privacy/me?done=export")
    assert "Your export is ready" in page.text and 'data-testid="download"' in page.text
    [row] = (await browser.get("/api/v1/me/privacy/requests")).json()["items"]
    assert row["kind"] == "export" and row["status"] == "open" and row["identity_verified"] == "portal login + MFA"
    assert datetime.fromisoformat(row["due_at"]) - datetime.fromisoformat(row["received_at"]) <= timedelta(days=30)
    zipped = await browser.get(f"/privacy/me/requests/{row['id']}/export")
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(zipped.content))
    users = json.loads(archive.read("account.json"))["tables"]["users"]
    assert [u["email"] for u in users] == [person.email]
    assert colleague.email.encode() not in zipped.content
    [done] = (await browser.get("/api/v1/me/privacy/requests")).json()["items"]
    assert done["status"] == "done" and done["outcome"]["zip_bytes"] > 0
    # someone else's request is not found
    other = await web.logged_in(colleague)
    await with_mfa(web, colleague)
    assert (await other.get(f"/api/v1/me/privacy/requests/{row['id']}/export")).status_code == 404


async def test_api_keys_cannot_make_a_persons_request(web):
    tenant = await web.tenant()
    answer = await tenant.api.post("/api/v1/me/privacy/requests", json={"kind": "export"})
    assert answer.status_code == 403


async def test_restriction_applies_at_once_and_deletion_needs_the_word(web):
    org = await web.org()
    await web.member(org, "owner")  # someone else owns the org
    person = await web.member(org, "member")
    await with_mfa(web, person)
    browser = await web.logged_in(person)
    restricted = await browser.post("/privacy/me/requests", data={"kind": "objection"})
    assert restricted.headers["location"] == "/privacy/me?done=restricted"
    async with web.services.sessions() as session:
        assert (await session.get(User, person.user.id)).processing_restricted_at is not None
    refused = await browser.post("/privacy/me/requests", data={"kind": "deletion", "confirm": "yes"})
    assert refused.status_code == 422 and "type DELETE" in refused.text
    # the person's desk phone is registered on this node: the deletion must log it out at once
    cred = await web.services.accounts.credential(person.sip_username)
    web.services.registrar.load([Binding(
        cred.credential_id, org.id, cred.username, "k1", f"sip:{cred.username}@192.0.2.7:5062",
        time.time() + 300, 1000, "call-1", 1, "Yealink T54W", Source("udp", "192.0.2.7", 5062))])
    assert web.services.registrar.lookup(cred.credential_id, time.time())
    deleted = await browser.post("/privacy/me/requests", data={"kind": "deletion", "confirm": "DELETE"})
    # the receipt is given at once (the person has no account left to read it from) and by email
    assert deleted.status_code == 200 and 'data-testid="receipt-kept"' in deleted.text
    assert "audit_events" in deleted.text and "until 20" in deleted.text  # what was kept, and until when
    assert f"sent to {person.email}" in deleted.text
    assert (await browser.get("/privacy/me")).status_code in (302, 303)  # logged out
    mails = [p.read_text() for p in (web.services.settings.data_dir / "outbox").glob("*.eml")]
    (receipt_mail,) = [m for m in mails if "Your data was deleted" in m]
    assert f"To: {person.email}" in receipt_mail and "Kept, why, and until when:" in receipt_mail
    assert "- audit_events (" in receipt_mail
    assert web.services.registrar.lookup(cred.credential_id, time.time()) == []
    async with web.services.sessions() as session:
        assert await session.get(User, person.user.id) is None
        request = (await session.execute(select(DataRequest).where(DataRequest.kind == "deletion"))).scalar_one()
    assert request.status == "done" and request.user_id is None
    assert request.outcome["receipts"][0]["kept"]  # what was kept, why, until when


async def test_staff_queue_shows_overdue_first_and_staff_act(web):
    operator = await web.org("Operator", kind=OrgKind.OPERATOR)
    officer = await web.logged_in(await web.member(operator, "privacy"))
    support = await web.logged_in(await web.member(operator, "support"))
    org = await web.org()
    person = await web.member(org, "member")
    fresh = await officer.post("/api/v1/operator/privacy/requests", json={
        "kind": "correction", "law": "gdpr", "subject_email": person.email, "details": "my name is Dana Q",
        "identity_verified": "reply from the account's address"})
    assert fresh.status_code == 201 and fresh.json()["user_id"] == person.user.id
    assert fresh.json()["subjects"] == [{"org_id": org.id, "org": org.name, "user_id": person.user.id,
                                         "matched_by": "login_email"}]
    late = await officer.post("/api/v1/operator/privacy/requests", json={
        "kind": "access", "law": "ccpa", "subject_email": person.email, "identity_verified": "call-back",
        "received_at": (datetime.now(UTC) - timedelta(days=31)).isoformat()})
    assert late.json()["overdue"] is True
    queue = (await officer.get("/api/v1/operator/privacy/requests")).json()["items"]
    assert [i["id"] for i in queue] == [late.json()["id"], fresh.json()["id"]]
    page = await officer.get("/operator/privacy/requests")
    assert page.status_code == 200
    assert page.text.index(late.json()["id"]) < page.text.index(fresh.json()["id"])
    assert f'data-request="{late.json()["id"]}" data-overdue="yes"' in page.text
    assert f'data-request="{fresh.json()["id"]}" data-overdue="no"' in page.text
    assert f'<li data-user="{person.user.id}">{org.name} · user {person.user.id[:8]} (login email)</li>' in page.text
    assert (await support.get("/operator/privacy/requests")).status_code == 403
    assert (await support.get("/api/v1/operator/privacy/requests")).status_code == 403
    corrected = await officer.post(f"/operator/privacy/requests/{fresh.json()['id']}",
                                   data={"action": "carry-out", "name": "Dana Q"})
    assert corrected.status_code == 303
    async with web.services.sessions() as session:
        assert (await session.get(User, person.user.id)).name == "Dana Q"
    refused = await officer.post(f"/api/v1/operator/privacy/requests/{late.json()['id']}/status",
                                 json={"status": "refused"})
    assert refused.status_code == 422  # a refusal needs its reason
    entered = await officer.post("/operator/privacy/requests", data={
        "kind": "deletion", "law": "gdpr", "subject_email": "nobody@example.com", "identity_verified": ""})
    assert entered.status_code == 422 and "verified" in entered.text
