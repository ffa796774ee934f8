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
from sqlalchemy import select, text, update

from ringwell.blobs import BlobStore, KeyDestroyed, KeyRing, MasterKey
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.features.accounts.errors import LastOwner
from ringwell.features.accounts.models import User
from ringwell.features.audit.service import SYSTEM, Actor
from ringwell.features.auth.models import ApiKey, WebSession
from ringwell.features.billing.models import LedgerTransaction
from ringwell.features.cdr.models import CallRecord
from ringwell.features.numbers.models import PhoneNumber
from ringwell.features.privacy.erasure import ErasureRefused, ErasureService, Receipt
from ringwell.features.privacy.models_holds import LegalHold
from ringwell.features.privacy.register import Retention
from ringwell.features.privacy.retention import RetentionPolicy
from ringwell.features.voicemail.service import VoicemailService
from ringwell.features.webhooks.models import WebhookDelivery
from tests.integration.privacy_world import (
    CALLER,
    DIALLED,
    NAME,
    NEEDLES,
    PHONE,
    SIP_USER,
    assert_unreadable,
    build_world,
    scan_database,
    scan_files,
)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path  # the SQLite database file lives here too, as in a default install


@pytest.fixture
def store(sessions, data_dir):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), data_dir / "blobs")


@pytest.fixture
async def world(sessions, store):
    return await build_world(sessions, store)


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

    await assert_unreadable(sessions, store, backup, org, her_blobs)

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
