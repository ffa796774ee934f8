"""Anchored media for the B2BUA: an RTP/RTCP relay between two call legs (asyncio shell).

Theory of operation
-------------------
A ``MediaSession`` joins two legs, ``a`` (the caller) and ``b`` (the callee). Each ``MediaSide``
owns a local RTP port and the RTCP port above it; the SDP Ringwell sends to a leg names that
side's ports. A datagram arriving on A's RTP socket leaves from B's RTP socket towards B's phone,
and the other way round; RTCP likewise between the RTCP sockets. Payloads and headers pass
through untouched (PCMU, PCMA, RFC 4733 events): the relay only reads the 12-byte RTP header
for statistics (``ringwell.media.rtp``).

Where a leg's media goes
~~~~~~~~~~~~~~~~~~~~~~~~
``set_remote()`` gives the address of the leg's SDP (``c=``/``m=``) and optionally the host the
leg's signalling came from. Until the side *latches*, media for the leg goes to the SDP address.
Symmetric RTP (RFC 4961; what RTP proxies call "comedia" mode) gets media through NAT: the first
valid RTP packet from a source whose IP is the SDP host or the signalling host latches the side,
and from then on media for the leg is sent back to that source address and port. RTCP latches
separately on the RTCP socket. Packets from other IPs are dropped and counted (``foreign_dropped``)
and never latch, so a stranger cannot steal the stream. A new ``set_remote()`` (re-INVITE, another
fork answering) clears both latches. While a leg has no address (no ``set_remote()`` yet,
``c=0.0.0.0`` or port 0) media towards it is dropped and counted on the sending side
(``unrouted_dropped``). Non-RTP datagrams (STUN, too short, not version 2) are dropped and counted
(``invalid_dropped``); RTCP multiplexed on the RTP port (RFC 5761) is relayed as it came and read
for reports.

Media timeout
~~~~~~~~~~~~~
Once a session is ``arm()``-ed (the call was answered), the relay's checker task calls
``on_timeout(session)`` once if no RTP arrived from either leg for ``timeout`` seconds, measured
on the monotonic clock from the later of the arming and the last RTP packet.

Tap
~~~
``MediaSession.tap``, when set (a call recorder), is called with ``(side, payload_type,
sequence, timestamp, payload)`` for every RTP packet accepted from a leg, before it is
forwarded; ``side`` is the leg it came from. An exception in the tap is logged and the packet
is forwarded all the same. When no tap is set, the cost is one attribute read per burst and one
``is not None`` test per packet.

Announcements
~~~~~~~~~~~~~
While ``MediaSession.muted`` is set, RTP from either leg is still accepted (counted, latched,
tapped) but not forwarded (``muted_dropped``), so that Ringwell can speak to both legs itself
(``ringwell.media.announce``) without two streams interleaving at a phone: either through
``MediaSession.substitute`` — called with the receiving side's name and the packet, it returns the
packet to forward instead (same header, Ringwell's payload) or None to drop it — or with
``MediaSide.send_rtp()``, from the side's own socket to where that side's media goes. RTCP is
relayed as usual.

Performance
~~~~~~~~~~~
Each socket is watched with ``loop.add_reader()`` and drained with ``recvfrom_into()`` into one
buffer shared by the relay (the loop is single-threaded and each datagram is sent on before the
next is read) up to ``BURST`` datagrams per wake-up; the datagram is sent on with ``sendto()`` of
a memoryview slice. Counters are kept in locals during a burst and stored once after it.

Unlike the SIP transports (STYLE.md §2) there is no intake queue: a queue hop would roughly double
the per-packet cost, and forwarding needs no other state. Each socket's kernel receive buffer is
the bounded queue; under overload the kernel drops there, and the loss shows in ``StreamStats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from ringwell.media.ports import PortPool
from ringwell.media.rtp import RtcpReport, StreamStats, parse_rtcp, parse_rtp

__all__ = ["BURST", "MediaRelay", "MediaSession", "MediaSide", "Tap"]

log = logging.getLogger(__name__)

BURST = 64
"""Datagrams read from one socket per readiness event, so that one busy call cannot starve others."""
MAX_DATAGRAM = 65535
_RTP_HEADER = struct.Struct("!xBHII")  # payload-type octet, sequence, timestamp, SSRC
_RTP_MIN = 12
_RTCP_MIN = 8  # an RR with no report blocks

Tap = Callable[[str, int, int, int, bytes], None]
"""(side ``a``/``b``, payload type, sequence number, RTP timestamp, payload) of one RTP packet."""


def _ip(host: str) -> str:
    """The canonical text form of an IP literal, as ``recvfrom()`` reports source addresses."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError as exc:
        raise ValueError(f"media address must be an IP address, got {host!r}") from exc


def _is_unspecified(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


def _addr(addr: tuple[Any, ...] | None) -> dict[str, Any] | None:
    return None if addr is None else {"host": addr[0], "port": addr[1]}


class MediaSide:
    """One leg's local ports, remote address, latching state and counters.

    ``packets_received``/``bytes_received`` count RTP accepted from this leg;
    ``packets_forwarded``/``bytes_forwarded`` count those sent on to the other leg.
    """

    __slots__ = (
        "_allowed",
        "_buf",
        "_loop",
        "_pool",
        "_rtcp_sock",
        "_rtp_sock",
        "_session",
        "_view",
        "bytes_forwarded",
        "bytes_received",
        "clock_rate",
        "foreign_dropped",
        "invalid_dropped",
        "last_report",
        "latched",
        "latched_rtcp",
        "local_port",
        "local_rtcp_port",
        "muted_dropped",
        "name",
        "packets_forwarded",
        "packets_injected",
        "packets_received",
        "payload_types",
        "peer",
        "remote",
        "remote_rtcp",
        "rtcp_dest",
        "rtcp_forwarded",
        "rtcp_malformed",
        "rtcp_received",
        "rtcp_reports",
        "rtp_dest",
        "send_errors",
        "signalling_host",
        "ssrc",
        "ssrc_changes",
        "stats",
        "unrouted_dropped",
    )

    def __init__(
        self,
        session: MediaSession,
        name: str,
        rtp_sock: socket.socket,
        rtcp_sock: socket.socket,
        buf: bytearray,
        pool: PortPool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._session = session
        self.name = name
        self._rtp_sock = rtp_sock
        self._rtcp_sock = rtcp_sock
        self._buf = buf
        self._view = memoryview(buf)
        self._pool = pool
        self._loop = loop
        self.local_port: int = rtp_sock.getsockname()[1]
        self.local_rtcp_port: int = rtcp_sock.getsockname()[1]
        self.peer: MediaSide = self  # replaced by the session once both sides exist
        self.clock_rate = 8000
        """RTP clock rate of the stream this leg sends (8000 for G.711); used for jitter in ms."""
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.signalling_host: str | None = None
        self._allowed: frozenset[str] = frozenset()
        self.latched: tuple[Any, ...] | None = None
        self.latched_rtcp: tuple[Any, ...] | None = None
        self.rtp_dest: tuple[Any, ...] | None = None
        """Where media for this leg is sent: the latched source, else the SDP address, else nowhere."""
        self.rtcp_dest: tuple[Any, ...] | None = None
        self.stats = StreamStats()
        self.ssrc: int | None = None
        self.ssrc_changes = 0
        self.payload_types: set[int] = set()
        self.packets_received = 0
        self.bytes_received = 0
        self.packets_forwarded = 0
        self.bytes_forwarded = 0
        self.foreign_dropped = 0
        self.invalid_dropped = 0
        self.unrouted_dropped = 0
        self.muted_dropped = 0
        self.packets_injected = 0
        self.send_errors = 0
        self.rtcp_received = 0
        self.rtcp_forwarded = 0
        self.rtcp_malformed = 0
        self.rtcp_reports = 0
        self.last_report: RtcpReport | None = None

    # -- control ---------------------------------------------------------------------------
    def set_remote(self, host: str, port: int, rtcp_port: int, *, signalling_host: str | None = None) -> None:
        """Send this leg's media to ``host:port`` (RTCP to ``host:rtcp_port``) until it latches.

        ``host`` is the leg's SDP connection address, ``signalling_host`` the source of its SIP
        messages; RTP from either IP may latch the side. ``0.0.0.0``/``::`` (RFC 3264 §8.4 hold)
        or port 0 (§8.2, a removed stream) mean: send nothing. Any earlier latch is cleared.
        Raises ``ValueError`` for a host that is not an IP literal of the relay's address family
        or a port outside 0-65535.
        """
        for value in (port, rtcp_port):
            if not 0 <= value <= 65535:
                raise ValueError(f"media port must be within 0-65535, got {value}")
        ip = _ip(host)
        signalling = None if signalling_host is None else _ip(signalling_host)
        family = self._rtp_sock.family
        for candidate in (ip, signalling):
            if candidate is not None and (":" in candidate) != (family == socket.AF_INET6):
                raise ValueError(f"media address {candidate} is not of the relay's address family")
        allowed = {a for a in (ip, signalling) if a is not None and not _is_unspecified(a)}
        send = not _is_unspecified(ip)
        self.remote = (ip, port)
        self.remote_rtcp = (ip, rtcp_port)
        self.signalling_host = signalling
        self._allowed = frozenset(allowed)
        self.latched = None
        self.latched_rtcp = None
        self.rtp_dest = (ip, port) if send and port else None
        self.rtcp_dest = (ip, rtcp_port) if send and rtcp_port else None
        log.debug(
            "media %s/%s: remote %s:%d (RTCP %d), signalling %s",
            self._session.label,
            self.name,
            ip,
            port,
            rtcp_port,
            signalling,
        )

    def send_rtp(self, packet: bytes) -> bool:
        """Send one RTP packet of Ringwell's own to this leg (an announcement); False if it has nowhere to go."""
        dest = self.rtp_dest
        if dest is None or self._rtp_sock.fileno() < 0:
            return False
        try:
            self._rtp_sock.sendto(packet, dest)
        except OSError as exc:
            self.send_errors += 1
            log.debug("media %s/%s: RTP send error: %s", self._session.label, self.name, exc)
            return False
        self.packets_injected += 1
        return True

    def _admit(self, addr: tuple[Any, ...], rtcp: bool) -> bool:
        """Whether a packet from ``addr`` belongs to this leg; latches on the first one."""
        if addr[0] not in self._allowed:
            return False
        if rtcp:
            if self.latched_rtcp is None:
                self.latched_rtcp = self.rtcp_dest = addr
                log.info("media %s/%s: RTCP latched to %s:%d", self._session.label, self.name, addr[0], addr[1])
        elif self.latched is None:
            self.latched = self.rtp_dest = addr
            log.info("media %s/%s: RTP latched to %s:%d", self._session.label, self.name, addr[0], addr[1])
        return True

    def _new_ssrc(self, ssrc: int) -> None:
        # RFC 3550 §8: a new SSRC is a new source; its statistics start afresh.
        if self.ssrc is not None:
            self.ssrc_changes += 1
        self.ssrc = ssrc
        self.stats.reset()

    def _rtcp_seen(self, data: bytes) -> None:
        self.rtcp_received += 1
        try:
            reports = parse_rtcp(data)
        except ValueError as exc:
            self.rtcp_malformed += 1
            log.debug("media %s/%s: malformed RTCP: %s", self._session.label, self.name, exc)
            return
        if reports:
            self.rtcp_reports += len(reports)
            self.last_report = reports[-1]

    # -- data plane --------------------------------------------------------------------------
    def _on_rtp(self) -> None:
        """Drain this leg's RTP socket, forwarding each packet from the peer's RTP socket."""
        recv_into = self._rtp_sock.recvfrom_into
        buf = self._buf
        view = self._view
        peer = self.peer
        dest = peer.rtp_dest
        send = peer._rtp_sock.sendto
        stats = self.stats
        update = stats.update
        latched = self.latched
        unpack = _RTP_HEADER.unpack_from
        monotonic = time.monotonic
        add_pt = self.payload_types.add
        clock_rate = self.clock_rate
        ssrc_now = self.ssrc
        tap = self._session.tap
        muted = self._session.muted
        received = nbytes = forwarded = fbytes = 0
        now = 0.0
        try:
            for _ in range(BURST):
                try:
                    size, addr = recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    log.debug("media %s/%s: RTP receive error: %s", self._session.label, self.name, exc)
                    break
                if size < _RTP_MIN or buf[0] & 0xC0 != 0x80:
                    self.invalid_dropped += 1
                    continue
                if addr != latched:
                    if not self._admit(addr, rtcp=False):
                        self.foreign_dropped += 1
                        continue
                    latched = self.latched
                b1, sequence, timestamp, ssrc = unpack(buf)
                if 200 <= b1 <= 204:
                    # RTCP multiplexed on the RTP port (RFC 5761 §4): read it, relay it as it came.
                    self._rtcp_seen(bytes(view[:size]))
                else:
                    now = monotonic()
                    if ssrc != ssrc_now:
                        self._new_ssrc(ssrc)
                        ssrc_now = ssrc
                    update(sequence, timestamp, now, size, clock_rate)
                    add_pt(b1 & 0x7F)
                    received += 1
                    nbytes += size
                    if tap is not None:
                        self._tap(tap, bytes(view[:size]))
                if dest is None:
                    self.unrouted_dropped += 1
                    continue
                if muted and not 200 <= b1 <= 204:
                    substitute = self._session.substitute
                    packet = substitute(peer.name, bytes(view[:size])) if substitute is not None else None
                    if packet is None or not peer.send_rtp(packet):
                        self.muted_dropped += 1
                    continue
                try:
                    send(view[:size], dest)
                except OSError as exc:  # full send buffer or unreachable peer: UDP may lose it
                    self.send_errors += 1
                    log.debug("media %s/%s: RTP send error: %s", self._session.label, self.name, exc)
                    continue
                forwarded += 1
                fbytes += size
        finally:
            if received:
                self.packets_received += received
                self.bytes_received += nbytes
                self._session.last_rtp = now
            if forwarded:
                self.packets_forwarded += forwarded
                self.bytes_forwarded += fbytes

    def _tap(self, tap: Tap, data: bytes) -> None:
        """Hand a copy of one accepted RTP packet's payload to the session's tap."""
        try:
            header = parse_rtp(data)
            payload = data[header.payload_offset : len(data) - header.padding_length]
            tap(self.name, header.payload_type, header.sequence, header.timestamp, payload)
        except ValueError:
            return  # a header the relay forwards but whose extension or padding is broken
        except Exception:
            log.exception("media %s/%s: tap failed", self._session.label, self.name)

    def _on_rtcp(self) -> None:
        """Drain this leg's RTCP socket: record its reports, forward from the peer's RTCP socket."""
        recvfrom = self._rtcp_sock.recvfrom
        peer = self.peer
        for _ in range(BURST):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("media %s/%s: RTCP receive error: %s", self._session.label, self.name, exc)
                return
            if len(data) < _RTCP_MIN or data[0] & 0xC0 != 0x80:
                self.invalid_dropped += 1
                continue
            if addr != self.latched_rtcp and not self._admit(addr, rtcp=True):
                self.foreign_dropped += 1
                continue
            self._rtcp_seen(data)
            dest = peer.rtcp_dest
            if dest is None:
                self.unrouted_dropped += 1
                continue
            try:
                peer._rtcp_sock.sendto(data, dest)
            except OSError as exc:
                self.send_errors += 1
                log.debug("media %s/%s: RTCP send error: %s", self._session.label, self.name, exc)
                continue
            self.rtcp_forwarded += 1

    # -- lifecycle -----------------------------------------------------------------------------
    def _start(self) -> None:
        self._loop.add_reader(self._rtp_sock.fileno(), self._on_rtp)
        self._loop.add_reader(self._rtcp_sock.fileno(), self._on_rtcp)

    def _close(self) -> None:
        for sock in (self._rtp_sock, self._rtcp_sock):
            fd = sock.fileno()
            if fd >= 0:
                if not self._loop.is_closed():
                    self._loop.remove_reader(fd)
                sock.close()
        self._pool.release(self.local_port)

    def summary(self) -> dict[str, Any]:
        """Ports, addresses, counters, stream statistics and the leg's latest RTCP report."""
        report = self.last_report
        peer_rate = getattr(self, "peer", self).clock_rate  # the peer link is gone once closed
        return {
            "local_port": self.local_port,
            "local_rtcp_port": self.local_rtcp_port,
            "remote": _addr(self.remote),
            "remote_rtcp": _addr(self.remote_rtcp),
            "signalling_host": self.signalling_host,
            "latched": _addr(self.latched),
            "latched_rtcp": _addr(self.latched_rtcp),
            "packets_received": self.packets_received,
            "bytes_received": self.bytes_received,
            "packets_forwarded": self.packets_forwarded,
            "bytes_forwarded": self.bytes_forwarded,
            "foreign_dropped": self.foreign_dropped,
            "invalid_dropped": self.invalid_dropped,
            "unrouted_dropped": self.unrouted_dropped,
            "muted_dropped": self.muted_dropped,
            "packets_injected": self.packets_injected,
            "send_errors": self.send_errors,
            "ssrc": self.ssrc,
            "ssrc_changes": self.ssrc_changes,
            "lost": self.stats.lost,
            "loss_fraction": round(self.stats.loss_fraction, 6),
            "jitter_ms": round(self.stats.jitter_ms, 3),
            "stream": self.stats.to_dict(),
            "payload_types": sorted(self.payload_types),
            "rtcp_received": self.rtcp_received,
            "rtcp_forwarded": self.rtcp_forwarded,
            "rtcp_malformed": self.rtcp_malformed,
            "rtcp_reports": self.rtcp_reports,
            # What this leg's phone says about the media it receives from us (RFC 3550 §6.4.1).
            "reported_fraction_lost": None if report is None else report.fraction_lost,
            "reported_cumulative_lost": None if report is None else report.cumulative_lost,
            "reported_jitter_ms": None if report is None else round(report.jitter * 1000 / peer_rate, 3),
        }


class MediaSession:
    """The media of one call: side ``a`` (caller) and side ``b`` (callee) relayed to each other."""

    __slots__ = ("_armed_at", "_closed", "_relay", "a", "armed", "b", "label", "last_rtp", "muted", "substitute",
                 "tap", "timed_out")

    def __init__(self, relay: MediaRelay, label: str) -> None:
        self._relay = relay
        self.label = label
        self.armed = False
        self.timed_out = False
        self.last_rtp: float | None = None
        """``time.monotonic()`` of the last RTP packet accepted from either leg."""
        self._armed_at = 0.0
        self._closed = False
        self.tap: Tap | None = None
        """Called with a copy of every accepted RTP packet when set (see "Tap" above)."""
        self.muted = False
        """While set, RTP is not forwarded between the legs (see "Announcements" above)."""
        self.substitute: Callable[[str, bytes], bytes | None] | None = None
        """While muted: the packet to send the named side instead of one from its peer (or None)."""
        # ``a`` and ``b`` are set by MediaRelay.create() once both port pairs are bound.
        self.a: MediaSide
        self.b: MediaSide

    @property
    def closed(self) -> bool:
        return self._closed

    def arm(self) -> None:
        """Start (or restart) media-timeout watching; call it when the call is answered."""
        self.armed = True
        self.timed_out = False
        self._armed_at = time.monotonic()

    def disarm(self) -> None:
        """Stop media-timeout watching, e.g. while the call is on hold and legs may send nothing."""
        self.armed = False

    def idle_since(self) -> float:
        """Monotonic time from which silence is measured: the later of arming and the last RTP."""
        last = self.last_rtp
        return self._armed_at if last is None or last < self._armed_at else last

    def close(self) -> None:
        """Stop relaying, close the sockets and return the ports to the pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.tap = None
        self.substitute = None
        self.a._close()
        self.b._close()
        for side in (self.a, self.b):
            # Break the side <-> side <-> session references: a closed session is then freed by
            # reference counting alone, never left for the cyclic collector (whose pauses under
            # load are what made SIP retransmit; the server freezes older objects every second).
            del side.peer
            del side._session
        self._relay._forget(self)
        log.debug("media %s: closed", self.label)

    def summary(self) -> dict[str, Any]:
        """Per-side ports, addresses, counters and statistics, e.g. for the call record."""
        last = self.last_rtp
        return {
            "label": self.label,
            "armed": self.armed,
            "timed_out": self.timed_out,
            "closed": self._closed,
            "idle_s": None if last is None else round(time.monotonic() - last, 3),
            "a": self.a.summary(),
            "b": self.b.summary(),
        }


class MediaRelay:
    """Creates media sessions on ``host`` from ``pool`` and watches them for media timeouts."""

    def __init__(
        self,
        pool: PortPool,
        host: str,
        *,
        timeout: float = 60.0,
        on_timeout: Callable[[MediaSession], None] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"media timeout must be positive, got {timeout}")
        self._pool = pool
        self._host = host
        self.timeout = timeout
        self._on_timeout = on_timeout
        self._sessions: dict[MediaSession, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._buf = bytearray(MAX_DATAGRAM)

    @property
    def sessions(self) -> int:
        """Open sessions."""
        return len(self._sessions)

    def all_sessions(self) -> list[MediaSession]:
        return list(self._sessions)

    def start(self) -> None:
        """Start the media-timeout checker (idempotent); needs a running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="media-timeouts")

    async def stop(self) -> None:
        """Stop the checker and close every session (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in list(self._sessions):
            session.close()

    def create(self, label: str) -> MediaSession:
        """A session with a port pair per leg, relaying at once (needs a running event loop).

        Raises ``PortExhausted`` (nothing stays allocated) when the pool cannot give two pairs.
        """
        loop = asyncio.get_running_loop()
        session = MediaSession(self, label)
        a_rtp, a_rtcp = self._pool.allocate(self._host)
        try:
            b_rtp, b_rtcp = self._pool.allocate(self._host)
        except BaseException:
            port = a_rtp.getsockname()[1]
            a_rtp.close()
            a_rtcp.close()
            self._pool.release(port)
            raise
        session.a = MediaSide(session, "a", a_rtp, a_rtcp, self._buf, self._pool, loop)
        session.b = MediaSide(session, "b", b_rtp, b_rtcp, self._buf, self._pool, loop)
        session.a.peer = session.b
        session.b.peer = session.a
        self._sessions[session] = None
        session.a._start()
        session.b._start()
        log.debug("media %s: ports %d (a), %d (b)", label, session.a.local_port, session.b.local_port)
        return session

    def _forget(self, session: MediaSession) -> None:
        self._sessions.pop(session, None)

    def check_timeouts(self, now: float | None = None) -> list[MediaSession]:
        """Call ``on_timeout`` once for each armed session silent for ``timeout`` seconds."""
        now = time.monotonic() if now is None else now
        expired = [s for s in self._sessions if s.armed and not s.timed_out and now - s.idle_since() >= self.timeout]
        for session in expired:
            session.timed_out = True
            log.info("media %s: no RTP for %.1f s", session.label, now - session.idle_since())
            if self._on_timeout is not None:
                try:
                    self._on_timeout(session)
                except Exception:
                    log.exception("media-timeout handler failed for %s", session.label)
        return expired

    async def _watch(self) -> None:
        # Check four times per timeout, at most once a second, so a timeout fires at most a
        # quarter late.
        interval = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                self.check_timeouts()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("media-timeout check failed")
