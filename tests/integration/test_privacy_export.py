"""A person's export (SQLite and PostgreSQL): every category the register exports has rows of the
person in the zip, the audio is decrypted to what was stored, nothing of another person of the same
org is, and both databases write the same files for the same data."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import make_url, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from ringwell.blobs import BlobKind, BlobStore, KeyRing, MasterKey
from ringwell.features.accounts.models import Organization, SipCredential, User
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.auth.models import ApiKey, WebSession
from ringwell.features.cdr.models import CallRecord
from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.export import PersonExport, Subject
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.register import Category
from ringwell.features.privacy.requests_service import Correction, RequestsService
from ringwell.features.recordings.models import Recording
from ringwell.features.registrations.models import BindingRow
from ringwell.features.voicemail.models import Voicemail
from ringwell.features.voicemail.service import VoicemailService
from ringwell.storage.engine import async_url, create_engine, migrate, session_factory
from tests.conftest import postgres_url

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def store(sessions, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")


async def seed_person(sessions, store, org_id: str, user_id: str, *, name: str, number: str, ua: str,
                      other_user: str) -> dict[str, bytes]:
    """Give ``user_id`` data in every category; returns their media by kind."""
    voicemail_audio = b"RIFF" + os.urandom(5000)
    recording_audio = b"OggS" + os.urandom(70000)
    vm = await store.put(org_id, BlobKind.VOICEMAIL, voicemail_audio, content_type="audio/wav")
    transcript = await store.put(org_id, BlobKind.TRANSCRIPT, f"hello from {name}".encode(),
                                 content_type="text/plain")
    rec = await store.put(org_id, BlobKind.RECORDING, recording_audio, content_type="audio/ogg")
    async with sessions() as session, session.begin():
        user = await session.get(User, user_id)
        user.name = name
        user.phone = number
        cdrs = []
        for i in range(3):
            cdr = CallRecord(org_id=org_id, sip_call_id=f"call-{name}-{i}@x", direction="outbound",
                             caller_user_id=user_id, caller_extension=None, caller_number=number,
                             callee_number=f"+3314000{1 if name.startswith('A') else 2}{i:03d}",
                             started_at=NOW + timedelta(minutes=i), last_alive_at=NOW, state="closed",
                             disposition="answered", charge_minor=12 + i, billable_seconds=60, currency="USD",
                             media={"mos": 4.2, "codec": "PCMU"})
            session.add(cdr)
            cdrs.append(cdr)
        # an internal call to the other person: it is in both exports, with both parties' ids
        session.add(CallRecord(org_id=org_id, sip_call_id=f"internal-{os.urandom(4).hex()}@x", direction="internal",
                               caller_user_id=other_user, callee_user_id=user_id, callee_number="ext",
                               started_at=NOW, last_alive_at=NOW, state="closed"))
        await session.flush()
        session.add(Voicemail(org_id=org_id, user_id=user_id, caller_number=f"{number}9", caller_name=f"{name} caller",
                              received_at=NOW, duration_s=3.0, audio_blob_id=vm.id,
                              transcript_blob_id=transcript.id, transcript_status="done", folder="new",
                              retention_until=NOW + timedelta(days=365)))
        session.add(Recording(org_id=org_id, call_record_id=cdrs[0].id, caller_user_id=user_id, trigger="policy",
                              started_at=NOW, ended_at=NOW + timedelta(seconds=9), duration_s=9.0, paused_s=0.0,
                              channels=2, content_type="audio/ogg", blob_id=rec.id, size=len(recording_audio),
                              retention_until=NOW + timedelta(days=365)))
        session.add(WebSession(token_hash=os.urandom(32).hex(), user_id=user_id, org_id=org_id, csrf_token="x",
                               expires_at=NOW + timedelta(hours=1), ip="198.51.100.7", user_agent=ua))
        session.add(ApiKey(org_id=org_id, created_by=user_id, name=f"{name} key", prefix=os.urandom(6).hex(),
                           secret_hash="0" * 64, scopes=["calls.read"]))
        session.add(AuditEvent(actor_user_id=user_id, actor_org_id=org_id, org_id=org_id, action="calls.read",
                               user_agent=ua))
        # an event the person caused about the colleague: its details name them (an admin's change)
        colleague = await session.get(User, other_user)
        session.add(AuditEvent(actor_user_id=user_id, actor_org_id=org_id, org_id=org_id, action="users.update",
                               target_type="user", target_id=other_user, user_agent=ua,
                               details={"email": colleague.email, "name": f"{colleague.email} renamed"}))
    async with sessions() as session, session.begin():
        credential = (await session.execute(select(SipCredential).where(SipCredential.user_id == user_id))).scalar()
        session.add(BindingRow(org_id=org_id, credential_id=credential.id, binding_key=f"k-{name}",
                               contact=f"sip:{name}@192.0.2.1:5060", expires_at=NOW + timedelta(hours=1),
                               call_id=f"reg-{name}", cseq=1, user_agent=ua, transport="udp",
                               source_host="192.0.2.1", source_port=5060))
    return {"voicemail": voicemail_audio, "recording": recording_audio}


async def export_bytes(sessions, store, subjects) -> bytes:
    out = bytearray()
    progress: list[tuple[int, int]] = []
    async for piece in PersonExport(sessions, store, REGISTER, partition=2).chunks(
            subjects, progress=lambda rows, size: progress.append((rows, size))):
        out += piece
    assert progress and progress[-1][1] == len(out)  # the last report counts every byte
    return bytes(out)


async def test_export_has_every_exported_category_and_nothing_of_another_person(sessions, store, acme):
    media = await seed_person(sessions, store, acme["acme"], acme["alice"], name="Alice Anders",
                              number="+15550100111", ua="AlicePhone/1.0", other_user=acme["bob"])
    await seed_person(sessions, store, acme["acme"], acme["bob"], name="Bob Brewer", number="+15550100222",
                      ua="BobPhone/2.0", other_user=acme["alice"])
    data = await export_bytes(sessions, store, [Subject(acme["acme"], acme["alice"])])
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = archive.namelist()
    exported = {c.category for t in REGISTER.values() for c in t.columns
                if c.exported and c.category is not Category.NOT_PERSONAL}
    assert exported
    for category in exported:  # every category has rows of alice: in its JSON and in its CSV
        tables = json.loads(archive.read(f"{category.value}.json"))["tables"]
        assert sum(len(rows) for rows in tables.values()) >= 1, category
        lines = list(csv.reader(io.StringIO(archive.read(f"{category.value}.csv").decode())))
        assert len(lines) >= 2 and lines[0][0] == "table", category
    register = json.loads(archive.read("register.json"))
    assert "call_records" in register["tables"]
    metadata = json.loads(archive.read("communications_metadata.json"))["tables"]
    assert len(metadata["call_records"]) == 5  # three calls made, one to and one from the colleague
    assert {r["callee_number"] for r in metadata["call_records"]} >= {"+33140001000"}
    rows = list(csv.reader(io.StringIO(archive.read("communications_metadata.csv").decode())))
    assert rows[0][0] == "table" and sum(1 for r in rows if r[0] == "call_records") == 5
    account = json.loads(archive.read("account.json"))["tables"]
    assert [u["name"] for u in account["users"]] == ["Alice Anders"]
    assert account["users"][0]["dnd"] is False  # booleans stay booleans, times are ISO 8601 UTC
    assert datetime.fromisoformat(account["users"][0]["created_at"]).tzinfo is not None
    made = [r for r in metadata["call_records"] if r["direction"] == "outbound"]
    assert made[0]["media"] == {"mos": 4.2, "codec": "PCMU"}
    assert min(datetime.fromisoformat(r["started_at"]) for r in made) == NOW
    assert {u["username"] for u in account["sip_credentials"]} == {"alice"}
    assert "ha1_md5" not in account["sip_credentials"][0]  # secrets are never exported
    device = json.loads(archive.read("device.json"))["tables"]
    assert {b["contact"] for b in device["bindings"]} == {"sip:Alice Anders@192.0.2.1:5060"}
    # media, decrypted
    voicemails = [n for n in names if n.startswith("media/voicemail/") and n.endswith(".wav")]
    recordings = [n for n in names if n.startswith("media/recordings/")]
    assert len(voicemails) == 1 and archive.read(voicemails[0]) == media["voicemail"]
    assert archive.getinfo(voicemails[0]).compress_type == zipfile.ZIP_STORED
    assert len(recordings) == 1 and archive.read(recordings[0]) == media["recording"]
    transcripts = [n for n in names if n.startswith("media/voicemail/") and n.endswith(".txt")]
    assert archive.read(transcripts[0]) == b"hello from Alice Anders"
    # nothing of bob anywhere: not his id, name, numbers, email, SIP username or user agent, not
    # even in the internal calls between them or in the audit event alice caused about him
    everything = b"".join(archive.read(n) for n in names)
    for needle in (acme["bob"].encode(), b"Bob Brewer", b"+15550100222", b"bob@example.com", b"BobPhone",
                   b"k-Bob", b"sip:bob", b"+33140002"):
        assert needle not in everything, needle
    texts = b"".join(archive.read(n) for n in names if not n.startswith("media/"))
    assert re.search(rb"\bbob\b", texts) is None  # his SIP username (audio is random bytes: not searched)
    usage = json.loads(archive.read("usage.json"))["tables"]
    assert {e["action"] for e in usage["audit_events"]} >= {"calls.read", "users.update"}
    assert all("details" not in e for e in usage["audit_events"])
    internal = [r for r in metadata["call_records"] if r["direction"] == "internal"]
    assert len(internal) == 2 and all(acme["alice"] in (r["caller_user_id"], r["callee_user_id"]) for r in internal)
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["media_files"] == 3


async def test_export_request_streams_the_zip_and_closes_the_request(sessions, store, acme):
    await seed_person(sessions, store, acme["acme"], acme["alice"], name="Alice Anders", number="+15550100111",
                      ua="AlicePhone/1.0", other_user=acme["bob"])
    audit = AuditLog(sessions)
    service = RequestsService(sessions, audit, AccountsService(sessions, "ringwell"), store, REGISTER)
    staff = Actor(user_id="00000000-0000-0000-0000-000000000001", org_id="operator", role="privacy")
    request = await service.create(kind="export", law="gdpr", source="staff", subject_email="ALICE@example.com",
                                   identity_verified="replied from the account's address", actor=staff, org="Acme")
    assert request.user_id == acme["alice"] and request.identity_verified.startswith("staff: ")
    data = b"".join([piece async for piece in await service.export(request.id, actor=staff)])
    assert "account.json" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    done = await service.get(request.id)
    assert done.status == "done" and done.outcome["exported_rows"]["call_records"] == 4
    async with sessions() as session:
        actions = (await session.execute(select(AuditEvent.action).where(
            AuditEvent.target_id.in_([request.id, acme["alice"]])))).scalars().all()
    assert {"privacy.request.create", "privacy.export", "privacy.request.update"} <= set(actions)


async def test_restriction_stops_transcripts_and_correction_updates_the_account(sessions, store, acme):
    audit = AuditLog(sessions)
    accounts = AccountsService(sessions, "ringwell")
    service = RequestsService(sessions, audit, accounts, store, REGISTER)
    me = Actor(user_id=acme["alice"], org_id=acme["acme"], role="member")
    restriction = await service.create(kind="restriction", law="gdpr", source="portal", org_id=acme["acme"],
                                       user_id=acme["alice"], subject_email="alice@example.com",
                                       identity_verified="portal login + MFA", actor=me)
    await service.restrict(restriction.id, actor=me)
    voicemail = VoicemailService(sessions, store)
    kept = await voicemail.deposit(acme["acme"], acme["alice"], "+15550109999", None, b"\x00\x01" * 16000)
    other = await voicemail.deposit(acme["acme"], acme["bob"], "+15550109999", None, b"\x00\x01" * 16000)
    assert kept.transcript_status == "failed" and other.transcript_status == "pending"
    pending = await voicemail.pending_transcripts(datetime.now(UTC) + timedelta(seconds=5))
    assert [v.id for v in pending] == [other.id]
    correction = await service.create(kind="correction", law="ccpa", source="portal", org_id=acme["acme"],
                                      user_id=acme["alice"], subject_email="alice@example.com",
                                      details="my name is Alice Anders", identity_verified="portal login + MFA",
                                      actor=me)
    done = await service.correct(correction.id, Correction(name="Alice Anders", phone="+15550100111"), actor=me)
    assert done.status == "done" and done.outcome["corrected"] == ["name", "phone"]
    async with sessions() as session:
        user = await session.get(User, acme["alice"])
        assert (user.name, user.phone) == ("Alice Anders", "+15550100111")
        assert user.processing_restricted_at is not None
        row = await session.get(DataRequest, correction.id)
        assert row.due_at == row.received_at + timedelta(days=30)  # CCPA 45 days, capped at 30


async def test_deletion_request_erases_and_keeps_the_receipt(sessions, store, acme):
    await seed_person(sessions, store, acme["acme"], acme["bob"], name="Bob Brewer", number="+15550100222",
                      ua="BobPhone/2.0", other_user=acme["alice"])
    service = RequestsService(sessions, AuditLog(sessions), AccountsService(sessions, "ringwell"), store, REGISTER)
    staff = Actor(user_id="00000000-0000-0000-0000-000000000001", org_id="operator", role="privacy")
    request = await service.create(kind="deletion", law="gdpr", source="staff", subject_email="bob@example.com",
                                   identity_verified="call-back to the number on file", actor=staff, org="Acme")
    done = await service.erase(request.id, actor=staff)
    assert done.status == "done" and done.closed_at is not None
    [receipt] = done.outcome["receipts"]
    assert receipt["deleted"]["users"] == 1 and receipt["kept"]  # what was kept, why, until when
    async with sessions() as session:
        assert await session.get(User, acme["bob"]) is None
        row = await session.get(DataRequest, request.id)
        assert row.status == "done" and row.outcome["receipts"] == done.outcome["receipts"]


# -- the same data gives the same files on SQLite and PostgreSQL -----------------------------------------

ORG = "00000000-0000-4000-8000-00000000000a"
ANN = "00000000-0000-4000-8000-00000000000b"
T_ROUND = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # no fraction of a second
T_FINE = datetime(2026, 11, 2, 9, 31, 5, 123456, tzinfo=UTC)


@pytest.fixture
async def sqlite_and_postgres(tmp_path):
    """Two migrated, empty databases at once: SQLite and PostgreSQL."""
    base = postgres_url()
    if base is None:
        pytest.skip("RINGWELL_TEST_POSTGRES_URL is not set (CI sets it; the test then must run)")
    lite = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'same.db'}")
    admin = create_async_engine(async_url(base), isolation_level="AUTOCOMMIT")
    name = "rw_" + secrets.token_hex(6)
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    pg = create_engine(make_url(async_url(base)).set(database=name).render_as_string(hide_password=False))
    try:
        await migrate(lite)
        await migrate(pg)
        yield session_factory(lite), session_factory(pg)
    finally:
        await lite.dispose()
        await pg.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()


async def seed_fixed(sessions) -> None:
    """The same rows, ids and times in any database: booleans both ways, times with and without a fraction."""
    async with sessions() as session, session.begin():
        session.add(Organization(id=ORG, name="Acme", created_at=T_ROUND, voicemail_attach_audio=True))
        await session.flush()
        session.add(User(id=ANN, org_id=ORG, email="ann@example.com", extension="101", name="Ann Smith", role="owner",
                         dnd=True, voicemail_email=False, phone="+15550100111", created_at=T_FINE,
                         email_verified_at=T_ROUND))
        await session.flush()
        session.add(SipCredential(id="00000000-0000-4000-8000-00000000000c", org_id=ORG, user_id=ANN, username="ann",
                                  realm="ringwell", ha1_md5="0" * 32, ha1_sha256="0" * 64, created_at=T_ROUND,
                                  updated_at=T_FINE))
        session.add(CallRecord(id="00000000-0000-4000-8000-00000000000d", org_id=ORG, sip_call_id="fixed@x",
                               direction="outbound", caller_user_id=ANN, caller_number="+15550100111",
                               callee_number="+33140001000", started_at=T_ROUND, answered_at=T_FINE,
                               last_alive_at=T_FINE, state="closed", disposition="answered", charge_minor=12,
                               billable_seconds=60, currency="USD", ring_seconds=2.5, talk_seconds=60.25,
                               media={"mos": 4.2, "codec": "PCMU"}))
        session.add(AuditEvent(id="00000000-0000-4000-8000-00000000000e", at=T_FINE, actor_user_id=ANN,
                               actor_org_id=ORG, org_id=ORG, action="calls.read", user_agent="AnnPhone/1.0"))


@pytest.mark.postgres
async def test_both_databases_write_the_same_files(sqlite_and_postgres, tmp_path):
    files = []
    for sessions in sqlite_and_postgres:
        await seed_fixed(sessions)
        store = BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / secrets.token_hex(4))
        archive = zipfile.ZipFile(io.BytesIO(await export_bytes(sessions, store, [Subject(ORG, ANN)])))
        files.append({n: archive.read(n) for n in archive.namelist() if n != "manifest.json"})  # it has the time
    lite, pg = files
    assert sorted(lite) == sorted(pg) and "account.csv" in lite
    for name in lite:
        if name.endswith(".csv") or name == "register.json":
            assert lite[name] == pg[name], name
        else:  # JSON texts are built by each database (spacing differs); their values are the same
            assert json.loads(lite[name]) == json.loads(pg[name]), name
    account = list(csv.DictReader(io.StringIO(lite["account.csv"].decode())))
    ann = next(r for r in account if r["table"] == "users")
    assert (ann["dnd"], ann["voicemail_email"]) == ("true", "false")
    assert (ann["created_at"], ann["email_verified_at"]) == ("2026-11-02T09:31:05.123456Z",
                                                             "2026-11-02T09:30:00.000000Z")
    users = json.loads(lite["account.json"])["tables"]["users"]
    assert users[0]["dnd"] is True and users[0]["created_at"] == "2026-11-02T09:31:05.123456Z"
