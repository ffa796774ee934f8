"""Encrypted blob storage (SQLite and PostgreSQL): what is on disk is unreadable without the keys,
tampering is refused, tenants are isolated, deletion and crypto-shredding really remove access."""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import shutil
import stat
import struct
import subprocess
import wave
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from ringwell.blobs import (
    BlobCorrupt,
    BlobKind,
    BlobNotFound,
    BlobStore,
    KeyDestroyed,
    KeyRing,
    MasterKey,
    WrongMasterKey,
    blob_store,
    load_master_key,
)
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.blobs.store import DEFAULT_CHUNK_SIZE, HEADER_SIZE, TAG_SIZE
from ringwell.errors import ConfigError, Invalid
from ringwell.settings import load_settings

PATTERN = b"RINGWELL-PLAINTEXT-MARKER-0123456789"


def wav_bytes(seconds: float = 2.0, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV (440 Hz tone) with a text marker in a LIST chunk, ~32 KB per second."""
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * n / rate)))
                      for n in range(int(seconds * rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return out.getvalue() + b"LIST" + struct.pack("<I", len(PATTERN)) + PATTERN


@pytest.fixture
def master():
    return MasterKey.generate("test")


@pytest.fixture
def store(sessions, master, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, master), tmp_path / "blobs")


async def pieces(data: bytes, sizes=(1, 1000, 70000, 3)):
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        yield data[pos : pos + size]
        pos += size
        i += 1


async def test_small_and_multi_chunk_round_trips(store, acme):
    org = acme["acme"]
    small = await store.put(org, "transcript", b"Hello, this is Bob from Acme, call me back on 555 0100.",
                            content_type="text/plain; charset=utf-8")
    assert await store.read_all(org, small.id) == b"Hello, this is Bob from Acme, call me back on 555 0100."
    assert (small.kind, small.size, small.content_type) == (BlobKind.TRANSCRIPT, 55, "text/plain; charset=utf-8")

    audio = wav_bytes(10.0)  # ~160 KB: three chunks, handed over as bytes (sealed off the event loop)
    ref = await store.put(org, BlobKind.VOICEMAIL, audio, content_type="audio/wav")
    opened = await store.open(org, ref.id)
    assert opened.ref == ref == await store.get(org, ref.id)
    assert b"".join([chunk async for chunk in opened]) == audio

    streamed = await store.put(org, "recording", pieces(audio), content_type="audio/wav")  # an async iterable
    assert streamed.size == len(audio)
    assert await store.read_all(org, streamed.id) == audio

    for size in (0, DEFAULT_CHUNK_SIZE, 2 * DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1):  # chunk-edge sizes
        data = os.urandom(size)
        edge = await store.put(org, "greeting", pieces(data, (size or 1,)), content_type="audio/wav")
        assert await store.read_all(org, edge.id) == data

    listed = await store.list(org)
    assert {r.id for r in listed} >= {small.id, ref.id, streamed.id} and len(listed) == 7
    assert [r.id for r in await store.list(org, "voicemail")] == [ref.id]


async def test_the_file_on_disk_is_not_readable_as_audio_or_text(store, acme, tmp_path):
    org = acme["acme"]
    audio = wav_bytes(5.0)
    ref = await store.put(org, "voicemail", audio, content_type="audio/wav")
    path = tmp_path / "blobs" / org / ref.id
    assert store.path(org, ref.id) == path
    raw = path.read_bytes()
    assert PATTERN not in raw and b"RIFF" not in raw and b"WAVE" not in raw and b"fmt " not in raw
    assert audio[2000:2032] not in raw  # no stretch of the samples either
    assert raw.startswith(b"RWBLOB") and len(raw) > len(audio)
    with pytest.raises((wave.Error, EOFError)), wave.open(io.BytesIO(raw)):
        pass
    if shutil.which("file"):  # libmagic sees only data, the plain WAV is recognised
        assert subprocess.run(["file", "-b", str(path)], capture_output=True, text=True).stdout.strip() == "data"
        plain = tmp_path / "plain.wav"
        plain.write_bytes(audio)
        assert "WAVE audio" in subprocess.run(["file", "-b", str(plain)], capture_output=True, text=True).stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [ref.id]  # no temporary file left behind


def chunks_of(raw: bytes) -> tuple[bytes, list[bytes]]:
    body = raw[HEADER_SIZE:]
    full = DEFAULT_CHUNK_SIZE + TAG_SIZE
    return raw[:HEADER_SIZE], [body[i : i + full] for i in range(0, len(body), full)]


@pytest.mark.parametrize("damage", ["flip", "truncate_boundary", "truncate_middle", "reorder", "drop_first",
                                    "append", "header", "empty"])
async def test_an_altered_file_is_refused(store, acme, tmp_path, damage):
    org = acme["acme"]
    audio = wav_bytes(6.0)  # 96 KB + marker: two chunks
    ref = await store.put(org, "recording", audio, content_type="audio/wav")
    path = store.path(org, ref.id)
    raw = path.read_bytes()
    header, chunks = chunks_of(raw)
    assert len(chunks) == 2
    altered = {
        "flip": raw[:-100] + bytes([raw[-100] ^ 1]) + raw[-99:],
        "truncate_boundary": header + chunks[0],
        "truncate_middle": raw[: len(raw) // 2],
        "reorder": header + chunks[1] + chunks[0],
        "drop_first": header + chunks[1],
        "append": raw + chunks[1],
        "header": header[:7] + struct.pack(">I", 4096) + header[11:] + b"".join(chunks),
        "empty": b"",
    }[damage]
    path.write_bytes(altered)
    with pytest.raises(BlobCorrupt, match=f"blob {ref.id}: "):
        await store.read_all(org, ref.id)


async def test_a_file_moved_to_another_blob_or_org_does_not_decrypt(store, acme):
    org, other = acme["acme"], acme["other"]
    first = await store.put(org, "voicemail", b"first message " * 100, content_type="audio/wav")
    second = await store.put(org, "voicemail", b"second message" * 100, content_type="audio/wav")
    theirs = await store.put(other, "voicemail", b"their message " * 100, content_type="audio/wav")
    shutil.copyfile(store.path(org, first.id), store.path(org, second.id))
    with pytest.raises(BlobCorrupt, match="failed authentication"):
        await store.read_all(org, second.id)
    shutil.copyfile(store.path(org, first.id), store.path(other, theirs.id))
    with pytest.raises(BlobCorrupt):
        await store.read_all(other, theirs.id)
    assert await store.read_all(org, first.id) == b"first message " * 100


async def test_another_org_cannot_see_read_or_delete(store, acme):
    org, other = acme["acme"], acme["other"]
    ref = await store.put(org, "voicemail", b"private", content_type="audio/wav")
    with pytest.raises(BlobNotFound):
        await store.get(other, ref.id)
    with pytest.raises(BlobNotFound):
        await store.open(other, ref.id)
    assert await store.list(other) == []
    assert await store.delete(other, ref.id) is False
    for bad in ("../" + ref.id, "not-an-id", ref.id.upper()):
        with pytest.raises(BlobNotFound):
            await store.open(org, bad)
    assert await store.read_all(org, ref.id) == b"private"


async def test_delete_removes_file_and_row_and_is_idempotent(store, sessions, acme):
    org = acme["acme"]
    ref = await store.put(org, "recording", wav_bytes(1.0), content_type="audio/wav")
    path = store.path(org, ref.id)
    assert path.exists()
    assert await store.delete(org, ref.id) is True
    assert not path.exists()
    async with sessions() as session:
        assert (await session.execute(select(Blob).where(Blob.id == ref.id))).first() is None
    with pytest.raises(BlobNotFound):
        await store.open(org, ref.id)
    assert await store.delete(org, ref.id) is False


async def test_crypto_shredding_an_org_leaves_others_readable(store, sessions, acme, master):
    org, other = acme["acme"], acme["other"]
    mine = await store.put(org, "voicemail", b"acme audio" * 1000, content_type="audio/wav")
    theirs = await store.put(other, "voicemail", b"other audio" * 1000, content_type="audio/wav")
    assert await store.read_all(org, mine.id) == b"acme audio" * 1000  # the key is now cached too
    assert await store.shred(org) == 1
    with pytest.raises(KeyDestroyed) as caught:
        await store.read_all(org, mine.id)
    assert caught.value.status == 410
    async with sessions() as session:
        keys = (await session.execute(select(OrgDataKey).where(OrgDataKey.org_id == org))).scalars().all()
    assert [(k.wrapped_key, k.destroyed_at is not None) for k in keys] == [(None, True)]
    # A second store (another process) with the same master key cannot read it either.
    fresh = BlobStore(sessions, KeyRing(sessions, master), store.path(org, mine.id).parents[1])
    with pytest.raises(KeyDestroyed):
        await fresh.read_all(org, mine.id)
    assert await fresh.read_all(other, theirs.id) == b"other audio" * 1000
    # New items of the org get a new key; the shredded one can still be deleted.
    again = await store.put(org, "voicemail", b"new", content_type="audio/wav")
    assert await store.read_all(org, again.id) == b"new"
    assert await store.delete(org, mine.id) is True


async def test_a_wrong_master_key_fails_clearly(store, sessions, acme, master, caplog):
    org = acme["acme"]
    ref = await store.put(org, "transcript", b"secret words", content_type="text/plain")
    wrong = MasterKey.generate("/etc/ringwell/master.key")
    other = BlobStore(sessions, KeyRing(sessions, wrong), store.path(org, ref.id).parents[1])
    with caplog.at_level(logging.DEBUG), pytest.raises(WrongMasterKey) as caught:
        await other.read_all(org, ref.id)
    message = str(caught.value)
    assert "does not unwrap" in message and master.key_id in message and wrong.key_id in message
    for secret in (master, wrong):
        assert secret.encoded() not in message + caplog.text + repr(secret)


async def test_retention_deadline_is_stored_in_utc(store, sessions, acme):
    org = acme["acme"]
    paris = timezone(timedelta(hours=2))
    deadline = datetime(2027, 3, 1, 14, 30, tzinfo=paris)
    ref = await store.put(org, "recording", b"x", content_type="audio/wav", retention_until=deadline)
    stored = (await store.get(org, ref.id)).retention_until
    assert stored == deadline and stored.tzinfo == UTC and stored.hour == 12
    keep = await store.put(org, "recording", b"y", content_type="audio/wav")
    assert keep.retention_until is None
    assert [r.id for r in await store.expired(datetime(2027, 3, 1, 12, 30, tzinfo=UTC))] == [ref.id]
    assert await store.expired(datetime(2027, 3, 1, 12, 29, tzinfo=UTC)) == []
    with pytest.raises(Invalid):
        await store.put(org, "recording", b"z", content_type="audio/wav", retention_until=datetime(2027, 3, 1))
    with pytest.raises(Invalid):
        await store.put(org, "photo", b"z", content_type="image/png")


def settings_for(tmp_path, **env):
    return load_settings(tmp_path, {"RINGWELL_SECRET_KEY": "s" * 32, **env})


async def test_master_key_from_file_is_created_0600_and_reused(tmp_path, sessions, acme):
    settings = settings_for(tmp_path)
    path = tmp_path / "master.key"
    assert not path.exists()
    key = load_master_key(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text()) == key.secret and len(key.secret) == 32
    assert load_master_key(settings) == key
    store = blob_store(settings, sessions)
    ref = await store.put(acme["acme"], "greeting", b"hello", content_type="audio/wav")
    assert await blob_store(settings, sessions).read_all(acme["acme"], ref.id) == b"hello"
    assert (tmp_path / "blobs" / acme["acme"] / ref.id).exists()

    elsewhere = settings_for(tmp_path, RINGWELL_MASTER_KEY_FILE=str(tmp_path / "keys" / "mk"))
    (tmp_path / "keys").mkdir()
    assert load_master_key(elsewhere) != key and (tmp_path / "keys" / "mk").exists()


def test_master_key_from_the_environment(tmp_path):
    raw = os.urandom(32)
    key = load_master_key(settings_for(tmp_path, RINGWELL_MASTER_KEY=base64.b64encode(raw).decode()))
    assert key.secret == raw and key.source == "environment"
    assert not (tmp_path / "master.key").exists()
    assert base64.b64encode(raw).decode() not in repr(settings_for(tmp_path, RINGWELL_MASTER_KEY="x"))
    with pytest.raises(ConfigError, match="master_key: must decode to 32 bytes"):
        load_master_key(settings_for(tmp_path, RINGWELL_MASTER_KEY=base64.b64encode(raw[:16]).decode()))
    with pytest.raises(ConfigError, match="master_key: not valid base64"):
        load_master_key(settings_for(tmp_path, RINGWELL_MASTER_KEY="not base64!"))
    (tmp_path / "bad.key").write_text("short")
    with pytest.raises(ConfigError, match="master_key_file"):
        load_master_key(settings_for(tmp_path, RINGWELL_MASTER_KEY_FILE="bad.key"))


async def test_rotating_the_master_key_keeps_blobs_readable_under_the_new_key_only(store, sessions, acme, master):
    org, other = acme["acme"], acme["other"]
    mine = await store.put(org, "voicemail", b"mine", content_type="audio/wav")
    theirs = await store.put(other, "voicemail", b"theirs", content_type="audio/wav")
    new = MasterKey.generate("new")
    assert await store.keys.rewrap(new) == 2
    root = store.path(org, mine.id).parents[1]
    assert await BlobStore(sessions, KeyRing(sessions, new), root).read_all(other, theirs.id) == b"theirs"
    assert await store.read_all(org, mine.id) == b"mine"
    with pytest.raises(WrongMasterKey):
        await BlobStore(sessions, KeyRing(sessions, master), root).read_all(org, mine.id)
