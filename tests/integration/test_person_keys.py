"""Per-person data keys, crypto-shredding one person, and rotation without downtime (SQLite and
PostgreSQL): a person's media is under their key, a recording under every party's; destroying one
person's key shreds exactly their media; rotation keeps every file readable, re-encryption moves
them to the new keys while readers keep reading, and the old keys then go."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select, update

from ringwell.blobs import BlobStore, KeyDestroyed, KeyRing, MasterKey, WrongMasterKey
from ringwell.blobs.keys import DataKey, unwrap
from ringwell.blobs.keys_cli import ProgressBar
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.blobs.rotation import rotate_due, rotate_org
from ringwell.blobs.store import _HEADER, HEADER_SIZE, _binding, _file_key, _nonce


@pytest.fixture
def store(sessions, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs", chunk_size=4096)


async def test_a_persons_media_is_under_their_key_and_shredding_them_spares_everyone_else(store, acme):
    org, alice, bob = acme["acme"], acme["alice"], acme["bob"]
    hers = await store.put(org, "voicemail", b"alice's message" * 100, content_type="audio/wav", owners=(alice,))
    his = await store.put(org, "voicemail", b"bob's message" * 100, content_type="audio/wav", owners=(bob,))
    call = await store.put(org, "recording", b"alice and bob talking" * 500, content_type="audio/ogg",
                           owners=(bob, alice))
    music = await store.put(org, "hold_music", b"music" * 100, content_type="audio/wav")
    assert await store.owners(org, hers.id) == [alice]
    assert sorted(await store.owners(org, call.id)) == sorted([alice, bob])
    assert await store.owners(org, music.id) == [None]

    assert await store.keys.destroy_person(org, alice) == 1
    for gone in (hers, call):  # a recording of a call she was on goes with her
        with pytest.raises(KeyDestroyed):
            await store.read_all(org, gone.id)
    assert await store.read_all(org, his.id) == b"bob's message" * 100
    assert await store.read_all(org, music.id) == b"music" * 100
    # Bob's new recording with someone else is fine; the same for a new blob of a new key of hers.
    assert await store.read_all(org, (await store.put(org, "recording", b"x", content_type="audio/ogg",
                                                      owners=(bob, acme["alice"]))).id) == b"x"


async def test_destroying_any_partys_key_shreds_a_shared_recording(store, acme):
    org, alice, bob = acme["acme"], acme["alice"], acme["bob"]
    call = await store.put(org, "recording", b"talk" * 1000, content_type="audio/ogg", owners=(alice, bob))
    await store.keys.destroy_person(org, bob)
    with pytest.raises(KeyDestroyed):
        await store.read_all(org, call.id)


async def test_a_wrapped_person_key_moved_to_someone_else_does_not_unwrap(store, acme, sessions):
    org, alice, bob = acme["acme"], acme["alice"], acme["bob"]
    hers = await store.put(org, "greeting", b"hello" * 10, content_type="audio/wav", owners=(alice,))
    async with sessions() as session, session.begin():
        await session.execute(update(OrgDataKey).where(OrgDataKey.user_id == alice).values(user_id=bob))
    fresh = BlobStore(sessions, KeyRing(sessions, store.keys._master), store.path(org, hers.id).parents[1])
    with pytest.raises(WrongMasterKey):
        await fresh.read_all(org, hers.id)
    async with sessions() as session, session.begin():  # nor as the org's own key
        await session.execute(update(OrgDataKey).where(OrgDataKey.user_id == bob).values(user_id=None))
    with pytest.raises(WrongMasterKey):
        await fresh.read_all(org, hers.id)


async def test_a_person_with_another_orgs_id_is_refused_as_an_owner(store, acme):
    from ringwell.errors import Invalid

    with pytest.raises(Invalid):
        await store.put(acme["acme"], "voicemail", b"x", content_type="audio/wav", owners=("not-an-id",))


async def test_rotation_keeps_old_files_readable_and_new_ones_use_the_new_key(store, acme, sessions):
    org, alice = acme["acme"], acme["alice"]
    old = await store.put(org, "voicemail", b"old" * 3000, content_type="audio/wav", owners=(alice,))
    before = (await store.keys.active_key(org, alice)).id
    rotated = await store.keys.rotate(org, alice)
    assert rotated.id != before and (await store.keys.active_key(org, alice)).id == rotated.id
    new = await store.put(org, "voicemail", b"new" * 10, content_type="audio/wav", owners=(alice,))
    async with sessions() as session:
        assert (await session.execute(select(Blob.key_id).where(Blob.id == new.id))).scalar_one() == rotated.id
        assert (await session.execute(select(Blob.key_id).where(Blob.id == old.id))).scalar_one() == before
    assert await store.read_all(org, old.id) == b"old" * 3000
    assert await store.stale(org, alice) == [old.id]


async def test_reencryption_moves_every_file_while_readers_keep_reading(store, acme, sessions, tmp_path):
    org, alice, bob = acme["acme"], acme["alice"], acme["bob"]
    contents: dict[str, bytes] = {}
    for i in range(12):
        data = os.urandom(4096 * (i % 4) + 100 * i)
        owners = [(alice,), (bob,), (alice, bob), ()][i % 4]
        contents[(await store.put(org, "recording", data, content_type="audio/ogg", owners=owners)).id] = data
    backup = {blob_id: store.path(org, blob_id).read_bytes() for blob_id in contents}
    async with sessions() as session:
        old_keys = {row.id: (row.key_id, row.extra_key_ids) for row in (await session.execute(select(Blob))).scalars()}
    stop = asyncio.Event()
    reads = 0

    async def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for blob_id, data in contents.items():
                assert await store.read_all(org, blob_id) == data
                reads += 1
            await asyncio.sleep(0)

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    seen: list[tuple[int, int]] = []
    report = await rotate_org(store, org, reencrypt=True, progress=lambda d, t: seen.append((d, t)))
    stop.set()
    await asyncio.gather(*readers)  # a failed read would raise here
    assert reads > len(contents)
    assert (report.keys_created, report.blobs_reencrypted) == (3, 12)  # the org's, alice's and bob's
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)
    assert report.keys_retired == 3
    for blob_id, data in contents.items():
        assert await store.read_all(org, blob_id) == data
    async with sessions() as session:
        live = (await session.execute(select(func.count()).select_from(OrgDataKey).where(
            OrgDataKey.org_id == org, OrgDataKey.wrapped_key.is_not(None)))).scalar_one()
    assert live == 3
    # The old files (a backup from before the rotation, rows included) no longer decrypt.
    for blob_id, old in backup.items():
        store.path(org, blob_id).write_bytes(old)
        key_id, extra = old_keys[blob_id]
        async with sessions() as session, session.begin():
            await session.execute(update(Blob).where(Blob.id == blob_id).values(key_id=key_id, extra_key_ids=extra))
        with pytest.raises(KeyDestroyed):
            await store.read_all(org, blob_id)
    assert await store.stale(org) == [] and await store.stale(org, alice) == []


async def test_rotation_without_reencryption_changes_no_file(store, acme):
    org = acme["acme"]
    blob = await store.put(org, "hold_music", b"music" * 10, content_type="audio/wav")
    before = store.path(org, blob.id).read_bytes()
    report = await rotate_org(store, org)
    assert (report.keys_created, report.blobs_reencrypted, report.keys_retired) == (1, 0, 0)
    assert store.path(org, blob.id).read_bytes() == before
    assert await store.read_all(org, blob.id) == b"music" * 10
    assert await store.reencrypt(org, blob.id) is True
    assert await store.reencrypt(org, blob.id) is False  # already under the active key


def test_the_progress_bar_ends_full_with_a_newline():
    import io

    out = io.StringIO()
    bar = ProgressBar(out, width=10, interval=0.0)
    bar(0, 4)
    bar(2, 4)
    bar(4, 4)
    assert out.getvalue().endswith("[##########] 4/4\n") and "[#####.....] 2/4" in out.getvalue()


async def test_retiring_spares_a_key_a_blob_still_uses_and_the_active_key(store, acme):
    org, alice = acme["acme"], acme["alice"]
    old = await store.put(org, "voicemail", b"old message" * 100, content_type="audio/wav", owners=(alice,))
    await store.keys.rotate(org, alice)
    assert await store.keys.retire(org, alice) == 0  # the old key still encrypts a live blob
    assert await store.read_all(org, old.id) == b"old message" * 100
    assert await store.reencrypt(org, old.id) is True
    assert await store.keys.retire(org, alice, min_age=timedelta(hours=1)) == 0  # too young
    assert await store.keys.retire(org, alice) == 1
    assert await store.keys.retire(org, alice) == 0  # never the active key
    assert await store.read_all(org, old.id) == b"old message" * 100


async def test_a_blob_being_written_while_its_key_is_retired_moves_to_the_new_key(store, acme):
    """The race: a writer got the key as active, a rotation retires it before the row commits."""
    org, alice = acme["acme"], acme["alice"]
    first = (await store.keys.active_key(org, alice)).id

    async def chunks():
        yield b"before the rotation " * 300
        newer = await store.keys.rotate(org, alice)
        assert await store.keys.retire(org, alice) == 1  # nothing committed uses the old key yet
        assert newer.id != first
        yield b"after the rotation " * 300

    blob = await store.put(org, "recording", chunks(), content_type="audio/ogg", owners=(alice,))
    assert await store.read_all(org, blob.id) == b"before the rotation " * 300 + b"after the rotation " * 300
    assert [k.id for k in await store._keys_of(await store._row(org, blob.id))] == [
        (await store.keys.active_key(org, alice)).id]


def no_live_key_opens(store, org: str, blob_id: str, kind: str, copy: bytes, secrets: list[bytes]) -> bool:
    _, _, chunk, salt, prefix = _HEADER.unpack(copy[:HEADER_SIZE])
    sealed = copy[HEADER_SIZE:HEADER_SIZE + chunk + 16]
    last = len(copy) - HEADER_SIZE <= chunk + 16
    binding = _binding(org, blob_id, kind)
    for secret in secrets:
        try:
            _file_key([DataKey("k", org, secret)], salt, binding).decrypt(
                _nonce(prefix, 0, last), sealed, copy[:HEADER_SIZE] + binding)
        except InvalidTag:
            continue
        return False
    return True


async def restore(store, sessions, org: str, row: Blob, copy: bytes) -> None:
    """Put a deleted blob back from a backup: its file and its row."""
    path = store.path(org, row.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(copy)
    async with sessions() as session, session.begin():
        session.add(Blob(id=row.id, org_id=org, key_id=row.key_id, extra_key_ids=row.extra_key_ids, kind=row.kind,
                         content_type=row.content_type, size=row.size, created_at=row.created_at,
                         retention_until=row.retention_until))


async def test_a_deleted_files_backup_stops_decrypting_within_a_key_epoch(store, acme, sessions):
    """Issue 8: deleted media is unrecoverable within 30 days, from backups of the files too."""
    org, alice, bob = acme["acme"], acme["alice"], acme["bob"]
    epoch = timedelta(days=30)
    start = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=True):
        kept = await store.put(org, "voicemail", b"kept message" * 200, content_type="audio/wav", owners=(alice,))
        call = await store.put(org, "recording", b"alice and bob" * 300, content_type="audio/ogg", owners=(alice, bob))
        music = await store.put(org, "hold_music", b"music" * 100, content_type="audio/wav")
        deleted = {}
        for blob in (await store.put(org, "voicemail", b"deleted message" * 200, content_type="audio/wav",
                                     owners=(alice,)),
                     await store.put(org, "recording", b"deleted call" * 300, content_type="audio/ogg",
                                     owners=(bob, alice)),
                     await store.put(org, "hold_music", b"old tune" * 100, content_type="audio/wav")):
            row = await store._row(org, blob.id)
            deleted[blob.id] = (row, store.path(org, blob.id).read_bytes())  # the backup
            assert await store.delete(org, blob.id)

    with time_machine.travel(start + timedelta(days=10), tick=True):
        report = await rotate_due(store, datetime.now(UTC), epoch=epoch)
        assert (report.keys_created, report.keys_retired) == (0, 0)  # keys 10 days old: nothing due yet
        row, copy = next(iter(deleted.values()))  # within the epoch a backup still opens (the promise is 30 days)
        await restore(store, sessions, org, row, copy)
        assert await store.read_all(org, row.id) == b"deleted message" * 200
        assert await store.delete(org, row.id)

    with time_machine.travel(start + timedelta(days=31), tick=True):
        report = await rotate_due(store, datetime.now(UTC), epoch=epoch)
    assert (report.keys_created, report.blobs_reencrypted, report.keys_retired, report.owners_pending) == (3, 3, 3, 0)
    assert await store.read_all(org, kept.id) == b"kept message" * 200
    assert await store.read_all(org, call.id) == b"alice and bob" * 300
    assert await store.read_all(org, music.id) == b"music" * 100
    async with sessions() as session:
        live = (await session.execute(select(OrgDataKey).where(OrgDataKey.wrapped_key.is_not(None)))).scalars().all()
    assert len(live) == 3  # one per owner: the org, alice, bob
    live_secrets = [unwrap(store.keys._master, row) for row in live]
    for row, copy in deleted.values():
        await restore(store, sessions, org, row, copy)
        with pytest.raises(KeyDestroyed):
            await store.read_all(org, row.id)
        assert no_live_key_opens(store, org, row.id, row.kind, copy, live_secrets)

