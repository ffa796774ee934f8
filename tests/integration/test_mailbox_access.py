"""Mailbox access (SQLite and PostgreSQL): PIN rules, the PIN kept only as an Argon2 hash, the
lockout counted across calls, custom greetings converted on upload and stored encrypted."""

from __future__ import annotations

import io
import logging
import math
import shutil
import struct
import subprocess
import wave
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from ringwell.blobs import BlobKind, BlobStore, KeyRing, MasterKey
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import AuditLog
from ringwell.features.voicemail.mailbox import (
    GreetingNotFound,
    InvalidGreeting,
    InvalidPin,
    MailboxService,
    MailboxUserNotFound,
    PinCheck,
    pin_problem,
)
from ringwell.features.voicemail.mailbox_models import MailboxRow
from ringwell.features.voicemail.models import Folder
from ringwell.features.voicemail.service import VoicemailService


def tone(seconds: float, hz: float = 440.0, rate: int = 8000) -> bytes:
    return b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * n / rate)))
                    for n in range(int(seconds * rate)))


def wav_of(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


@pytest.fixture
def store(sessions, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")


@pytest.fixture
def voicemail(sessions, store):
    return VoicemailService(sessions, store, retention_days=30)


@pytest.fixture
def mailboxes(sessions, voicemail):
    return MailboxService(sessions, voicemail, audit=AuditLog(sessions), lockout_minutes=15)


@pytest.mark.parametrize("pin", ["123", "12345678901", "12a4", "", "１２３４", "1111", "0000000", "1234", "123456",
                                 "4321", "987654", "7890", "0123"])
def test_short_long_non_digit_and_obvious_pins_are_refused(pin):
    assert pin_problem(pin) is not None


@pytest.mark.parametrize("pin", ["2580", "1357", "8264", "1212", "0042", "9753108642"])
def test_other_pins_of_4_to_10_digits_are_accepted(pin):
    assert pin_problem(pin) is None


async def test_the_pin_is_stored_only_as_an_argon2_hash_and_never_logged(mailboxes, sessions, acme, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidPin):
        await mailboxes.set_pin(acme["acme"], acme["alice"], "1234")
    state = await mailboxes.set_pin(acme["acme"], acme["alice"], "285046")
    assert state.pin_set and state.failed_pin_attempts == 0 and state.locked_until is None
    async with sessions() as session:
        row = await session.get(MailboxRow, acme["alice"])
        dump = " ".join(str(v) for v in (await session.execute(text("SELECT * FROM mailboxes"))).one())
    assert row is not None and row.pin_hash is not None and row.pin_hash.startswith("$argon2id$")
    assert "285046" not in dump
    assert await mailboxes.check_pin(acme["acme"], acme["alice"], "285046") is PinCheck.OK
    assert await mailboxes.check_pin(acme["acme"], acme["alice"], "285047") is PinCheck.WRONG
    assert "285046" not in caplog.text and "285047" not in caplog.text
    # another org's user has no mailbox here; nobody without a PIN can log in
    with pytest.raises(MailboxUserNotFound):
        await mailboxes.set_pin(acme["acme"], acme["carol"], "285046")
    assert await mailboxes.check_pin(acme["acme"], acme["bob"], "285046") is PinCheck.NO_PIN


async def test_three_wrong_pins_lock_the_mailbox_across_calls_and_a_new_pin_unlocks(mailboxes, sessions, acme):
    org, alice = acme["acme"], acme["alice"]
    await mailboxes.set_pin(org, alice, "285046")
    now = datetime.now(UTC)
    assert await mailboxes.check_pin(org, alice, "1111", now=now) is PinCheck.WRONG
    assert await mailboxes.check_pin(org, alice, "285046", now=now) is PinCheck.OK  # a right PIN resets the count
    assert (await mailboxes.state(org, alice)).failed_pin_attempts == 0
    # three in a row, each as if in a call of its own (a fresh service: nothing kept in memory)
    for attempt in (1, 2):
        fresh = MailboxService(sessions, mailboxes.voicemail, audit=AuditLog(sessions))
        assert await fresh.check_pin(org, alice, f"99{attempt}9", now=now) is PinCheck.WRONG
    assert await mailboxes.check_pin(org, alice, "9939", now=now) is PinCheck.LOCKED
    state = await mailboxes.state(org, alice)
    assert state.locked(now) and state.locked_until == pytest.approx(now + timedelta(minutes=15),
                                                                     abs=timedelta(seconds=1))
    # locked: even the right PIN is refused, until the lock runs out
    assert await mailboxes.check_pin(org, alice, "285046", now=now + timedelta(minutes=14)) is PinCheck.LOCKED
    assert await mailboxes.check_pin(org, alice, "285046", now=now + timedelta(minutes=16)) is PinCheck.OK
    # locked again; setting a new PIN unlocks
    for _ in range(3):
        await mailboxes.check_pin(org, alice, "5555", now=now + timedelta(minutes=17))
    assert (await mailboxes.state(org, alice)).locked(datetime.now(UTC))
    await mailboxes.set_pin(org, alice, "740361")
    assert not (await mailboxes.state(org, alice)).locked(datetime.now(UTC))
    assert await mailboxes.check_pin(org, alice, "740361") is PinCheck.OK
    async with sessions() as session:
        events = (await session.execute(select(AuditEvent).where(AuditEvent.org_id == org))).scalars().all()
    actions = [e.action for e in events]
    assert actions.count("voicemail.pin_failed") == 7 and actions.count("voicemail.locked") == 2
    assert all("285046" not in str(e.details) and "740361" not in str(e.details) for e in events)


@pytest.mark.parametrize("kind", ["wav", "mp3"])
async def test_an_uploaded_greeting_is_converted_to_8khz_mono_and_stored_encrypted(
        mailboxes, store, sessions, acme, tmp_path, kind):
    org, alice = acme["acme"], acme["alice"]
    mono = tone(2.0, 500.0, 44100)
    stereo = b"".join(mono[i:i + 2] * 2 for i in range(0, len(mono), 2))
    upload = wav_of(stereo, 44100, channels=2)
    if kind == "mp3":
        source = tmp_path / "in.wav"
        source.write_bytes(upload)
        target = tmp_path / "in.mp3"
        if shutil.which("ffmpeg"):
            subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(source), str(target)], check=True, timeout=60)
        else:
            import av

            with av.open(str(target), "w") as out, av.open(str(source)) as src:
                stream = out.add_stream("mp3", rate=44100)
                for frame in src.decode(audio=0):
                    for packet in stream.encode(frame):
                        out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
        upload = target.read_bytes()
        assert upload[:3] == b"ID3" or upload[0] == 0xFF
    state = await mailboxes.upload_greeting(org, alice, upload)
    assert state.custom_greeting
    pcm = await mailboxes.greeting(org, alice)
    assert pcm is not None and abs(len(pcm) / 16000 - 2.0) < 0.1  # 2 s at 8 kHz, mono
    with wave.open(io.BytesIO(await mailboxes.greeting_wav(org, alice))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    async with sessions() as session:
        row = await session.get(MailboxRow, alice)
    blob = await store.get(org, row.greeting_blob_id)
    assert blob.kind == BlobKind.GREETING
    on_disk = store.path(org, row.greeting_blob_id).read_bytes()
    assert b"RIFF" not in on_disk[:64] and b"WAVE" not in on_disk
    # replaced: the old file goes; deleted: back to the default, no file left
    old = row.greeting_blob_id
    await mailboxes.set_greeting_pcm(org, alice, tone(1.0))
    assert not store.path(org, old).exists()
    await mailboxes.delete_greeting(org, alice)
    assert await mailboxes.greeting(org, alice) is None
    assert await store.list(org, BlobKind.GREETING) == []
    with pytest.raises(GreetingNotFound):
        await mailboxes.delete_greeting(org, alice)


async def test_a_file_that_is_not_audio_is_refused(mailboxes, acme):
    for data in (b"%PDF-1.4 not audio at all" * 50, b"", b"RIFF\x00\x00\x00\x00WAVEjunk"):
        with pytest.raises(InvalidGreeting):
            await mailboxes.upload_greeting(acme["acme"], acme["alice"], data)
    assert not (await mailboxes.state(acme["acme"], acme["alice"])).custom_greeting


async def test_messages_for_the_phone_come_oldest_first_per_folder(mailboxes, voicemail, acme):
    org, alice = acme["acme"], acme["alice"]
    first = await voicemail.deposit(org, alice, "102", None, tone(1.2))
    second = await voicemail.deposit(org, alice, "103", None, tone(1.4))
    assert first is not None and second is not None
    assert [m.id for m in await mailboxes.messages(org, alice, Folder.NEW)] == [first.id, second.id]
    assert await mailboxes.message_pcm(org, first.id) == tone(1.2)
    await mailboxes.mark_read(org, first.id)
    assert [m.id for m in await mailboxes.messages(org, alice, Folder.SAVED)] == [first.id]
    await mailboxes.delete_message(org, second.id)
    assert await mailboxes.counts(alice) == (0, 1)
