"""The people and data the erasure tests share: a person with data of every kind, and the scans.

``build_world`` makes Acme with its owner, alicia (the person whose data goes) and bob, with calls,
voicemails, a greeting, recordings, ledger entries, sessions, registrations, an API key and webhook
events. ``scan_database`` and ``scan_files`` look for her identifiers everywhere;
``assert_unreadable`` checks that media copied to a backup never decrypts again.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, text, update

from ringwell.blobs import BlobStore, KeyDestroyed
from ringwell.blobs.keys import DataKey, unwrap
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.blobs.store import _HEADER, HEADER_SIZE, _binding, _file_key, _nonce
from ringwell.features.accounts.models import User
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.auth.models import ApiKey, RecoveryCode, WebSession
from ringwell.features.billing.service import LedgerService
from ringwell.features.cdr.models import CallRecord
from ringwell.features.numbers.models import PhoneNumber
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


async def build_world(sessions, store) -> dict[str, Any]:
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


async def scan_database(sessions, needles: list[str] = NEEDLES) -> dict[tuple[str, str], set[str]]:
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
                    for needle in needles:
                        if needle.lower() in shown:
                            hits.setdefault((table.name, column), set()).add(needle)
    return hits


def scan_files(root: Path, needles: list[str] = NEEDLES) -> list[tuple[Path, str]]:
    """Files under ``root`` holding a needle (as UTF-8 or UTF-16, the way SQLite or a WAV might)."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            for needle in needles:
                for encoded in (needle.lower().encode(), needle.lower().encode("utf-16-le")):
                    if encoded in data:
                        found.append((path, needle))
    return found


async def assert_unreadable(sessions, store: BlobStore, backup: Path, org: str, blobs: list[Blob]) -> None:
    """``blobs`` of ``org``, copied to ``backup`` before a deletion, never decrypt again."""
    # Put back from the backup, the store refuses (the key is destroyed) ...
    for blob in blobs:
        target = store.path(org, blob.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup / org / blob.id, target)
        async with sessions() as session, session.begin():
            session.add(Blob(id=blob.id, org_id=org, key_id=blob.key_id, extra_key_ids=blob.extra_key_ids,
                             kind=blob.kind, content_type=blob.content_type, size=blob.size,
                             created_at=blob.created_at, retention_until=blob.retention_until))
        with pytest.raises(KeyDestroyed):
            await store.read_all(org, blob.id)
    # ... and no key that still exists decrypts them: whoever's it is.
    async with sessions() as session:
        live = (await session.execute(select(OrgDataKey).where(OrgDataKey.wrapped_key.is_not(None)))).scalars().all()
    live_secrets = [unwrap(store.keys._master, row) for row in live]
    assert live_secrets
    for blob in blobs:
        header = (backup / org / blob.id).read_bytes()
        _, _, chunk, salt, prefix = _HEADER.unpack(header[:HEADER_SIZE])
        sealed = header[HEADER_SIZE:HEADER_SIZE + chunk + 16]
        last = len(header) - HEADER_SIZE <= chunk + 16
        binding = _binding(org, blob.id, blob.kind)
        for secret in live_secrets:
            with pytest.raises(InvalidTag):
                _file_key([DataKey("k", org, secret)], salt, binding).decrypt(
                    _nonce(prefix, 0, last), sealed, header[:HEADER_SIZE] + binding)
