"""Media applications: Ringwell itself as an RTP party (play, record, DTMF) and a call recorder.

Theory of operation
-------------------
``MediaEndpoint`` is the far end of a call leg that Ringwell answers itself (a voicemail box, an
announcement, a PIN prompt). It owns one RTP/RTCP port pair from the relay's ``PortPool``; the
SDP Ringwell sends names its ``local_port``. Where its media goes follows the relay's rules
(``ringwell.media.relay``): the SDP address from ``set_remote()`` until the first valid RTP
packet from the SDP host or the signalling host latches the endpoint to that packet's source
(symmetric RTP, RFC 4961); packets from other IPs are dropped and counted.

* ``play(pcm)`` sends 16-bit 8 kHz mono PCM as G.711 (PCMU or PCMA, as negotiated), 160 samples
  per packet. Packet *n* leaves at ``start + n * 20 ms`` on the loop's monotonic clock, so a
  late wake-up shortens the next wait instead of adding up (no drift). The RTP timestamp runs on
  with the clock between prompts, the marker bit starts each talkspurt (RFC 3551 §4.1).
  Cancelling the awaiting task stops it after the packet in flight.
* ``record()`` returns the PCM the peer sent: each packet is placed by its RTP timestamp
  relative to the first one (reordered packets land where they belong, lost ones leave
  silence), and stops on ``max_seconds``, on ``silence_seconds`` without a voiced 20 ms frame
  (RMS above ``silence_threshold`` of the decoded PCM; no packets at all is silence too), on an
  RFC 4733 digit in ``stop_digits``, or when the endpoint is closed (hang-up).
* ``collect_digits()`` reads RFC 4733 telephone-events; digits typed before the call asks are
  kept (type-ahead), up to ``DIGIT_BUFFER``.

``CallRecorder`` writes a relayed call to a 2-channel WAV (left = side ``a``, right = side
``b``) from copies of the packets the relay hands its ``tap`` (``MediaSession.tap``). Each
side's stream is anchored at the arrival time of its first packet and then placed by RTP
timestamp; a timestamp that disagrees with the arrival clock by more than ``RESYNC_SECONDS``
(a new SSRC, a hold without timestamp jump) re-anchors at the arrival time. Samples older than
``FLUSH_SECONDS`` are written out as the call goes, so a long call needs no memory for its audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import math
import secrets
import struct
import sys
import time
import wave
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringwell.media import g711
from ringwell.media.dtmf import DtmfCollector, parse_telephone_event
from ringwell.media.errors import CodecError, MediaError
from ringwell.media.ports import PortPool
from ringwell.media.relay import MediaSession
from ringwell.media.rtp import RtpHeader, is_rtcp, parse_rtp

__all__ = [
    "DIGIT_BUFFER",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "CallRecorder",
    "DigitsResult",
    "MediaEndpoint",
    "Recording",
    "StopReason",
    "rms",
    "tone",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the RFC 3551 default packetisation of G.711
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
DIGIT_BUFFER = 32
STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}  # RFC 3551 table 4
_CODEC_OF = {0: "PCMU", 8: "PCMA"}
_MAX_DATAGRAM = 2048
_BURST = 64
_MAX_AHEAD = SAMPLE_RATE * 30  # a timestamp this far past the recording's end is a jump, not a silence
_MAX_BEHIND = SAMPLE_RATE // 5  # a packet this far before the first one received is reordered, not stale
_LITTLE = sys.byteorder == "little"
_FLUSH_EVERY = 50  # packets (both sides) between a call recorder's writes


class StopReason(enum.Enum):
    """Why ``record()``, ``collect_digits()`` or ``play()`` returned."""

    FINISHED = "finished"  # play(): everything was sent
    MAX_LENGTH = "max_length"
    SILENCE = "silence"
    DIGIT = "digit"  # a stop digit or a terminator
    COUNT = "count"  # collect_digits(): as many digits as asked for
    TIMEOUT = "timeout"
    HANGUP = "hangup"  # the endpoint was closed


@dataclass(frozen=True, slots=True)
class Recording:
    """What ``record()`` heard: 16-bit little-endian 8 kHz mono PCM and why it stopped."""

    pcm: bytes
    reason: StopReason
    digit: str | None = None
    """The stop digit, when ``reason`` is ``DIGIT``."""

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class DigitsResult:
    digits: str
    """The digits typed, without the terminator."""
    reason: StopReason
    terminator: str | None = None


def _samples(pcm: bytes) -> array[int]:
    out = array("h", pcm)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        out.byteswap()
    return out


def _pcm(samples: array[int]) -> bytes:
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def rms(pcm: bytes) -> float:
    """Root mean square of 16-bit little-endian PCM, 0..32768."""
    samples = _samples(pcm[: len(pcm) & ~1])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def tone(frequency: float = 1000.0, seconds: float = 0.5, level: float = 0.3) -> bytes:
    """A sine tone as 16-bit 8 kHz PCM at ``level`` of full scale (the default is about -10 dBFS)."""
    count = round(seconds * SAMPLE_RATE)
    amplitude = level * 32767
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return _pcm(array("h", (round(amplitude * math.sin(step * n)) for n in range(count))))


def _ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError as exc:
        raise ValueError(f"media address must be an IP address, got {host!r}") from exc


class _Capture:
    """One ``record()`` in progress: packets placed by RTP timestamp into a growing buffer."""

    __slots__ = ("_base", "_last_arrival", "_ssrc", "buf", "last_voice", "limit", "threshold", "voiced", "written")

    def __init__(self, limit: int, threshold: float, now: float) -> None:
        self.limit = limit  # samples
        self.threshold = threshold
        self.buf = array("h")
        self.written = 0  # samples up to the end of the latest packet placed
        self.last_voice = now
        self.voiced = False  # any frame above the threshold yet
        self._last_arrival = now
        self._base: int | None = None  # RTP timestamp of sample 0 of the current source
        self._ssrc: int | None = None

    def _anchor(self, timestamp: int, now: float, size: int) -> None:
        """Continue at the end of the audio, after the silence the arrival clock says passed."""
        gap = 0 if self._base is None else max(0, round((now - self._last_arrival) * SAMPLE_RATE) - size)
        self._base = (timestamp - self.written - min(gap, _MAX_AHEAD)) & 0xFFFFFFFF

    def place(self, ssrc: int, timestamp: int, pcm: bytes, now: float) -> None:
        size = len(pcm) // 2
        if ssrc != self._ssrc or self._base is None:
            # The first packet, or a new source (RFC 3550 §8).
            self._ssrc = ssrc
            self._anchor(timestamp, now, size)
        assert self._base is not None
        offset = (timestamp - self._base) & 0xFFFFFFFF
        if offset >= 0x80000000:
            early = 0x100000000 - offset
            if early > _MAX_BEHIND or self.written + early > self.limit:
                return  # from before the recording started, or a stale packet
            # Near the start, a reordered packet from before the first one received: start earlier.
            self.buf[0:0] = array("h", bytes(2 * early))
            self.written += early
            self._base = timestamp
            offset = 0
        elif offset > self.written + _MAX_AHEAD:
            # A timestamp jump (a restarted source keeping its SSRC): re-anchor, do not fill it.
            self._anchor(timestamp, now, size)
            offset = (timestamp - self._base) & 0xFFFFFFFF
        self._last_arrival = now
        samples = _samples(pcm)
        end = min(offset + len(samples), self.limit)
        if end <= offset:
            return
        if end > len(self.buf):
            self.buf.extend(array("h", bytes(2 * (end - len(self.buf)))))
        self.buf[offset:end] = samples[: end - offset]
        self.written = max(self.written, end)
        if rms(pcm) >= self.threshold:
            self.last_voice = now
            self.voiced = True

    @property
    def full(self) -> bool:
        return self.written >= self.limit


class MediaEndpoint:
    """Ringwell as one RTP party on a port pair from ``pool`` (see the module docstring).

    ``codec`` is the negotiated G.711 law (``PCMU`` or ``PCMA``); ``event_payload_type`` the
    RFC 4733 telephone-event payload type the SDP agreed on. Needs a running event loop.
    """

    def __init__(
        self,
        pool: PortPool,
        host: str,
        *,
        codec: str = "PCMU",
        payload_type: int | None = None,
        event_payload_type: int = 101,
        label: str = "endpoint",
    ) -> None:
        self.codec = self._law(codec)
        self.payload_type = STATIC_PAYLOAD_TYPES[self.codec] if payload_type is None else payload_type
        self.event_payload_type = event_payload_type
        self.label = label
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._rtp, self._rtcp = pool.allocate(host)
        self.local_port: int = self._rtp.getsockname()[1]
        self.local_rtcp_port: int = self._rtcp.getsockname()[1]
        self.remote: tuple[str, int] | None = None
        self.rtp_dest: tuple[Any, ...] | None = None
        self.latched: tuple[Any, ...] | None = None
        self._allowed: frozenset[str] = frozenset()
        self._closed = asyncio.Event()
        self._wake = asyncio.Event()  # set on every received packet, digit and on close
        self._dtmf = DtmfCollector()
        self._digits: deque[str] = deque(maxlen=DIGIT_BUFFER)
        self._capture: _Capture | None = None
        # Sending state (RFC 3550 §5.1: random initial sequence number, timestamp and SSRC).
        self.ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts_origin = secrets.randbits(32)
        self._clock_origin = time.monotonic()
        self._next_ts = 0  # samples after _ts_origin the next packet may use at the earliest
        self._playing = False
        self.packets_sent = 0
        self.packets_received = 0
        self.foreign_dropped = 0
        self.invalid_dropped = 0
        self.unrouted_dropped = 0
        self.send_errors = 0
        self._loop.add_reader(self._rtp.fileno(), self._on_rtp)
        self._loop.add_reader(self._rtcp.fileno(), self._on_rtcp)
        log.debug("media endpoint %s: port %d", label, self.local_port)

    @staticmethod
    def _law(codec: str) -> str:
        try:
            return g711.law_of(codec)
        except ValueError as exc:
            raise CodecError(f"a media endpoint speaks PCMU or PCMA, not {codec!r}") from exc

    # -- control ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def set_codec(self, codec: str, payload_type: int | None = None, event_payload_type: int | None = None) -> None:
        """Switch to the law (and payload types) an offer/answer settled on."""
        self.codec = self._law(codec)
        self.payload_type = STATIC_PAYLOAD_TYPES[self.codec] if payload_type is None else payload_type
        if event_payload_type is not None:
            self.event_payload_type = event_payload_type

    def set_remote(self, host: str, port: int, *, signalling_host: str | None = None) -> None:
        """Send to ``host:port`` until RTP from ``host`` or ``signalling_host`` latches (as the relay)."""
        if not 0 <= port <= 65535:
            raise ValueError(f"media port must be within 0-65535, got {port}")
        ip = _ip(host)
        allowed = {a for a in (ip, None if signalling_host is None else _ip(signalling_host)) if a is not None}
        self._allowed = frozenset(a for a in allowed if not ipaddress.ip_address(a).is_unspecified)
        self.remote = (ip, port)
        self.latched = None
        self.rtp_dest = (ip, port) if port and not ipaddress.ip_address(ip).is_unspecified else None

    def close(self) -> None:
        """Hang up: stop everything in progress (it returns ``HANGUP``), free the ports (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        for sock in (self._rtp, self._rtcp):
            fd = sock.fileno()
            if fd >= 0:
                if not self._loop.is_closed():
                    self._loop.remove_reader(fd)
                sock.close()
        self._pool.release(self.local_port)
        log.debug("media endpoint %s: closed", self.label)

    async def wait_closed(self) -> None:
        """Return once the endpoint is closed (the call hung up)."""
        await self._closed.wait()

    async def __aenter__(self) -> MediaEndpoint:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    # -- receiving ---------------------------------------------------------------------------
    def _on_rtcp(self) -> None:
        # Drained so the kernel buffer never fills; the reports are not used here.
        for _ in range(_BURST):
            try:
                self._rtcp.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("media endpoint %s: RTCP receive error: %s", self.label, exc)
                return

    def _on_rtp(self) -> None:
        woke = False
        for _ in range(_BURST):
            try:
                data, addr = self._rtp.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("media endpoint %s: RTP receive error: %s", self.label, exc)
                break
            if is_rtcp(data):
                continue  # RTCP multiplexed on the RTP port (RFC 5761)
            try:
                header = parse_rtp(data)
            except ValueError:
                self.invalid_dropped += 1
                continue
            if addr != self.latched:
                if addr[0] not in self._allowed:
                    self.foreign_dropped += 1
                    continue
                self.latched = self.rtp_dest = addr
                log.info("media endpoint %s: RTP latched to %s:%d", self.label, addr[0], addr[1])
            self.packets_received += 1
            payload = data[header.payload_offset : len(data) - header.padding_length]
            woke = True
            self._receive(header, payload)
        if woke:
            self._wake.set()

    def _receive(self, header: RtpHeader, payload: bytes) -> None:
        pt = header.payload_type
        if pt == self.event_payload_type:
            try:
                event = parse_telephone_event(payload)
            except ValueError:
                self.invalid_dropped += 1
                return
            self._digits.extend(self._dtmf.feed(header.timestamp, event))
            return
        capture = self._capture
        if capture is None:
            return
        codec = self.codec if pt == self.payload_type else _CODEC_OF.get(pt)
        if codec is None:
            return  # comfort noise (RFC 3389) or a codec we did not offer: not audio we can decode
        capture.place(header.ssrc, header.timestamp, g711.decode(codec, payload), time.monotonic())

    def flush_digits(self) -> str:
        """Forget the digits typed ahead; returns them."""
        digits = "".join(self._digits)
        self._digits.clear()
        return digits

    async def _wait(self, deadline: float) -> None:
        """Wait for the next packet, digit or close, or until ``deadline`` (monotonic)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))

    # -- applications ------------------------------------------------------------------------
    async def play(self, pcm: bytes, *, stop_digits: str = "") -> StopReason:
        """Send ``pcm`` (16-bit 8 kHz mono) paced at 20 ms; ``DIGIT`` if a stop digit cut it short.

        The digit stays buffered for ``collect_digits()`` (barge-in). ``HANGUP`` when closed.
        """
        if self._playing:
            raise MediaError(f"media endpoint {self.label} is already playing")
        if len(pcm) % 2:
            pcm = pcm[:-1]
        self._playing = True
        try:
            now = time.monotonic()
            elapsed = round((now - self._clock_origin) * SAMPLE_RATE)
            start_ts = max(self._next_ts, elapsed)
            frame_bytes = 2 * FRAME_SAMPLES
            count = -(-len(pcm) // frame_bytes)
            for n in range(count):
                if self.closed:
                    return StopReason.HANGUP
                if stop_digits and any(d in stop_digits for d in self._digits):
                    return StopReason.DIGIT
                due = now + n * FRAME_SECONDS
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if self.closed:
                        return StopReason.HANGUP
                frame = pcm[n * frame_bytes : (n + 1) * frame_bytes]
                if len(frame) < frame_bytes:
                    frame += bytes(frame_bytes - len(frame))
                ts = start_ts + n * FRAME_SAMPLES
                self._send(g711.encode(self.codec, frame), ts, marker=n == 0)
                self._next_ts = ts + FRAME_SAMPLES
            if stop_digits and any(d in stop_digits for d in self._digits):
                return StopReason.DIGIT
            return StopReason.FINISHED
        finally:
            self._playing = False

    def _send(self, payload: bytes, ts: int, *, marker: bool) -> None:
        dest = self.rtp_dest
        header = struct.pack(
            "!BBHII", 0x80, (marker << 7) | self.payload_type, self._seq, (self._ts_origin + ts) & 0xFFFFFFFF, self.ssrc
        )
        self._seq = (self._seq + 1) & 0xFFFF
        if dest is None:
            self.unrouted_dropped += 1
            return
        try:
            self._rtp.sendto(header + payload, dest)
        except OSError as exc:
            self.send_errors += 1
            log.debug("media endpoint %s: RTP send error: %s", self.label, exc)
            return
        self.packets_sent += 1

    async def beep(self, frequency: float = 1000.0, seconds: float = 0.5) -> StopReason:
        """Play a tone (the voicemail beep: 1 kHz, half a second)."""
        return await self.play(tone(frequency, seconds))

    async def record(
        self,
        max_seconds: float,
        silence_seconds: float | None = None,
        stop_digits: str = "",
        *,
        silence_threshold: float = 300.0,
        initial_silence_seconds: float | None = None,
    ) -> Recording:
        """Record what the peer sends (see the module docstring).

        Digits typed before the recording started do not stop it. On ``SILENCE`` the trailing
        silence is cut off, so the message ends where the caller stopped speaking. Until the peer
        has said anything, ``initial_silence_seconds`` (when given) is the silence that stops it
        instead: a caller may take a breath after the beep.
        """
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        if self._capture is not None:
            raise MediaError(f"media endpoint {self.label} is already recording")
        self.flush_digits()
        start = time.monotonic()
        capture = _Capture(round(max_seconds * SAMPLE_RATE), silence_threshold, start)
        self._capture = capture
        reason = StopReason.HANGUP
        digit: str | None = None
        try:
            while not self.closed:
                while self._digits:
                    typed = self._digits.popleft()
                    if typed in stop_digits:
                        digit = typed
                        break
                if digit is not None:
                    reason = StopReason.DIGIT
                    break
                now = time.monotonic()
                if capture.full or now - start >= max_seconds:
                    reason = StopReason.MAX_LENGTH
                    break
                deadline = start + max_seconds
                if silence_seconds is not None:
                    quiet = silence_seconds
                    if not capture.voiced and initial_silence_seconds is not None:
                        quiet = initial_silence_seconds
                    if now - capture.last_voice >= quiet:
                        reason = StopReason.SILENCE
                        break
                    deadline = min(deadline, capture.last_voice + quiet)
                await self._wait(deadline)
        finally:
            self._capture = None
        samples = capture.buf[: capture.written]
        if reason is StopReason.SILENCE:
            samples = samples[: self._voiced_end(samples, silence_threshold)]
        return Recording(_pcm(samples), reason, digit)

    @staticmethod
    def _voiced_end(samples: array[int], threshold: float) -> int:
        """The end of the last voiced frame, plus a quarter second (a breath is not cut off)."""
        end = len(samples)
        while end > 0:
            begin = max(0, end - FRAME_SAMPLES)
            if rms(_pcm(samples[begin:end])) >= threshold:
                return min(len(samples), end + SAMPLE_RATE // 4)
            end = begin
        return 0

    # An IVR's digit timeout is part of the result (TIMEOUT with the digits so far), not a cancellation.
    async def collect_digits(self, count: int, timeout: float, terminators: str = "#") -> DigitsResult:  # noqa: ASYNC109
        """Up to ``count`` digits within ``timeout`` seconds; a terminator ends early (it is not included)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        deadline = time.monotonic() + timeout
        digits: list[str] = []
        while True:
            while self._digits:
                typed = self._digits.popleft()
                if typed in terminators:
                    return DigitsResult("".join(digits), StopReason.DIGIT, typed)
                digits.append(typed)
                if len(digits) >= count:
                    return DigitsResult("".join(digits), StopReason.COUNT)
            if self.closed:
                return DigitsResult("".join(digits), StopReason.HANGUP)
            if time.monotonic() >= deadline:
                return DigitsResult("".join(digits), StopReason.TIMEOUT)
            await self._wait(deadline)


# -- call recording ----------------------------------------------------------------------------

class _Track:
    """One side of a recorded call: samples from ``flushed`` on, placed by arrival then timestamp."""

    __slots__ = ("_anchor_pos", "_anchor_ts", "buf", "flushed")

    def __init__(self) -> None:
        self.buf = array("h")
        self.flushed = 0  # absolute sample index of buf[0]
        self._anchor_ts: int | None = None
        self._anchor_pos = 0

    def place(self, timestamp: int, pcm: bytes, arrival_pos: int, resync: int) -> None:
        pos = -1
        if self._anchor_ts is not None:
            pos = self._anchor_pos + (((timestamp - self._anchor_ts) + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        if self._anchor_ts is None or abs(pos - arrival_pos) > resync:
            # Anchor so that the packet's *end* is at its arrival: it was sampled before it came.
            self._anchor_ts = timestamp
            self._anchor_pos = pos = max(0, arrival_pos - len(pcm) // 2)
        start = pos - self.flushed
        samples = _samples(pcm)
        if start < 0:  # older than what is already on disk: too late
            samples = samples[-start:]
            start = 0
        end = start + len(samples)
        if end > len(self.buf):
            self.buf.extend(array("h", bytes(2 * (end - len(self.buf)))))
        self.buf[start:end] = samples

    def take(self, upto: int) -> array[int]:
        """Samples from ``flushed`` to ``upto`` (silence where nothing arrived), removed from the buffer."""
        n = upto - self.flushed
        if n <= 0:
            return array("h")
        out = self.buf[:n]
        if len(out) < n:
            out.extend(array("h", bytes(2 * (n - len(out)))))
        del self.buf[:n]
        self.flushed = upto
        return out


class CallRecorder:
    """A stereo recording of a relayed call: left = side ``a``, right = side ``b`` (module docstring).

    Written to a WAV at ``path``, or — with ``sink`` — handed out as interleaved 16-bit 8 kHz
    stereo PCM chunks as the call goes (e.g. to an encoder whose output is encrypted as it is
    written: nothing readable reaches the disk). ``start()`` hooks the session's tap (or, with
    ``hook=False``, leaves calling ``tap()`` to whoever owns the session's tap); ``stop()``
    unhooks, writes the rest and closes (idempotent). ``pause()``/``resume()`` drop the audio in
    between and write silence instead, e.g. while a card number is read out. Only G.711 is
    decoded; packets of other payload types (telephone-events, comfort noise) are skipped.
    """

    RESYNC_SECONDS = 0.5
    FLUSH_SECONDS = 1.0

    def __init__(self, session: MediaSession, path: Path | None = None, *,
                 sink: Callable[[bytes], None] | None = None) -> None:
        if (path is None) == (sink is None):
            raise ValueError("a call recorder writes to a path or to a sink")
        self.session = session
        self.path = path
        self._sink = sink
        self._wav: wave.Wave_write | None = None
        self._open = False
        self._hooked = False
        self._tracks = {"a": _Track(), "b": _Track()}
        self._start = 0.0
        self.paused = False
        self.paused_seconds = 0.0
        self._paused_at = 0.0
        self.packets = {"a": 0, "b": 0}
        self.skipped = 0
        self.frames_written = 0
        # Where in the flush cycle this recorder starts: recorders started together (a burst of
        # answered calls, a benchmark) would otherwise all write — and encode — in the same loop
        # iteration, stalling every call's media for tens of milliseconds.
        self._since_flush = secrets.randbelow(_FLUSH_EVERY)
        self._stopped = False

    @property
    def seconds(self) -> float:
        """Length of what was written so far."""
        return self.frames_written / SAMPLE_RATE

    def start(self, *, hook: bool = True) -> None:
        if self._open or self._stopped:
            raise MediaError("a call recorder starts once")
        if hook and self.session.tap is not None:
            raise MediaError(f"media session {self.session.label} already has a tap")
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed by stop()
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            self._wav = wav
        self._open = True
        self._start = time.monotonic()
        if hook:
            self.session.tap = self.tap
            self._hooked = True

    def _now_pos(self) -> int:
        return round((time.monotonic() - self._start) * SAMPLE_RATE)

    def tap(self, side: str, payload_type: int, sequence: int, timestamp: int, payload: bytes) -> None:
        """The relay's tap: decode and place one packet (called on the event loop)."""
        del sequence  # placement is by timestamp; the relay's statistics count sequence gaps
        codec = _CODEC_OF.get(payload_type)
        if codec is None or not self._open:
            self.skipped += 1
            return
        self.packets[side] += 1
        if self.paused:
            return
        pos = self._now_pos()
        self._tracks[side].place(timestamp, g711.decode(codec, payload), pos, round(self.RESYNC_SECONDS * SAMPLE_RATE))
        self._since_flush += 1
        if self._since_flush >= _FLUSH_EVERY:  # about twice a second with both sides talking
            self._since_flush = 0
            self._flush(pos - round(self.FLUSH_SECONDS * SAMPLE_RATE))

    def _flush(self, upto: int) -> None:
        if not self._open:
            return
        a, b = self._tracks["a"], self._tracks["b"]
        upto = max(upto, a.flushed)
        left, right = a.take(upto), b.take(upto)
        if not left:
            return
        frames = array("h", bytes(4 * len(left)))
        frames[0::2] = left
        frames[1::2] = right
        self.frames_written += len(left)
        if self._wav is not None:
            self._wav.writeframes(_pcm(frames))
        elif self._sink is not None:
            self._sink(_pcm(frames))

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._paused_at = time.monotonic()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.paused_seconds += time.monotonic() - self._paused_at

    def stop(self) -> Path | None:
        """Unhook, write what is buffered and close (idempotent); returns the WAV's path, if any."""
        if self._stopped:
            return self.path
        self._stopped = True
        self.resume()
        if self._hooked and self.session.tap == self.tap:
            self.session.tap = None
        if self._open:
            ends = [t.flushed + len(t.buf) for t in self._tracks.values()]
            self._flush(max(ends))
            self._open = False
            if self._wav is not None:
                self._wav.close()
                self._wav = None
        return self.path
