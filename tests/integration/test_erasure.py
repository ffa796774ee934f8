"""Erasing a person (SQLite and PostgreSQL) — the acceptance test of issue 8's deletion.

A person with calls (as caller and callee, with their number), voicemails (audio and transcript),
a greeting, recordings, ledger entries, sessions, registrations, an API key and webhook events is
erased. Afterwards every column of every row of every table, and every file under the data
directory, is searched for their email, name, phone numbers and SIP username: only the receipt's
exceptions may hold any. Their media, copied before the erasure (a backup), never decrypts again.
Another person of the same org keeps everything.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, text, update

from ringwell.blobs import BlobStore, KeyDestroyed, KeyRing, MasterKey
from ringwell.blobs.keys import DataKey, unwrap
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.blobs.store import _HEADER, HEADER_SIZE, _binding, _file_key, _nonce
from ringwell.features.accounts.errors import LastOwner
from ringwell.features.accounts.models import User
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.audit.service import SYSTEM, Actor, AuditLog
from ringwell.features.auth.models import ApiKey, RecoveryCode, WebSession
from ringwell.features.billing.models import LedgerTransaction
from ringwell.features.billing.service import LedgerService
from ringwell.features.cdr.models import CallRecord
from ringwell.features.numbers.models import PhoneNumber
from ringwell.features.privacy.erasure import ErasureRefused, ErasureService, Receipt
from ringwell.features.privacy.models_holds import LegalHold
from ringwell.features.privacy.register import Retention
from ringwell.features.privacy.retention import RetentionPolicy
from ringwell.features.recordings.models import Trigger
from ringwell.features.recordings.service import RecordingService
from ringwell.features.registrations.models import BindingRow
from ringwell.features.voicemail.mailbox_models import MailboxRow
from ringwell.features.voicemail.service import VoicemailService
from ringwell.features.webhooks.models import WebhookDelivery, WebhookEndpoint
from ringwell.media.oggopus import CONTENT_TYPE
from ringwell.storage.base import Base

EMAIL = "alicia.quuxley@example.com"
NAME = "Alicia Quuxley"
SIP_USER = "alicia-quux"
PHONE = "+14155550123"  # her contact number (users.phone)
DID = "+14155550199"  # the org's number routed to her: her caller ID and what her callers dial
DIALLED = "+442071234567"  # who she called
CALLER = "+13125550111"  # who called her
NEEDLES = [EMAIL, NAME, SIP_USER, PHONE, DID, DIALLED, CALLER]


def pcm(seconds: float = 1.5) -> bytes:
    return bytes(range(256)) * int(seconds * 16000 / 256)


def cdr(org_id: str, call_id: str, direction: str, media: dict | None = None, **parties: str | None) -> CallRecord:
    now = datetime.now(UTC)
    return CallRecord(org_id=org_id, sip_call_id=call_id, direction=direction, started_at=now - timedelta(minutes=5),
                      answered_at=now - timedelta(minutes=4), ended_at=now, last_alive_at=now, talk_seconds=240.0,
                      state="closed", disposition="answered", charge_minor=50, currency="USD",
                      media=media, **parties)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path  # the SQLite database file lives here too, as in a default install


@pytest.fixture
def store(sessions, data_dir):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), data_dir / "blobs")


@pytest.fixture
async def world(sessions, store):
    """Acme with its owner, alicia (the person to erase) and bob, with data of every kind."""
    accounts = AccountsService(sessions, "ringwell")
    org = (await accounts.create_org("Acme")).id
    owner = await accounts.create_user("Acme", UserSpec("owner@example.com", "100", "owner", "password1",
                                                        role="owner"))
    alice = (await accounts.create_user("Acme", UserSpec(EMAIL, "101", SIP_USER, "password1", name=NAME))).user.id
    bob = (await accounts.create_user("Acme", UserSpec("bob@example.com", "102", "bobsip", "password1",
                                                     name="Bob Other"))).user.id
    voicemail = VoicemailService(sessions, store)
    recordings = RecordingService(sessions, store)
    ledger = LedgerService(sessions)
    audit = AuditLog(sessions)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(User.id == alice).values(phone=PHONE, login_email=EMAIL))
        session.add(PhoneNumber(e164=DID, country="US", national_number=DID[2:], type="fixed", monthly_price_minor=100,
                                setup_price_minor=0, currency="USD", state="rented", org_id=org, route_user_id=alice,
                                rented_at=now))
        session.add_all([
            cdr(org, "call-out", "outbound", {"a": {"user_agent": f"{SIP_USER} phone"}}, caller_user_id=alice,
                caller_extension="101", caller_number=DID, callee_number=DIALLED),
            cdr(org, "call-in", "inbound", caller_number=CALLER, callee_user_id=alice, callee_extension="101",
                callee_number=DID),
            cdr(org, "call-bob-alice", "internal", caller_user_id=bob, caller_extension="102", caller_number="102",
                callee_user_id=alice, callee_extension="101", callee_number="101"),
            cdr(org, "call-alice-bob", "internal", caller_user_id=alice, caller_extension="101", caller_number=DID,
                callee_user_id=bob, callee_extension="102", callee_number="102"),
            cdr(org, "call-bob-out", "outbound", caller_user_id=bob, caller_extension="102",
                caller_number="+14155550177", callee_number="+33123456789"),
        ])
        session.add(WebSession(token_hash="t" * 64, user_id=alice, org_id=org, csrf_token="c" * 64,
                               expires_at=now + timedelta(days=1), ip="203.0.113.9", user_agent=f"Firefox {NAME}"))
        session.add(RecoveryCode(user_id=alice, code_hash="r" * 64))
        session.add(ApiKey(org_id=org, created_by=alice, name="CRM sync", prefix="abcd1234", secret_hash="s" * 64,
                           scopes=["calls.read"]))
        endpoint = WebhookEndpoint(org_id=org, url="https://crm.example.com/hook", events=["call.ended"],
                                   secret="sealed", description=None)
        session.add(endpoint)
        await session.flush()
        session.add(WebhookDelivery(org_id=org, endpoint_id=endpoint.id, event_id="e1", event_type="call.ended",
                                    payload=json.dumps({"from": DID, "to": DIALLED, "user": SIP_USER})))
        session.add(WebhookDelivery(org_id=org, endpoint_id=endpoint.id, event_id="e2", event_type="call.ended",
                                    payload=json.dumps({"from": "+14155550177", "to": "+33123456789"})))
        credential = (await session.execute(text("SELECT id FROM sip_credentials WHERE username = :u"),
                                            {"u": SIP_USER})).scalar_one()
        session.add(BindingRow(org_id=org, credential_id=credential, binding_key="k",
                               contact=f"<sip:{SIP_USER}@198.51.100.7:5060>", expires_at=now + timedelta(hours=1),
                               call_id="reg-1", cseq=1, user_agent="Yealink", transport="udp",
                               source_host="198.51.100.7", source_port=5060))
        await audit.record("users.create", Actor(user_id=owner.user.id, org_id=org, role="owner"), org_id=org,
                           target_type="user", target_id=alice, details={"email": EMAIL, "extension": "101"},
                           session=session)
    # Her mailbox: a message from outside (with transcript), her greeting; bob has a message from her.
    hers = await voicemail.deposit(org, alice, CALLER, "Outside Caller", pcm())
    assert hers is not None
    await voicemail.set_transcript(org, hers.id, f"Hi {NAME}, call me back on {CALLER}")
    greeting = await store.put(org, "greeting", pcm(1.0), content_type="audio/wav", owners=(alice,))
    async with sessions() as session, session.begin():
        session.add(MailboxRow(user_id=alice, org_id=org, pin_hash="h", failed_pin_attempts=0,
                               greeting_blob_id=greeting.id, updated_at=now))
    bobs = await voicemail.deposit(org, bob, DID, NAME, pcm(2.0))
    assert bobs is not None
    # Recordings: a call between her and bob (under both keys), and one with an outside caller.
    shared = await record(recordings, org, owners=(alice, bob), caller=alice, callee=bob)
    outside = await record(recordings, org, owners=(alice,), caller=None, callee=alice)
    # Money: a call charge naming the number she dialled.
    await ledger.adjust(org, 10_000, "opening credit", "ops")
    assert await ledger.reserve(org, "call-out", 100)
    await ledger.settle(org, "call-out", 50, description=f"call to {DIALLED}", reference="call-out")
    return {"org": org, "alice": alice, "bob": bob, "owner": owner.user.id, "voicemail": voicemail,
            "hers": hers, "bobs": bobs, "shared": shared, "outside": outside, "greeting": greeting,
            "ledger": ledger}


async def record(recordings: RecordingService, org: str, *, owners, caller, callee):
    upload = await recordings.begin(org, CONTENT_TYPE, owners)
    upload.feed(b"OggS" + bytes(4000))
    return await recordings.finish(upload, org_id=org, call_record_id="call-x", caller_user_id=caller,
                                   callee_user_id=callee, trigger=Trigger.POLICY, started_at=datetime.now(UTC),
                                   duration_s=3.0, paused_s=0.0, content_type=CONTENT_TYPE)


async def scan_database(sessions) -> dict[tuple[str, str], set[str]]:
    """(table, column) -> the needles found in its values, over every row of every table."""
    hits: dict[tuple[str, str], set[str]] = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    shown = (json.dumps(value) if isinstance(value, dict | list) else
                             value.decode("latin-1") if isinstance(value, bytes) else str(value)).lower()
                    for needle in NEEDLES:
                        if needle.lower() in shown:
                            hits.setdefault((table.name, column), set()).add(needle)
    return hits


def scan_files(root: Path) -> list[tuple[Path, str]]:
    """Files under ``root`` holding a needle (as UTF-8 or UTF-16, the way SQLite or a WAV might)."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            for needle in NEEDLES:
                for encoded in (needle.lower().encode(), needle.lower().encode("utf-16-le")):
                    if encoded in data:
                        found.append((path, needle))
    return found


async def test_erasing_a_person_leaves_only_the_receipts_exceptions(sessions, store, world, data_dir, tmp_path_factory):
    org, alice, bob = world["org"], world["alice"], world["bob"]
    assert await scan_database(sessions)  # the needles are there before: the scan can fail
    backup = tmp_path_factory.mktemp("backup") / "blobs"
    shutil.copytree(data_dir / "blobs", backup)  # a backup taken before the erasure
    async with sessions() as session:
        her_blobs = (await session.execute(select(Blob).where(Blob.id.in_([
            world["hers"].audio_blob_id, world["greeting"].id, world["shared"].blob_id, world["outside"].blob_id])))
        ).scalars().all()
    assert len(her_blobs) == 4
    assert (await store.owners(org, world["shared"].blob_id)).count(None) == 0
    assert set(await store.owners(org, world["shared"].blob_id)) == {alice, bob}

    erasure = ErasureService(sessions, store)
    receipt = await erasure.erase_person(org, alice, actor=Actor(user_id=world["owner"], org_id=org, role="owner"),
                                         reason="art. 17 request")
    assert isinstance(receipt, Receipt)

    # The database: only columns the receipt names as kept may still hold anything of hers.
    hits = await scan_database(sessions)
    assert hits, "expected at least the audit trail's record of her creation (an exception)"
    unexplained = {hit for hit in hits if not receipt.keeps(*hit)}
    assert unexplained == set(), f"personal data left outside the receipt's exceptions: {sorted(unexplained)}"
    for kept in receipt.kept:
        assert kept.why, f"{kept.table}.{kept.column} kept without a reason"
    assert receipt.keeps("ledger_transactions", "description")
    ledger_until = next(k.until for k in receipt.kept if k.table == "ledger_transactions")
    assert ledger_until is not None and ledger_until > datetime.now(UTC) + timedelta(days=365 * 5)

    # The ledger keeps the amount of her call, without the number she dialled.
    async with sessions() as session:
        charge = (await session.execute(select(LedgerTransaction).where(LedgerTransaction.reference == "call-out"))
                  ).scalar_one()
        assert (charge.description, charge.balance_after_minor) == ("call", 10_000 - 50)
        # Her calls stay in the org's books, without her; bob's side of their calls stays.
        rows = (await session.execute(select(CallRecord))).scalars().all()
        assert [r.callee_number for r in rows if r.sip_call_id == "call-bob-out"] == ["+33123456789"]
        assert sum(r.caller_user_id == bob or r.callee_user_id == bob for r in rows) == 3
        assert not any(alice in (r.caller_user_id, r.callee_user_id) for r in rows)
        assert sum(r.charge_minor or 0 for r in rows) == 5 * 50  # the org's books still add up
        assert (await session.execute(select(ApiKey.created_by, ApiKey.name))).one() == (None, "CRM sync")
        assert (await session.execute(select(WebSession).where(WebSession.user_id == alice))).first() is None
        assert (await session.execute(select(PhoneNumber.route_user_id))).scalar_one() is None
        deliveries = (await session.execute(select(WebhookDelivery.event_id))).scalars().all()
        assert deliveries == ["e2"]
        keys = (await session.execute(select(OrgDataKey).where(OrgDataKey.user_id == alice))).scalars().all()
        assert keys and all(k.wrapped_key is None and k.destroyed_at is not None for k in keys)
    assert receipt.keys_destroyed == len(keys)
    assert receipt.files_deleted == 5  # message audio + transcript, greeting, two recordings

    # Every file under the data directory and the backup. The SQLite database file (with its WAL)
    # may hold only what its kept columns hold: deleted and overwritten values are zeroed.
    kept_needles = set().union(*hits.values())
    assert {needle for path, needle in scan_files(data_dir) if path.suffix != ".db"} == set()
    assert {needle for path, needle in scan_files(data_dir) if path.suffix == ".db"} <= kept_needles
    assert {NAME, SIP_USER, PHONE, DIALLED, CALLER}.isdisjoint(kept_needles)
    assert scan_files(backup) == []

    # Her media from the backup: put back, the store refuses (the key is destroyed) ...
    for blob in her_blobs:
        target = store.path(org, blob.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup / org / blob.id, target)
        async with sessions() as session, session.begin():
            session.add(Blob(id=blob.id, org_id=org, key_id=blob.key_id, extra_key_ids=blob.extra_key_ids,
                             kind=blob.kind, content_type=blob.content_type, size=blob.size,
                             created_at=blob.created_at, retention_until=blob.retention_until))
        with pytest.raises(KeyDestroyed):
            await store.read_all(org, blob.id)
    # ... and no key that still exists decrypts them: not the org's, not bob's, not a new one of hers.
    async with sessions() as session:
        live = (await session.execute(select(OrgDataKey).where(OrgDataKey.wrapped_key.is_not(None)))).scalars().all()
    live_secrets = [unwrap(store.keys._master, row) for row in live]
    assert live_secrets
    for blob in her_blobs:
        header = (backup / org / blob.id).read_bytes()
        _, _, chunk, salt, prefix = _HEADER.unpack(header[:HEADER_SIZE])
        sealed = header[HEADER_SIZE:HEADER_SIZE + chunk + 16]
        last = len(header) - HEADER_SIZE <= chunk + 16
        binding = _binding(org, blob.id, blob.kind)
        for secret in live_secrets:
            with pytest.raises(InvalidTag):
                _file_key([DataKey("k", org, secret)], salt, binding).decrypt(
                    _nonce(prefix, 0, last), sealed, header[:HEADER_SIZE] + binding)

    # Bob is untouched: his message (left by her) still plays, his recording-free history is there.
    voicemail: VoicemailService = world["voicemail"]
    audio = await voicemail.audio(org, world["bobs"].id)
    assert len(audio) > 16000
    bobs = await voicemail.get(org, world["bobs"].id)
    assert (bobs.caller_name, bobs.caller_number) == (None, "anonymised")
    async with sessions() as session:
        assert (await session.execute(select(User.email).where(User.id == bob))).scalar_one() == "bob@example.com"
        assert (await session.execute(select(User).where(User.id == alice))).first() is None


async def test_the_audit_event_of_an_erasure_names_only_ids(sessions, store, world):
    org, alice = world["org"], world["alice"]
    await ErasureService(sessions, store).erase_person(org, alice, actor=SYSTEM)
    async with sessions() as session:
        row = (await session.execute(text("SELECT details, target_id FROM audit_events "
                                          "WHERE action = 'privacy.erase_person'"))).one()
    details = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    assert row[1] == alice
    assert not any(needle.lower() in json.dumps(details).lower() for needle in NEEDLES)
    assert details["deleted"]["users"] == 1 and details["files_deleted"] == 5


async def test_a_legal_hold_or_the_last_owner_refuses_the_erasure(sessions, store, world):
    org, alice = world["org"], world["alice"]
    erasure = ErasureService(sessions, store)
    async with sessions() as session, session.begin():
        hold = LegalHold(org_id=org, user_id=alice, reason="case 42")
        session.add(hold)
    with pytest.raises(ErasureRefused):
        await erasure.erase_person(org, alice, actor=SYSTEM)
    async with sessions() as session:
        assert (await session.execute(select(User.id).where(User.id == alice))).scalar_one() == alice
    assert await world["voicemail"].audio(org, world["hers"].id)  # nothing was touched
    with pytest.raises(LastOwner):
        await erasure.erase_person(org, world["owner"], actor=SYSTEM)
    async with sessions() as session, session.begin():
        await session.execute(update(LegalHold).values(released_at=datetime.now(UTC)))
    receipt = await erasure.erase_person(org, alice, actor=SYSTEM)
    assert receipt.deleted["users"] == 1


async def test_a_failure_after_the_commit_still_leaves_her_keys_destroyed(sessions, store, world):
    """The keys go in the erasure's transaction: a crash before the files are deleted (here: her
    message's file cannot be unlinked) leaves files nobody can decrypt, never a live key."""
    org, alice = world["org"], world["alice"]
    audio = world["hers"].audio_blob_id
    path = store.path(org, audio)
    copy = path.read_bytes()
    path.unlink()
    path.mkdir()  # unlink() of a directory fails, for root too
    with pytest.raises(IsADirectoryError):
        await ErasureService(sessions, store).erase_person(org, alice, actor=SYSTEM)
    async with sessions() as session:
        assert (await session.execute(select(User.id).where(User.id == alice))).first() is None
        keys = (await session.execute(select(OrgDataKey).where(OrgDataKey.user_id == alice))).scalars().all()
    assert keys and all(k.wrapped_key is None and k.destroyed_at is not None for k in keys)
    path.rmdir()
    path.write_bytes(copy)  # the file is back, its row is still there: it does not decrypt
    with pytest.raises(KeyDestroyed):
        await store.read_all(org, audio)


async def test_the_receipt_keeps_until_the_retention_runs_own_period(sessions, store, world):
    policy = RetentionPolicy(days={Retention.LEDGER: 3000})
    receipt = await ErasureService(sessions, store, policy=policy).erase_person(world["org"], world["alice"],
                                                                               actor=SYSTEM)
    until = next(k.until for k in receipt.kept if k.table == "ledger_transactions")
    assert until is not None and until - receipt.erased_at == timedelta(days=3000)
