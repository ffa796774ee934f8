"""The retention run on a frozen clock (SQLite and PostgreSQL): expired call records, voicemails and
recordings (rows and their encrypted files), expired sessions and accounts closed long ago go; what a
legal hold covers stays; fresh items stay; the report counts both purged and held. A dry run changes
nothing and reports the same counts. Legal holds are placed and released with an audit trail. Data
requests and incidents go the privacy-records period after they were closed; dialled numbers leave the
ledger whatever their case; consent records go by the one rule ConsentService.purge applies too."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import time_machine
from sqlalchemy import func, select

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.blobs.models import OrgDataKey
from ringwell.features.accounts.models import Organization, User
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.auth.models import WebSession
from ringwell.features.billing.models import LedgerTransaction
from ringwell.features.cdr.models import CallRecord
from ringwell.features.privacy.consent import ConsentService, Subject
from ringwell.features.privacy.erasure import ErasureService
from ringwell.features.privacy.holds import HoldAlreadyReleased, InvalidLegalHold, LegalHolds
from ringwell.features.privacy.models_consent import ConsentRecord, Purpose, Source
from ringwell.features.privacy.models_holds import RetentionRun
from ringwell.features.privacy.models_incidents import Incident, IncidentNote
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.register import Retention
from ringwell.features.privacy.retention import DEFAULT_DAYS, RetentionPolicy
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
    # As the server wires it: deleting a closed account erases the person (keys destroyed, records anonymised).
    accounts.erase = ErasureService(sessions, store, audit=audit, policy=RetentionPolicy()).erase_hook()
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
    async with sessions() as session:
        keys = (await session.execute(select(OrgDataKey.wrapped_key, OrgDataKey.destroyed_at)
                                      .where(OrgDataKey.user_id == acme["alice"]))).all()
        erased = (await session.execute(select(AuditEvent.action).where(AuditEvent.target_id == acme["alice"],
                                                                        AuditEvent.action == "users.delete"))).all()
    # Erased, not merely deleted: her data keys are destroyed (her media's backups never decrypt again).
    assert keys and all(wrapped is None and destroyed is not None for wrapped, destroyed in keys)
    assert len(erased) == 1
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


# -- privacy records, the ledger's dialled numbers, consent ---------------------------------------------------
PRIVACY_DAYS = 1096  # RetentionPolicy()'s privacy-records period (the settings' default)


def data_request(org_id: str, user_id: str, closed_at: datetime | None, received_at: datetime) -> DataRequest:
    return DataRequest(org_id=org_id, user_id=user_id, subject_email="someone@example.com", kind="access",
                       law="gdpr", source="portal", received_at=received_at,
                       due_at=received_at + timedelta(days=30), status="done" if closed_at else "open",
                       identity_verified="portal login + MFA", closed_at=closed_at)


def incident(title: str, detected_at: datetime, closed_at: datetime | None) -> Incident:
    return Incident(title=title, severity="high", personal_data=True, cpni=True, detected_at=detected_at,
                    org_ids=[], created_by="staff-1", created_at=detected_at, closed_at=closed_at,
                    closed_by="staff-1" if closed_at else None)


async def privacy_rows(sessions) -> dict[str, list]:
    async with sessions() as session:
        return {
            "requests": sorted((await session.execute(select(DataRequest.user_id, DataRequest.status))).all()),
            "incidents": sorted((await session.execute(select(Incident.title))).scalars()),
            "notes": sorted((await session.execute(select(IncidentNote.text))).scalars()),
        }


async def test_closed_data_requests_and_incidents_go_after_the_privacy_records_period(sessions, env, acme):
    closed = T0
    due = closed + timedelta(days=PRIVACY_DAYS + 1)
    async with sessions() as session, session.begin():
        session.add_all([
            data_request(acme["acme"], acme["bob"], closed, closed - timedelta(days=10)),  # goes
            data_request(acme["acme"], acme["alice"], closed, closed - timedelta(days=10)),  # held with alice
            data_request(acme["other"], acme["carol"], None, closed - timedelta(days=2000)),  # open: never by age
            data_request(acme["other"], acme["carol"], closed + timedelta(days=30), closed),  # closed later
        ])
        old = incident("old breach", closed - timedelta(days=40), closed)
        still_open = incident("still open", closed - timedelta(days=2000), None)
        recent = incident("closed later", closed, closed + timedelta(days=30))
        session.add_all([old, still_open, recent])
        await session.flush()
        session.add_all([IncidentNote(incident_id=old.id, at=closed - timedelta(days=40), by="staff-1", text="old 1"),
                         IncidentNote(incident_id=old.id, at=closed, by="staff-1", text="old 2"),
                         IncidentNote(incident_id=still_open.id, at=closed, by="staff-1", text="open 1"),
                         IncidentNote(incident_id=recent.id, at=closed, by="staff-1", text="recent 1")])
    await env["holds"].place(acme["acme"], acme["alice"], "case 2029-3: preserve alice's data", actor=STAFF)
    before = await privacy_rows(sessions)
    names = ("data_requests", "incidents", "incident_notes")

    with time_machine.travel(due - timedelta(days=2)):  # not yet the whole period after closing
        early = await env["retention"].run()
    assert {n: (early.counts[n].purged, early.counts[n].held) for n in names} == dict.fromkeys(names, (0, 0))
    assert await privacy_rows(sessions) == before

    expected = {"data_requests": (1, 1), "incidents": (1, 0), "incident_notes": (2, 0)}
    with time_machine.travel(due):
        dry = await env["retention"].run(dry_run=True)
    assert {n: (dry.counts[n].purged, dry.counts[n].held) for n in names} == expected
    assert await privacy_rows(sessions) == before
    with time_machine.travel(due):
        report = await env["retention"].run()
    assert {n: (report.counts[n].purged, report.counts[n].held) for n in names} == expected
    after = await privacy_rows(sessions)
    assert after["requests"] == sorted([(acme["alice"], "done"), (acme["carol"], "open"), (acme["carol"], "done")])
    assert after["incidents"] == ["closed later", "still open"]
    assert after["notes"] == ["open 1", "recent 1"]
    async with sessions() as session:
        [stored] = (await session.execute(select(RetentionRun).where(RetentionRun.started_at >= due))).scalars()
    assert stored.counts["incidents"] == {"purged": 1, "held": 0}


async def test_dialled_numbers_leave_the_ledger_whatever_their_case(sessions, env, acme):
    async with sessions() as session, session.begin():
        session.add_all([ledger(acme["acme"], 1, "Call to +14155550199", T0),
                         ledger(acme["acme"], 2, "CALL TO +442071838750", T0),
                         ledger(acme["acme"], 3, "call to +14155550100", T0),
                         ledger(acme["acme"], 4, "Callback fee", T0)])
    with time_machine.travel(T0 + timedelta(days=1)):
        dry = await env["retention"].run(dry_run=True)
        report = await env["retention"].run()
    assert dry.counts["ledger_descriptions"].purged == report.counts["ledger_descriptions"].purged == 3
    async with sessions() as session:
        descriptions = sorted((await session.execute(select(LedgerTransaction.description))).scalars())
    assert descriptions == ["Callback fee", "call", "call", "call"]
    assert not any("+" in d for d in descriptions)


async def test_consent_records_go_by_one_rule_the_policys_period_but_never_under_a_year(sessions, store, acme):
    def retention_with(consent_days: int) -> tuple[RetentionService, ConsentService]:
        policy = RetentionPolicy(days={**DEFAULT_DAYS, Retention.CONSENT: consent_days})
        run = RetentionService(sessions, policy=policy, blobs=store, accounts=AccountsService(sessions, "ringwell"),
                               audit=AuditLog(sessions))
        return run, ConsentService(sessions, policy=policy)

    alice = Subject.person(acme["acme"], acme["alice"])
    writer = ConsentService(sessions)
    with time_machine.travel(T0 - timedelta(days=30), tick=False):
        await writer.choose(alice, Purpose.MARKETING_EMAIL, True, Source.PORTAL)
    with time_machine.travel(T0, tick=False):
        await writer.choose(alice, Purpose.MARKETING_EMAIL, False, Source.PORTAL)  # the yes is superseded at T0

    async def due(consent_days: int, at: datetime) -> tuple[int, int]:
        run, consent = retention_with(consent_days)
        with time_machine.travel(at):
            report = await run.run(dry_run=True)
        return report.counts["consent_records"].purged, await consent.purge(at, dry_run=True)

    assert await due(400, T0 + timedelta(days=366)) == (0, 0)  # a year went by, but the policy says 400 days
    assert await due(400, T0 + timedelta(days=401)) == (1, 1)
    assert await due(30, T0 + timedelta(days=200)) == (0, 0)  # a shorter policy: still a year at least
    assert await due(30, T0 + timedelta(days=366)) == (1, 1)

    run, consent = retention_with(400)
    with time_machine.travel(T0 + timedelta(days=401)):
        assert (await run.run()).counts["consent_records"].purged == 1
    assert await consent.purge(T0 + timedelta(days=401)) == 0
    async with sessions() as session:
        left = (await session.execute(select(ConsentRecord.granted, ConsentRecord.superseded_at))).all()
    assert left == [(False, None)]  # the current choice never goes
