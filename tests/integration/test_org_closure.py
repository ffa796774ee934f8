"""Closing an organization, and its data gone 90 days later (SQLite and PostgreSQL) — issue 8.

Acme (its owner, alicia and bob with data of every kind, org-wide settings, hold music, a rented
number, webhooks, a ledger) is closed: nobody can sign in, register a phone or use an API key,
its number goes back to the inventory. Its data stays for the closed-account period; a legal hold
on one person keeps the whole org past it. Once due (frozen clock), the retention run erases
every person and deletes the rest: every column of every row of every table and every file under
the data directory is then searched for the people's emails, names, numbers and SIP usernames and
the org's name — only the register's exceptions (audit trail, the ledger without dialled numbers)
hold any; its media copied before (a backup) never decrypts again. Another org is untouched.
The org row and its ledger stay for the ledger period, then go too.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select, update

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.features.accounts.errors import OrganizationClosed
from ringwell.features.accounts.models import Organization, SipCredential, User
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.auth.models import ApiKey, WebSession
from ringwell.features.billing.models import LedgerTransaction
from ringwell.features.billing.service import LedgerService
from ringwell.features.cdr.models import CallRecord
from ringwell.features.fraud.models import FraudSettings
from ringwell.features.numbers.models import CallerIdVerification, PhoneNumber
from ringwell.features.numbers.service import NumbersService
from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.closure import (
    ClosureService,
    InvalidClosure,
    OrgNotClosed,
    OrgPurged,
    anonymised_name,
)
from ringwell.features.privacy.erasure import ErasureService, kept_columns
from ringwell.features.privacy.models_holds import LegalHold
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.retention import RetentionPolicy
from ringwell.features.privacy.retention_service import RetentionService
from ringwell.features.recordings.models import RecordingPolicy
from ringwell.features.registrations.models import BindingRow
from ringwell.features.voicemail.service import VoicemailService
from ringwell.features.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.integration.privacy_world import (
    CALLER,
    DIALLED,
    DID,
    EMAIL,
    NAME,
    NEEDLES,
    PHONE,
    SIP_USER,
    assert_unreadable,
    build_world,
    pcm,
    scan_database,
    scan_files,
)

ORG_NEEDLES = [*NEEDLES, "bob@example.com", "Bob Other", "bobsip", "owner@example.com", "Acme"]
STAFF = Actor(user_id=None, user_agent="test staff", reason="customer asked to close the account")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path  # the SQLite database file lives here too, as in a default install


@pytest.fixture
def store(sessions, data_dir):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), data_dir / "blobs")


@pytest.fixture
async def world(sessions, store):
    world = await build_world(sessions, store)
    org = world["org"]
    # What the org has of its own: hold music, an org-wide recording policy, fraud caps.
    world["music"] = await store.put(org, "hold_music", pcm(2.0), content_type="audio/wav")
    async with sessions() as session, session.begin():
        session.add(RecordingPolicy(org_id=org, scope="org", mode="always", updated_at=datetime.now(UTC)))
        session.add(FraudSettings(org_id=org, max_concurrent=3))
        session.add(CallerIdVerification(org_id=org, user_id=world["alice"], e164=PHONE, code_hash="h" * 97,
                                         expires_at=datetime.now(UTC) + timedelta(minutes=10)))
    # Another org, with a person and a voicemail of her own: nothing of it may change.
    accounts = AccountsService(sessions, "ringwell")
    await accounts.create_org("Other")
    carol = (await accounts.create_user("Other", UserSpec("carol@example.com", "201", "carolsip", "password1",
                                                          name="Carol Kept"))).user
    kept_long = VoicemailService(sessions, store, retention_days=3650)  # not due in the years this test spans
    message = await kept_long.deposit(carol.org_id, carol.id, "+13125550999", "Someone", pcm())
    assert message is not None
    world.update(other=carol.org_id, carol=carol.id, carols=message, accounts=accounts)
    return world


def services(sessions, store, *, days: int = 90):
    audit = AuditLog(sessions)
    policy = RetentionPolicy()
    erasure = ErasureService(sessions, store, audit=audit, policy=policy)
    closure = ClosureService(sessions, store, erasure, audit=audit, retention_days=days)
    accounts = AccountsService(sessions, "ringwell")
    accounts.erase = erasure.erase_hook()
    retention = RetentionService(sessions, policy=policy, blobs=store, accounts=accounts, audit=audit,
                                 closure=closure)
    return closure, retention


async def test_closing_stops_everything_and_90_days_later_only_the_registers_exceptions_remain(
        sessions, store, world, data_dir, tmp_path_factory):
    org = world["org"]
    assert {needle for hits in (await scan_database(sessions, ORG_NEEDLES)).values() for needle in hits} \
        >= {NAME, "Bob Other", "Acme"}  # the needles are there before: the scans can fail
    backup = tmp_path_factory.mktemp("backup") / "blobs"
    shutil.copytree(data_dir / "blobs", backup)  # a backup taken before the closure
    async with sessions() as session:
        org_blobs = list((await session.execute(select(Blob).where(Blob.org_id == org))).scalars())
        entries_before = (await session.execute(select(func.count()).select_from(LedgerTransaction)
                                                .where(LedgerTransaction.org_id == org))).scalar_one()
    balance_before = await LedgerService(sessions).balance(org)
    assert len(org_blobs) == 7  # message audio + transcript, greeting, bob's message, two recordings, hold music
    closure, retention = services(sessions, store)

    closed = await closure.close(org, actor=STAFF, reason="customer asked to close the account")
    assert (closed.users_disabled, closed.credentials_deleted, closed.api_keys_revoked) == (3, 3, 1)
    assert closed.numbers_released == (DID,) and closed.sessions_ended == 1
    assert closed.purge_after is not None and closed.purge_after - closed.closed_at == timedelta(days=90)
    async with sessions() as session:
        users = (await session.execute(select(User.disabled_at).where(User.org_id == org))).scalars().all()
        assert len(users) == 3 and all(at == closed.closed_at for at in users)
        assert (await session.execute(select(SipCredential).where(SipCredential.org_id == org))).first() is None
        assert (await session.execute(select(BindingRow).where(BindingRow.org_id == org))).first() is None
        assert (await session.execute(select(WebSession).where(WebSession.org_id == org))).first() is None
        assert (await session.execute(select(ApiKey.revoked_at))).scalar_one() == closed.closed_at
        number = (await session.execute(select(PhoneNumber).where(PhoneNumber.e164 == DID))).scalar_one()
        assert (number.state, number.org_id, number.route_user_id) == ("quarantine", None, None)
        event = (await session.execute(select(AuditEvent).where(AuditEvent.action == "orgs.close"))).scalar_one()
        assert (event.org_id, event.reason) == (org, "customer asked to close the account")
        assert event.details["numbers_released"] == 1  # counts only
        endpoint = (await session.execute(select(WebhookEndpoint).where(WebhookEndpoint.org_id == org))).scalar_one()
        assert endpoint.enabled is False
        statuses = (await session.execute(select(WebhookDelivery.status).where(WebhookDelivery.org_id == org))
                    ).scalars().all()
        assert statuses and "pending" not in statuses  # nothing more is sent
        assert (await session.execute(select(CallerIdVerification).where(CallerIdVerification.org_id == org))
                ).first() is None
    with pytest.raises(OrganizationClosed):
        await world["accounts"].create_user("Acme", UserSpec("new@example.com", "109", "newsip", "password1"))
    numbers = NumbersService(sessions, LedgerService(sessions))
    await numbers.import_numbers(["number,country,type,monthly_price,setup_price,trunk\n",
                                  "+1 415 555 0150,US,fixed,2.50,1.00,\n"])
    with pytest.raises(OrganizationClosed):
        await numbers.rent(org, "+14155550150", datetime.now(UTC))
    again = await closure.close(org, actor=STAFF, reason="twice")
    assert (again.closed_at, again.users_disabled) == (closed.closed_at, 0)
    # Meanwhile its data is all there (the person may still ask for an export).
    assert len(await world["voicemail"].audio(org, world["hers"].id)) > 16000

    # 89 days on: not due. 91 days on, a legal hold on one person keeps the whole org.
    with time_machine.travel(closed.closed_at + timedelta(days=89)):
        report = await retention.run()
    assert (report.counts["closed_organizations"].purged, report.counts["closed_organizations"].held) == (0, 0)
    async with sessions() as session, session.begin():
        session.add(LegalHold(org_id=org, user_id=world["bob"], reason="case 7"))
    with time_machine.travel(closed.closed_at + timedelta(days=91)):
        report = await retention.run()
    assert (report.counts["closed_organizations"].purged, report.counts["closed_organizations"].held) == (0, 1)
    assert report.counts["closed_accounts"].purged == 0  # its people wait with it, the last owner included
    assert len(await world["voicemail"].audio(org, world["bobs"].id)) > 16000  # bob's message, held
    async with sessions() as session, session.begin():
        await session.execute(update(LegalHold).values(released_at=datetime.now(UTC)))
    # An export a person asked for on day 85, still open: answered first, the org waits for it.
    async with sessions() as session, session.begin():
        request = DataRequest(kind="access", law="gdpr", source="staff", subject_email=EMAIL, org_id=org,
                              identity_verified="staff: reply from the address on file",
                              user_id=world["alice"], received_at=closed.closed_at + timedelta(days=85),
                              due_at=closed.closed_at + timedelta(days=115), status="open")
        session.add(request)
    with time_machine.travel(closed.closed_at + timedelta(days=91)):
        report = await retention.run()
    assert (report.counts["closed_organizations"].purged, report.counts["closed_organizations"].held) == (0, 1)
    async with sessions() as session, session.begin():
        await session.execute(update(DataRequest).values(status="done", closed_at=datetime.now(UTC)))

    with time_machine.travel(closed.closed_at + timedelta(days=91)):
        dry = await retention.run(dry_run=True)
        assert (dry.counts["closed_organizations"].purged, dry.counts["closed_organizations"].held) == (1, 0)
        report = await retention.run()
        now = datetime.now(UTC)
    assert report.counts["closed_organizations"].purged == 1 and report.notes == ()

    # The database: only columns the register keeps under an exception may still hold anything.
    hits = await scan_database(sessions, ORG_NEEDLES)
    kept = kept_columns(REGISTER, now)
    unexplained = {hit for hit in hits if not any(k.table == hit[0] and k.column == hit[1] for k in kept)}
    # The number it rented is the operator's inventory: back in it (in quarantine), tied to no one.
    assert hits.pop(("phone_numbers", "e164"), None) == {DID}
    unexplained.discard(("phone_numbers", "e164"))
    assert unexplained == set(), f"data left outside the register's exceptions: {sorted(unexplained)}"
    kept_needles = set().union(*hits.values(), {DID})
    assert {NAME, "Bob Other", SIP_USER, "bobsip", PHONE, DIALLED, CALLER, "Acme"}.isdisjoint(kept_needles)
    async with sessions() as session:
        row = await session.get(Organization, org)
        assert row is not None and row.name == anonymised_name(org) and row.purged_at is not None
        for model in (User, CallRecord, Blob, WebhookEndpoint, RecordingPolicy, FraudSettings, ApiKey):
            left = (await session.execute(select(func.count()).select_from(model).where(model.org_id == org)))
            assert left.scalar_one() == 0, model.__tablename__
        keys = (await session.execute(select(OrgDataKey).where(OrgDataKey.org_id == org))).scalars().all()
        assert keys and all(k.wrapped_key is None and k.destroyed_at is not None for k in keys)
        # The ledger stays for its legal period, without dialled numbers.
        ledger = (await session.execute(select(LedgerTransaction).where(LedgerTransaction.org_id == org))
                  ).scalars().all()
        assert len(ledger) == entries_before and not any(DIALLED in t.description for t in ledger)
        purge = (await session.execute(select(AuditEvent).where(AuditEvent.action == "privacy.purge_org"))
                 ).scalar_one()
        # The people's keys went with each erasure; the org's own (hold music, shared media) with the purge.
        assert purge.details["people_erased"] == 3 and purge.details["keys_destroyed"] >= 1
    assert await LedgerService(sessions).balance(org) == balance_before

    # Every file: nothing of the org under the data directory; the backup never decrypts.
    assert not (data_dir / "blobs" / org).exists()
    assert {needle for path, needle in scan_files(data_dir, ORG_NEEDLES) if path.suffix != ".db"} == set()
    assert {needle for path, needle in scan_files(data_dir, ORG_NEEDLES) if path.suffix == ".db"} <= kept_needles
    assert scan_files(backup, ORG_NEEDLES) == []
    await assert_unreadable(sessions, store, backup, org, org_blobs)

    # The other org keeps everything.
    assert len(await world["voicemail"].audio(world["other"], world["carols"].id)) > 16000
    async with sessions() as session:
        assert (await session.execute(select(User.email).where(User.id == world["carol"]))).scalar_one() \
            == "carol@example.com"

    # Once more: nothing to do. After the ledger period, the ledger goes and then the org row.
    with time_machine.travel(closed.closed_at + timedelta(days=92)):
        assert (await retention.run()).counts["closed_organizations"].purged == 0
    with time_machine.travel(closed.closed_at + timedelta(days=7 * 365 + 3)):
        dry = await retention.run(dry_run=True)
        report = await retention.run()
    assert dry.counts["organizations"] == report.counts["organizations"]
    assert report.counts["ledger_transactions"].purged >= entries_before
    assert report.counts["organizations"].purged == 1
    async with sessions() as session:
        assert await session.get(Organization, org) is None
        assert await session.get(Organization, world["other"]) is not None


async def test_reopening_before_the_purge_enables_the_people_the_closure_disabled(sessions, store, world):
    org = world["org"]
    closure, _ = services(sessions, store)
    async with sessions() as session, session.begin():  # bob was disabled before: he stays so
        await session.execute(update(User).where(User.id == world["bob"]).values(
            disabled_at=datetime.now(UTC) - timedelta(days=3)))
    with pytest.raises(OrgNotClosed):
        await closure.reopen(org, actor=STAFF, reason="not closed")
    await closure.close(org, actor=STAFF, reason="unpaid")
    reopened = await closure.reopen(org, actor=STAFF, reason="paid after all")
    assert (reopened.closed_at, reopened.users_enabled) == (None, 2)
    async with sessions() as session:
        disabled = dict((await session.execute(select(User.id, User.disabled_at).where(User.org_id == org))).all())
        assert disabled[world["alice"]] is None and disabled[world["owner"]] is None
        assert disabled[world["bob"]] is not None
        assert (await session.get(Organization, org)).closed_at is None
        actions = (await session.execute(select(AuditEvent.action).where(AuditEvent.action.startswith("orgs."))
                                         .order_by(AuditEvent.seq))).scalars().all()
        assert actions == ["orgs.close", "orgs.reopen"]
    await world["accounts"].create_user("Acme", UserSpec("new@example.com", "109", "newsip", "password1"))

    # Closed again: its purge is refused before it is due; once due, it cannot be reopened any more.
    closed = await closure.close(org, actor=STAFF, reason="unpaid again")
    with pytest.raises(OrgNotClosed):
        await closure.purge(org)
    with time_machine.travel(closed.closed_at + timedelta(days=91)):
        with pytest.raises(OrgPurged):
            await closure.reopen(org, actor=STAFF, reason="too late")
        await closure.purge(org)
    with pytest.raises(OrgPurged):
        await closure.reopen(org, actor=STAFF, reason="far too late")


async def test_the_operators_own_org_and_an_open_org_are_refused(sessions, store, world):
    closure, _ = services(sessions, store)
    with pytest.raises(OrgNotClosed):
        await closure.purge(world["org"])  # open: its data is not purged
    with pytest.raises(InvalidClosure):  # a reason is required, whoever asks (API, console, CLI)
        await closure.close(world["org"], actor=STAFF, reason="  ")
    async with sessions() as session:
        assert (await session.get(Organization, world["org"])).closed_at is None
    accounts: AccountsService = world["accounts"]
    operator = await accounts.create_org("Operator Inc")
    async with sessions() as session, session.begin():
        await session.execute(update(Organization).where(Organization.id == operator.id).values(kind="operator"))
    with pytest.raises(OrgNotClosed):
        await closure.close(operator.id, actor=STAFF, reason="not allowed")
