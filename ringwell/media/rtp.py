"""RTP and RTCP packets and per-stream reception statistics (sans-IO, standard library only).

Theory of operation
-------------------
The relay does not decode media: it reads the fixed 12-byte RTP header (RFC 3550 §5.1) of each
packet to keep reception statistics and forwards the datagram unchanged. ``StreamStats``
implements the receiver-side bookkeeping of RFC 3550 Appendix A:

* A.1 sequence number validation: extended highest sequence number (16-bit wrap counted in
  ``cycles``), tolerated dropouts (``MAX_DROPOUT``) and misordering (``MAX_MISORDER``), and the
  "two sequential packets after a huge jump" resynchronisation. The probation of a new source
  (``MIN_SEQUENTIAL``) is not applied: the relay already knows the source from signalling, so the
  first packet counts.
* A.3 expected and lost packets: ``expected = extended_max - base_seq + 1`` and
  ``lost = expected - received`` (negative when duplicates arrive, as the RFC allows).
* A.8 interarrival jitter in timestamp units: ``J += (|D| - J) / 16``.

A change of SSRC is a new source (RFC 3550 §8) and so a new stream: the caller calls ``reset()``.

``parse_rtcp`` reads compound RTCP packets (RFC 3550 §6.1) and returns the report blocks of
SR (§6.4.1) and RR (§6.4.2) packets; SDES, BYE, APP and unknown packet types are skipped.
Every parser raises ``ValueError`` with a precise message for malformed input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "RTP_HEADER_SIZE",
    "RTP_SEQ_MOD",
    "RtcpReport",
    "RtpHeader",
    "StreamStats",
    "is_rtcp",
    "parse_rtcp",
    "parse_rtp",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
RTP_SEQ_MOD = 1 << 16
# RFC 3550 A.1: a forward jump of up to MAX_DROPOUT is loss; a step back of up to MAX_MISORDER is
# reordering; anything else is a restarted or broken source.
MAX_DROPOUT = 3000
MAX_MISORDER = 100

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

_RTP_FIXED = struct.Struct("!BBHII")
_RTCP_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IB3sIIII")
_REPORT_BLOCK_SIZE = _REPORT_BLOCK.size  # 24
_SENDER_INFO_SIZE = 20  # NTP timestamp (8), RTP timestamp, packet count, octet count


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The RTP fixed header (RFC 3550 §5.1), plus the CSRC list and where the payload lies."""

    version: int
    padding: bool
    extension: bool
    csrc_count: int
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...] = ()
    payload_offset: int = RTP_HEADER_SIZE
    """First payload byte: after the CSRC list and the header extension (§5.3.1)."""
    padding_length: int = 0
    """Padding octets at the end of the packet, including the count octet itself (§5.1 P)."""

    def serialize(self) -> bytes:
        """The fixed header and CSRC list (no extension), e.g. to build test packets."""
        b0 = (self.version << 6) | (self.padding << 5) | (self.extension << 4) | len(self.csrcs)
        b1 = (self.marker << 7) | self.payload_type
        head = _RTP_FIXED.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)
        return head + b"".join(c.to_bytes(4, "big") for c in self.csrcs)


def is_rtcp(data: bytes) -> bool:
    """True when a packet on a multiplexed RTP port is RTCP (RFC 5761 §4: second octet 192–223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_rtp(data: bytes) -> RtpHeader:
    """Parse and validate an RTP header (RFC 3550 §5.1, §5.3.1).

    Raises ``ValueError`` when the packet is shorter than its header, is not version 2, or its
    CSRC list, header extension or padding run past the end of the packet.
    """
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise ValueError(f"RTP packet too short: {size} bytes, need at least {RTP_HEADER_SIZE}")
    b0, b1, sequence, timestamp, ssrc = _RTP_FIXED.unpack_from(data)
    version = b0 >> 6
    if version != RTP_VERSION:
        raise ValueError(f"RTP version must be 2, got {version}")
    padding = bool(b0 & 0x20)
    extension = bool(b0 & 0x10)
    csrc_count = b0 & 0x0F
    offset = RTP_HEADER_SIZE + 4 * csrc_count
    if size < offset:
        raise ValueError(f"RTP packet too short for {csrc_count} CSRCs: {size} bytes")
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE) if csrc_count else ()
    if extension:
        if size < offset + 4:
            raise ValueError("RTP header extension truncated")
        words = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += 4 + 4 * words
        if size < offset:
            raise ValueError(f"RTP header extension of {words} words runs past the end of the packet")
    padding_length = 0
    if padding:
        padding_length = data[-1]
        if padding_length == 0 or offset + padding_length > size:
            raise ValueError(f"RTP padding length {padding_length} is invalid for a {size}-byte packet")
    return RtpHeader(
        version=version,
        padding=padding,
        extension=extension,
        csrc_count=csrc_count,
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        csrcs=tuple(csrcs),
        payload_offset=offset,
        padding_length=padding_length,
    )


class StreamStats:
    """Reception statistics of one RTP stream (one SSRC), RFC 3550 Appendix A.1, A.3 and A.8.

    ``update()`` is called once per received packet with the arrival time in seconds on a
    monotonic clock. ``packets``/``bytes`` count every packet given to ``update()``; ``received``
    is A.1's count of valid packets, the one ``lost`` is computed from.
    """

    __slots__ = (
        "_bad_seq",
        "_last_arrival",
        "_last_timestamp",
        "base_seq",
        "bytes",
        "clock_rate",
        "cycles",
        "jitter",
        "max_gap",
        "max_seq",
        "packets",
        "received",
        "started",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next packet starts a new stream (e.g. a new SSRC)."""
        self.started = False
        self.packets = 0
        self.bytes = 0
        self.received = 0
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self.jitter = 0.0
        """Interarrival jitter estimate in timestamp units (RFC 3550 §6.4.1, A.8)."""
        self.max_gap = 0
        """The most consecutive sequence numbers seen missing in one forward jump."""
        self.clock_rate = 8000
        self._last_arrival = 0.0
        self._last_timestamp = 0

    def _init_seq(self, sequence: int) -> None:
        # RFC 3550 A.1 init_seq(); probation is not used (see the module docstring).
        self.base_seq = sequence
        self.max_seq = sequence
        self._bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0

    def update(self, sequence: int, timestamp: int, arrival: float, size: int, clock_rate: int = 8000) -> None:
        """Account one packet: RFC 3550 A.1 ``update_seq()`` then the A.8 jitter step."""
        self.packets += 1
        self.bytes += size
        if not self.started:
            self.started = True
            self.clock_rate = clock_rate
            self._init_seq(sequence)
            self.received = 1
            self._last_arrival = arrival
            self._last_timestamp = timestamp
            return
        udelta = (sequence - self.max_seq) & 0xFFFF
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap (udelta 0 is a duplicate; A.1 counts it).
            if sequence < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            if udelta > 1 and udelta - 1 > self.max_gap:
                self.max_gap = udelta - 1
            self.max_seq = sequence
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: accept it only when the next packet follows it (the source
            # restarted without changing SSRC); otherwise the packet is invalid and ignored.
            if sequence != self._bad_seq:
                self._bad_seq = (sequence + 1) & 0xFFFF
                return
            self._init_seq(sequence)
            self._last_arrival = arrival
            self._last_timestamp = timestamp
            self.received = 1
            return
        # else: a duplicate or reordered packet, counted as received.
        self.received += 1
        # A.8: D(i,j) = (Rj - Ri) - (Sj - Si), with the timestamp difference taken modulo 2**32 as a
        # signed number so that a wrapping RTP timestamp does not look like a huge transit change.
        self.clock_rate = clock_rate
        dts = (timestamp - self._last_timestamp) & 0xFFFFFFFF
        if dts >= 0x80000000:
            dts -= 0x100000000
        d = (arrival - self._last_arrival) * clock_rate - dts
        if d < 0:
            d = -d
        self.jitter += (d - self.jitter) / 16.0
        self._last_arrival = arrival
        self._last_timestamp = timestamp

    @property
    def extended_max(self) -> int:
        """The extended highest sequence number received (cycles + max_seq), RFC 3550 A.3."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the stream started (RFC 3550 A.3)."""
        if not self.started:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost: expected - received; negative with duplicates (RFC 3550 §6.4.1)."""
        return self.expected - self.received if self.started else 0

    @property
    def loss_fraction(self) -> float:
        """Lost / expected since the start, clamped to 0..1."""
        expected = self.expected
        if expected <= 0:
            return 0.0
        return min(1.0, max(0, self.lost) / expected)

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter in milliseconds at the stream's clock rate."""
        return self.jitter * 1000.0 / self.clock_rate

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "expected": self.expected,
            "lost": self.lost,
            "loss_fraction": round(self.loss_fraction, 6),
            "jitter_ms": round(self.jitter_ms, 3),
            "max_gap": self.max_gap,
        }


@dataclass(frozen=True, slots=True)
class RtcpReport:
    """One report block of an SR or RR packet (RFC 3550 §6.4.1).

    ``reporter_ssrc`` sent the report about the source ``ssrc``. ``jitter`` is in timestamp units
    of that source; ``lsr``/``dlsr`` are the middle 32 bits of an NTP timestamp and a delay in
    1/65536 s.
    """

    packet_type: int
    reporter_ssrc: int
    ssrc: int
    fraction_lost: float
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int


def parse_rtcp(data: bytes) -> list[RtcpReport]:
    """The SR/RR report blocks of a (compound) RTCP packet, in order (RFC 3550 §6.1, §6.4).

    Other packet types (SDES, BYE, APP, XR, feedback) are skipped by their length field. Raises
    ``ValueError`` when a header is truncated, not version 2, its length runs past the datagram,
    its padding is invalid, or an SR/RR is too short for its report count.
    """
    reports: list[RtcpReport] = []
    size = len(data)
    if size < _RTCP_HEADER.size:
        raise ValueError(f"RTCP packet too short: {size} bytes, need at least 4")
    pos = 0
    while pos < size:
        remaining = size - pos
        if remaining < _RTCP_HEADER.size:
            raise ValueError(f"RTCP header truncated: {remaining} bytes left at offset {pos}")
        b0, packet_type, words = _RTCP_HEADER.unpack_from(data, pos)
        version = b0 >> 6
        if version != RTP_VERSION:
            raise ValueError(f"RTCP version must be 2, got {version}")
        length = 4 * (words + 1)
        if length > remaining:
            raise ValueError(f"RTCP length field ({words} words) exceeds the {remaining} bytes left at offset {pos}")
        end = pos + length
        if b0 & 0x20:  # padding: the last octet counts the padding octets (§6.4.1 P)
            pad = data[end - 1]
            if pad == 0 or pad > length - _RTCP_HEADER.size:
                raise ValueError(f"RTCP padding length {pad} is invalid for a {length}-byte packet")
            end -= pad
        if packet_type in (RTCP_SR, RTCP_RR):
            count = b0 & 0x1F
            body = pos + _RTCP_HEADER.size
            blocks = body + 4 + (_SENDER_INFO_SIZE if packet_type == RTCP_SR else 0)
            if blocks + count * _REPORT_BLOCK_SIZE > end:
                name = "SR" if packet_type == RTCP_SR else "RR"
                raise ValueError(f"RTCP {name} of {length} bytes too short for {count} report blocks")
            reporter = int.from_bytes(data[body : body + 4], "big")
            for i in range(count):
                ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
                    data, blocks + i * _REPORT_BLOCK_SIZE
                )
                cumulative = int.from_bytes(lost, "big", signed=True)
                reports.append(
                    RtcpReport(packet_type, reporter, ssrc, fraction / 256.0, cumulative, highest, jitter, lsr, dlsr)
                )
        pos += length
    return reports
