"""Load generator of ``bench.webrtc``: many WebRTC calls from one aiortc process, as browsers place them.

    .venv/bin/python -m bench.webrtc_load --ws URL --user U --password P --to EXT --codec pcmu|opus
    .venv/bin/python -m bench.webrtc_load --ng PORT --echo PORT --codec pcmu|opus

With ``--ws`` one SIP-over-WebSocket connection (RFC 7118, subprotocol ``sip``) carries every call
of the process: INVITE with aiortc's offer (ICE host candidates pinned to ``--address``, DTLS-SRTP)
→ 407 → INVITE with Proxy-Authorization (``ringwell.sip.digest``) → 200 with Ringwell's answer →
ACK. With ``--ng`` (the reference) there is no SIP: rtpengine's NG offer/answer per call, the far
end's answer (PCMU to the echo port) written here (see ``Ng``). Either way a call is up once
aiortc's connection state is ``connected``. ``--codec pcmu`` offers what Chromium offers (Opus,
PCMU, PCMA: the server passes PCMU through); ``--codec opus`` offers Opus only (it transcodes).

Media is kept cheap so that the process measures the server, not itself: aiortc's encoders,
jitter buffer and decoders are bypassed the way Ringwell bypasses them (``ringwell.webrtc.leg``).
One 20 ms timer sends the next packet of every call: RTP with a pre-encoded payload (1 s of a
two-tone signal, PCMU or Opus, looped) handed to the DTLS transport's ``_send_rtp`` (SRTP, then the
nominated ICE pair); the receiver's packet handler is replaced by a counter. The far end echoes
(SIPp ``-rtp_echo``), so every packet sent should come back.

Loss is counted per call over a window between two marks, each taken right after a tick's packets
left: packets sent minus echoes received in the window. In steady state as many packets are in
flight when the window opens as when it closes, so the difference is what was lost on the way
(or is still queued somewhere: a server falling behind shows as loss). Packet *k* of a call
carries RTP timestamp ``ts0 + k·step`` (160 for PCMU, 960 for Opus), and pass-through keeps
timestamps end to end, so there each echo's round trip is known and an echo later than
``LATE_MS`` counts as lost too. Transcoders re-stamp what they encode (Ringwell and rtpengine both
fall a frame behind per lost packet), so with Opus the round trips are indicative only and
lateness is not counted.

Control: JSON lines on stdin, one JSON answer per line on stdout (``{"ready"}`` first):

* ``{"op": "setup", "n": N, "parallel": P}`` → N more calls, P set-ups at a time;
  ``{"ok", "failed", "errors", "seconds"}``;
* ``{"op": "mark"}`` (twice: the window opens, closes) → ``{"tick", "cpu", "t"}`` (this
  process's CPU seconds); ``{"op": "window"}`` → the window's figures (see ``Load.window()``);
* ``{"op": "hangup"}`` → BYE (or NG delete) every call; ``{"bye_ok", "call_ids"}``;
  ``{"op": "quit"}``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import fractions
import json
import math
import os
import secrets
import struct
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket
from websockets.asyncio.client import ClientConnection, connect

from bench.media import bdecode, bencode
from ringwell.media import g711
from ringwell.sip import digest
from ringwell.sip.message import Request, Response, parse_message
from ringwell.webrtc.leg import SilentTrack, run_now

TICK = 0.020
MAX_TICKS = 90_000  # 30 min of ticks: the process never lives that long
LATE_MS = 100.0  # round trip; a later echo counts as lost (a jitter buffer would have dropped it)
SETUP_TIMEOUT = 20.0
_RTP = struct.Struct("!BBHII")


def _signal(rate: int, seconds: float) -> list[bytes]:
    """20 ms frames of 16-bit mono PCM: two tones (440 + 1020 Hz), something codecs must work at."""
    frame = int(rate * TICK)
    total = int(rate * seconds)
    samples = [int(6000 * math.sin(2 * math.pi * 440 * i / rate) + 3000 * math.sin(2 * math.pi * 1020 * i / rate))
               for i in range(total)]
    pcm = struct.pack(f"<{total}h", *samples)
    return [pcm[i * 2 * frame: (i + 1) * 2 * frame] for i in range(total // frame)]


def pcmu_payloads() -> list[bytes]:
    return [g711.encode("PCMU", chunk) for chunk in _signal(8000, 1.0)]


def opus_payloads() -> list[bytes]:
    """1 s of Opus at 48 kHz, 20 ms frames, as a browser sends (mono, ~32 kbit/s)."""
    codec: Any = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = fractions.Fraction(1, 48000)
    codec.options = {"application": "voip", "frame_duration": "20"}
    codec.open()
    out: list[bytes] = []
    for n, chunk in enumerate(_signal(48000, 1.2)):
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
        frame.planes[0].update(chunk)
        frame.sample_rate = 48000
        frame.pts = n * 960
        frame.time_base = fractions.Fraction(1, 48000)
        out += [bytes(p) for p in codec.encode(frame)]
    return out[5:55]  # past the encoder's start-up


def cpu_seconds() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Call:
    """One browser-like call: its peer connection, SIP dialog and per-tick echo record."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.call_id = secrets.token_hex(12)
        self.tag = secrets.token_hex(5)
        self.cseq = 0
        self.remote_target = ""
        self.to_header = ""
        self.ssrc = 0
        self.seq0 = secrets.randbits(16)
        self.ts0 = secrets.randbelow(2**30 // 960) * 960  # a multiple of 6, far from wrapping
        self.first_tick = -1
        self.sent = 0
        self.echoed = 0  # echoes back, late ones included
        self.late = 0  # echoes more than LATE_MS after their packet left (exact timestamps only)
        self._seen = bytearray(MAX_TICKS)
        self.send_errors = 0
        self.ended = ""  # why the call stopped early (BYE from the server, ICE failure)
        self._transport: Any = None

    async def setup(self) -> None:
        load = self.load
        transceiver = self.pc.addTransceiver(SilentTrack(), direction="sendrecv")
        self._prepare(transceiver)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await load.signalling.call(self, self.pc.localDescription.sdp)
        connected = asyncio.get_running_loop().create_future()

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            state = self.pc.connectionState
            if state == "connected" and not connected.done():
                connected.set_result(None)
            elif state in ("failed", "closed"):
                if not connected.done():
                    connected.set_exception(RuntimeError(f"connection {state}"))
                elif not self.ended:
                    self.ended = f"connection {state}"

        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(connected, SETUP_TIMEOUT)
        sender = transceiver.sender
        self._transport = sender.transport
        self.ssrc = sender._ssrc

    def _prepare(self, transceiver: RTCRtpTransceiver) -> None:
        caps = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences(
            [c for name in self.load.offer_codecs for c in caps if c.mimeType.lower() == f"audio/{name.lower()}"])
        receiver = transceiver.receiver
        setattr(receiver, "_handle_rtp_packet", self._echo)  # noqa: B010 - aiortc's receiver is bypassed
        connection = receiver.transport.transport.iceGatherer._connection
        gather = connection.get_component_candidates
        address = self.load.address

        async def pinned(component: int, addresses: list[str], **options: Any) -> Any:
            return await gather(component=component, addresses=[address], **options)

        setattr(connection, "get_component_candidates", pinned)  # noqa: B010 - ICE on --address only

    def send(self, tick: int, payload: bytes) -> None:
        load = self.load
        marker = 0
        if self.first_tick < 0:
            self.first_tick = tick
            marker = 1
        packet = _RTP.pack(0x80, (marker << 7) | load.pt, (self.seq0 + tick) & 0xFFFF,
                           (self.ts0 + tick * load.step) & 0xFFFFFFFF, self.ssrc) + payload
        try:
            run_now(self._transport._send_rtp(packet))
        except ConnectionError:
            self.send_errors += 1
            return
        self.sent += 1

    async def _echo(self, packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        self.echoed += 1
        load = self.load
        tick = ((packet.timestamp - self.ts0) & 0xFFFFFFFF) // load.step
        if 0 <= tick < MAX_TICKS and not self._seen[tick] and load.sent_at[tick]:
            self._seen[tick] = 1
            delay_ms = (time.monotonic() - load.sent_at[tick]) * 1000
            if load.window_open:
                load.rtt_ms.append(delay_ms)
            if delay_ms > LATE_MS and load.exact_ts:
                self.late += 1


class Sip:
    """SIP over one WebSocket: INVITE/ACK/BYE for every call of the process, digest on 407."""

    def __init__(self, ws: ClientConnection, username: str, password: str, domain: str, to: str) -> None:
        self.ws = ws
        self.username = username
        self.password = password
        self.domain = domain
        self.to = to
        self.host = secrets.token_hex(6) + ".invalid"  # what a browser puts in Via and Contact
        self.contact = f"<sip:{secrets.token_hex(4)}@{self.host};transport=ws>"
        self.pending: dict[tuple[str, int, str], asyncio.Queue[Response]] = {}
        self.calls: dict[str, Call] = {}

    async def reader(self) -> None:
        async for data in self.ws:
            text = data if isinstance(data, str) else data.decode()
            if not text.strip():
                continue  # keep-alive pong
            message = parse_message(text.encode())
            if isinstance(message, Response):
                queue = self.pending.get((message.call_id, message.cseq.number, message.cseq.method))
                if queue is not None:
                    queue.put_nowait(message)
            else:
                await self._request(message)

    async def _request(self, request: Request) -> None:
        if request.method == "ACK":
            return
        call = self.calls.get(request.call_id)
        if request.method == "BYE" and call is not None:
            call.ended = "BYE from the server"
        vias = "".join(f"Via: {v}\r\n" for v in request.headers.get_all("via"))
        to = request.headers.get("to") or ""
        if ";tag=" not in to and call is not None:
            to += f";tag={call.tag}"
        body = ""
        if request.method == "INVITE" and call is not None and call.pc.localDescription is not None:
            body = call.pc.localDescription.sdp  # a session refresh: the same session
        await self.ws.send(
            f"SIP/2.0 200 OK\r\n{vias}From: {request.headers.get('from')}\r\nTo: {to}\r\n"
            f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq}\r\nContact: {self.contact}\r\n"
            + (f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}" if body
               else "Content-Length: 0\r\n\r\n"))

    def _message(self, call: Call, method: str, uri: str, *, to: str, cseq: int, extra: str = "",
                 body: str = "") -> str:
        aor = f"sip:{self.username}@{self.domain}"
        content = f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}" if body \
            else "Content-Length: 0\r\n\r\n"
        return (f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/WS {self.host};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
                f"Max-Forwards: 70\r\nTo: {to}\r\nFrom: <{aor}>;tag={call.tag}\r\n"
                f"Call-ID: {call.call_id}\r\nCSeq: {cseq} {method}\r\nContact: {self.contact}\r\n{extra}"
                f"User-Agent: ringwell-bench-webrtc\r\n{content}")

    async def _transaction(self, call: Call, method: str, message: str, cseq: int) -> Response:
        key = (call.call_id, cseq, method)
        queue: asyncio.Queue[Response] = asyncio.Queue()
        self.pending[key] = queue
        try:
            await self.ws.send(message)
            while True:
                response = await asyncio.wait_for(queue.get(), SETUP_TIMEOUT)
                if response.status >= 200:
                    return response
        finally:
            del self.pending[key]

    async def call(self, call: Call, offer: str) -> str:
        response = await self.invite(call, offer)
        if response.status != 200:
            raise RuntimeError(f"INVITE: {response.status} {response.reason}")
        return response.body.decode()

    def forget(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)

    async def hangup(self, call: Call) -> bool:
        return await self.bye(call)

    async def invite(self, call: Call, offer: str) -> Response:
        self.calls[call.call_id] = call
        uri = f"sip:{self.to}@{self.domain}"
        to = f"<{uri}>"
        auth = ""
        for _ in range(2):
            call.cseq += 1
            message = self._message(call, "INVITE", uri, to=to, cseq=call.cseq, body=offer, extra=auth)
            response = await self._transaction(call, "INVITE", message, call.cseq)
            if response.status >= 300:
                # ACK for a non-2xx final response: same branch as the INVITE (RFC 3261 §17.1.1.3)
                via = message.split("\r\n")[1]
                await self.ws.send(f"ACK {uri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n"
                                   f"To: {response.headers.get('to')}\r\nFrom: <sip:{self.username}@{self.domain}>"
                                   f";tag={call.tag}\r\nCall-ID: {call.call_id}\r\nCSeq: {call.cseq} ACK\r\n"
                                   "Content-Length: 0\r\n\r\n")
            if response.status != 407 or auth:
                break
            answer = digest.answer_challenge(response, "INVITE", uri, self.username, self.password)
            if answer is None:
                break
            auth = f"{answer[0]}: {answer[1]}\r\n"
        if response.status == 200:
            contact = response.headers.get("contact") or ""
            call.remote_target = contact.split("<", 1)[-1].split(">", 1)[0] if "<" in contact else contact
            call.to_header = response.headers.get("to") or to
            await self.ws.send(self._message(call, "ACK", call.remote_target, to=call.to_header, cseq=call.cseq))
        return response

    async def bye(self, call: Call) -> bool:
        if not call.remote_target or call.ended == "BYE from the server":
            return False
        call.cseq += 1
        message = self._message(call, "BYE", call.remote_target, to=call.to_header, cseq=call.cseq)
        try:
            return (await self._transaction(call, "BYE", message, call.cseq)).status == 200
        except TimeoutError:
            return False


class Signalling(Protocol):
    async def call(self, call: Call, offer: str) -> str:
        """The answer to ``offer`` once the call is up at the far end."""
        ...

    async def hangup(self, call: Call) -> bool: ...
    def forget(self, call: Call) -> None: ...


class _NgProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[dict[str, Any]]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        cookie, _, body = data.partition(b" ")
        future = self.waiting.pop(cookie, None)
        if future is not None and not future.done():
            future.set_result(bdecode(body)[0])


class Ng:
    """The reference: no SIP, rtpengine's NG offer/answer per call, the far end's answer written here
    (PCMU to the echo port), as a SIP proxy in front of rtpengine would pass it.

    The offer towards the plain side: RTP/AVP, ICE removed, RTCP demultiplexed; with ``opus``
    rtpengine transcodes (``codec-transcode-PCMU``, the browser's codecs stripped), otherwise the
    plain side picks PCMU from the browser's list and rtpengine relays it untouched. The answer
    towards the browser: UDP/TLS/RTP/SAVPF, ICE forced, rtcp-mux, DTLS passive.
    """

    def __init__(self, port: int, echo_port: int, opus: bool) -> None:
        self.addr = ("127.0.0.1", port)
        self.echo_port = echo_port
        self.opus = opus
        self.serial = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol = _NgProtocol()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self._protocol, remote_addr=self.addr)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def request(self, command: str, **fields: Any) -> dict[str, Any]:
        assert self._transport is not None
        message = bencode({"command": command, **{k.replace("_", "-"): v for k, v in fields.items()}})
        for _ in range(3):
            self.serial += 1
            cookie = b"w%d-%d" % (os.getpid(), self.serial)  # rtpengine caches answers by cookie alone
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._protocol.waiting[cookie] = future
            self._transport.sendto(cookie + b" " + message)
            try:
                answer = await asyncio.wait_for(future, 5.0)
            except TimeoutError:
                self._protocol.waiting.pop(cookie, None)
                continue
            if answer.get("result") != "ok":
                raise RuntimeError(f"rtpengine {command}: {answer.get('result')} {answer.get('error-reason', '')}")
            return answer
        raise RuntimeError(f"rtpengine {command}: no answer")

    async def call(self, call: Call, offer: str) -> str:
        flags: dict[str, Any] = {"transport-protocol": "RTP/AVP", "ICE": "remove", "rtcp-mux": ["demux"],
                                 "replace": ["origin", "session-connection"]}
        if self.opus:
            flags["codec"] = {"transcode": ["PCMU"], "strip": ["all"]}
        await self.request("offer", sdp=offer, call_id=call.call_id, from_tag=call.tag, **flags)
        plain = (f"v=0\r\no=echo 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 f"m=audio {self.echo_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
        answer = await self.request(
            "answer", sdp=plain, call_id=call.call_id, from_tag=call.tag, to_tag="echo",
            transport_protocol="UDP/TLS/RTP/SAVPF", ICE="force", rtcp_mux=["require"],
            replace=["origin", "session-connection"])
        call.remote_target = "rtpengine"
        return str(answer["sdp"])

    async def hangup(self, call: Call) -> bool:
        if not call.remote_target:
            return False
        try:
            await self.request("delete", call_id=call.call_id, from_tag=call.tag)
        except RuntimeError:
            return False
        return True

    def forget(self, call: Call) -> None:
        return


class Load:
    """The process: the calls, the 20 ms sender and the control loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.address = args.address
        opus = args.codec == "opus"
        self.offer_codecs = ("opus",) if opus else ("opus", "PCMU", "PCMA")
        self.payloads = opus_payloads() if opus else pcmu_payloads()
        self.step = 960 if opus else 160
        # Pass-through keeps the browser's timestamps end to end; a transcoder re-stamps what it
        # encodes (Ringwell's and rtpengine's both fall behind by a frame per lost packet).
        self.exact_ts = not opus
        self._marks: list[dict[Call, tuple[int, int, int]]] = []
        self._mark_wanted: asyncio.Future[dict[str, Any]] | None = None
        self.pt = -1  # the negotiated payload type, from the first call's answer
        self.calls: list[Call] = []
        self.sent_at = array.array("d", bytes(8 * MAX_TICKS))
        self.tick = 0
        self.lag_ms: list[float] = []
        self.rtt_ms: list[float] = []
        self.window_open = False
        self.signalling: Signalling

    async def pump(self) -> None:
        """Every 20 ms, the next packet of every call that is up."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        payloads = self.payloads
        count = len(payloads)
        while self.tick < MAX_TICKS - 1:
            self.tick += 1
            target = start + self.tick * TICK
            wait = target - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = loop.time()
            if self.window_open:
                self.lag_ms.append((now - target) * 1000)
            tick = self.tick
            self.sent_at[tick] = time.monotonic()
            payload = payloads[tick % count]
            for call in self.calls:
                if call.ssrc and not call.ended:
                    call.send(tick, payload)
            if self._mark_wanted is not None:
                # right after a tick's packets left: both marks at the same phase, so that as
                # many packets are in flight when the window opens as when it closes
                wanted, self._mark_wanted = self._mark_wanted, None
                wanted.set_result(self._mark())

    async def setup(self, n: int, parallel: int) -> dict[str, Any]:
        t0 = time.monotonic()
        errors: list[str] = []
        ok = 0
        gate = asyncio.Semaphore(parallel)

        async def one() -> None:
            nonlocal ok
            async with gate:
                call = Call(self)
                try:
                    await call.setup()
                except Exception as exc:  # any call that does not come up is counted, not fatal
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    self.signalling.forget(call)
                    with contextlib.suppress(Exception):
                        await self.signalling.hangup(call)
                    await call.pc.close()
                    return
                if self.pt < 0:
                    self.pt = _negotiated_pt(call)
                self.calls.append(call)
                ok += 1

        await asyncio.gather(*(one() for _ in range(n)))
        return {"ok": ok, "failed": n - ok, "errors": errors[:5], "seconds": round(time.monotonic() - t0, 2)}

    async def mark(self) -> dict[str, Any]:
        """Open or close the measured window, right after the next tick's packets have left."""
        self._mark_wanted = asyncio.get_running_loop().create_future()
        return await self._mark_wanted

    def _mark(self) -> dict[str, Any]:
        """Each call's counters now, the tick, this process's CPU."""
        if not self.window_open:
            self.lag_ms.clear()
            self.rtt_ms.clear()
            self._marks.clear()
        self.window_open = not self.window_open
        self._marks.append({c: (c.sent, c.echoed, c.late) for c in self.calls if c.first_tick >= 0})
        return {"tick": self.tick, "cpu": cpu_seconds(), "t": time.monotonic()}

    def window(self) -> dict[str, Any]:
        """The window between the last two marks, over the calls up at both.

        Loss = packets sent in the window − echoes received in it (+ late echoes): in steady
        state as many packets are in flight when the window opens as when it closes.
        """
        first, last = self._marks[-2], self._marks[-1]
        sent = echoed = late = calls = lossy = 0
        for call, (s0, e0, l0) in first.items():
            if call not in last:
                continue
            s1, e1, l1 = last[call]
            calls += 1
            sent += s1 - s0
            echoed += e1 - e0
            late += l1 - l0
            if (e1 - e0) - (l1 - l0) < (s1 - s0) - 1:  # one packet in flight more or less is no loss
                lossy += 1
        return {
            "calls": calls, "sent": sent, "echoed": echoed, "late": late, "lost": max(0, sent - echoed),
            "lossy_calls": lossy, "ended": sum(1 for c in self.calls if c.ended),
            "ended_why": sorted({c.ended for c in self.calls if c.ended})[:3],
            "send_errors": sum(c.send_errors for c in self.calls),
            "rtt_ms": _percentiles(self.rtt_ms), "lag_ms": _percentiles(self.lag_ms),
        }

    async def hangup(self, parallel: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(parallel)
        calls, self.calls = self.calls, []
        ok = 0

        async def one(call: Call) -> None:
            nonlocal ok
            async with gate:
                if await self.signalling.hangup(call):
                    ok += 1
                self.signalling.forget(call)
                await call.pc.close()

        await asyncio.gather(*(one(c) for c in calls))
        return {"bye_ok": ok, "call_ids": [c.call_id for c in calls]}

    async def control(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            request = json.loads(line)
            op = request["op"]
            answer: dict[str, Any]
            if op == "setup":
                answer = await self.setup(int(request["n"]), int(request.get("parallel", 8)))
            elif op == "mark":
                answer = await self.mark()
            elif op == "window":
                answer = self.window()
            elif op == "hangup":
                answer = await self.hangup(int(request.get("parallel", 16)))
            elif op == "quit":
                await self.hangup(16)
                _reply({"bye": True})
                return
            else:
                answer = {"error": f"unknown op {op!r}"}
            _reply(answer)

    async def run(self) -> None:
        args = self.args
        async with contextlib.AsyncExitStack() as stack:
            if args.ng:
                ng = Ng(args.ng, args.echo, self.offer_codecs == ("opus",))
                await ng.start()
                stack.callback(ng.close)
                self.signalling = ng
            else:
                ws = await stack.enter_async_context(
                    connect(args.ws, subprotocols=["sip"], max_size=1 << 20))  # type: ignore[list-item]
                sip = Sip(ws, args.user, args.password, args.domain, args.to)
                self.signalling = sip
                reader = asyncio.create_task(sip.reader())
                stack.push_async_callback(_cancel, reader)
            pump = asyncio.create_task(self.pump())
            stack.push_async_callback(_cancel, pump)
            _reply({"ready": True, "pid": os.getpid()})
            await self.control()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _negotiated_pt(call: Call) -> int:
    description = call.pc.remoteDescription
    for line in description.sdp.splitlines() if description is not None else []:
        if line.startswith("m=audio "):
            return int(line.split()[3])
    raise RuntimeError("no m=audio line in the answer")


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1], 2)}


def _reply(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ws", help="ws://host:port/ws: calls over SIP-over-WebSocket")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--domain", default="127.0.0.1")
    parser.add_argument("--to", default="", help="the extension to call")
    parser.add_argument("--ng", type=int, help="rtpengine's NG port: calls set up with rtpengine, no SIP")
    parser.add_argument("--echo", type=int, default=0, help="with --ng: the plain side's RTP echo port")
    parser.add_argument("--codec", choices=("pcmu", "opus"), default="pcmu")
    parser.add_argument("--address", default="127.0.0.1", help="the ICE host candidate")
    args = parser.parse_args(argv)
    if not args.ws and not args.ng:
        parser.error("--ws or --ng")
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: PLC0415

        uvloop.install()
    asyncio.run(Load(args).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
