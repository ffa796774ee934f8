"""People's privacy requests on SQLite and PostgreSQL: who a request is about is fixed when it is
received (a verified login, a user email only in the organization staff name, a portal request the
person's own account), only those accounts are acted on, and a deletion of several accounts keeps
each receipt even when one of them fails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.features.accounts.errors import LastOwner
from ringwell.features.accounts.models import User
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.requests_errors import InvalidRequest
from ringwell.features.privacy.requests_service import RequestsService

STAFF = Actor(user_id="00000000-0000-0000-0000-000000000001", org_id="operator", role="privacy")
PAT = "pat@example.com"


@pytest.fixture
def service(sessions, tmp_path):
    store = BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")
    return RequestsService(sessions, AuditLog(sessions), AccountsService(sessions, "ringwell"), store, REGISTER)


async def set_user(sessions, user_id: str, **values) -> None:
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(User.id == user_id).values(**values))


async def exists(sessions, user_id: str) -> bool:
    async with sessions() as session:
        return await session.get(User, user_id) is not None


async def pat_everywhere(sessions, acme) -> None:
    """Pat logs in with a verified address on alice's account (Acme); Other's owner typed the same
    address as carol's user email (unverified), and carol is Other's only owner."""
    await set_user(sessions, acme["alice"], login_email=PAT, email_verified_at=datetime.now(UTC))
    await set_user(sessions, acme["carol"], email=PAT, role="owner")


async def test_a_staff_request_is_about_the_verified_login_and_users_only_in_the_named_org(sessions, acme, service):
    await pat_everywhere(sessions, acme)
    plain = await service.create(kind="export", law="gdpr", source="staff", subject_email="PAT@example.com",
                                 identity_verified="reply from the address", actor=STAFF)
    assert plain.subjects == [{"org_id": acme["acme"], "org": "Acme", "user_id": acme["alice"],
                               "matched_by": "login_email"}]
    assert plain.user_id == acme["alice"]
    named = await service.create(kind="export", law="gdpr", source="staff", subject_email=PAT,
                                 identity_verified="reply from the address", actor=STAFF, org="Other")
    assert [(s["org"], s["user_id"], s["matched_by"]) for s in named.subjects] == [
        ("Acme", acme["alice"], "login_email"), ("Other", acme["carol"], "email")]
    assert named.user_id is None  # several accounts: the request is not one user's
    # a user email alone (no verified login, no org named) is nobody
    lone = await service.create(kind="deletion", law="gdpr", source="staff", subject_email="bob@example.com",
                                identity_verified="call-back", actor=STAFF)
    assert lone.subjects == [] and lone.user_id is None
    with pytest.raises(InvalidRequest, match="names no account"):
        await service.erase(lone.id, actor=STAFF)
    assert await exists(sessions, acme["bob"])
    # an unverified login is not a match either
    await set_user(sessions, acme["bob"], login_email="bob@example.com")
    again = await service.create(kind="access", law="gdpr", source="staff", subject_email="bob@example.com",
                                 identity_verified="call-back", actor=STAFF)
    assert again.subjects == []
    with pytest.raises(InvalidRequest, match="no organization named"):
        await service.create(kind="access", law="gdpr", source="staff", subject_email=PAT,
                             identity_verified="call-back", actor=STAFF, org="Nowhere")
    async with sessions() as session:
        [event] = (await session.execute(select(AuditEvent).where(AuditEvent.target_id == named.id))).scalars().all()
    assert event.details["subjects"] == 2 and PAT not in str(event.details)


async def test_the_subjects_are_fixed_when_received_and_a_portal_request_is_the_persons_own(sessions, acme,
                                                                                           service):
    await pat_everywhere(sessions, acme)
    await set_user(sessions, acme["carol"], role="member")
    # Pat asks from the portal: their own account only, although carol's user email is the same
    me = Actor(user_id=acme["alice"], org_id=acme["acme"], role="member")
    mine = await service.create(kind="restriction", law="gdpr", source="portal", subject_email=PAT,
                                identity_verified="portal login + MFA", actor=me, org_id=acme["acme"],
                                user_id=acme["alice"])
    assert [(s["user_id"], s["matched_by"]) for s in mine.subjects] == [(acme["alice"], "portal")]
    await service.restrict(mine.id, actor=me)
    async with sessions() as session:
        assert (await session.get(User, acme["alice"])).processing_restricted_at is not None
        assert (await session.get(User, acme["carol"])).processing_restricted_at is None
    # staff enter a deletion naming Acme; a user with Pat's address added in Acme later is not touched
    deletion = await service.create(kind="deletion", law="gdpr", source="staff", subject_email=PAT,
                                    identity_verified="call-back", actor=STAFF, org="Acme")
    later = await AccountsService(sessions, "ringwell").create_user("Acme", UserSpec("x@example.com", "109"))
    await set_user(sessions, later.user.id, email=PAT)
    done = await service.erase(deletion.id, actor=STAFF)
    assert done.status == "done" and [r["user_id"] for r in done.outcome["receipts"]] == [acme["alice"]]
    assert not await exists(sessions, acme["alice"])
    assert await exists(sessions, later.user.id) and await exists(sessions, acme["carol"])


async def test_a_deletion_keeps_each_receipt_when_one_account_fails_and_finishes_when_run_again(sessions, acme,
                                                                                               service):
    await pat_everywhere(sessions, acme)  # carol is Other's only owner: her erasure is refused
    request = await service.create(kind="deletion", law="gdpr", source="staff", subject_email=PAT,
                                   identity_verified="call-back", actor=STAFF, org="Other")
    with pytest.raises(LastOwner):
        await service.erase(request.id, actor=STAFF)
    stuck = await service.get(request.id)
    assert stuck.status == "in_progress" and stuck.closed_at is None
    [receipt] = stuck.outcome["receipts"]  # alice's, saved although the request did not finish
    assert receipt["user_id"] == acme["alice"] and receipt["deleted"]["users"] == 1
    assert stuck.outcome["failed"]["user_id"] == acme["carol"]
    assert stuck.outcome["failed"]["error_id"] == "last_owner"
    assert not await exists(sessions, acme["alice"]) and await exists(sessions, acme["carol"])
    # Other gets another owner; running it again erases carol only, and closes the request
    other = await AccountsService(sessions, "ringwell").create_user("Other", UserSpec("olga@example.com", "202"))
    await set_user(sessions, other.user.id, role="owner")
    done = await service.erase(request.id, actor=STAFF)
    assert done.status == "done" and "failed" not in done.outcome
    assert [r["user_id"] for r in done.outcome["receipts"]] == [acme["alice"], acme["carol"]]
    assert not await exists(sessions, acme["carol"])
    async with sessions() as session:
        erasures = (await session.execute(select(AuditEvent.target_id).where(
            AuditEvent.action == "privacy.erase_person"))).scalars().all()
    assert sorted(erasures) == sorted([acme["alice"], acme["carol"]])  # alice was not erased twice


async def test_user_create_and_delete_audit_details_name_no_email(sessions, acme):
    """Without the erasure hook (a bare AccountsService): the details still hold no email or username."""
    accounts = AccountsService(sessions, "ringwell")
    seen: list[dict] = []

    async def hook(_session, _target_id, details):
        seen.append(details)

    created = await accounts.add_user(acme["acme"], UserSpec("dora@example.com", "150", "dora-sip"),
                                      granter_role="owner", audit=hook)
    await accounts.delete_user(acme["acme"], created.user.id, granter_role="owner", acting_user_id=None,
                               audit=hook)
    assert seen == [{"extension": "150", "role": "member"},
                    {"extension": "150", "role": "member", "files_deleted": 0}]
