"""A browser's call leg: aiortc terminates ICE and DTLS-SRTP, this bridges it to plain RTP.

Theory of operation
-------------------
The B2BUA (``ringwell.pbx.call``) only knows plain ``RTP/AVP`` G.711 legs anchored on the media
relay. A ``WebRtcLeg`` stands in front of a browser so that the call sees one more plain leg::

    browser ⇄ (ICE, DTLS-SRTP: aiortc) ⇄ WebRtcLeg ⇄ (plain RTP on this host) ⇄ relay side ⇄ other leg

It presents two descriptions: the WebRTC one aiortc writes (to the browser) and a plain one whose
address is a UDP port pair of its own on the relay's host (to the call). ``ringwell.webrtc.sdp``
writes and edits them. aiortc is used for what must not be re-implemented — ICE (aioice), DTLS,
SRTP (pylibsrtp), RTCP reports — but not for media: its encoders, jitter buffer and decoder
thread are bypassed.

- From the browser: the RTP receiver's packet handler (``RTCRtpReceiver._handle_rtp_packet``, a
  private method; aiortc and aioice are pinned and ``tests/unit/test_webrtc_leg.py`` covers the
  hook) is replaced by ``_from_browser``, which still feeds aiortc's receive statistics (so the
  browser gets RTCP receiver reports) and sends each packet on as plain RTP.
- To the browser: packets from the relay are given the SSRC aiortc announced and handed to the
  DTLS transport's ``_send_rtp`` (SRTP-protected, sent on the nominated ICE pair). aiortc's own
  sender is kept (for its RTCP sender reports) with a track that never yields a frame.

Pass-through: when the browser's codec is the plain leg's (PCMU or PCMA — Chrome and Firefox
offer both) payloads go through untouched, sequence numbers and timestamps too. Otherwise they
are transcoded: G.711 μ-law ⇄ A-law by table, Opus ⇄ G.711 with libopus (PyAV) at 8 kHz.
RFC 4733 telephone-events are relayed both ways (timestamps and durations rescaled between the
48 kHz Opus clock and 8 kHz).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket

from ringwell.media import g711
from ringwell.media.ports import PortPool
from ringwell.media.rtp import StreamStats
from ringwell.sip.sdp import (
    Codec,
    NoCommonCodec,
    Origin,
    SessionDescription,
    audio_codecs,
    audio_target,
    first_codec,
    parse_sdp,
    telephone_event,
)
from ringwell.webrtc.sdp import (
    EVENT_PT,
    G711,
    BrowserChoice,
    as_answer,
    choose_codec,
    direction_of,
    event_at,
    free_payload_type,
    mirrored,
    only_formats,
    plain_description,
    with_direction,
    with_event,
    with_public_address,
)

__all__ = ["IceConfig", "SilentTrack", "WebRtcError", "WebRtcLeg", "local_host_of", "run_now"]

log = logging.getLogger(__name__)

BURST = 64
_RTP = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")
_OPUS_SCALE = 6  # 48 kHz Opus clock / 8 kHz G.711 clock
_FRAME = 160  # 20 ms at 8 kHz
_NEGOTIATION_TIMEOUT = 10.0


class WebRtcError(NoCommonCodec):
    """The browser's description cannot be used (488 Not Acceptable Here)."""


@dataclass(frozen=True, slots=True)
class IceConfig:
    """How the server takes part in ICE.

    ``addresses``: the local addresses offered as host candidates (empty: aioice's choice, every
    non-loopback interface). ``public_address``: the server's address on the far side of a 1:1
    NAT, announced as a server-reflexive candidate. STUN/TURN servers as ``stun:``/``turn:`` URLs.
    """

    addresses: tuple[str, ...] = ()
    public_address: str | None = None
    stun_servers: tuple[str, ...] = ()
    turn_servers: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_password: str | None = field(default=None, repr=False)

    def rtc_configuration(self) -> RTCConfiguration:
        # An empty list, never aiortc's default: it would ask a public STUN server on every call.
        servers = [RTCIceServer(urls=url) for url in self.stun_servers]
        servers += [RTCIceServer(urls=url, username=self.turn_username, credential=self.turn_password)
                    for url in self.turn_servers]
        return RTCConfiguration(iceServers=servers)


def local_host_of(bind: str) -> str:
    """Where this host's media relay is reached from the host itself."""
    if bind in ("0.0.0.0", ""):  # noqa: S104
        return "127.0.0.1"
    if bind == "::":
        return "::1"
    return bind


class SilentTrack(MediaStreamTrack):
    """What aiortc's sender is given: it never yields a frame (media goes out through ``_send_rtp``),
    so the sender's loop waits instead of polling every 20 ms."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        await self._never
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if not self._never.done():
            self._never.cancel()


def run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that completes without suspending (aiortc's ``_send_rtp``: SRTP, then a
    ``sendto`` on the ICE pair's socket) without the cost of a task per packet."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("_send_rtp suspended: the pinned aiortc version changed its send path")


class _OpusDecoder:
    """Opus payloads → 20 ms chunks of 8 kHz 16-bit PCM."""

    def __init__(self) -> None:
        self._codec: Any = av.CodecContext.create("libopus", "r")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        self._pending = bytearray()

    def feed(self, payload: bytes) -> list[bytes]:
        try:
            frames = self._codec.decode(av.Packet(payload))
        except av.FFmpegError as exc:
            log.debug("undecodable Opus payload: %s", exc)
            return []
        for frame in frames:
            for out in self._resampler.resample(frame):
                self._pending += bytes(out.planes[0])[: out.samples * 2]
        chunks = []
        while len(self._pending) >= 2 * _FRAME:
            chunks.append(bytes(self._pending[: 2 * _FRAME]))
            del self._pending[: 2 * _FRAME]
        return chunks


class _OpusEncoder:
    """8 kHz 16-bit PCM, 20 ms at a time → Opus payloads (libopus takes 8 kHz input natively)."""

    def __init__(self) -> None:
        codec: Any = av.CodecContext.create("libopus", "w")
        codec.sample_rate = 8000
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = 24000
        codec.time_base = fractions.Fraction(1, 8000)
        codec.options = {"application": "voip", "frame_duration": "20"}
        codec.open()
        self._codec = codec
        self._pts = 0

    def feed(self, pcm: bytes) -> list[bytes]:
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = 8000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 8000)
        self._pts += len(pcm) // 2
        return [bytes(packet) for packet in self._codec.encode(frame)]


class WebRtcLeg:
    """One browser leg of a call (see the module docstring). ``label`` names it in logs."""

    def __init__(self, *, label: str, ports: PortPool, local_host: str, ice: IceConfig,
                 on_failed: Callable[[], None] | None = None) -> None:
        self.label = label
        self._ports = ports
        self.local_host = local_host
        self._ice = ice
        self.on_failed = on_failed
        self._pc: RTCPeerConnection | None = None
        self._transceiver: RTCRtpTransceiver | None = None
        self._rtp: socket.socket | None = None
        self._rtcp: socket.socket | None = None
        self.plain_port = 0
        self._plain_origin = Origin("ringwell", str(secrets.randbelow(2**62)), 1, local_host)
        self._local: SessionDescription | None = None  # what aiortc (and we) told the browser
        self._remote: SessionDescription | None = None  # the browser's description
        self._plain_offer: SessionDescription | None = None  # the call's offer, when the browser is called
        self._we_offered = False
        self._answer_cache: tuple[bytes, SessionDescription] | None = None
        self._closed = False
        self._loop = asyncio.get_running_loop()
        # media state, set by _configure()
        self.choice: BrowserChoice | None = None
        self.plain_codec: str | None = None
        self._b_pt = -1
        self._b_event_pt = -1
        self._p_pt = -1
        self._p_event_pt = -1
        self._relay: tuple[str, int] | None = None
        self.mode = "unset"
        self._ssrc_out = secrets.randbits(32)  # SSRC of what we send to the relay when transcoding
        self._p_seq = secrets.randbits(16)
        self._p_ts = 0
        self._b_ts_last: int | None = None  # the browser's last Opus timestamp (48 kHz)
        self._b_seq = secrets.randbits(16)
        self._opus_in: _OpusDecoder | None = None
        self._opus_out: _OpusEncoder | None = None
        self._rr: dict[int, StreamStatistics] = {}
        self._buf = bytearray(2048)
        self.stats = StreamStats()
        self.counters = {
            "from_browser": 0, "to_plain": 0, "from_plain": 0, "to_browser": 0, "events_from_browser": 0,
            "events_to_browser": 0, "dropped": 0, "foreign_dropped": 0, "send_errors": 0,
        }
        self.connected_at: float | None = None
        self.created = time.monotonic()

    # -- negotiation: the browser calls -------------------------------------------------------
    async def accept_offer(self, offer: SessionDescription) -> SessionDescription:
        """The browser's offer → the plain offer for the call (answer it later with ``answer()``)."""
        choice = choose_codec(offer)
        pc = self._new_pc()
        await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(offer.encode().decode(), "offer")),
                               _NEGOTIATION_TIMEOUT)
        transceiver = next((t for t in pc.getTransceivers() if t.kind == "audio"), None)
        if transceiver is None:
            raise WebRtcError("The browser offered no audio")
        pc.addTrack(SilentTrack())
        transceiver.setCodecPreferences(_capabilities([choice.codec.name]))
        self._adopt(transceiver)
        await asyncio.wait_for(pc.setLocalDescription(await pc.createAnswer()), _NEGOTIATION_TIMEOUT)
        local = only_formats(parse_sdp(pc.localDescription.sdp.encode()), [choice.codec.pt])
        if choice.event is not None:
            local = with_event(local, choice.event)
        self._local = self._public(local)
        self._remote = offer
        self.choice = choice
        self._open_plain()
        names = [choice.codec.name.upper(), *(n for n in G711 if n != choice.codec.name.upper())] \
            if choice.passthrough else list(G711)
        return plain_description(origin=self._plain_origin, address=self.local_host, port=self.plain_port,
                                 codecs=names, event_pt=EVENT_PT if choice.event else None,
                                 stream_direction=direction_of(offer))

    def answer(self, plain_answer: SessionDescription) -> bytes:
        """The call's plain answer → the WebRTC answer for the browser (same bytes each time)."""
        assert self.choice is not None and self._local is not None
        if self._answer_cache is not None and self._answer_cache[1] == plain_answer:
            return self._answer_cache[0]
        codec = first_codec(plain_answer)
        if codec is None or codec.name.upper() not in G711:
            raise WebRtcError("The call answered without G.711")
        event = telephone_event(plain_answer)
        target = audio_target(plain_answer)
        self._configure(self.choice, codec.name.upper(), event.pt if event and self.choice.event else None,
                        target[1] if target else 0)
        body = with_direction(self._local, direction_of(plain_answer)).encode()
        self._answer_cache = (body, plain_answer)
        return body

    # -- negotiation: the browser is called ----------------------------------------------------
    async def offer(self, plain_offer: SessionDescription) -> bytes:
        """The call's plain offer → a WebRTC offer for the browser."""
        names = [c.name.upper() for c in audio_codecs(plain_offer) if c.name.upper() in G711 and c.rate == 8000]
        if not names:
            raise WebRtcError("The call offered no G.711")
        pc = self._new_pc()
        transceiver = pc.addTransceiver(SilentTrack(), direction="sendrecv")
        transceiver.setCodecPreferences(_capabilities([*names, "opus"]))
        self._adopt(transceiver)
        await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), _NEGOTIATION_TIMEOUT)
        local = parse_sdp(pc.localDescription.sdp.encode())
        if telephone_event(plain_offer) is not None:
            low = Codec(free_payload_type(local), "telephone-event", 8000)
            high = Codec(free_payload_type(local, taken=[low.pt]), "telephone-event", 48000)
            local = with_event(with_event(local, low), high)
        self._local = self._public(local)
        self._plain_offer = plain_offer
        self._we_offered = True
        self._open_plain()
        return self._local.encode()

    async def accept_answer(self, answer: SessionDescription) -> SessionDescription:
        """The browser's answer → the plain answer for the call."""
        assert self._pc is not None and self._plain_offer is not None
        if self._remote is not None and self._answer_cache is not None and answer == self._remote:
            return self._answer_cache[1]  # a retransmitted 200, or the 200 after a 183 with the same answer
        if self._remote is None:
            await asyncio.wait_for(
                self._pc.setRemoteDescription(RTCSessionDescription(answer.encode().decode(), "answer")),
                _NEGOTIATION_TIMEOUT)
        codec = first_codec(answer)
        if codec is None or codec.name.upper() not in (*G711, "OPUS"):
            raise WebRtcError("The browser answered without G.711 or Opus")
        choice = BrowserChoice(codec, event_at(answer, codec.rate))
        offered = [c.name.upper() for c in audio_codecs(self._plain_offer) if c.name.upper() in G711]
        plain = codec.name.upper() if codec.name.upper() in offered else offered[0]
        plain_event = telephone_event(self._plain_offer)
        event_pt = plain_event.pt if plain_event is not None and choice.event is not None else None
        target = audio_target(self._plain_offer)
        self._remote = answer
        self._configure(choice, plain, event_pt, target[1] if target else 0)
        plain_answer = plain_description(origin=self._plain_origin, address=self.local_host, port=self.plain_port,
                                         codecs=[plain], event_pt=event_pt, stream_direction=direction_of(answer))
        self._answer_cache = (answer.encode(), plain_answer)
        return plain_answer

    # -- re-negotiation (hold, resume), without renegotiating ICE or DTLS -----------------------
    def reoffer(self, offer: SessionDescription) -> SessionDescription:
        """A browser's re-offer (a re-INVITE or UPDATE) → the plain re-offer for the call."""
        self._plain_origin = self._plain_origin.bumped()
        return plain_description(origin=self._plain_origin, address=self.local_host, port=self.plain_port,
                                 codecs=[self.plain_codec or "PCMU"],
                                 event_pt=self._p_event_pt if self._p_event_pt >= 0 else None,
                                 stream_direction=direction_of(offer))

    def reanswer(self, plain_answer: SessionDescription) -> bytes:
        """The call's answer to a browser's re-offer → our earlier description, direction updated."""
        assert self._local is not None
        stream_direction = direction_of(plain_answer)
        if self._we_offered and self._remote is not None:
            body = as_answer(self._local, self._remote, stream_direction)
        else:
            body = with_direction(self._local, stream_direction)
        self._local = body = _bumped(body)
        return body.encode()

    def answer_locally(self, plain_offer: SessionDescription) -> SessionDescription:
        """A re-offer from the call towards the browser (the other party holds, or a refresh): answered
        here, with the codec already running — the browser's session needs no change."""
        target = audio_target(plain_offer)
        if target is not None and target[1]:
            self._relay = (self.local_host, target[1])
        event = telephone_event(plain_offer)
        self._plain_origin = self._plain_origin.bumped()
        return plain_description(origin=self._plain_origin, address=self.local_host, port=self.plain_port,
                                 codecs=[self.plain_codec or "PCMU"],
                                 event_pt=event.pt if event is not None and self._p_event_pt >= 0 else None,
                                 stream_direction=mirrored(direction_of(plain_offer)))

    # -- set-up ---------------------------------------------------------------------------------
    def _new_pc(self) -> RTCPeerConnection:
        if self._pc is not None:
            raise RuntimeError("a WebRTC leg negotiates once")
        pc = RTCPeerConnection(self._ice.rtc_configuration())
        self._pc = pc

        @pc.on("connectionstatechange")
        def state_changed() -> None:
            state = pc.connectionState
            log.info("webrtc %s: %s", self.label, state)
            if state == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
            elif state == "failed" and not self._closed and self.on_failed is not None:
                self.on_failed()

        return pc

    def _adopt(self, transceiver: RTCRtpTransceiver) -> None:
        """Take over the receiver's packets and the ICE host candidates."""
        self._transceiver = transceiver
        receiver = transceiver.receiver
        setattr(receiver, "_handle_rtp_packet", self._from_browser)  # noqa: B010 - see the module docstring
        self._rr = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        # aiortc routes RTP by payload type among the codecs it negotiated, and it knows no
        # telephone-event: route those to the receiver as well.
        router = receiver.transport._rtp_router
        route = router.route_rtp

        def route_events_too(packet: RtpPacket) -> Any:
            return receiver if packet.payload_type == self._b_event_pt else route(packet)

        setattr(router, "route_rtp", route_events_too)  # noqa: B010
        configured = self._ice.addresses
        if configured:
            connection = receiver.transport.transport.iceGatherer._connection
            gather = connection.get_component_candidates

            async def only_configured(component: int, addresses: list[str], **options: Any) -> Any:
                return await gather(component=component, addresses=list(configured), **options)

            setattr(connection, "get_component_candidates", only_configured)  # noqa: B010

    def _public(self, sdp: SessionDescription) -> SessionDescription:
        public = self._ice.public_address
        return with_public_address(sdp, public) if public else sdp

    def _open_plain(self) -> None:
        rtp, rtcp = self._ports.allocate(self.local_host)
        self._rtp, self._rtcp = rtp, rtcp
        self.plain_port = rtp.getsockname()[1]
        self._loop.add_reader(rtp.fileno(), self._from_plain)
        self._loop.add_reader(rtcp.fileno(), self._drain_rtcp)

    def _configure(self, choice: BrowserChoice, plain: str, plain_event_pt: int | None, relay_port: int) -> None:
        self.choice = choice
        self.plain_codec = plain
        self._b_pt = choice.codec.pt
        self._b_event_pt = choice.event.pt if choice.event is not None and plain_event_pt is not None else -1
        self._p_pt = 0 if plain == "PCMU" else 8
        self._p_event_pt = plain_event_pt if plain_event_pt is not None else -1
        if relay_port:
            self._relay = (self.local_host, relay_port)
        browser = choice.codec.name.upper()
        if browser == plain:
            self.mode = "passthrough"
        elif browser in G711:
            self.mode = "g711"
        else:
            self.mode = "opus"
            if self._opus_in is None:
                self._opus_in = _OpusDecoder()
                self._opus_out = _OpusEncoder()
        log.info("webrtc %s: browser %s/%d, plain %s, %s", self.label, choice.codec.name, choice.codec.rate,
                 plain, self.mode)

    # -- media: browser → plain -----------------------------------------------------------------
    async def _from_browser(self, packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        counters = self.counters
        counters["from_browser"] += 1
        stream = self._rr.get(packet.ssrc)
        if stream is None:
            if len(self._rr) > 8:
                self._rr.clear()
            stream = self._rr[packet.ssrc] = StreamStatistics(self.choice.codec.rate if self.choice else 8000)
        stream.add(packet)  # aiortc's receiver reports to the browser are built from these
        relay = self._relay
        pt = packet.payload_type
        if relay is None or self._rtp is None:
            counters["dropped"] += 1
            return
        payload = packet.payload
        if pt == self._b_pt:
            self.stats.update(packet.sequence_number, packet.timestamp, time.monotonic(), len(payload),
                              self.choice.codec.rate if self.choice else 8000)
            mode = self.mode
            if mode == "passthrough":
                self._to_plain(self._p_pt, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc,
                               payload, relay)
            elif mode == "g711":
                assert self.choice is not None and self.plain_codec is not None
                pcm = g711.decode(self.choice.codec.name, payload)
                self._to_plain(self._p_pt, packet.marker, packet.sequence_number, packet.timestamp, self._ssrc_out,
                               g711.encode(self.plain_codec, pcm), relay)
            else:
                self._opus_to_plain(packet, relay)
        elif pt == self._b_event_pt and self._p_event_pt >= 0:
            counters["events_from_browser"] += 1
            if self.mode == "opus":
                payload = _rescale_event(payload, 1 / _OPUS_SCALE)
                self._p_seq = (self._p_seq + 1) & 0xFFFF
                self._to_plain(self._p_event_pt, packet.marker, self._p_seq,
                               (packet.timestamp // _OPUS_SCALE) & 0xFFFFFFFF, self._ssrc_out, payload, relay)
            else:
                self._to_plain(self._p_event_pt, packet.marker, packet.sequence_number, packet.timestamp,
                               packet.ssrc if self.mode == "passthrough" else self._ssrc_out, payload, relay)
        else:
            counters["dropped"] += 1  # comfort noise, RED, a codec not negotiated

    def _opus_to_plain(self, packet: RtpPacket, relay: tuple[str, int]) -> None:
        assert self._opus_in is not None and self.plain_codec is not None
        chunks = self._opus_in.feed(packet.payload)
        last = self._b_ts_last
        self._b_ts_last = packet.timestamp
        if last is None:
            self._p_ts = packet.timestamp // _OPUS_SCALE
        else:
            # The G.711 timeline follows the browser's: a gap (lost or discontinued packets) is
            # skipped over on this side too, a reordered or restarted stream starts it afresh.
            step = (packet.timestamp - last) & 0xFFFFFFFF
            if step > 60 * 48_000:
                self._p_ts = packet.timestamp // _OPUS_SCALE
            elif step > _FRAME * _OPUS_SCALE:
                self._p_ts = (self._p_ts + (step - _FRAME * _OPUS_SCALE) // _OPUS_SCALE) & 0xFFFFFFFF
        for pcm in chunks:
            self._p_seq = (self._p_seq + 1) & 0xFFFF
            self._to_plain(self._p_pt, 0, self._p_seq, self._p_ts, self._ssrc_out,
                           g711.encode(self.plain_codec, pcm), relay)
            self._p_ts = (self._p_ts + _FRAME) & 0xFFFFFFFF

    def _to_plain(self, pt: int, marker: int, seq: int, ts: int, ssrc: int, payload: bytes,
                  relay: tuple[str, int]) -> None:
        assert self._rtp is not None
        try:
            self._rtp.sendto(_RTP.pack(0x80, (marker << 7) | pt, seq, ts, ssrc) + payload, relay)
        except OSError as exc:
            self.counters["send_errors"] += 1
            log.debug("webrtc %s: send to relay failed: %s", self.label, exc)
            return
        self.counters["to_plain"] += 1

    # -- media: plain → browser -----------------------------------------------------------------
    def _from_plain(self) -> None:
        sock = self._rtp
        if sock is None:
            return
        buf = self._buf
        view = memoryview(buf)
        counters = self.counters
        relay = self._relay
        for _ in range(BURST):
            try:
                size, addr = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("webrtc %s: receive error: %s", self.label, exc)
                break
            if relay is None or addr[1] != relay[1] or size < 12 or buf[0] & 0xC0 != 0x80:
                counters["foreign_dropped"] += 1
                continue
            counters["from_plain"] += 1
            first, second, seq, ts, _ssrc = _RTP.unpack_from(buf)
            start = 12 + 4 * (first & 0x0F)
            if first & 0x10 and size >= start + 4:  # header extension (RFC 3550 §5.3.1)
                start += 4 + 4 * int.from_bytes(buf[start + 2: start + 4], "big")
            end = size - (buf[size - 1] if first & 0x20 else 0)  # padding
            if start > end:
                counters["dropped"] += 1
                continue
            payload = bytes(view[start:end])
            pt = second & 0x7F
            marker = second >> 7
            if pt == self._p_pt:
                self._audio_to_browser(marker, seq, ts, payload)
            elif pt == self._p_event_pt and self._b_event_pt >= 0:
                counters["events_to_browser"] += 1
                if self.mode == "opus":
                    self._b_seq = (self._b_seq + 1) & 0xFFFF
                    self._to_browser(self._b_event_pt, marker, self._b_seq, (ts * _OPUS_SCALE) & 0xFFFFFFFF,
                                     _rescale_event(payload, _OPUS_SCALE))
                else:
                    self._to_browser(self._b_event_pt, marker, seq, ts, payload)
            else:
                counters["dropped"] += 1

    def _audio_to_browser(self, marker: int, seq: int, ts: int, payload: bytes) -> None:
        mode = self.mode
        if mode == "passthrough":
            self._to_browser(self._b_pt, marker, seq, ts, payload)
        elif mode == "g711":
            assert self.choice is not None and self.plain_codec is not None
            self._to_browser(self._b_pt, marker, seq, ts,
                             g711.encode(self.choice.codec.name, g711.decode(self.plain_codec, payload)))
        else:
            assert self._opus_out is not None and self.plain_codec is not None
            for encoded in self._opus_out.feed(g711.decode(self.plain_codec, payload)):
                self._b_seq = (self._b_seq + 1) & 0xFFFF
                self._to_browser(self._b_pt, marker, self._b_seq, (ts * _OPUS_SCALE) & 0xFFFFFFFF, encoded)

    def _to_browser(self, pt: int, marker: int, seq: int, ts: int, payload: bytes) -> None:
        transceiver = self._transceiver
        if transceiver is None:
            return
        sender = transceiver.sender
        try:
            run_now(sender.transport._send_rtp(_RTP.pack(0x80, (marker << 7) | pt, seq, ts, sender._ssrc) + payload))
        except ConnectionError:
            self.counters["dropped"] += 1  # DTLS not up yet (or gone)
            return
        except OSError as exc:
            self.counters["send_errors"] += 1
            log.debug("webrtc %s: send to browser failed: %s", self.label, exc)
            return
        self.counters["to_browser"] += 1

    def _drain_rtcp(self) -> None:
        # The relay's RTCP towards this leg: the browser gets aiortc's own reports instead.
        sock = self._rtcp
        if sock is None:
            return
        for _ in range(BURST):
            try:
                sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    # -- end ------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop media, free the ports, close the peer connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for sock in (self._rtp, self._rtcp):
            if sock is not None and sock.fileno() >= 0:
                with contextlib.suppress(ValueError, OSError):
                    self._loop.remove_reader(sock.fileno())
                sock.close()
        if self._rtp is not None:
            self._ports.release(self.plain_port)
        self._rtp = self._rtcp = None
        pc, self._pc = self._pc, None
        self._transceiver = None
        if pc is not None:
            await pc.close()

    def summary(self) -> dict[str, Any]:
        """Codec, mode, ICE state and the counters, for the call record."""
        pc = self._pc
        choice = self.choice
        return {
            "mode": self.mode,
            "browser_codec": f"{choice.codec.name}/{choice.codec.rate}" if choice else None,
            "plain_codec": self.plain_codec,
            "connection": pc.connectionState if pc is not None else "closed",
            "connect_s": None if self.connected_at is None else round(self.connected_at - self.created, 3),
            **self.counters,
            "lost": self.stats.lost,
            "loss_fraction": round(self.stats.loss_fraction, 6),
            "jitter_ms": round(self.stats.jitter_ms, 3),
        }


def _capabilities(names: list[str]) -> list[Any]:
    """aiortc's codec capabilities for the given encoding names, in that order."""
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    return [cap for name in names for cap in codecs if cap.mimeType.upper() == f"AUDIO/{name.upper()}"]


def _rescale_event(payload: bytes, factor: float) -> bytes:
    """An RFC 4733 event payload with its duration converted between clock rates."""
    if len(payload) < 4:
        return payload
    event, flags, duration = _EVENT.unpack_from(payload)
    return _EVENT.pack(event, flags, min(0xFFFF, int(duration * factor))) + payload[4:]


def _bumped(sdp: SessionDescription) -> SessionDescription:
    return replace(sdp, origin=sdp.origin.bumped())
