"""SIP over UDP: the socket is drained in bursts onto the fair intake; ``send()`` writes one datagram.

asyncio's datagram transports read one datagram per readiness event, which ties reading to
processing: under a flood the kernel's buffer becomes the queue and drops whatever arrives,
from every source alike. Reading the socket dry on each event (up to a bound) moves the queue
into the fair intake, where a flood only overflows its own source's share.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from ringwell.transport.source import Source

__all__ = ["UdpTransport", "open_udp"]

log = logging.getLogger(__name__)
RECEIVE_BUFFER = 8 * 1024 * 1024
MAX_DATAGRAM = 65535
BURST = 5000


class UdpTransport:
    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, Source], None]) -> None:
        self._sock = sock
        self._on_datagram = on_datagram
        self._loop = asyncio.get_running_loop()
        self.send_errors = 0
        self._loop.add_reader(sock.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        recvfrom = self._sock.recvfrom
        deliver = self._on_datagram
        for _ in range(BURST):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors surface here; the transactions handle silence
                log.debug("UDP receive error: %s", exc)
                return
            deliver(data, Source("udp", addr[0], addr[1]))

    def send(self, data: bytes, host: str, port: int) -> None:
        try:
            self._sock.sendto(data, (host, port))
        except (BlockingIOError, InterruptedError, OSError) as exc:
            # A full send buffer or an unreachable peer: UDP may lose it; retransmission recovers.
            self.send_errors += 1
            log.debug("UDP send to %s:%d failed: %s", host, port, exc)

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])


async def open_udp(host: str, port: int, on_datagram: Callable[[bytes, Source], None]) -> UdpTransport:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    except OSError:  # pragma: no cover - the kernel's default still works
        log.debug("could not enlarge the UDP receive buffer")
    sock.setblocking(False)
    sock.bind((host, port))
    return UdpTransport(sock, on_datagram)
