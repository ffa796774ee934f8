"""Stream framing for SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives).

Bytes go in with ``feed()``; ``next_event()`` returns a whole message's bytes, ``KEEPALIVE``
for a double-CRLF ping (answer it with a single CRLF), or ``NEED_DATA``. On a stream the
Content-Length header is mandatory, so a message without one is an error and the connection
should be closed after answering it.
"""

from __future__ import annotations

import enum
import re

from ringwell.sip.errors import RemoteProtocolError

__all__ = ["KEEPALIVE", "NEED_DATA", "StreamFramer"]


class _Sentinel(enum.Enum):
    NEED_DATA = "need-data"
    KEEPALIVE = "keepalive"


NEED_DATA = _Sentinel.NEED_DATA
KEEPALIVE = _Sentinel.KEEPALIVE

_CONTENT_LENGTH_RE = re.compile(rb"\r?\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


class StreamFramer:
    """Cuts a byte stream into SIP messages; bounded by ``max_size``."""

    __slots__ = ("_buffer", "max_size")

    def __init__(self, max_size: int = 65535) -> None:
        self._buffer = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_event(self) -> bytes | _Sentinel:
        buf = self._buffer
        # Stray CRLFs between messages are allowed (RFC 3261 §7.5); a lone CRLF is a pong, a
        # double CRLF a ping (RFC 5626 §3.5.1). Wait when the bytes so far could be either.
        while buf.startswith(b"\r\n"):
            if buf.startswith(b"\r\n\r\n"):
                del buf[:4]
                return KEEPALIVE
            if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                return NEED_DATA
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.max_size:
                raise RemoteProtocolError("Message Too Large", 513)
            return NEED_DATA
        head = bytes(buf[: end + 2])
        match = _CONTENT_LENGTH_RE.search(head)
        if match is None:
            raise RemoteProtocolError("Missing Content-Length")
        value = match.group(1).strip()
        if not value.isdigit() or len(value) > 10:
            raise RemoteProtocolError("Malformed Content-Length")
        total = end + 4 + int(value)
        if total > self.max_size:
            raise RemoteProtocolError("Message Too Large", 513)
        if len(buf) < total:
            return NEED_DATA
        message = bytes(buf[:total])
        del buf[:total]
        return message
