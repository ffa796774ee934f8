"""SIP over TCP and TLS: one framer per connection; messages are handled as they complete."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import cast

from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.framing import KEEPALIVE, NEED_DATA, StreamFramer
from ringwell.transport.source import Source

__all__ = ["StreamConnection", "StreamServer"]

log = logging.getLogger(__name__)
IDLE_TIMEOUT = 3600.0  # phones keep flows open with keep-alives (RFC 5626) well within this
MAX_CONNECTIONS = 10_000
MAX_WRITE_BUFFER = 1024 * 1024  # a peer that never reads is cut off, not buffered for

MessageHandler = Callable[[bytes, Source, "StreamConnection"], None]
ErrorHandler = Callable[[RemoteProtocolError, Source, "StreamConnection"], None]


class StreamConnection(asyncio.Protocol):
    def __init__(self, server: StreamServer) -> None:
        self._server = server
        self._framer = StreamFramer(server.max_message_size)
        self._transport: asyncio.Transport | None = None
        self.source: Source | None = None
        self._idle: asyncio.TimerHandle | None = None

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self.close)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        if len(self._server.connections) >= MAX_CONNECTIONS:
            log.warning("refusing a %s connection: %d open", self._server.name, MAX_CONNECTIONS)
            self._transport.abort()
            self._transport = None
            return
        self._touch()
        peer = transport.get_extra_info("peername")
        self.source = Source(self._server.name, str(peer[0]), int(peer[1]))
        self._server.connections[(self.source.host, self.source.port)] = self

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        self._touch()
        framer = self._framer
        framer.feed(data)
        source = self.source
        assert source is not None
        while self._transport is not None:
            try:
                event = framer.next_event()
            except RemoteProtocolError as exc:
                # The stream cannot be re-synchronised after a framing error: answer and close.
                self._server.on_error(exc, source, self)
                self.close()
                return
            if event is NEED_DATA:
                return
            if event is KEEPALIVE:
                self.send(b"\r\n")
                continue
            assert isinstance(event, bytes)
            self._server.on_message(event, source, self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.source is not None and self._server.connections.get((self.source.host, self.source.port)) is self:
            self._server.connections.pop((self.source.host, self.source.port), None)
        self._transport = None

    def send(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                log.warning("closing %s connection from %s: it does not read", self._server.name, self.source)
                transport.abort()
                return
            transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class StreamServer:
    """A listening TCP (``ssl_context`` None) or TLS socket."""

    def __init__(
        self,
        name: str,
        on_message: MessageHandler,
        on_error: ErrorHandler,
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 65535,
    ) -> None:
        self.name = name
        self.on_message = on_message
        self.on_error = on_error
        self.ssl_context = ssl_context
        self.max_message_size = max_message_size
        self.connections: dict[tuple[str, int], StreamConnection] = {}
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: StreamConnection(self), host, port, ssl=self.ssl_context, reuse_address=True,
            ssl_handshake_timeout=10.0 if self.ssl_context else None,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections.values()):
                connection.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])
