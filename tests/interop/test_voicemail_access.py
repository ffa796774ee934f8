"""``*97``: alice calls her own mailbox from her baresip, types her PIN (RFC 4733), hears her message.

A message with known speech is deposited through ``VoicemailService.deposit``. alice's baresip
(registered as alice) dials ``*97``, sends her PIN as RFC 4733 telephone-events (baresip's
``sndcode``) and records what it hears: somewhere after the PIN, the recording holds the message
(best alignment found by cross-correlation, then compared window by window: ≥ 0.9), and the
message is marked read. Then the lockout: wrong PINs in two calls (the count is kept in the
database across calls) lock the mailbox, so a fourth call with the *right* PIN only hears "This
mailbox is locked" and is hung up by Ringwell; the API shows the lock, and a new PIN set through
the API unlocks it.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from ringwell.features.accounts.service import UserSpec
from ringwell.features.auth.permissions import ORG_PERMISSIONS
from ringwell.pbx.voicemail_box import CALL_BACK_LINGER
from ringwell.pbx.voicemail_menu import Prompts
from ringwell.server import RingwellServer
from tests.audio import read_wav, similarity, speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.inprocess import inprocess_server
from tests.peers.ports import LOOPBACK

pytestmark = [pytest.mark.peers, pytest.mark.timeout(240)]

ORG = "Acme"
PIN = "285046"
SENTENCE = "Hi Alice, this is Robert from Northwind. The shipment of forty crates arrives on Thursday morning."


@pytest.fixture
async def ringwell(tmp_path):
    async with inprocess_server(tmp_path) as server:
        yield server


def _pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return w.readframes(w.getnframes())


def _write(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _aligned(message: Path, heard: Path, after: float, out: Path) -> tuple[float, Path]:
    """Where in ``heard`` (after ``after`` seconds) the whole message fits best: (its start in
    seconds, that stretch of the recording written to ``out``)."""
    ref, rate = read_wav(message)
    rec, rec_rate = read_wav(heard)
    assert rec_rate == rate, f"baresip recorded at {rec_rate} Hz"
    start = int(after * rate)
    rec = rec[start:]
    n = len(ref)
    assert len(rec) >= n, f"the recording after the PIN is {len(rec) / rate:.1f} s, the message {n / rate:.1f} s"
    size = 1 << int(np.ceil(np.log2(len(rec) + n)))
    cross = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)[: len(rec) - n + 1]
    energy = np.sqrt(np.convolve(rec**2, np.ones(n), mode="valid") * float(np.dot(ref, ref)))
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(energy > 1e-9, cross / energy, 0.0)
    lag = int(np.argmax(scores))
    return (start + lag) / rate, _write(out, rec[lag: lag + n], rate)


class Phone:
    """alice's baresip: one *97 call at a time, each call's recording told apart."""

    def __init__(self, baresip: Baresip, sip_port: int) -> None:
        self.baresip = baresip
        self.uri = f"sip:*97@{LOOPBACK}:{sip_port}"
        self._seen: set[Path] = set()

    def call(self) -> float:
        self._seen = set((self.baresip.dir / "rec").glob("dump-*-dec.wav"))
        self.baresip.dial(self.uri)
        self.baresip.wait_event("CALL_ESTABLISHED", timeout=15)
        return time.monotonic()

    def send(self, digits: str) -> None:
        assert self.baresip.command("sndcode", digits).get("ok", True) is not False

    def hang_up(self) -> None:
        self.baresip.command("hangup")

    def closed(self, timeout: float) -> None:
        self.baresip.wait_event("CALL_CLOSED", timeout=timeout)

    def heard(self) -> Path:
        deadline = time.monotonic() + 10
        while True:
            new = sorted(set((self.baresip.dir / "rec").glob("dump-*-dec.wav")) - self._seen)
            if new:
                return new[-1]
            assert time.monotonic() < deadline, "baresip recorded nothing"
            time.sleep(0.2)


async def _api(server: RingwellServer, org_id: str) -> httpx.AsyncClient:
    async with server.sessions() as session, session.begin():
        issued = await server.web.api_keys.create(session, org_id=org_id, org_kind="customer", created_by=None,
                                                  name="test", scopes=["voicemail.read", "voicemail.write"],
                                                  creator=ORG_PERMISSIONS)
    return httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{server.settings.http_port}/api/v1",
                             headers={"authorization": f"Bearer {issued.key}"}, timeout=10)


async def test_star_97_plays_the_message_after_the_pin_and_wrong_pins_lock_the_mailbox(ringwell, tmp_path):
    server: RingwellServer = ringwell
    accounts = server.accounts
    await accounts.create_org(ORG)
    alice = await accounts.create_user(ORG, UserSpec("alice@example.com", "101", "alice", "alice-secret-1"))
    org_id, user_id = alice.user.org_id, alice.user.id
    await server.mailboxes.set_pin(org_id, user_id, PIN)
    message = speech_wav(tmp_path / "message.wav", SENTENCE)
    stored = await server.voicemail.deposit(org_id, user_id, "102", "Robert", _pcm(message))
    assert stored is not None
    silence = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(silence), "trim", "0", "200"],
                   check=True, timeout=30)
    baresip = Baresip(tmp_path / "alice", BaresipAccount("alice", "alice-secret-1", server.settings.sip_port,
                                                         extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
                      audio_source=silence, seconds=220)
    phone = Phone(baresip, server.settings.sip_port)
    api = await _api(server, org_id)
    try:
        await asyncio.to_thread(baresip.start)
        await asyncio.to_thread(baresip.wait_registered, 15)

        # 1. the right PIN: the summary, then the message
        established = await asyncio.to_thread(phone.call)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.send, PIN + "#")
        pin_at = time.monotonic() - established
        deadline = time.monotonic() + 60
        while (await server.voicemail.get(org_id, stored.id)).folder != "saved":  # played to its end
            assert time.monotonic() < deadline, "the message was not played to its end"
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(phone.hang_up)
        await asyncio.to_thread(phone.closed, 10)
        heard = await asyncio.to_thread(phone.heard)
        start, stretch = _aligned(message, heard, pin_at, tmp_path / "stretch.wav")
        score = similarity(message, stretch)
        assert score >= 0.9, f"what alice heard {start:.1f} s into the call matches the message at {score:.3f}"
        assert start > pin_at + 2.0  # after the PIN and the summary
        assert (await server.voicemail.counts(user_id)) == (0, 1)

        # 2. two wrong PINs in one call, one in the next: locked, counted across calls
        await asyncio.to_thread(phone.call)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.send, "1111#")
        await _wait_attempts(api, org_id, user_id, 1)
        await asyncio.to_thread(phone.send, "2580#")
        await _wait_attempts(api, org_id, user_id, 2)
        await asyncio.to_thread(phone.hang_up)
        await asyncio.to_thread(phone.closed, 10)
        await asyncio.to_thread(phone.call)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.send, "9999#")
        await asyncio.to_thread(phone.closed, 30)  # Ringwell hangs up after "This mailbox is locked"
        state = (await api.get(f"/orgs/{org_id}/users/{user_id}/voicemail/mailbox")).json()
        assert state["locked"] is True and state["locked_until"] is not None and state["failed_pin_attempts"] == 3

        # 3. the right PIN while locked: the lock prompt only, no message, and Ringwell hangs up
        locked_prompt = tmp_path / "locked.wav"
        _write(locked_prompt, np.frombuffer((await server.prompts.render(Prompts.LOCKED)).pcm, "<i2") / 32768.0,
               8000)
        established = await asyncio.to_thread(phone.call)
        await asyncio.to_thread(phone.send, PIN + "#")
        await asyncio.to_thread(phone.closed, 30)
        length = time.monotonic() - established
        heard = await asyncio.to_thread(phone.heard)
        assert length < 12, f"a locked mailbox kept the call for {length:.1f} s"
        assert similarity(locked_prompt, heard) >= 0.9
        assert similarity(message, heard) < 0.5
        assert (await server.voicemail.counts(user_id)) == (0, 1)

        # 4. a new PIN set through the API unlocks
        response = await api.put(f"/orgs/{org_id}/users/{user_id}/voicemail/pin", json={"pin": "740361"})
        assert response.status_code == 200, response.text
        assert response.json()["locked"] is False and response.json()["failed_pin_attempts"] == 0
        assert "740361" not in response.text
    finally:
        await api.aclose()
        await asyncio.to_thread(baresip.stop)


async def _wait_attempts(api: httpx.AsyncClient, org_id: str, user_id: str, count: int) -> None:
    """Until the API shows ``count`` wrong PINs in a row (the menu has checked the digits)."""
    deadline = time.monotonic() + 20
    while True:
        state = (await api.get(f"/orgs/{org_id}/users/{user_id}/voicemail/mailbox")).json()
        if state["failed_pin_attempts"] >= count:
            return
        assert time.monotonic() < deadline, f"the wrong PIN was not counted: {state}"
        await asyncio.sleep(0.3)


async def test_a_caller_hears_the_custom_greeting_uploaded_through_the_api(ringwell, tmp_path):
    """alice uploads a greeting (MP3-free: a 22 kHz WAV, converted on upload); bob calls her while
    she has no phone registered and hears that greeting, not the spoken default."""
    server: RingwellServer = ringwell
    await server.accounts.create_org(ORG)
    alice = await server.accounts.create_user(ORG, UserSpec("alice@example.com", "101", "alice", "alice-secret-1"))
    await server.accounts.create_user(ORG, UserSpec("bob@example.com", "102", "bob", "bob-secret-12"))
    org_id, user_id = alice.user.org_id, alice.user.id
    greeting = speech_wav(tmp_path / "greeting.wav", "You have reached Alice at Acme. Leave your name and number.",
                          rate=22050)
    reference = tmp_path / "greeting-8k.wav"  # what the converted upload should sound like on the line
    subprocess.run(["sox", str(greeting), "-r", "8000", str(reference)], check=True, timeout=30)
    api = await _api(server, org_id)
    silence = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(silence), "trim", "0", "60"],
                   check=True, timeout=30)
    caller = Baresip(tmp_path / "bob", BaresipAccount("bob", "bob-secret-12", server.settings.sip_port,
                                                      extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
                     audio_source=silence, seconds=60)
    try:
        response = await api.put(f"/orgs/{org_id}/users/{user_id}/voicemail/greeting",
                                 content=greeting.read_bytes(), headers={"content-type": "audio/wav"})
        assert response.status_code == 200 and response.json()["custom_greeting"] is True, response.text
        await asyncio.to_thread(caller.start)
        await asyncio.to_thread(caller.wait_registered, 15)
        await asyncio.to_thread(caller.dial, f"sip:101@{LOOPBACK}:{server.settings.sip_port}")
        await asyncio.to_thread(caller.wait_event, "CALL_ESTABLISHED", timeout=15)  # the box, at once
        await asyncio.sleep(6.0)  # the greeting (about 4 s) and the beep
        await asyncio.to_thread(caller.command, "hangup")
        await asyncio.to_thread(caller.wait_event, "CALL_CLOSED", timeout=10)
        heard, _ = await asyncio.to_thread(caller.recordings)
        default = tmp_path / "default.wav"
        default_pcm = (await server.prompts.render("The person at extension 1 0 1 is not available. "
                                                   "Please leave a message after the tone.")).pcm
        _write(default, np.frombuffer(default_pcm, "<i2") / 32768.0, 8000)
        score = similarity(reference, heard)
        assert score >= 0.9, f"bob heard the uploaded greeting with similarity {score:.3f}"
        assert similarity(default, heard) < 0.5
    finally:
        await api.aclose()
        await asyncio.to_thread(caller.stop)


async def test_call_back_from_the_mailbox_makes_the_phone_call_the_caller(ringwell, tmp_path):
    """alice, in her mailbox, presses 2 while bob's message plays: Ringwell asks her phone (REFER)
    to call 102, so bob's baresip rings with a call from alice, and the *97 call ends."""
    server: RingwellServer = ringwell
    await server.accounts.create_org(ORG)
    alice = await server.accounts.create_user(ORG, UserSpec("alice@example.com", "101", "alice", "alice-secret-1"))
    await server.accounts.create_user(ORG, UserSpec("bob@example.com", "102", "bob", "bob-secret-12"))
    org_id, user_id = alice.user.org_id, alice.user.id
    await server.mailboxes.set_pin(org_id, user_id, PIN)
    message = speech_wav(tmp_path / "message.wav", SENTENCE)
    assert await server.voicemail.deposit(org_id, user_id, "102", "Robert", _pcm(message)) is not None
    silence = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(silence), "trim", "0", "120"],
                   check=True, timeout=30)
    port = server.settings.sip_port
    baresip = Baresip(tmp_path / "alice", BaresipAccount("alice", "alice-secret-1", port,
                                                         extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
                      audio_source=silence, seconds=110)
    bob = Baresip(tmp_path / "bob", BaresipAccount("bob", "bob-secret-12", port,
                                                   extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
                  audio_source=silence, seconds=110)
    phone = Phone(baresip, port)
    try:
        for peer in (baresip, bob):
            await asyncio.to_thread(peer.start)
            await asyncio.to_thread(peer.wait_registered, 15)
        await asyncio.to_thread(phone.call)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.send, PIN + "#")
        # "You have 1 new and 0 saved messages", "Message 1, from 1 0 2 …": 2 while it plays
        played = await server.prompts.render(Prompts.summary(1, 0))
        await asyncio.sleep(1.5 + len(played.pcm) / 16000 + 1.0)
        await asyncio.to_thread(phone.send, "2")
        incoming = await asyncio.to_thread(bob.wait_event, "CALL_INCOMING", timeout=30)
        assert "alice" in str(incoming) or "101" in str(incoming), incoming
        # The *97 call ends when the phone reports the call back (baresip: its NOTIFY with the final
        # answer; phones that report 180 sooner), at the latest CALL_BACK_LINGER later; the call back goes on.
        deadline = time.monotonic() + CALL_BACK_LINGER + 5
        while server.calls.active > 1:
            assert time.monotonic() < deadline, "the *97 call stayed up after the call back"
            await asyncio.sleep(0.1)
        assert server.calls.active == 1  # the call back (bob's phone, or his mailbox if it gave up ringing)
    finally:
        await asyncio.to_thread(bob.stop)
        await asyncio.to_thread(baresip.stop)
