"""Voicemail storage (SQLite and PostgreSQL): a message is kept encrypted with its retention
deadline, the mailbox counts drive the lamp, reading and deleting do what a user expects."""

from __future__ import annotations

import io
import math
import struct
import wave
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ringwell.blobs import BlobKind, BlobNotFound, BlobStore, KeyRing, MasterKey
from ringwell.blobs.models import Blob
from ringwell.features.voicemail.errors import InvalidVoicemail, TranscriptNotReady, VoicemailNotFound
from ringwell.features.voicemail.models import Folder, Voicemail
from ringwell.features.voicemail.service import VoicemailService
from tests.integration.test_recordings import retention


def tone(seconds: float, rate: int = 8000) -> bytes:
    return b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * n / rate)))
                    for n in range(int(seconds * rate)))


@pytest.fixture
def store(sessions, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")


@pytest.fixture
def changes():
    return []


@pytest.fixture
def voicemail(sessions, store, changes):
    return VoicemailService(sessions, store, on_change=changes.append, retention_days=30)


async def test_a_deposited_message_is_a_wav_encrypted_on_disk_with_its_retention(voicemail, store, acme, changes):
    pcm = tone(2.5)
    before = datetime.now(UTC)
    message = await voicemail.deposit(acme["acme"], acme["alice"], "+14155550100", "Bob Builder", pcm)
    assert message is not None
    assert changes == [acme["alice"]]  # the lamp is told
    assert message.duration_s == pytest.approx(2.5)
    assert message.folder == Folder.NEW and message.transcript_status == "pending"
    # Retention: 30 days from now, on the row and on the encrypted file's metadata.
    assert before + timedelta(days=30) <= message.retention_until <= datetime.now(UTC) + timedelta(days=30)
    blob = await store.get(acme["acme"], message.audio_blob_id)
    assert blob.kind == BlobKind.VOICEMAIL and blob.retention_until == message.retention_until

    wav_bytes = await voicemail.audio(acme["acme"], message.id)
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.readframes(wav.getnframes()) == pcm
    on_disk = store.path(acme["acme"], message.audio_blob_id).read_bytes()
    assert not on_disk.startswith(b"RIFF") and b"WAVE" not in on_disk and pcm[:400] not in on_disk
    with pytest.raises(wave.Error), wave.open(io.BytesIO(on_disk)):
        pass  # not decodable as audio without the key

    listed = await voicemail.list(acme["acme"], acme["alice"])
    assert [m.id for m in listed] == [message.id]
    assert listed[0].caller_name == "Bob Builder" and listed[0].caller_number == "+14155550100"


async def test_a_message_under_one_second_is_discarded(voicemail, sessions, acme, changes):
    assert await voicemail.deposit(acme["acme"], acme["alice"], "+14155550100", None, tone(0.9)) is None
    async with sessions() as session:
        assert (await session.execute(select(Voicemail))).scalars().all() == []
        assert (await session.execute(select(Blob))).scalars().all() == []
    assert changes == []
    assert await voicemail.counts(acme["alice"]) == (0, 0)


async def test_a_mailbox_of_another_org_cannot_be_filled(voicemail, acme):
    with pytest.raises(InvalidVoicemail):
        await voicemail.deposit(acme["acme"], acme["carol"], "+14155550100", None, tone(1.5))


async def test_counts_follow_reading_and_deleting(voicemail, store, sessions, acme, changes):
    first = await voicemail.deposit(acme["acme"], acme["alice"], "101", None, tone(1.2))
    second = await voicemail.deposit(acme["acme"], acme["alice"], "102", None, tone(1.5))
    await voicemail.deposit(acme["acme"], acme["bob"], "101", None, tone(1.5))
    assert first is not None and second is not None
    assert await voicemail.counts(acme["alice"]) == (2, 0)

    read = await voicemail.mark_read(acme["acme"], first.id)
    assert read.folder == Folder.SAVED and read.read_at is not None
    assert await voicemail.counts(acme["alice"]) == (1, 1)
    assert [m.id for m in await voicemail.list(acme["acme"], acme["alice"], Folder.NEW)] == [second.id]
    assert len(await voicemail.list(acme["acme"])) == 3  # the whole org

    await voicemail.set_transcript(acme["acme"], second.id, "Call me back on 555 0100.")
    assert await voicemail.transcript(acme["acme"], second.id) == "Call me back on 555 0100."
    transcript_blob = (await voicemail.get(acme["acme"], second.id)).transcript_blob_id
    assert transcript_blob is not None
    changes.clear()

    await voicemail.delete(acme["acme"], second.id)
    assert changes == [acme["alice"]]
    assert await voicemail.counts(acme["alice"]) == (0, 1)
    # The files are gone, and so is the row: everything about the message answers "not found".
    assert not store.path(acme["acme"], second.audio_blob_id).exists()
    assert not store.path(acme["acme"], transcript_blob).exists()
    with pytest.raises(BlobNotFound):
        await store.get(acme["acme"], second.audio_blob_id)
    async with sessions() as session:
        assert await session.get(Voicemail, second.id) is None
    for action in (voicemail.audio, voicemail.mark_read, voicemail.delete):
        with pytest.raises(VoicemailNotFound):
            await action(acme["acme"], second.id)


async def test_transcript_failure_and_tenant_scoping(voicemail, acme):
    message = await voicemail.deposit(acme["acme"], acme["alice"], "101", None, tone(1.0))
    assert message is not None
    with pytest.raises(TranscriptNotReady):
        await voicemail.transcript(acme["acme"], message.id)
    failed = await voicemail.set_transcript(acme["acme"], message.id, None)
    assert failed.transcript_status == "failed"
    with pytest.raises(TranscriptNotReady):
        await voicemail.transcript(acme["acme"], message.id)
    # Another org's id of the message finds nothing.
    for action in (voicemail.get, voicemail.audio, voicemail.delete):
        with pytest.raises(VoicemailNotFound):
            await action(acme["other"], message.id)
    assert await voicemail.list(acme["other"]) == []


async def test_messages_past_their_retention_are_purged_with_their_files(voicemail, store, acme, changes, sessions):
    message = await voicemail.deposit(acme["acme"], acme["alice"], "101", None, tone(1.0))
    assert message is not None
    purge = retention(sessions, store, voicemail=voicemail).purge_voicemails
    assert await purge(datetime.now(UTC) + timedelta(days=29)) == 0
    changes.clear()
    assert await purge(datetime.now(UTC) + timedelta(days=31)) == 1
    assert changes == [acme["alice"]]
    assert not store.path(acme["acme"], message.audio_blob_id).exists()
    assert await voicemail.list(acme["acme"]) == []
