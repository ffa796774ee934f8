"""A minimal SIP client for integration tests, built on Ringwell's own sans-IO core."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl

from ringwell.sip import digest
from ringwell.sip.framing import KEEPALIVE, NEED_DATA, StreamFramer
from ringwell.sip.message import Request, Response, parse_message


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)


class Client:
    """Sends requests to a server over udp, tcp or tls and reads responses."""

    def __init__(self, transport: str, host: str, port: int) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.local = ("127.0.0.1", 0)
        self._udp = None
        self._proto = None
        self._reader = None
        self._writer = None
        self._framer = StreamFramer()

    async def open(self, local_host: str = "127.0.0.1") -> Client:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            self._udp, self._proto = await loop.create_datagram_endpoint(
                _Datagrams, local_addr=(local_host, 0), remote_addr=(self.host, self.port))
            self.local = self._udp.get_extra_info("sockname")[:2]
        else:
            ctx = None
            if self.transport == "tls":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port, ssl=ctx)
            self.local = self._writer.get_extra_info("sockname")[:2]
        return self

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await self._writer.wait_closed()

    def send(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data)
        else:
            self._writer.write(data)

    async def recv_raw(self, timeout: float = 3.0) -> bytes:
        if self._proto is not None:
            return await asyncio.wait_for(self._proto.queue.get(), timeout)
        while True:
            event = self._framer.next_event()
            if isinstance(event, bytes):
                return event
            if event is KEEPALIVE:
                continue
            assert event is NEED_DATA
            chunk = await asyncio.wait_for(self._reader.read(65536), timeout)
            if not chunk:
                raise ConnectionError("closed by server")
            self._framer.feed(chunk)

    async def recv(self, timeout: float = 3.0) -> Response:
        message = parse_message(await self.recv_raw(timeout), datagram=self._proto is not None)
        assert isinstance(message, Response)
        return message

    async def final(self, timeout: float = 3.0) -> Response:
        while True:
            response = await self.recv(timeout)
            if response.status >= 200:
                return response

    def build(self, method: str, *, user: str = "alice", extra: str = "", call_id: str | None = None,
              cseq: int = 1, branch: str | None = None, ruri: str | None = None, body: bytes = b"") -> bytes:
        branch = branch or "z9hG4bK" + secrets.token_hex(8)
        host, port = self.local
        proto = self.transport.upper()
        text = (
            f"{method} {ruri or f'sip:{self.host}:{self.port}'} SIP/2.0\r\n"
            f"Via: SIP/2.0/{proto} {host}:{port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@{self.host}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{user}@{self.host}>\r\n"
            f"Call-ID: {call_id or secrets.token_hex(8)}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return text.encode() + body

    async def register(self, user: str, password: str, *, expires: int = 600, contact: str | None = None,
                       call_id: str | None = None, cseq: int = 1, algorithm: str = "SHA-256") -> Response:
        """REGISTER, answer the challenge with ``algorithm``, return the final response."""
        call_id = call_id or secrets.token_hex(8)
        host, port = self.local
        contact = contact or f"<sip:{user}@{host}:{port};transport={self.transport}>"
        extra = f"Contact: {contact}\r\nExpires: {expires}\r\nUser-Agent: ringwell-tests\r\n"
        self.send(self.build("REGISTER", user=user, extra=extra, call_id=call_id, cseq=cseq))
        first = await self.final()
        if first.status != 401:
            return first
        challenge = next(c for c in (digest.parse_challenge(v) for v in first.headers.get_all("www-authenticate"))
                         if c is not None and c.algorithm == algorithm)
        auth = digest.authorize(challenge, "REGISTER", f"sip:{self.host}:{self.port}", user, password)
        self.last_authorized = self.build("REGISTER", user=user, call_id=call_id, cseq=cseq + 1,
                                          extra=extra + f"Authorization: {auth}\r\n")
        self.send(self.last_authorized)
        return await self.final()


def request_of(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message
