"""Media applications on loopback: Ringwell as an RTP party, the call recorder, prompts, uploads.

The RTP behaviour (pacing, G.711 content, timestamps and gaps, DTMF, silence) is checked against
plain UDP sockets that play the phone: they let a test reorder, drop and time packets exactly,
which no softphone does on request. The one real third-party peer is SIPp's RTP echo
(``-rtp_echo``): it needs no SIP dialog, so the endpoint plays speech to SIPp and records what
SIPp sends back. A baresip call would need a SIP dialog answered by the endpoint, which is the
voicemail wiring (a later step), not this module.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
import wave
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from ringwell.media import MediaRelay, PortPool, g711
from ringwell.media.apps import CallRecorder, MediaEndpoint, StopReason, tone
from ringwell.media.errors import CodecError
from ringwell.media.prompts import PromptCache, PromptError, UploadError, convert_upload, read_wav, write_wav
from ringwell.media.rtp import parse_rtp
from tests.audio import similarity, speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.ports import free_port
from tests.peers.proc import BoundedProcess
from tests.peers.sipp_calls import UAS, start_sipp, write_scenario

HOST = "127.0.0.1"
FOREIGN = "127.0.0.2"
SENTENCE_A = "Please leave your name, your company and the number to call back after the tone."
SENTENCE_B = "The quarterly figures arrive on Thursday morning, seven thirty sharp."


def free_range(pairs: int) -> tuple[int, int]:
    low = free_port(2 * pairs + 1)
    low += low % 2
    return low, low + 2 * pairs - 1


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("speech")
    return {"a": speech_wav(d / "a.wav", SENTENCE_A), "b": speech_wav(d / "b.wav", SENTENCE_B)}


def pcm_of(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return w.readframes(w.getnframes())


class Peer:
    """A UDP socket standing in for a phone's RTP port; keeps (arrival, data, source)."""

    def __init__(self, host: str = HOST) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.received: list[tuple[float, bytes, tuple[str, int]]] = []
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except BlockingIOError:
                return
            self.received.append((time.monotonic(), data, addr))

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (HOST, port))

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


def rtp(seq: int, ts: int, payload: bytes, *, pt: int = 0, ssrc: int = 0x1234, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def frames(pcm: bytes, codec: str = "PCMU") -> list[bytes]:
    """``pcm`` as G.711 payloads of 20 ms (the last one padded with silence)."""
    pcm += bytes(-len(pcm) % 320)
    return [g711.encode(codec, pcm[i : i + 320]) for i in range(0, len(pcm), 320)]


def dtmf(digit: str, seq: int, ts: int, pt: int = 101) -> list[bytes]:
    """An RFC 4733 key press: three progress packets, then the end packet three times."""
    event = "0123456789*#".index(digit)
    out = [rtp(seq + i, ts, struct.pack("!BBH", event, 10, 160 * (i + 1)), pt=pt, marker=i == 0) for i in range(3)]
    out += [rtp(seq + 3 + i, ts, struct.pack("!BBH", event, 0x80 | 10, 640), pt=pt) for i in range(3)]
    return out


async def send_paced(peer: Peer, packets: list[bytes], port: int, interval: float = 0.02) -> None:
    start = time.monotonic()
    for n, data in enumerate(packets):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        peer.send(data, port)


def wav_of(path: Path, pcm: bytes) -> Path:
    return write_wav(path, pcm)


def decoded(packets: list[bytes], codec: str) -> bytes:
    out = b""
    for data in packets:
        header = parse_rtp(data)
        out += g711.decode(codec, data[header.payload_offset :])
    return out


@pytest.fixture
def pool() -> PortPool:
    return PortPool(*free_range(6))


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for p in made:
        p.close()


def peer(made: list[Peer], host: str = HOST) -> Peer:
    p = Peer(host)
    made.append(p)
    return p


@pytest.fixture
async def endpoint(pool) -> AsyncIterator[MediaEndpoint]:
    ep = MediaEndpoint(pool, HOST, label="test")
    yield ep
    ep.close()
    assert pool.in_use == 0


# -- play ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "pt"), [("PCMU", 0), ("PCMA", 8)])
async def test_play_sends_paced_g711_that_is_the_prompt(pool, peers, speech, tmp_path, codec, pt):
    phone = peer(peers)
    async with MediaEndpoint(pool, HOST, codec=codec) as ep:
        ep.set_remote(HOST, phone.port)
        sent = pcm_of(speech["a"])
        started = time.monotonic()
        assert await ep.play(sent) is StopReason.FINISHED
        took = time.monotonic() - started
        await asyncio.sleep(0.05)
    count = -(-len(sent) // 320)
    assert len(phone.received) == count
    headers = [parse_rtp(data) for _, data, _ in phone.received]
    assert {h.payload_type for h in headers} == {pt}
    assert [h.marker for h in headers[:2]] == [True, False]
    assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in pairwise(headers))
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 160 for a, b in pairwise(headers))
    assert len({h.ssrc for h in headers}) == 1
    # Paced on a schedule: packet n arrives n * 20 ms after the first, never drifting away.
    first = phone.received[0][0]
    lateness = [t - first - n * 0.02 for n, (t, _, _) in enumerate(phone.received)]
    assert max(abs(x) for x in lateness) < 0.015, max(lateness)
    assert abs(took - (count - 1) * 0.02) < 0.05
    heard = wav_of(tmp_path / "heard.wav", decoded([d for _, d, _ in phone.received], codec))
    assert similarity(speech["a"], heard) >= 0.9


async def test_a_second_prompt_continues_the_stream_and_the_clock(endpoint, peers):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    await endpoint.play(bytes(3200))
    await asyncio.sleep(0.3)
    await endpoint.play(bytes(3200))
    await asyncio.sleep(0.05)
    headers = [parse_rtp(d) for _, d, _ in phone.received]
    assert len(headers) == 20
    assert [h.marker for h in headers].count(True) == 2 and headers[10].marker
    assert (headers[10].sequence - headers[9].sequence) & 0xFFFF == 1
    gap = (headers[10].timestamp - headers[9].timestamp) & 0xFFFFFFFF
    assert 0.28 * 8000 < gap < 0.4 * 8000  # the pause shows in the timestamps (RFC 3550 §5.1)


async def test_play_can_be_cancelled(endpoint, peers):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    task = asyncio.create_task(endpoint.play(tone(seconds=5.0)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    count = len(phone.received)
    await asyncio.sleep(0.2)
    assert len(phone.received) == count and 10 <= count <= 20
    assert await endpoint.play(bytes(320)) is StopReason.FINISHED  # usable again


async def test_a_stop_digit_interrupts_a_prompt_and_stays_for_collection(endpoint, peers):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    task = asyncio.create_task(endpoint.play(tone(seconds=5.0), stop_digits="0123456789#"))
    await asyncio.sleep(0.2)
    for data in dtmf("4", 1, 8000):
        phone.send(data, endpoint.local_port)
    assert await asyncio.wait_for(task, 1.0) is StopReason.DIGIT
    result = await endpoint.collect_digits(1, timeout=0.5)
    assert (result.digits, result.reason) == ("4", StopReason.COUNT)


async def test_beep_is_a_1khz_tone(endpoint, peers):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    await endpoint.beep()
    await asyncio.sleep(0.05)
    samples = np.frombuffer(decoded([d for _, d, _ in phone.received], "PCMU"), "<i2").astype(float)
    assert len(samples) == 4000
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 8000 / len(samples) - 1000) < 10
    assert np.sqrt(np.mean(samples**2)) > 3000


def test_two_endpoints_talk_under_uvloop(pool):
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with MediaEndpoint(pool, HOST, codec="PCMA") as speaker, MediaEndpoint(pool, HOST, codec="PCMA") as ear:
            speaker.set_remote(HOST, ear.local_port)
            ear.set_remote(HOST, speaker.local_port)
            recording = asyncio.create_task(ear.record(max_seconds=5, silence_seconds=0.3))
            await asyncio.sleep(0)  # the recording has started
            await speaker.beep(seconds=0.4)
            result = await recording
        assert result.reason is StopReason.SILENCE
        assert result.seconds == 0.4  # every packet of the tone; no packets after it
        samples = np.frombuffer(result.pcm, "<i2").astype(float)[:3200]
        assert abs(np.argmax(np.abs(np.fft.rfft(samples))) * 8000 / len(samples) - 1000) < 10

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    assert pool.in_use == 0


# -- where media goes ------------------------------------------------------------------------------


async def test_latches_to_the_peers_source_and_ignores_a_foreign_ip(endpoint, peers):
    sdp_port, nat_port, stranger = peer(peers), peer(peers), peer(peers, FOREIGN)
    endpoint.set_remote(HOST, sdp_port.port)
    await endpoint.play(bytes(320))
    await asyncio.sleep(0.05)
    assert len(sdp_port.received) == 1  # before any RTP: to the SDP address

    stranger.send(rtp(1, 160, bytes(160)), endpoint.local_port)
    await asyncio.sleep(0.05)
    assert endpoint.latched is None and endpoint.foreign_dropped == 1
    nat_port.send(rtp(1, 160, bytes(160)), endpoint.local_port)
    await asyncio.sleep(0.05)
    assert endpoint.latched == (HOST, nat_port.port)
    await endpoint.play(bytes(320))
    await asyncio.sleep(0.05)
    assert (len(sdp_port.received), len(nat_port.received), len(stranger.received)) == (1, 1, 0)


def test_only_g711_can_be_spoken(pool):
    async def main() -> None:
        with pytest.raises(CodecError, match="PCMU or PCMA"):
            MediaEndpoint(pool, HOST, codec="opus")

    asyncio.run(main())
    assert pool.in_use == 0


# -- record ----------------------------------------------------------------------------------------


async def test_record_places_packets_by_timestamp_and_stops_on_the_hash_key(endpoint, peers, speech, tmp_path):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    sent = pcm_of(speech["a"])
    payloads = frames(sent)
    ts0 = 0xFFFFF000  # the timestamp wraps during the message
    packets = [(n, rtp(1000 + n, ts0 + 160 * n, p)) for n, p in enumerate(payloads)]
    lost = {20, 21, 50}
    packets = [(n, d) for n, d in packets if n not in lost]
    rng = random.Random(7)
    for i in range(0, len(packets) - 4, 4):  # reordered within groups of four
        group = packets[i : i + 4]
        rng.shuffle(group)
        packets[i : i + 4] = group
    recording = asyncio.create_task(endpoint.record(max_seconds=30, silence_seconds=5, stop_digits="#"))
    await asyncio.sleep(0.05)
    await send_paced(phone, [d for _, d in packets], endpoint.local_port, interval=0.005)
    await asyncio.sleep(0.05)
    for data in dtmf("#", 5000, ts0 + 160 * len(payloads)):
        phone.send(data, endpoint.local_port)
    result = await asyncio.wait_for(recording, 2.0)
    assert (result.reason, result.digit) == (StopReason.DIGIT, "#")
    assert len(result.pcm) == 320 * len(payloads)
    got = np.frombuffer(result.pcm, "<i2")
    for n in lost:
        assert not got[160 * n : 160 * (n + 1)].any(), f"lost packet {n} is not silence"
    expected = np.frombuffer(g711.decode("PCMU", b"".join(payloads)), "<i2").copy()
    for n in lost:
        expected[160 * n : 160 * (n + 1)] = 0
    assert np.array_equal(got, expected)  # every packet in its place, byte for byte
    assert similarity(speech["a"], wav_of(tmp_path / "rec.wav", result.pcm)) >= 0.9


async def test_a_pause_in_sending_is_silence_of_the_same_length(endpoint, peers):
    """Silence suppression: the timestamps say how long the pause was; a timestamp jump (a source
    restarted under the same SSRC) falls back to the arrival clock."""
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    burst = frames(tone(440, seconds=0.2))
    recording = asyncio.create_task(endpoint.record(max_seconds=30, stop_digits="#"))
    await asyncio.sleep(0.02)
    await send_paced(phone, [rtp(n, 160 * n, p) for n, p in enumerate(burst)], endpoint.local_port)
    await asyncio.sleep(0.5)  # 0.5 s not sent; the timestamps go on
    await send_paced(phone, [rtp(10 + n, 160 * (35 + n), p) for n, p in enumerate(burst)], endpoint.local_port)
    await asyncio.sleep(0.7)  # 0.7 s not sent; then a jump of ten minutes
    await send_paced(phone, [rtp(20 + n, 4_800_000 + 160 * n, p) for n, p in enumerate(burst)], endpoint.local_port)
    for data in dtmf("#", 40, 4_800_000 + 1600):
        phone.send(data, endpoint.local_port)
    result = await asyncio.wait_for(recording, 2.0)
    assert result.reason is StopReason.DIGIT
    samples = np.frombuffer(result.pcm, "<i2")
    loud = np.flatnonzero(np.abs(samples) > 1000)
    starts = [int(loud[0])] + [int(b) for a, b in pairwise(loud) if b - a > 800]
    assert len(starts) == 3
    assert abs(starts[1] - 35 * 160) <= 2  # where the timestamp put it (a sine starts at zero)
    assert abs(starts[2] - starts[1] - 0.2 * 8000 - 0.7 * 8000) < 0.1 * 8000  # the arrival clock's gap


async def test_record_stops_after_silence_and_cuts_it_off(endpoint, peers, speech, tmp_path):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    sent = pcm_of(speech["b"])
    payloads = frames(sent) + frames(bytes(8000 * 2 * 4))  # speech, then 4 s of silence packets
    recording = asyncio.create_task(endpoint.record(max_seconds=30, silence_seconds=1.5, stop_digits="#"))
    sender = asyncio.create_task(
        send_paced(phone, [rtp(n, 160 * n, p) for n, p in enumerate(payloads)], endpoint.local_port)
    )
    started = time.monotonic()
    result = await asyncio.wait_for(recording, 10.0)
    took = time.monotonic() - started
    sender.cancel()
    samples = np.frombuffer(sent, "<i2").astype(float)
    voiced = [n for n in range(len(samples) // 160) if np.sqrt(np.mean(samples[160 * n : 160 * (n + 1)] ** 2)) >= 300]
    speech_ends = (voiced[-1] + 1) * 0.02  # espeak-ng's output ends in a little silence of its own
    assert result.reason is StopReason.SILENCE
    assert speech_ends + 1.4 < took < speech_ends + 1.8
    assert abs(result.seconds - (speech_ends + 0.25)) < 0.05  # the silence is cut off after a breath
    assert similarity(speech["b"], wav_of(tmp_path / "rec.wav", result.pcm)) >= 0.9


async def test_no_packets_at_all_is_silence_too(endpoint):
    started = time.monotonic()
    result = await endpoint.record(max_seconds=10, silence_seconds=0.5)
    assert result.reason is StopReason.SILENCE and result.pcm == b""
    assert 0.45 < time.monotonic() - started < 0.8


async def test_record_stops_at_the_maximum_length(endpoint, peers):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    payloads = frames(tone(440, seconds=3.0))
    sender = asyncio.create_task(
        send_paced(phone, [rtp(n, 160 * n, p) for n, p in enumerate(payloads)], endpoint.local_port)
    )
    result = await asyncio.wait_for(endpoint.record(max_seconds=1.0, silence_seconds=1.0), 3.0)
    sender.cancel()
    assert result.reason is StopReason.MAX_LENGTH
    assert 7000 <= len(result.pcm) // 2 <= 8000


async def test_hanging_up_ends_a_recording_with_what_was_said(pool, peers):
    phone = peer(peers)
    ep = MediaEndpoint(pool, HOST)
    ep.set_remote(HOST, phone.port)
    payloads = frames(tone(440, seconds=0.6))
    recording = asyncio.create_task(ep.record(max_seconds=10, silence_seconds=5))
    await send_paced(phone, [rtp(n, 160 * n, p) for n, p in enumerate(payloads)], ep.local_port)
    await asyncio.sleep(0.05)
    ep.close()
    result = await asyncio.wait_for(recording, 1.0)
    assert result.reason is StopReason.HANGUP
    assert len(result.pcm) == 0.6 * 16000
    assert pool.in_use == 0
    assert (await ep.collect_digits(4, timeout=1)).reason is StopReason.HANGUP


async def test_a_digit_typed_before_the_recording_does_not_stop_it(endpoint, peers):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    for data in dtmf("#", 1, 0):
        phone.send(data, endpoint.local_port)
    await asyncio.sleep(0.05)
    result = await endpoint.record(max_seconds=0.3, stop_digits="#")
    assert result.reason is StopReason.MAX_LENGTH


# -- DTMF ------------------------------------------------------------------------------------------


async def test_collect_digits_count_terminator_and_timeout(endpoint, peers):
    phone = peer(peers)
    endpoint.set_remote(HOST, phone.port)
    seq = 1
    for n, digit in enumerate("1234#"):
        for data in dtmf(digit, seq, 8000 * (n + 1)):
            phone.send(data, endpoint.local_port)
        seq += 6
    result = await endpoint.collect_digits(10, timeout=2)
    assert (result.digits, result.reason, result.terminator) == ("1234", StopReason.DIGIT, "#")

    for n, digit in enumerate("567"):
        for data in dtmf(digit, seq, 80000 + 8000 * n):
            phone.send(data, endpoint.local_port)
        seq += 6
    result = await endpoint.collect_digits(2, timeout=2)
    assert (result.digits, result.reason) == ("56", StopReason.COUNT)
    started = time.monotonic()
    result = await endpoint.collect_digits(4, timeout=0.4)
    assert (result.digits, result.reason) == ("7", StopReason.TIMEOUT)
    assert 0.35 < time.monotonic() - started < 0.7


# -- a real peer: SIPp's RTP echo ------------------------------------------------------------------


@pytest.mark.peers
async def test_speech_played_to_sipp_comes_back_recorded(endpoint, speech, tmp_path):
    media_port = free_port(4)
    media_port += media_port % 2
    sipp = BoundedProcess(
        ["sipp", "-sn", "uas", "-i", HOST, "-p", str(free_port()), "-mi", HOST, "-mp", str(media_port),
         "-cp", str(free_port()), "-rtp_echo", "-nostdin", "-timeout", "20s"],
        seconds=25, log_path=tmp_path / "sipp.log", cwd=tmp_path,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.5)  # SIPp binds its media port at start-up
        endpoint.set_remote(HOST, media_port)
        recording = asyncio.create_task(endpoint.record(max_seconds=20, silence_seconds=1.0))
        await endpoint.play(pcm_of(speech["a"]))
        result = await asyncio.wait_for(recording, 5.0)
    finally:
        sipp.kill()
    assert result.reason is StopReason.SILENCE
    assert endpoint.latched == (HOST, media_port)
    assert similarity(speech["a"], wav_of(tmp_path / "echo.wav", result.pcm)) >= 0.9


@pytest.mark.peers
async def test_baresip_hears_the_prompt_and_its_message_is_recorded(endpoint, speech, tmp_path):
    """baresip calls; SIPp answers with an SDP naming the endpoint's port, so the RTP is
    baresip <-> endpoint. The endpoint learns baresip's address by latching, as it will for
    a voicemail call."""
    endpoint.set_remote(HOST, 0)  # baresip's RTP port comes from its own packets
    sdp = UAS["answer"].replace("m=audio [media_port] RTP/AVP 0 8 101", f"m=audio {endpoint.local_port} RTP/AVP 0 101")
    sipp_port = free_port()
    sipp = start_sipp(sipp_port, write_scenario(tmp_path / "sipp", "vm", sdp), tmp_path / "sipp",
                      local_port=sipp_port, seconds=40)  # fmt: skip
    caller = Baresip(tmp_path / "baresip", BaresipAccount(
        "alice", "unused", sipp_port, regint=0, extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
        audio_source=speech["a"], seconds=40)  # fmt: skip
    try:
        await asyncio.to_thread(caller.start)
        recording = asyncio.create_task(endpoint.record(max_seconds=30, silence_seconds=1.5, stop_digits="#"))
        caller.dial(f"sip:vm@{HOST}:{sipp_port}")
        await asyncio.to_thread(caller.wait_event, "CALL_ESTABLISHED", timeout=15)
        async with asyncio.timeout(5):
            while endpoint.latched is None:
                await asyncio.sleep(0.02)
        await endpoint.play(pcm_of(speech["b"]))
        result = await asyncio.wait_for(recording, 20)  # baresip hangs up at the end of its WAV
        await asyncio.to_thread(caller.wait_event, "CALL_CLOSED", timeout=10)
        await asyncio.sleep(0.5)
    finally:
        caller.stop()
        sipp.kill()
    heard_by_caller, sent_by_caller = caller.recordings()
    assert result.reason is StopReason.SILENCE
    assert similarity(sent_by_caller, wav_of(tmp_path / "message.wav", result.pcm)) >= 0.9
    assert similarity(speech["b"], heard_by_caller) >= 0.9
    assert similarity(speech["a"], heard_by_caller) < 0.5


# -- the call recorder on the relay ----------------------------------------------------------------


def channels(path: Path, tmp_path: Path) -> tuple[Path, Path]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    left, right = data[0::2], data[1::2]
    return wav_of(tmp_path / "left.wav", left.tobytes()), wav_of(tmp_path / "right.wav", right.tobytes())


async def test_a_relayed_call_is_recorded_in_stereo_one_party_per_channel(pool, peers, speech, tmp_path):
    relay = MediaRelay(pool, HOST)
    relay.start()
    try:
        session = relay.create("recorded")
        alice, bob = peer(peers), peer(peers)
        session.a.set_remote(HOST, alice.port, alice.port + 1)
        session.b.set_remote(HOST, bob.port, bob.port + 1)
        recorder = CallRecorder(session, tmp_path / "call.wav")
        recorder.start()
        from_alice = [rtp(n, 5000 + 160 * n, p, ssrc=0xA) for n, p in enumerate(frames(pcm_of(speech["a"])))]
        # Bob answers half a second later, in PCMA, with an RFC 4733 key press in the middle.
        bob_frames = frames(pcm_of(speech["b"]), "PCMA")
        from_bob = [rtp(n, 90000 + 160 * n, p, pt=8, ssrc=0xB) for n, p in enumerate(bob_frames)]
        from_bob[100:100] = dtmf("5", 9000, 90000 + 160 * 100)

        async def bob_talks() -> None:
            await asyncio.sleep(0.5)
            await send_paced(bob, from_bob, session.b.local_port)

        await asyncio.gather(send_paced(alice, from_alice, session.a.local_port), bob_talks())
        await asyncio.sleep(0.1)
        path = recorder.stop()
        assert session.tap is None
        assert recorder.packets == {"a": len(from_alice), "b": len(from_bob) - 6}
        # The relay forwarded everything while recording.
        assert len(bob.received) == len(from_alice) and len(alice.received) == len(from_bob)
        session.close()
    finally:
        await relay.stop()
    left, right = channels(path, tmp_path)
    assert similarity(speech["a"], left) >= 0.9
    assert similarity(speech["b"], right) >= 0.9
    assert similarity(speech["b"], left) < 0.5 and similarity(speech["a"], right) < 0.5
    # Aligned by arrival: Bob's channel starts about half a second after Alice's.
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    onset = [int(np.argmax(np.abs(data[c::2]) > 500)) / 8000 for c in (0, 1)]
    assert 0.35 < onset[1] - onset[0] < 0.75, onset


async def test_a_failing_tap_does_not_stop_the_relay(pool, peers, caplog):
    relay = MediaRelay(pool, HOST)
    try:
        session = relay.create("tap-fails")
        alice, bob = peer(peers), peer(peers)
        session.a.set_remote(HOST, alice.port, alice.port + 1)
        session.b.set_remote(HOST, bob.port, bob.port + 1)

        def broken(*_: object) -> None:
            raise RuntimeError("disk full")

        session.tap = broken
        for n in range(3):
            alice.send(rtp(n, 160 * n, bytes(160)), session.a.local_port)
        await asyncio.sleep(0.1)
        assert len(bob.received) == 3
        assert "tap failed" in caplog.text
    finally:
        await relay.stop()


# -- prompts ---------------------------------------------------------------------------------------


async def test_a_prompt_is_rendered_once_then_served_from_the_cache(tmp_path):
    cache = PromptCache(tmp_path)
    text = "The person at extension 101 is not available."
    first = await cache.render(text)
    assert not first.cached
    assert first.path.parent == tmp_path / "prompts" and first.path.name == f"{cache.key('en-us', text)}.wav"
    mtime = first.path.stat().st_mtime_ns
    second = await cache.render(text)
    assert second.cached and second.pcm == first.pcm and second.path.stat().st_mtime_ns == mtime
    assert read_wav(first.path) == first.pcm
    reference = speech_wav(tmp_path / "ref.wav", text)
    assert similarity(reference, first.path) >= 0.9
    other = await cache.render(text, voice="en-gb")
    assert not other.cached and other.path != first.path
    together = await asyncio.gather(*(cache.render("Welcome to your mailbox.") for _ in range(3)))
    assert sorted(p.cached for p in together) == [False, True, True]  # rendered once, even at once
    assert len(list((tmp_path / "prompts").iterdir())) == 3


def test_exports_are_honest():
    from ringwell.media import apps, prompts

    for module in (apps, prompts):
        assert all(hasattr(module, name) for name in module.__all__)


async def test_a_prompt_starting_with_a_dash_is_spoken_not_taken_as_an_option(tmp_path):
    prompt = await PromptCache(tmp_path).render("-w /tmp/owned.wav hello")
    assert len(prompt.pcm) > 8000 and not Path("/tmp/owned.wav").exists()


async def test_without_espeak_ng_the_error_says_what_to_install(tmp_path):
    with pytest.raises(PromptError, match=r"apt-get install espeak-ng"):
        await PromptCache(tmp_path, espeak="espeak-ng-not-installed").render("Hello.")
    with pytest.raises(PromptError, match="at most"):
        await PromptCache(tmp_path).render("x" * 5000)


# -- uploads ---------------------------------------------------------------------------------------


def encode_file(path: Path, pcm8k: bytes, fmt: str, codec: str, rate: int, layout: str) -> Path:
    """``pcm8k`` resampled to ``rate``/``layout`` and encoded with PyAV (what a user would upload)."""
    samples = np.frombuffer(pcm8k, "<i2").reshape(1, -1)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.rate = 8000
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            chunk.pts = None
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    ("name", "fmt", "codec", "rate", "layout"),
    [
        ("greeting.mp3", "mp3", "libmp3lame", 44100, "stereo"),
        ("greeting.wav", "wav", "pcm_s16le", 44100, "stereo"),
        ("hold.wav", "wav", "pcm_s24le", 16000, "mono"),
    ],
)
async def test_uploads_become_8khz_mono_pcm(speech, tmp_path, name, fmt, codec, rate, layout):
    upload = encode_file(tmp_path / name, pcm_of(speech["a"]), fmt, codec, rate, layout)
    pcm = await convert_upload(upload.read_bytes())
    assert abs(len(pcm) / 16000 - len(pcm_of(speech["a"])) / 16000) < 0.2
    assert similarity(speech["a"], wav_of(tmp_path / "converted.wav", pcm)) >= 0.9


async def test_undecodable_other_and_overlong_uploads_are_refused(speech, tmp_path):
    with pytest.raises(UploadError, match="cannot be decoded"):
        await convert_upload(b"this is not audio at all" * 100)
    with pytest.raises(UploadError, match="empty"):
        await convert_upload(b"")
    truncated = encode_file(tmp_path / "t.wav", pcm_of(speech["a"]), "wav", "pcm_s16le", 8000, "mono").read_bytes()
    with pytest.raises(UploadError):
        await convert_upload(truncated[:30])
    flac = encode_file(tmp_path / "x.flac", pcm_of(speech["a"]), "flac", "flac", 8000, "mono")
    with pytest.raises(UploadError, match="upload WAV or MP3"):
        await convert_upload(flac.read_bytes())
    with pytest.raises(UploadError, match="longer than the limit of 1 seconds"):
        await convert_upload(truncated, max_seconds=1)
