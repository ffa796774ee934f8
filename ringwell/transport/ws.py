"""SIP over WebSocket (RFC 7118) at ``/ws`` on the HTTP app.

The browser opens a WebSocket with the subprotocol ``sip``; every text or binary message is one
whole SIP message (no stream framing), handed to the endpoint like a TCP message. What the
endpoint sends back is queued per connection and written by one task; a peer that stops reading
is cut off once ``max_write_buffer`` bytes wait for it. A connection is a flow
``Source("ws"|"wss", host, port)``: responses and requests to its bindings go over it, and when
it closes its bindings are gone (``on_closed``).

Limits: ``max_message_size`` (larger messages close the connection with 1009),
``max_connections`` (more are refused at the handshake), ``idle_timeout`` without a message,
and the write queue. A message of CRLFs is a keep-alive: ``"\\r\\n\\r\\n"`` is answered
``"\\r\\n"`` (RFC 5626 §4.4.1, as SIP.js sends it over WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from ringwell.transport.source import Source

__all__ = ["SUBPROTOCOL", "WsConnection", "WsServer"]

log = logging.getLogger(__name__)

SUBPROTOCOL = "sip"  # RFC 7118 §4.1
PATH = "/ws"
PING = b"\r\n\r\n"
PONG = b"\r\n"
# Close codes (RFC 6455 §7.4.1)
NORMAL = 1000
GOING_AWAY = 1001
POLICY = 1008
TOO_BIG = 1009
TRY_LATER = 1013

MessageHandler = Callable[[bytes, Source, "WsConnection"], None]
ClosedHandler = Callable[[Source], None]


class WsConnection:
    """One open WebSocket: a reader (messages in) and a writer (the bounded queue out)."""

    def __init__(self, server: WsServer, websocket: WebSocket, source: Source) -> None:
        self._server = server
        self._ws = websocket
        self.source = source
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self._close_code = NORMAL
        self._close_reason = ""

    def send(self, data: bytes) -> None:
        """Queue one SIP message (or keep-alive) for the peer; never blocks."""
        if self._done.is_set():
            return
        if self._queued + len(data) > self._server.max_write_buffer:
            log.warning("closing WebSocket from %s:%d: it does not read", self.source.host, self.source.port)
            self.close(POLICY, "not reading")
            return
        self._queue.append(data)
        self._queued += len(data)
        self._ready.set()

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Close the connection (idempotent); the registry and bindings are cleaned up as it ends."""
        if not self._done.is_set():
            self._close_code, self._close_reason = code, reason
            self._done.set()

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        reader = asyncio.create_task(self._read(), name=f"ws-read-{self.source.port}")
        writer = asyncio.create_task(self._write(), name=f"ws-write-{self.source.port}")
        try:
            await self._done.wait()
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await self._close_socket()

    async def _close_socket(self) -> None:
        ws = self._ws
        if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(OSError, RuntimeError):  # the peer is gone already
                await ws.close(self._close_code, self._close_reason)

    async def _read(self) -> None:
        server = self._server
        try:
            while True:
                try:
                    async with asyncio.timeout(server.idle_timeout):
                        message = await self._ws.receive()
                except TimeoutError:
                    self.close(GOING_AWAY, "idle")
                    return
                if message["type"] == "websocket.disconnect":
                    self.close()
                    return
                text = message.get("text")
                data: bytes = text.encode() if text is not None else (message.get("bytes") or b"")
                if len(data) > server.max_message_size:
                    log.info("closing WebSocket from %s:%d: a %d-byte message", self.source.host,
                             self.source.port, len(data))
                    self.close(TOO_BIG, "message too big")
                    return
                if not data.strip(b"\r\n"):
                    if data == PING:
                        self.send(PONG)
                    continue
                try:
                    server.on_message(data, self.source, self)
                except Exception:
                    log.exception("error handling a WebSocket message from %s:%d", self.source.host,
                                  self.source.port)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("WebSocket reader of %s:%d failed", self.source.host, self.source.port)
            self.close(1011, "")

    async def _write(self) -> None:
        try:
            while True:
                await self._ready.wait()
                while self._queue:
                    data = self._queue.popleft()
                    self._queued -= len(data)
                    try:
                        text = data.decode()
                    except UnicodeDecodeError:
                        await self._ws.send_bytes(data)
                    else:
                        await self._ws.send_text(text)
                self._ready.clear()
        except asyncio.CancelledError:
            raise
        except (OSError, RuntimeError):  # uvicorn's ClientDisconnected is an OSError
            self.close()
        except Exception:
            log.exception("WebSocket writer of %s:%d failed", self.source.host, self.source.port)
            self.close(1011, "")


class WsServer:
    """The ``/ws`` endpoint and the registry of open SIP WebSocket connections by (host, port)."""

    def __init__(
        self,
        on_message: MessageHandler,
        on_closed: ClosedHandler,
        *,
        max_message_size: int = 65535,
        max_connections: int = 10_000,
        max_write_buffer: int = 1024 * 1024,
        idle_timeout: float = 3600.0,
    ) -> None:
        self.on_message = on_message
        self.on_closed = on_closed
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.max_write_buffer = max_write_buffer
        self.idle_timeout = idle_timeout
        self.connections: dict[tuple[str, int], WsConnection] = {}
        self.refused = 0
        self._synthetic = 65535

    def route(self) -> WebSocketRoute:
        return WebSocketRoute(PATH, self.handle, name="sip-websocket")

    def _source(self, websocket: WebSocket) -> Source:
        scheme = websocket.scope.get("scheme", "ws")
        transport = "wss" if scheme in ("wss", "https") else "ws"
        client = websocket.client
        host, port = (client.host, client.port) if client is not None else ("0.0.0.0", 0)  # noqa: S104
        if port == 0 or (host, port) in self.connections:
            # Behind a proxy that passes only the client's address, connections still need a
            # key of their own: a port number no TCP connection can have.
            self._synthetic += 1
            port = self._synthetic
        return Source(transport, host, port)

    async def handle(self, websocket: WebSocket) -> None:
        """The ASGI WebSocket endpoint: refuse, or serve the connection until it closes."""
        if SUBPROTOCOL not in websocket.scope.get("subprotocols", ()):
            # Refused at the handshake (HTTP 403): not a SIP client (RFC 7118 §4.1).
            self.refused += 1
            await websocket.close(code=1002)
            return
        if len(self.connections) >= self.max_connections:
            self.refused += 1
            log.warning("refusing a SIP WebSocket: %d open", len(self.connections))
            await websocket.close(code=TRY_LATER)
            return
        source = self._source(websocket)
        await websocket.accept(subprotocol=SUBPROTOCOL)
        connection = WsConnection(self, websocket, source)
        key = (source.host, source.port)
        self.connections[key] = connection
        try:
            await connection.run()
        finally:
            if self.connections.get(key) is connection:
                del self.connections[key]
            try:
                self.on_closed(source)
            except Exception:
                log.exception("error after the WebSocket of %s:%d closed", source.host, source.port)

    def close_all(self) -> None:
        """Ask every connection to close (server shutdown)."""
        for connection in list(self.connections.values()):
            connection.close(GOING_AWAY, "shutting down")
