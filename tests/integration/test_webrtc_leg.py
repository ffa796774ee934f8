"""The server's WebRTC leg between an aiortc "browser" and a plain RTP peer, on loopback.

The browser side is aiortc (``tests/peers/webrtc_client.py``): ICE, DTLS-SRTP and codecs are real;
the plain side is a UDP socket standing where the media relay would be. What the far end hears
is compared with what was played (``tests/audio.similarity``).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import wave
from pathlib import Path

import pytest

from ringwell.media import g711
from ringwell.media.ports import PortPool
from ringwell.sip.sdp import Origin, audio_codecs, first_codec, parse_sdp, telephone_event
from ringwell.webrtc.leg import IceConfig, WebRtcLeg
from ringwell.webrtc.sdp import plain_description, with_event
from tests.audio import similarity, speech_wav
from tests.peers.webrtc_client import BrowserLike

pytestmark = pytest.mark.timeout(60)

ICE = IceConfig(addresses=("127.0.0.1",))
ORIGIN = Origin("peer", "1", 1, "127.0.0.1")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return speech_wav(tmp_path_factory.mktemp("speech") / "speech.wav",
                      "The quick brown fox jumps over the lazy dog while the phone keeps ringing.")


def _pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def _wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return path


class PlainPeer:
    """Stands where the relay would: records RTP from the leg, plays G.711 to it in real time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[int, int, int, bytes]] = []  # pt, seq, ts, payload
        self.seq = 0  # one sequence space for audio and events, as a phone has
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, leg_port: int, pcm: bytes, codec: str = "PCMU", pt: int = 0) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self._read)
        self._tasks.append(asyncio.ensure_future(self._play(leg_port, pcm, codec, pt)))

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            _, second, seq, ts, _ = struct.unpack_from("!BBHII", data)
            self.packets.append((second & 0x7F, seq, ts, data[12:]))

    async def _play(self, port: int, pcm: bytes, codec: str, pt: int) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, offset in enumerate(range(0, len(pcm) - 320, 320)):
            payload = g711.encode(codec, pcm[offset: offset + 320])
            self.seq += 1
            self.sock.sendto(struct.pack("!BBHII", 0x80, pt, self.seq, n * 160, 0x1234) + payload, ("127.0.0.1", port))
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))

    def send_event(self, port: int, event: int, pt: int = 101) -> None:
        for i, (flags, duration) in enumerate([(0x0A, 160), (0x0A, 320), (0x8A, 480), (0x8A, 480), (0x8A, 480)]):
            self.seq += 1
            data = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | pt, self.seq, 777 * 160, 0x1234)
            self.sock.sendto(data + struct.pack("!BBH", event, flags, duration), ("127.0.0.1", port))

    def heard(self, codec: str = "PCMU", pt: int = 0) -> bytes:
        audio = sorted((seq, payload) for p, seq, _, payload in self.packets if p == pt)
        return b"".join(g711.decode(codec, payload) for _, payload in audio)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


async def _wait_for(predicate, timeout: float = 10.0, what=lambda: "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out: {what()}")
        await asyncio.sleep(0.05)


async def _browser_calls(speech: Path, tmp_path: Path, codecs: tuple[str, ...]) -> tuple[float, float, WebRtcLeg]:
    pcm = _pcm(speech)
    browser = BrowserLike(pcm, codecs=codecs)
    leg = WebRtcLeg(label="t", ports=PortPool(41000, 41100), local_host="127.0.0.1", ice=ICE)
    peer = PlainPeer()
    try:
        plain_offer = await leg.accept_offer(parse_sdp((await browser.offer()).encode()))
        assert plain_offer.media[0].proto == "RTP/AVP"
        plain_answer = plain_description(origin=ORIGIN, address="127.0.0.1", port=peer.port,
                                         codecs=["PCMU"], event_pt=None, stream_direction="sendrecv")
        await browser.accept_answer(leg.answer(plain_answer).decode())
        peer.start(leg.plain_port, pcm)
        await asyncio.sleep(len(pcm) / 16000 + 1.0)
        to_peer = similarity(speech, _wav(tmp_path / "peer.wav", peer.heard()))
        to_browser = similarity(speech, _wav(tmp_path / "browser.wav", bytes(browser.heard)))
        return to_peer, to_browser, leg
    finally:
        await peer.close()
        await browser.close()
        await leg.close()


async def test_a_browser_offering_g711_is_passed_through_both_ways(speech, tmp_path):
    to_peer, to_browser, leg = await _browser_calls(speech, tmp_path, ("opus", "PCMU", "PCMA"))
    assert leg.mode == "passthrough"
    assert leg.summary()["browser_codec"] == "PCMU/8000"
    assert to_peer >= 0.9, f"the plain peer heard {to_peer:.2f}: {leg.summary()}"
    assert to_browser >= 0.9, f"the browser heard {to_browser:.2f}: {leg.summary()}"
    assert leg.counters["to_plain"] > 150 and leg.counters["to_browser"] > 150


async def test_a_browser_offering_only_opus_is_transcoded(speech, tmp_path):
    to_peer, to_browser, leg = await _browser_calls(speech, tmp_path, ("opus",))
    assert leg.mode == "opus"
    assert leg.summary()["browser_codec"] == "opus/48000"
    assert to_peer >= 0.8, f"the plain peer heard {to_peer:.2f}"
    assert to_browser >= 0.8, f"the browser heard {to_browser:.2f}"


async def test_a_called_browser_answers_and_events_reach_the_plain_side(speech, tmp_path):
    pcm = _pcm(speech)
    browser = BrowserLike(pcm, codecs=("PCMA", "PCMU", "opus"))
    leg = WebRtcLeg(label="t", ports=PortPool(41100, 41200), local_host="127.0.0.1", ice=ICE)
    peer = PlainPeer()
    try:
        plain_offer = plain_description(origin=ORIGIN, address="127.0.0.1", port=peer.port, codecs=["PCMA", "PCMU"],
                                        event_pt=101, stream_direction="sendrecv")
        offer = parse_sdp(await leg.offer(plain_offer))
        assert [c.name for c in audio_codecs(offer)][:2] == ["PCMA", "PCMU"]
        assert telephone_event(offer) is not None  # aiortc has no RFC 4733: the leg adds it
        answer = await browser.answer(offer.encode().decode())
        # a browser answers telephone-event too (aiortc would not)
        answer_sdp = with_event(parse_sdp(answer.encode()), telephone_event(offer))
        plain_answer = await leg.accept_answer(answer_sdp)
        assert first_codec(plain_answer).name == "PCMA" and telephone_event(plain_answer).pt == 101
        assert leg.mode == "passthrough"
        peer.start(leg.plain_port, pcm, "PCMA", 8)
        await _wait_for(lambda: leg.counters["to_browser"] > 50 and leg.counters["to_plain"] > 50,
                        what=lambda: leg.summary())
        # an RFC 4733 event from the browser (aiortc cannot send one: written on its transport)
        transceiver = browser.pc.getTransceivers()[0]
        sender = transceiver.sender
        event_pt = telephone_event(offer).pt
        seq = leg.stats.max_seq + 5  # just ahead of the browser's audio, inside SRTP's replay window
        for i, flags in enumerate((0x0A, 0x0A, 0x8A, 0x8A)):
            await sender.transport._send_rtp(
                struct.pack("!BBHII", 0x80, event_pt, (seq + i) & 0xFFFF, 4242, sender._ssrc)
                + struct.pack("!BBH", 5, flags, 160 * (i + 1)))
        await _wait_for(lambda: any(p[0] == 101 for p in peer.packets),
                        what=lambda: (leg.summary(), leg._b_event_pt, leg._p_event_pt, event_pt, seq))
        events = [p for p in peer.packets if p[0] == 101]
        assert {e[3][0] for e in events} == {5}  # the digit 5
        assert events[-1][3][1] & 0x80  # ends with the E bit
        peer.send_event(leg.plain_port, 9)
        await _wait_for(lambda: leg.counters["events_to_browser"] >= 5, what=lambda: leg.summary())
        await asyncio.sleep(len(pcm) / 16000)
        assert similarity(speech, _wav(tmp_path / "peer.wav", peer.heard("PCMA", 8))) >= 0.9
        assert similarity(speech, _wav(tmp_path / "browser.wav", bytes(browser.heard))) >= 0.9
    finally:
        await peer.close()
        await browser.close()
        await leg.close()
