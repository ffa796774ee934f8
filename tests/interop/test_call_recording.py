"""A recorded call between baresip and linphonec: both are told first, each channel is one party.

alice (baresip, extension 101) calls bob (linphonec, 201, answers automatically). With the org's
recording policy ``always``: both phones' own recordings start with "This call is being
recorded" (correlated with the server's prompt), and the stored recording — Ogg/Opus, encrypted
on disk, decrypted through the recordings service — has alice on the left channel and bob on the
right (each correlates ≥ 0.9 with what that phone sent, and not with the other). With the
policy ``off`` nothing is announced and nothing is written; with ``on_demand`` the phone's ``*1``
starts a recording (after the announcement), listed with the call.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

import av
import numpy as np
import pytest

from ringwell.features.accounts.service import UserSpec
from ringwell.features.recordings.models import Action, Mode
from ringwell.pbx.recording import ANNOUNCEMENT
from ringwell.server import RingwellServer
from tests.audio import similarity, speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.inprocess import inprocess_server
from tests.peers.linphone import Linphone
from tests.peers.ports import LOOPBACK

pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]

ORG = "Acme"


@pytest.fixture
async def ringwell(tmp_path):
    async with inprocess_server(tmp_path) as server:
        accounts = server.accounts
        org = await accounts.create_org(ORG)
        await accounts.create_user(ORG, UserSpec("alice@example.com", "101", "alice", "alice-secret-1"))
        await accounts.create_user(ORG, UserSpec("bob@example.com", "201", "bob", "bob-secret-12"))
        server.test_org_id = org.id  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("voices")
    alice = speech_wav(tmp / "alice-speech.wav", "One two three four five. Calls through Ringwell are anchored. "
                       "Six seven eight nine ten. The caller keeps talking for a while.", voice="en-us")
    padded = tmp / "alice.wav"  # 4 s of silence first: the announcement plays meanwhile
    subprocess.run(["sox", str(alice), str(padded), "pad", "4", "1"], check=True, timeout=30)
    bob = speech_wav(tmp / "bob.wav", "The quick brown fox jumps over the lazy dog. "
                     "Hello from the callee side of this call.", voice="en-us+f3")
    return padded, bob


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")[::channels].astype(np.float64) / 32768
    return data, rate


def _onset(samples: np.ndarray, rate: int, after: float = 0.0) -> float:
    """Seconds to the first 20 ms with sound in it (after ``after``)."""
    frame = rate // 50
    for start in range(int(after * rate), len(samples) - frame, frame):
        if np.sqrt(np.mean(samples[start:start + frame] ** 2)) > 0.02:
            return start / rate
    return len(samples) / rate


def _first_sound(path: Path, seconds: float, out: Path, after: float = 0.0) -> Path:
    """The first ``seconds`` of sound a phone heard (from the first 20 ms that is not silence)."""
    samples, rate = _samples(path)
    start = max(0, int((_onset(samples, rate, after) - 0.05) * rate))
    return _write_wav(out, samples[start:start + int(seconds * rate)], rate)


async def _call(server: RingwellServer, tmp_path: Path, voices: tuple[Path, Path], *,
                during: str | None = None, then: Callable[[Baresip], Awaitable[None]] | None = None,
                ) -> tuple[Path, Path]:
    """alice calls bob and hangs up when her file ends; what each phone heard. ``then`` runs once the
    call is up (given alice's baresip)."""
    alice_wav, bob_wav = voices
    sip_port = server.settings.sip_port
    bob = Linphone(tmp_path / "linphone", "bob", transport="udp", seconds=90)
    alice = Baresip(tmp_path / "baresip", BaresipAccount("alice", "alice-secret-1", sip_port,
                                                         extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
                    audio_source=alice_wav, seconds=90)
    heard_by_bob = tmp_path / "bob-heard.wav"
    try:
        await asyncio.to_thread(bob.start)
        bob.prepare_media(bob_wav, heard_by_bob, autoanswer=True)
        bob.register("bob", "bob-secret-12", LOOPBACK, sip_port)
        await asyncio.to_thread(bob.wait_registered, 15)
        await asyncio.to_thread(alice.start)
        await asyncio.to_thread(alice.wait_registered, 15)
        await asyncio.to_thread(alice.dial, f"sip:201@{LOOPBACK}:{sip_port}")
        await asyncio.to_thread(alice.wait_event, "CALL_ESTABLISHED", timeout=15)
        if during is not None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(alice.command, "sndcode", during)
        if then is not None:
            await then(alice)
        await asyncio.to_thread(alice.wait_event, "CALL_CLOSED", timeout=40)  # her file ended
        deadline = time.monotonic() + 10
        while server.calls.active:
            assert time.monotonic() < deadline, "the call did not end"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(alice.stop)
        await asyncio.to_thread(bob.stop)
    heard_by_alice, _ = alice.recordings()
    return heard_by_alice, heard_by_bob


async def _announcement(server: RingwellServer, tmp_path: Path) -> tuple[Path, float]:
    """The prompt (with silence around it, so any stretch of it can be aligned) and how long it sounds."""
    prompt = await server.prompts.render(ANNOUNCEMENT)
    samples = np.frombuffer(prompt.pcm, dtype="<i2").astype(np.float64) / 32768
    voiced = len(samples) / 8000 - _onset(samples[::-1], 8000) - _onset(samples, 8000)
    padded = np.concatenate([np.zeros(4000), samples, np.zeros(4000)])
    return _write_wav(tmp_path / "announcement.wav", padded, 8000), voiced


async def _stored_recordings(server: RingwellServer, org_id: str) -> list[tuple[object, np.ndarray, int]]:
    """Every recording of the org, decrypted through the service: (row, channels × samples, rate)."""
    out = []
    for row in await server.recordings.list(org_id):
        _, blob = await server.recordings.open_audio(org_id, row.id)
        data = await blob.read_all()
        assert data[:4] == b"OggS"
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            assert stream.codec_context.name == "opus" and stream.codec_context.channels == 2
            frames = [frame.to_ndarray() for frame in container.decode(stream)]
            rate = stream.codec_context.sample_rate
        out.append((row, np.concatenate(frames, axis=1), rate))
    return out


def _blob_files(server: RingwellServer) -> list[Path]:
    return [p for p in (server.settings.data_dir / "blobs").rglob("*") if p.is_file()]


async def test_a_recorded_call_is_announced_to_both_and_has_one_party_per_channel(ringwell, tmp_path, voices):
    server: RingwellServer = ringwell
    org_id = server.test_org_id  # type: ignore[attr-defined]
    await server.recordings.set_policy(org_id, "org", Mode.ALWAYS)
    announcement, seconds = await _announcement(server, tmp_path)
    heard_by_alice, heard_by_bob = await _call(server, tmp_path, voices)

    # the first thing both phones heard was the announcement (bob's talks from the moment it answers)
    for who, heard in (("alice", heard_by_alice), ("bob", heard_by_bob)):
        head = _first_sound(heard, seconds + 0.5, tmp_path / f"{who}-head.wav")
        told = similarity(announcement, head)
        assert told >= 0.9, f"{who} heard the announcement with similarity {told:.3f}"
    # and then each other, as usual
    alice_wav, bob_wav = voices
    assert similarity(alice_wav, heard_by_bob) >= 0.9
    assert similarity(bob_wav, heard_by_alice, loops=4) >= 0.9

    stored = await _stored_recordings(server, org_id)
    assert len(stored) == 1
    row, channels, rate = stored[0]
    assert row.trigger == "policy" and row.channels == 2 and row.duration_s > 8  # type: ignore[attr-defined]
    left = _write_wav(tmp_path / "left.wav", channels[0], rate)
    right = _write_wav(tmp_path / "right.wav", channels[1], rate)
    scores = {
        "left~alice": similarity(alice_wav, left), "right~bob": similarity(bob_wav, right, loops=4),
        "left~bob": similarity(bob_wav, left, loops=4), "right~alice": similarity(alice_wav, right),
        "left~announcement": similarity(announcement, left),
    }
    assert scores["left~alice"] >= 0.9 and scores["right~bob"] >= 0.9, scores
    assert scores["left~bob"] < 0.5 and scores["right~alice"] < 0.5, scores
    assert scores["left~announcement"] < 0.5, scores  # recording starts after everyone was told

    # on disk: encrypted, not audio
    files = _blob_files(server)
    assert len(files) == 1 and b"OggS" not in files[0].read_bytes() and b"Opus" not in files[0].read_bytes()


async def test_with_recording_off_nothing_is_announced_or_written(ringwell, tmp_path, voices):
    server: RingwellServer = ringwell
    org_id = server.test_org_id  # type: ignore[attr-defined]
    announcement, seconds = await _announcement(server, tmp_path)
    heard_by_alice, heard_by_bob = await _call(server, tmp_path, voices, during="*1")  # *1: not allowed
    for who, heard in (("alice", heard_by_alice), ("bob", heard_by_bob)):
        told = similarity(announcement, _first_sound(heard, seconds + 0.5, tmp_path / f"{who}-head.wav"))
        assert told < 0.5, f"{who} heard an announcement ({told:.3f}) with recording off"
    assert await server.recordings.list(org_id) == []
    assert _blob_files(server) == []


async def test_star_one_records_on_demand_after_the_announcement_and_pauses(ringwell, tmp_path, voices):
    server: RingwellServer = ringwell
    org_id = server.test_org_id  # type: ignore[attr-defined]
    await server.recordings.set_policy(org_id, "org", Mode.ON_DEMAND)
    announcement, seconds = await _announcement(server, tmp_path)
    live = server.calls.recordings
    assert live is not None
    states: list[str] = []

    async def pause_a_while(_: Baresip) -> None:
        """Once *1 started it: paused for 1.5 s (as for a card number), as the API would."""
        call_id = next(iter(server.calls.calls))
        deadline = time.monotonic() + 10
        while live.state(call_id) != "recording":
            assert time.monotonic() < deadline, live.state(call_id)
            await asyncio.sleep(0.05)
        states.append(await live.control(call_id, Action.PAUSE))
        await asyncio.sleep(1.5)
        states.append(await live.control(call_id, Action.RESUME))

    _, heard_by_bob = await _call(server, tmp_path, voices, during="*1", then=pause_a_while)
    assert states == ["paused", "recording"]
    stored = await _stored_recordings(server, org_id)
    assert len(stored) == 1
    row, channels, rate = stored[0]
    assert row.trigger == "dtmf" and 1.3 < row.paused_s < 2.0  # type: ignore[attr-defined]
    # bob heard the announcement once alice pressed *1 (after a second of the call, before she speaks at 4 s)
    told = similarity(announcement, _first_sound(heard_by_bob, seconds + 0.5, tmp_path / "bob-head.wav"))
    assert told >= 0.9, f"bob heard the announcement with similarity {told:.3f}"
    right = _write_wav(tmp_path / "right.wav", channels[1], rate)
    assert similarity(voices[1], right, loops=4) >= 0.9
    # the pause is silence in the file: bob talks all the time, yet 1.5 s of the right channel is quiet
    frame = rate // 50
    loud = [np.sqrt(np.mean(channels[1][i:i + frame] ** 2)) > 0.01 for i in range(0, channels.shape[1] - frame, frame)]
    longest = max(len(run) for run in "".join("x" if v else "." for v in loud).split("x"))
    assert longest * 0.02 >= 1.3, f"longest silence {longest * 0.02:.2f} s"
