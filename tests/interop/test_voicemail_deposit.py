"""An unanswered call goes to voicemail: stored encrypted, transcribed, emailed; the lamp lights.

baresip (bob) calls alice, whose baresip rings (it never answers; it subscribes to its mailbox's
message-summary). After alice's ring timeout the call reaches her voicemail box inside Ringwell:
greeting, beep, recording until bob falls silent. bob's sentence (after a pause that covers the
greeting) must be in the stored message — decrypted with the organization's key it correlates
≥ 0.9 with what bob sent, while the file on disk is not audio — and alice's lamp goes on.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import wave
from pathlib import Path

import pytest

from ringwell.features.accounts.models import Organization
from ringwell.features.accounts.service import UserSpec
from ringwell.server import RingwellServer
from ringwell.transcribe.score import digits, normalize
from tests.audio import similarity, speech_wav
from tests.interop.test_mwi_peers import MwiBaresip, mwi_shown
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.inprocess import inprocess_server
from tests.peers.ports import LOOPBACK
from tests.peers.smtp import SmtpSink

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

ORG = "Acme"
CALLBACK = "3127048261"


def _edits(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def _number_in(number: str, text: str) -> bool:
    """The callback number among the transcript's digits, one digit misheard at most: through the
    8 kHz call path tiny.en once heard "three" as "free" (CI), the rest of the number intact."""
    found = digits(text)
    return any(_edits(found[i:i + size], number) <= 1
               for size in (len(number) - 1, len(number), len(number) + 1)
               for i in range(max(1, len(found) - size + 1)))


@pytest.fixture
def smtp():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
async def ringwell(tmp_path, smtp):
    env = {"RINGWELL_SMTP_HOST": smtp.host, "RINGWELL_SMTP_PORT": str(smtp.port), "RINGWELL_SMTP_SECURITY": "none",
           "RINGWELL_VOICEMAIL_SILENCE_SECONDS": "2"}
    async with inprocess_server(tmp_path, env) as server:
        yield server


def _message_wav(tmp_path: Path) -> Path:
    """bob's message: 9 s of silence (the greeting and beep play meanwhile), then the sentence."""
    speech = speech_wav(tmp_path / "speech.wav",
                        "Hello, this is Robert Brown from Northwind Logistics. Call me back at 3 1 2, 7 0 4, 8 2 6 1.")
    padded = tmp_path / "message.wav"
    subprocess.run(["sox", str(speech), str(padded), "pad", "9", "4"], check=True, timeout=30)
    return padded


async def test_an_unanswered_call_leaves_an_encrypted_message_and_lights_the_lamp(ringwell, smtp, tmp_path):
    server: RingwellServer = ringwell
    accounts = server.accounts
    org = await accounts.create_org(ORG)
    async with server.sessions() as session, session.begin():  # this organization lets the audio go by email
        (await session.get(Organization, org.id)).voicemail_attach_audio = True
    alice = await accounts.create_user(ORG, UserSpec("alice@example.com", "101", "alice", "alice-secret-1"))
    await accounts.create_user(ORG, UserSpec("bob@example.com", "102", "bob", "bob-secret-12"))
    await accounts.set_ring_timeout(ORG, "101", 5)
    message = _message_wav(tmp_path)
    sip_port = server.settings.sip_port
    phone = MwiBaresip(tmp_path / "alice", BaresipAccount("alice", "alice-secret-1", sip_port,
                                                          extra=("mwi=yes", "pubint=0")))
    caller = Baresip(tmp_path / "bob", BaresipAccount("bob", "bob-secret-12", sip_port,
                                                      extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
                     audio_source=message, seconds=90)
    try:
        await asyncio.to_thread(phone.start)
        await asyncio.to_thread(phone.wait_registered, 15)
        await asyncio.to_thread(caller.start)
        await asyncio.to_thread(caller.wait_registered, 15)
        await asyncio.to_thread(caller.dial, f"sip:101@{LOOPBACK}:{sip_port}")
        await asyncio.to_thread(caller.wait_event, "CALL_ESTABLISHED", timeout=15)  # the box answered
        deadline = time.monotonic() + 40
        while server.calls.voicemail is not None and server.calls.voicemail.deposited == 0:
            assert time.monotonic() < deadline, "no message was deposited"
            await asyncio.sleep(0.2)
        messages = await server.voicemail.list(alice.user.org_id, alice.user.id)
        assert len(messages) == 1
        voicemail = messages[0]
        assert voicemail.caller_number == "102" and voicemail.folder == "new"
        while not any(s.waiting for s in await asyncio.to_thread(mwi_shown, phone)):
            assert time.monotonic() < deadline, f"alice's lamp stayed off: {mwi_shown(phone)}"
            await asyncio.sleep(0.2)
        await _check_message(server, smtp, tmp_path, alice.user.org_id, voicemail.id, message)
        # deleted: the file and the row go, and the lamp goes out
        await server.voicemail.delete(alice.user.org_id, voicemail.id)
        assert not [p for p in (server.settings.data_dir / "blobs").rglob("*") if p.is_file()]
        deadline = time.monotonic() + 10
        while (await asyncio.to_thread(mwi_shown, phone))[-1].waiting:
            assert time.monotonic() < deadline, f"alice's lamp stayed on: {mwi_shown(phone)}"
            await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(caller.stop)
        await asyncio.to_thread(phone.stop)
    summary = next(s for s in mwi_shown(phone) if s.waiting)
    assert summary.new == 1


async def _check_message(server: RingwellServer, smtp: SmtpSink, tmp_path: Path, org_id: str, voicemail_id: str,
                         message: Path) -> None:
    """The stored message: what bob said, encrypted on disk, transcribed, emailed."""
    heard = tmp_path / "left.wav"
    heard.write_bytes(await server.voicemail.audio(org_id, voicemail_id))
    with wave.open(str(heard), "rb") as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1
    score = similarity(message, heard)
    assert score >= 0.9, f"the message matches what bob said with similarity {score:.3f}"
    stored = list((server.settings.data_dir / "blobs").rglob("*"))
    files = [p for p in stored if p.is_file()]
    assert files and all(b"RIFF" not in p.read_bytes()[:64] and b"WAVE" not in p.read_bytes() for p in files)
    # transcribed on this machine, in the background: the caller's name, company and number
    deadline = time.monotonic() + 60
    while (await server.voicemail.get(org_id, voicemail_id)).transcript_status == "pending":
        assert time.monotonic() < deadline, "no transcript"
        await asyncio.sleep(0.5)
    text = await server.voicemail.transcript(org_id, voicemail_id)
    words = normalize(text)
    assert "robert" in words and "northwindlogistics" in "".join(words), text
    assert _number_in(CALLBACK, text), text
    # the owner is told by email (over SMTP on loopback), transcript inside, the recording attached
    mail = await smtp.wait_for("alice@example.com", subject="Voicemail from 102", timeout=20)
    assert "Transcript:" in mail.body and "Length:" in mail.body
    assert _number_in(CALLBACK, mail.body.split("Transcript:")[1]), mail.body
    attachment = next(mail.message.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_content() == heard.read_bytes()
