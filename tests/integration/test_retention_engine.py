"""The retention run on a frozen clock (SQLite and PostgreSQL): expired call records, voicemails and
recordings (rows and their encrypted files), expired sessions and accounts closed long ago go; what a
legal hold covers stays; fresh items stay; the report counts both purged and held. A dry run changes
nothing and reports the same counts. Legal holds are placed and released with an audit trail."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import time_machine
from sqlalchemy import func, select

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.features.accounts.models import Organization, User
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.auth.models import WebSession
from ringwell.features.billing.models import LedgerTransaction
from ringwell.features.cdr.models import CallRecord
from ringwell.features.privacy.holds import HoldAlreadyReleased, InvalidLegalHold, LegalHolds
from ringwell.features.privacy.models_holds import RetentionRun
from ringwell.features.privacy.retention import RetentionPolicy
from ringwell.features.privacy.retention_service import DATA_CLASSES, RetentionService
from ringwell.features.recordings.models import Recording, Trigger
from ringwell.features.recordings.service import RecordingService
from ringwell.features.voicemail import repository as voicemail_repo
from ringwell.features.voicemail.models import Voicemail
from ringwell.features.voicemail.service import VoicemailService
from ringwell.media.oggopus import CONTENT_TYPE, OggOpusWriter

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
FRESH = T0 + timedelta(days=395)
RUN = T0 + timedelta(days=400)  # old items are 400 days old: past 12 months; fresh ones 5 days
STAFF = Actor(user_id="staff-1", role="privacy")


@pytest.fixture
def store(sessions, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")


@pytest.fixture
def env(sessions, store):
    accounts = AccountsService(sessions, "ringwell")
    accounts.user_files = voicemail_repo.user_files
    accounts.delete_file = store.delete
    voicemail = VoicemailService(sessions, store, retention_days=30)
    recordings = RecordingService(sessions, store, retention_days=30)
    audit = AuditLog(sessions)
    retention = RetentionService(sessions, policy=RetentionPolicy(), blobs=store, accounts=accounts, audit=audit,
                                 voicemail=voicemail, recordings=recordings)
    return {"voicemail": voicemail, "recordings": recordings, "retention": retention,
            "holds": LegalHolds(sessions, audit)}


def pcm(seconds: float) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return (8000 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()


async def record(recordings: RecordingService, org_id: str, caller: str | None, callee: str | None) -> Recording:
    upload = await recordings.begin(org_id, CONTENT_TYPE)
    writer = OggOpusWriter(upload.feed)
    stereo = np.repeat(np.frombuffer(pcm(1.0), dtype="<i2"), 2).tobytes()
    writer.write(stereo)
    writer.close()
    row = await recordings.finish(upload, org_id=org_id, call_record_id=secrets.token_hex(8), trigger=Trigger.POLICY,
                                  caller_user_id=caller, callee_user_id=callee, started_at=datetime.now(UTC),
                                  duration_s=1.0, paused_s=0.0, content_type=CONTENT_TYPE)
    assert row is not None
    return row


def cdr(org_id: str, caller: str | None, callee: str | None, at: datetime) -> CallRecord:
    return CallRecord(org_id=org_id, sip_call_id=secrets.token_hex(8), direction="internal", caller_user_id=caller,
                      callee_user_id=callee, caller_number="+14155550100", callee_number="+14155550199",
                      started_at=at, last_alive_at=at, state="closed", disposition="answered")


def web_session(org_id: str, user_id: str, expires: datetime) -> WebSession:
    return WebSession(token_hash=secrets.token_hex(32), user_id=user_id, org_id=org_id, csrf_token="x",
                      expires_at=expires, created_at=expires - timedelta(hours=12),
                      last_seen_at=expires - timedelta(hours=1), authenticated_at=expires - timedelta(hours=12))


def ledger(org_id: str, seq: int, description: str, at: datetime) -> LedgerTransaction:
    return LedgerTransaction(org_id=org_id, seq=seq, kind="call_charge", description=description,
                             balance_after_minor=0, created_at=at)


async def seed(sessions, env, acme):
    """Old items (400 days at RUN) of bob, of alice (held) and of Other; fresh ones of bob."""
    items = {}
    with time_machine.travel(T0):
        vm, rec = env["voicemail"], env["recordings"]
        items["vm_bob_old"] = await vm.deposit(acme["acme"], acme["bob"], "101", None, pcm(1.5))
        items["vm_alice_old"] = await vm.deposit(acme["acme"], acme["alice"], "102", None, pcm(1.5))
        items["rec_bob_old"] = await record(rec, acme["acme"], acme["bob"], None)
        items["rec_alice_old"] = await record(rec, acme["acme"], acme["bob"], acme["alice"])  # alice on the call
    with time_machine.travel(FRESH):
        items["vm_bob_fresh"] = await env["voicemail"].deposit(acme["acme"], acme["bob"], "101", None, pcm(1.5))
        items["rec_bob_fresh"] = await record(env["recordings"], acme["acme"], acme["bob"], None)
    async with sessions() as session, session.begin():
        session.add_all([
            cdr(acme["acme"], acme["bob"], None, T0), cdr(acme["other"], acme["carol"], None, T0),
            cdr(acme["acme"], acme["bob"], acme["alice"], T0),  # held: alice is the callee
            cdr(acme["acme"], acme["bob"], None, FRESH),
            web_session(acme["acme"], acme["bob"], T0), web_session(acme["acme"], acme["alice"], T0),
            web_session(acme["acme"], acme["bob"], RUN + timedelta(days=2)),
            ledger(acme["acme"], 1, "call to +14155550199", T0 - timedelta(days=8 * 365)),  # past 7 years
            ledger(acme["acme"], 2, "call to +14155550199", T0),  # kept, without the number
            ledger(acme["acme"], 3, "top-up", T0),
        ])
        for user_id in (acme["carol"], acme["alice"]):  # accounts closed 400 days before the run
            (await session.get(User, user_id)).disabled_at = T0
    return items


async def snapshot(sessions):
    async with sessions() as session:
        counts = {}
        for model in (CallRecord, Voicemail, Recording, WebSession, User, LedgerTransaction):
            counts[model.__tablename__] = (await session.execute(select(func.count()).select_from(model))).scalar_one()
        counts["descriptions"] = sorted((await session.execute(select(LedgerTransaction.description))).scalars())
    return counts


EXPECTED = {"call_records": (2, 1), "voicemails": (1, 1), "recordings": (1, 1), "web_sessions": (1, 1),
            "closed_accounts": (1, 1), "ledger_transactions": (1, 0), "ledger_descriptions": (2, 0)}


async def test_expired_items_go_held_and_fresh_ones_stay_and_the_report_counts_both(sessions, store, env, acme):
    items = await seed(sessions, env, acme)
    hold = await env["holds"].place(acme["acme"], acme["alice"], "case 2027-14: preserve alice's data", actor=STAFF)
    before = await snapshot(sessions)

    with time_machine.travel(RUN):
        dry = await env["retention"].run(dry_run=True)
    assert dry.dry_run
    assert {name: (dry.counts[name].purged, dry.counts[name].held) for name in EXPECTED} == EXPECTED
    assert list(dry.counts) == list(DATA_CLASSES)
    assert await snapshot(sessions) == before  # nothing changed
    for item in items.values():
        blob = getattr(item, "audio_blob_id", None) or item.blob_id
        assert store.path(item.org_id, blob).exists()
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(RetentionRun))).scalar_one() == 0

    with time_machine.travel(RUN):
        report = await env["retention"].run()
    assert {name: (report.counts[name].purged, report.counts[name].held) for name in EXPECTED} == EXPECTED
    assert (report.purged, report.held) == (dry.purged, dry.held)

    gone = [items["vm_bob_old"], items["rec_bob_old"]]
    kept = [items["vm_alice_old"], items["rec_alice_old"], items["vm_bob_fresh"], items["rec_bob_fresh"]]
    for item in gone:  # rows and files together
        blob = getattr(item, "audio_blob_id", None) or item.blob_id
        assert not store.path(item.org_id, blob).exists()
    for item in kept:
        blob = getattr(item, "audio_blob_id", None) or item.blob_id
        assert store.path(item.org_id, blob).exists()
    async with sessions() as session:
        voicemails = set((await session.execute(select(Voicemail.id))).scalars())
        recordings = set((await session.execute(select(Recording.id))).scalars())
        calls = (await session.execute(select(CallRecord.callee_user_id, CallRecord.started_at)
                                       .order_by(CallRecord.started_at))).all()
        users = set((await session.execute(select(User.id))).scalars())
        sessions_left = (await session.execute(select(WebSession.user_id, WebSession.expires_at)
                                               .order_by(WebSession.expires_at))).all()
        descriptions = sorted((await session.execute(select(LedgerTransaction.description))).scalars())
        runs = (await session.execute(select(RetentionRun))).scalars().all()
    assert voicemails == {items["vm_alice_old"].id, items["vm_bob_fresh"].id}
    assert recordings == {items["rec_alice_old"].id, items["rec_bob_fresh"].id}
    assert calls == [(acme["alice"], T0), (None, FRESH)]
    assert acme["carol"] not in users and acme["alice"] in users  # closed long ago; alice is held
    assert sessions_left == [(acme["alice"], T0), (acme["bob"], RUN + timedelta(days=2))]
    assert descriptions == ["call", "top-up"]  # the 8-year-old entry went; no dialled number is left
    [run] = runs
    assert not run.dry_run and run.counts["call_records"] == {"purged": 2, "held": 1}

    # Released: the next run deletes what the hold kept.
    await env["holds"].release(hold.id, actor=STAFF)
    with time_machine.travel(RUN + timedelta(days=1)):
        after = await env["retention"].run()
    assert {name: (after.counts[name].purged, after.counts[name].held) for name in
            ("call_records", "voicemails", "recordings", "web_sessions", "closed_accounts")} == {
        "call_records": (1, 0), "voicemails": (1, 0), "recordings": (1, 0), "web_sessions": (1, 0),
        "closed_accounts": (1, 0)}
    assert not store.path(acme["acme"], items["vm_alice_old"].audio_blob_id).exists()


async def test_a_whole_org_can_be_held(sessions, env, acme):
    async with sessions() as session, session.begin():
        session.add_all([cdr(acme["acme"], acme["bob"], None, T0), cdr(acme["other"], acme["carol"], None, T0)])
    await env["holds"].place(acme["other"], None, "regulator inquiry", actor=STAFF)
    with time_machine.travel(RUN):
        report = await env["retention"].run()
    assert (report.counts["call_records"].purged, report.counts["call_records"].held) == (1, 1)
    async with sessions() as session:
        assert (await session.execute(select(CallRecord.org_id))).scalars().all() == [acme["other"]]


async def test_an_org_keeps_call_records_as_long_as_it_chose_within_its_countrys_bound(sessions, env, acme):
    async with sessions() as session, session.begin():
        (await session.get(Organization, acme["acme"])).call_record_retention_days = 2000  # Acme is in the US
        (await session.get(Organization, acme["other"])).call_record_retention_days = 30
        session.add_all([cdr(acme["acme"], acme["bob"], None, T0), cdr(acme["other"], acme["carol"], None,
                                                                        RUN - timedelta(days=31))])
    with time_machine.travel(RUN):
        report = await env["retention"].run()
    assert report.counts["call_records"].purged == 1
    async with sessions() as session:
        assert (await session.execute(select(CallRecord.org_id))).scalars().all() == [acme["acme"]]


async def test_held_answers_for_a_person_and_their_org(sessions, env, acme):
    holds = env["holds"]
    async with sessions() as session:
        assert not await RetentionService.held(session, acme["acme"], acme["alice"])
    person = await holds.place(acme["acme"], acme["alice"], "case 1", actor=STAFF)
    org = await holds.place(acme["other"], None, "case 2", actor=STAFF)
    async with sessions() as session:
        assert await RetentionService.held(session, acme["acme"], acme["alice"])
        assert not await RetentionService.held(session, acme["acme"], acme["bob"])
        assert await RetentionService.held(session, acme["other"], acme["carol"])
        assert await RetentionService.held(session, acme["other"], None)
        assert not await RetentionService.held(session, acme["acme"], None)
    await holds.release(person.id, actor=STAFF)
    with pytest.raises(HoldAlreadyReleased):
        await holds.release(person.id, actor=STAFF)
    async with sessions() as session:
        assert not await RetentionService.held(session, acme["acme"], acme["alice"])
        events = (await session.execute(select(AuditEvent.action, AuditEvent.target_id).where(
            AuditEvent.action.startswith("legal_hold.")).order_by(AuditEvent.at))).all()
    assert sorted(events) == sorted([("legal_hold.place", person.id), ("legal_hold.place", org.id),
                                     ("legal_hold.release", person.id)])
    with pytest.raises(InvalidLegalHold):
        await holds.place(acme["acme"], acme["carol"], "carol is not in Acme", actor=STAFF)
    with pytest.raises(InvalidLegalHold):
        await holds.place(acme["acme"], None, "  ", actor=STAFF)
