"""SIP over UDP: datagrams go onto the fair intake; ``send()`` writes one datagram."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from ringwell.transport.source import Source

__all__ = ["UdpTransport", "open_udp"]

log = logging.getLogger(__name__)
RECEIVE_BUFFER = 8 * 1024 * 1024


class UdpTransport(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Source], None]) -> None:
        self._on_datagram = on_datagram
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio's classes, hence the cast.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            except OSError:  # pragma: no cover - some kernels refuse; the default still works
                log.debug("could not enlarge the UDP receive buffer")

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on_datagram(data, Source("udp", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the transaction's timers deal with the silence.
        log.debug("UDP error: %s", exc)

    def send(self, data: bytes, host: str, port: int) -> None:
        if self._transport is not None:
            self._transport.sendto(data, (host, port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])


async def open_udp(host: str, port: int, on_datagram: Callable[[bytes, Source], None]) -> UdpTransport:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    _, protocol = await loop.create_datagram_endpoint(
        lambda: UdpTransport(on_datagram), local_addr=(host, port), family=family
    )
    return protocol
