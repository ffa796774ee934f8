"""Ringwell speaking into a relayed call: one prompt to both legs at once ("this call is being recorded").

Theory of operation
-------------------
``announce()`` mutes the session (``MediaSession.muted``: the relay stops forwarding, so the
parties do not hear each other meanwhile) and installs a *substitution*
(``MediaSession.substitute``): each RTP packet one leg sends while the prompt lasts is forwarded to
the other leg with its payload replaced by the next stretch of the prompt — as many samples as
the packet carried, in the G.711 law of its payload type. Header, SSRC, sequence number and
timestamp stay those of the stream the receiving phone already plays, so to that phone the
prompt is just more audio of the same source: no new SSRC, no jump in the sequence or the
timestamp, nothing for its jitter buffer to resynchronise (softphones were seen to drop the start
of a new source — baresip 1.0 for seconds). Pacing is the sender's own.

A leg whose peer sends nothing (a phone with silence suppression, or one that is slow to start)
would hear nothing that way: when no packet came for it for ``READY_TIMEOUT`` seconds, the rest
of the prompt goes to it as Ringwell's own stream from that leg's relay socket
(``MediaSide.send_rtp``): random SSRC, sequence number and timestamp (RFC 3550 §5.1), marker bit on
the first packet (RFC 3551 §4.1), packet *n* at ``start + n * 20 ms`` on the monotonic clock.

When every leg has had the whole prompt — or the session closes, or the task is cancelled — the
substitution is removed and the session unmuted: the parties hear each other again. With
``repeat`` (music on hold) the prompt starts over at its end until the task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
from dataclasses import dataclass

from ringwell.media import g711
from ringwell.media.relay import MediaSession, MediaSide
from ringwell.media.rtp import parse_rtp

__all__ = ["READY_TIMEOUT", "LegCodec", "announce"]

log = logging.getLogger(__name__)

_FRAME = 160  # samples: 20 ms at 8 kHz
READY_TIMEOUT = 0.6  # seconds without a packet to substitute before a leg gets a stream of Ringwell's own
_PLAYOUT = 0.1  # after the last packet: the phone plays it out before the parties hear each other
_HEADER = struct.Struct("!BBHII")
_LAW_OF_PT = {0: "PCMU", 8: "PCMA"}


@dataclass(frozen=True, slots=True)
class LegCodec:
    """The G.711 law a leg receives and its payload type (0 PCMU, 8 PCMA unless an SDP said otherwise)."""

    codec: str
    payload_type: int


class _Leg:
    """The prompt's progress towards one leg."""

    __slots__ = ("codec", "last", "offset", "own", "pt", "side")

    def __init__(self, side: MediaSide, leg: LegCodec, now: float) -> None:
        self.side = side
        self.codec = g711.law_of(leg.codec)
        self.pt = leg.payload_type
        self.offset = 0  # bytes of the prompt's PCM already sent to this leg
        self.last = now  # monotonic time of the last packet sent to it
        self.own: asyncio.Task[None] | None = None


class _Substitution:
    def __init__(self, pcm: bytes, legs: dict[str, _Leg], repeat: bool = False) -> None:
        self.pcm = pcm
        self.legs = legs
        self.repeat = repeat

    def done(self, leg: _Leg) -> bool:
        if self.repeat and leg.offset >= len(self.pcm):
            leg.offset = 0  # music on hold: from the top
        return leg.offset >= len(self.pcm)

    def __call__(self, to_side: str, packet: bytes) -> bytes | None:
        """The packet to send to ``to_side`` instead of ``packet`` (None: drop it)."""
        leg = self.legs.get(to_side)
        if leg is None or leg.own is not None or self.done(leg):
            return None
        try:
            header = parse_rtp(packet)
        except ValueError:
            return None
        law = _LAW_OF_PT.get(header.payload_type)
        if law is None and header.payload_type == leg.pt:
            law = leg.codec
        if law is None:
            return None  # telephone-events, comfort noise: not while the prompt plays
        samples = len(packet) - header.payload_offset - header.padding_length
        chunk = self.pcm[leg.offset:leg.offset + 2 * samples]
        chunk += bytes(2 * samples - len(chunk))
        leg.offset += 2 * samples
        leg.last = time.monotonic()
        head = bytearray(packet[:header.payload_offset])
        head[0] &= 0xDF  # no padding: the payload is ours now
        return bytes(head) + g711.encode(law, chunk)


async def _own_stream(sub: _Substitution, leg: _Leg) -> None:
    """The rest of the prompt as Ringwell's own RTP stream to a leg nobody sends to."""
    ssrc, seq, ts = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
    start = time.monotonic()
    n = 0
    frame_bytes = 2 * _FRAME
    while not sub.done(leg):
        delay = start + n * _FRAME / 8000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = sub.pcm[leg.offset:leg.offset + frame_bytes]
        chunk += bytes(frame_bytes - len(chunk))
        header = _HEADER.pack(0x80, (0x80 if n == 0 else 0) | leg.pt, seq, ts, ssrc)
        leg.side.send_rtp(header + g711.encode(leg.codec, chunk))
        leg.offset += frame_bytes
        leg.last = time.monotonic()
        seq, ts, n = (seq + 1) & 0xFFFF, (ts + _FRAME) & 0xFFFFFFFF, n + 1


async def announce(session: MediaSession, pcm: bytes, legs: dict[str, LegCodec], *,
                   ready_timeout: float = READY_TIMEOUT, repeat: bool = False) -> bool:
    """Play ``pcm`` (16-bit 8 kHz mono) to the legs named in ``legs`` (``a``/``b``) while muted.

    Returns True when every leg had the whole prompt, False when the session closed first. With
    ``repeat`` it plays on, from the top, until cancelled (or the session closes).
    """
    if len(pcm) % 2:
        pcm = pcm[:-1]
    if not pcm:
        return True
    now = time.monotonic()
    state = {name: _Leg(session.a if name == "a" else session.b, leg, now) for name, leg in legs.items()}
    sub = _Substitution(pcm, state, repeat)
    session.muted = True
    session.substitute = sub
    try:
        while not all(sub.done(leg) for leg in state.values()):
            if session.closed:
                return False
            now = time.monotonic()
            for leg in state.values():
                if leg.own is None and not sub.done(leg) and now - leg.last > ready_timeout:
                    log.debug("media %s: nothing to carry the prompt to %s: Ringwell's own stream",
                              session.label, leg.side.name)
                    leg.own = asyncio.ensure_future(_own_stream(sub, leg))
            await asyncio.sleep(0.02)
        await asyncio.sleep(_PLAYOUT)
        return not session.closed
    finally:
        for leg in state.values():
            if leg.own is not None:
                leg.own.cancel()
        if session.substitute is sub:
            session.substitute = None
        session.muted = False
        log.debug("media %s: announced %.1f s to %s", session.label, len(pcm) / 16000, ",".join(sorted(legs)))
