"""RFC 4733 telephone-events: reading DTMF digits from RTP (pure, no I/O).

A key press is one event: packets with the same RTP timestamp, updated durations, and (at
least) one final packet with the E bit set — usually sent three times (§2.5.1.4). A digit is
reported once, when its first end packet arrives; a new timestamp without an end packet
for the previous one (all end packets lost) reports the previous digit then.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["EVENT_DIGITS", "DtmfCollector", "TelephoneEvent", "parse_telephone_event"]

EVENT_DIGITS = "0123456789*#ABCD"  # event codes 0-15 (§3.2)
_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return EVENT_DIGITS[self.event] if self.event < len(EVENT_DIGITS) else None


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """The first event of a telephone-event payload; ``ValueError`` if shorter than 4 bytes."""
    if len(payload) < 4:
        raise ValueError(f"telephone-event payload too short: {len(payload)} bytes, need 4")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class DtmfCollector:
    """Turns a stream of (RTP timestamp, event) into digits, each reported once."""

    def __init__(self) -> None:
        self._current: int | None = None  # timestamp of the event in progress
        self._pending: str | None = None  # its digit, not yet reported
        self._done: set[int] = set()

    def feed(self, timestamp: int, event: TelephoneEvent) -> list[str]:
        out: list[str] = []
        if timestamp in self._done:
            return out  # a repeated end packet
        if self._current is not None and timestamp != self._current and self._pending is not None:
            out.append(self._pending)  # the previous event's end packets were all lost
            self._done.add(self._current)
        self._current = timestamp
        self._pending = event.digit
        if event.end:
            if event.digit is not None:
                out.append(event.digit)
            self._done.add(timestamp)
            self._pending = None
            if len(self._done) > 64:
                self._done = {timestamp}
        return out
