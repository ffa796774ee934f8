"""The pool of local RTP/RTCP port pairs.

RTP takes an even port and RTCP the next odd one (RFC 3550 §11; RFC 3264 offers the RTP port and
the peer infers RTCP = RTP + 1 unless ``a=rtcp`` says otherwise, RFC 3605). Pairs are handed out
round-robin: a released pair goes to the back of the queue, so that late packets of an ended call
do not land in the next call that would otherwise reuse the same port at once.

A pair whose bind fails with ``EADDRINUSE`` (another program holds one of its ports) is skipped
and retried later; any other bind error (bad address, privileged port) is a ``MediaError``.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections import deque

from ringwell.media.errors import MediaError, PortExhausted

__all__ = ["PortPool"]

log = logging.getLogger(__name__)

# DSCP EF (46, RFC 3246), which RFC 4594 assigns to telephony, in the upper six bits of TOS/TCLASS.
DSCP_EF = 46 << 2


def _family(host: str) -> socket.AddressFamily:
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"RTP bind address must be an IP address, got {host!r}") from exc
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _open(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # No SO_REUSEADDR: on Linux it would let two UDP sockets share a port, hiding EADDRINUSE.
        sock.bind((host, port))
        sock.setblocking(False)
        if family == socket.AF_INET6:
            level, option = socket.IPPROTO_IPV6, socket.IPV6_TCLASS
        else:
            level, option = socket.IPPROTO_IP, socket.IP_TOS
        try:
            sock.setsockopt(level, option, DSCP_EF)
        except OSError:  # pragma: no cover - marking is an optimisation the network may ignore
            log.debug("could not set DSCP EF on RTP port %d", port)
    except BaseException:
        sock.close()
        raise
    return sock


class PortPool:
    """Even RTP ports (RTCP = RTP + 1) with both ports inside ``[low, high]``.

    ``available`` and ``in_use`` count pairs. One pool serves one bind address; the relay owns it.
    """

    __slots__ = ("_free", "_in_use", "high", "low")

    def __init__(self, low: int, high: int) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"RTP port range {low}-{high} is not within 1-65535 with low <= high")
        first = low + (low & 1)
        ports = range(first, high, 2)  # rtp + 1 <= high
        if not ports:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd port pair")
        self.low = low
        self.high = high
        self._free: deque[int] = deque(ports)
        self._in_use: set[int] = set()

    @property
    def available(self) -> int:
        """Pairs not handed out (some may still fail to bind)."""
        return len(self._free)

    @property
    def in_use(self) -> int:
        """Pairs handed out and not yet released."""
        return len(self._in_use)

    def allocate(self, host: str) -> tuple[socket.socket, socket.socket]:
        """Bind the next free pair on ``host``: non-blocking UDP sockets ``(rtp, rtcp)``.

        Raises ``PortExhausted`` when every free pair is taken or fails with ``EADDRINUSE``,
        ``MediaError`` for other bind errors, ``ValueError`` when ``host`` is not an IP address.
        """
        family = _family(host)
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                rtp = _open(family, host, port)
                try:
                    rtcp = _open(family, host, port + 1)
                except BaseException:
                    rtp.close()
                    raise
            except OSError as exc:
                self._free.append(port)
                if exc.errno == errno.EADDRINUSE:
                    log.debug("RTP port pair %d/%d on %s is in use elsewhere; skipping", port, port + 1, host)
                    continue
                raise MediaError(f"cannot bind RTP port pair {port}/{port + 1} on {host}: {exc}") from exc
            self._in_use.add(port)
            return rtp, rtcp
        raise PortExhausted(f"no free RTP port pair in {self.low}-{self.high} on {host}")

    def release(self, port: int) -> None:
        """Return the pair whose RTP port is ``port``; it is reused after every other free pair."""
        try:
            self._in_use.remove(port)
        except KeyError:
            raise ValueError(f"RTP port {port} is not allocated from this pool") from None
        self._free.append(port)
