"""SIP messages: parser and serializer (RFC 3261 §7, §20 and §25).

``parse_message(data)`` turns one whole message into a ``Request`` or ``Response`` or raises
``RemoteProtocolError`` whose ``status_hint`` is the status to answer with (400 unless said
otherwise) and whose text is a reason phrase saying what is wrong. Headers keep their order and
spelling; the ones every layer needs (Via, From, To, Call-ID, CSeq, Max-Forwards,
Content-Length, Expires, Date) are parsed and validated at once, every other one is kept raw and
parsed on demand. The parser is pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.uri import (
    NameAddr,
    Uri,
    parse_generic_params,
    parse_name_addr,
    parse_uri,
    split_commas,
    split_hostport,
)

__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "Headers",
    "MalformedRequest",
    "Request",
    "Response",
    "Via",
    "parse_contacts",
    "parse_message",
    "parse_via",
]

MAGIC_COOKIE = "z9hG4bK"
MAX_CSEQ = 2**31 - 1
MAX_DELTA_SECONDS = 2**32 - 1

#: RFC 3261 §7.3.3 and later RFCs: compact form → canonical lower-case name.
COMPACT_FORMS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
}

#: Headers that may appear at most once (RFC 3261 §7.3.1: not comma-list types).
_SINGLE = frozenset(
    {"to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type", "expires",
     "min-expires", "date"}
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)", re.IGNORECASE)
_CALLID_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")
_CSEQ_RE = re.compile(r"([0-9]+)[ \t]+(\S+)")
_VIA_RE = re.compile(r"([^\s/]+)[ \t]*/[ \t]*([^\s/]+)[ \t]*/[ \t]*([^\s/;]+)[ \t]+([^;]+?)[ \t]*((?:;.*)?)", re.S)
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}:\d{2} GMT"
)
_FOLD_RE = re.compile(r"\r?\n[ \t]+")


_CANONICAL: dict[str, str] = {}


def canonical(name: str) -> str:
    """The canonical lower-case form of a header name (compact forms expanded)."""
    found = _CANONICAL.get(name)
    if found is None:
        lname = name.lower()
        found = COMPACT_FORMS.get(lname, lname)
        if len(_CANONICAL) < 4096 and len(name) <= 64:  # bounded: header names are attacker-chosen
            _CANONICAL[name] = found
    return found


class Headers:
    """Ordered header fields: (name as written, value) with case-insensitive look-up.

    Look-ups go through an index (canonical name → values) built on first use and dropped
    on every change.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = [(canonical(n), n, v) for n, v in items]
        self._index: dict[str, list[str]] | None = None

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for canon, _, value in self._items:
                values = index.get(canon)
                if values is None:
                    index[canon] = [value]
                else:
                    values.append(value)
            self._index = index
        return index

    def get(self, name: str) -> str | None:
        """The first header field named ``name``, or None."""
        values = self._lookup().get(canonical(name))
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every header field line named ``name``, in order (not split at commas)."""
        return list(self._lookup().get(canonical(name), ()))

    def values(self, name: str) -> list[str]:
        """Every value of a comma-list header (all lines, split at top-level commas)."""
        out: list[str] = []
        for line in self._lookup().get(canonical(name), ()):
            out.extend(split_commas(line))
        return out

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical(name), name, value))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        self._items.insert(0, (canonical(name), name, value))
        self._index = None

    def set(self, name: str, value: str) -> None:
        """Replace every field named ``name`` by one (at the first one's place, else appended)."""
        key = canonical(name)
        self._index = None
        for i, (canon, _, _) in enumerate(self._items):
            if canon == key:
                self._items[i] = (key, name, value)
                self._items = [item for j, item in enumerate(self._items) if j <= i or item[0] != key]
                return
        self._items.append((key, name, value))

    def remove(self, name: str) -> None:
        key = canonical(name)
        self._items = [item for item in self._items if item[0] != key]
        self._index = None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical(name) in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def count(self, name: str) -> int:
        return len(self._lookup().get(canonical(name), ()))

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone


@dataclass(frozen=True, slots=True)
class Via:
    """One Via header value (RFC 3261 §20.42)."""

    transport: str
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname:
                return "" if value is None else value
        return None

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"SIP/2.0/{self.transport} {self.sent_by}{params}"


def parse_via(value: str) -> list[Via]:
    """Parse one Via header line into its values."""
    vias: list[Via] = []
    try:
        parts = split_commas(value)
    except ValueError as exc:
        raise RemoteProtocolError(f"Malformed Via: {exc}") from None
    for part in parts:
        match = _VIA_RE.fullmatch(part)
        if not match:
            raise RemoteProtocolError("Malformed Via")
        name, version, transport, sent_by, param_text = match.groups()
        if name.upper() != "SIP" or not _TOKEN_RE.fullmatch(version) or not _TOKEN_RE.fullmatch(transport):
            raise RemoteProtocolError("Malformed Via protocol")
        try:
            host, port = split_hostport(re.sub(r"[ \t]*:[ \t]*", ":", sent_by))
            params = parse_generic_params(param_text)
        except ValueError as exc:
            raise RemoteProtocolError(f"Malformed Via: {exc}") from None
        for key, val in params:
            lkey = key.lower()
            if lkey == "ttl" and (val is None or not val.isdigit() or int(val) > 255):
                raise RemoteProtocolError("Malformed Via ttl")
            if lkey == "rport" and val is not None and (not val.isdigit() or int(val) > 65535):
                raise RemoteProtocolError("Malformed Via rport")
        vias.append(Via(transport.upper(), host, port, params))
    return vias


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def _parse_cseq(value: str) -> CSeq:
    match = _CSEQ_RE.fullmatch(value)
    if not match or not _TOKEN_RE.fullmatch(match.group(2)):
        raise RemoteProtocolError("Malformed CSeq")
    number = match.group(1)
    if len(number) > 10 or int(number) > MAX_CSEQ:
        raise RemoteProtocolError("CSeq number too large")
    return CSeq(int(number), match.group(2))


def _parse_delta(value: str, what: str) -> int:
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise RemoteProtocolError(f"Malformed {what}")
    if len(value) > 10 or int(value) > MAX_DELTA_SECONDS:
        raise RemoteProtocolError(f"{what} too large")
    return int(value)


def parse_contacts(value_lines: list[str]) -> list[NameAddr] | None:
    """Parse Contact header lines: ``None`` stands for ``*``; otherwise the contacts.

    Validates ``expires`` (delta-seconds) and ``q`` (0 to 1, three decimals at most).
    """
    contacts: list[NameAddr] = []
    star = False
    for line in value_lines:
        try:
            parts = split_commas(line)
        except ValueError as exc:
            raise RemoteProtocolError(f"Malformed Contact: {exc}") from None
        for part in parts:
            if part == "*":
                star = True
                continue
            try:
                contact = parse_name_addr(part)
            except ValueError as exc:
                raise RemoteProtocolError(f"Malformed Contact: {exc}") from None
            expires = contact.param("expires")
            if expires is not None:
                _parse_delta(expires, "Contact expires")
            q = contact.param("q")
            if q is not None and not re.fullmatch(r"0(\.\d{0,3})?|1(\.0{0,3})?", q):
                raise RemoteProtocolError("Malformed Contact q-value")
            contacts.append(contact)
    if star:
        if contacts:
            raise RemoteProtocolError("Contact * mixed with other contacts")
        return None
    return contacts


class _Message:
    """What requests and responses share: headers, body and the parsed core headers."""

    __slots__ = ("_from", "_to", "body", "call_id", "cseq", "headers", "version", "vias")

    headers: Headers
    body: bytes
    version: str
    vias: list[Via]
    call_id: str
    cseq: CSeq
    _from: NameAddr | None
    _to: NameAddr | None

    @property
    def from_(self) -> NameAddr:
        if self._from is None:
            self._from = _parse_addr_header(self.headers, "From")
        return self._from

    @property
    def to(self) -> NameAddr:
        if self._to is None:
            self._to = _parse_addr_header(self.headers, "To")
        return self._to

    @property
    def top_via(self) -> Via:
        return self.vias[0]

    def _encode_headers(self, out: list[str]) -> bytes:
        body = self.body
        for name, value in self.headers:
            if canonical(name) == "content-length":
                continue
            out.append(f"{name}: {value}\r\n")
        out.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(out).encode("utf-8", "surrogateescape") + body


def _parse_addr_header(headers: Headers, name: str) -> NameAddr:
    value = headers.get(name)
    if value is None:
        raise RemoteProtocolError(f"Missing {name}")
    try:
        return parse_name_addr(value)
    except ValueError as exc:
        raise RemoteProtocolError(f"Malformed {name}: {exc}") from None


class Request(_Message):
    """A SIP request. ``uri`` is parsed; ``uri_text`` is the Request-URI as written."""

    __slots__ = ("_uri", "method", "uri_text")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        self.method = method
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri: Uri | None = None
        else:
            self.uri_text = str(uri)
            self._uri = uri
        self.headers = headers
        self.body = body
        self.version = version
        self._from = None
        self._to = None
        _index_core(self)

    @property
    def uri(self) -> Uri:
        if self._uri is None:
            try:
                self._uri = parse_uri(self.uri_text)
            except ValueError as exc:
                raise RemoteProtocolError(f"Malformed Request-URI: {exc}") from None
        return self._uri

    def encode(self) -> bytes:
        return self._encode_headers([f"{self.method} {self.uri_text} {self.version}\r\n"])

    def stamp_received(self, host: str, port: int) -> None:
        """RFC 3261 §18.2.1 and RFC 3581: note where the request really came from.

        Adds ``received`` when the source differs from the top Via's sent-by (or ``rport`` was
        asked for) and fills ``rport`` with the source port when the client asked for it.
        """
        top = self.vias[0]
        wants_rport = top.param("rport") is not None
        if not wants_rport and top.host == host:
            return
        params = [(k, v) for k, v in top.params if k.lower() not in ("received", "rport")]
        params.append(("received", host))
        if wants_rport:
            params.append(("rport", str(port)))
        stamped = Via(top.transport, top.host, top.port, tuple(params))
        self.vias[0] = stamped
        lines = self.headers.get_all("via")
        first = split_commas(lines[0])
        first[0] = str(stamped)
        rebuilt = [", ".join(first), *lines[1:]]
        self.headers.remove("via")
        for line in reversed(rebuilt):
            self.headers.prepend("Via", line)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text} call-id={self.call_id!r}>"


class Response(_Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version
        self._from = None
        self._to = None
        _index_core(self)

    @classmethod
    def build(cls, status: int, reason: str, headers: Headers, vias: list[Via], call_id: str, cseq: CSeq) -> Response:
        """A response whose core headers are already known (no re-parsing)."""
        response = cls.__new__(cls)
        response.status = status
        response.reason = reason
        response.headers = headers
        response.body = b""
        response.version = "SIP/2.0"
        response.vias = vias
        response.call_id = call_id
        response.cseq = cseq
        response._from = None
        response._to = None
        return response

    def encode(self) -> bytes:
        return self._encode_headers([f"{self.version} {self.status} {self.reason}\r\n"])

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"


def _index_core(msg: _Message) -> None:
    """Fill the parsed core headers of a message built in code (lenient: may be absent)."""
    headers = msg.headers
    vias: list[Via] = []
    for line in headers.get_all("via"):
        vias.extend(parse_via(line))
    msg.vias = vias
    msg.call_id = headers.get("call-id") or ""
    cseq = headers.get("cseq")
    msg.cseq = _parse_cseq(cseq) if cseq else CSeq(0, "")


class MalformedRequest(RemoteProtocolError):
    """A request that could be framed but not accepted.

    Carries what was read of it so the server can still answer (the 400 copies Via, From, To,
    Call-ID and CSeq as they were written).
    """

    def __init__(self, message: str, status_hint: int, method: str, headers: Headers) -> None:
        super().__init__(message, status_hint)
        self.method = method
        self.headers = headers


def _split_head(data: bytes) -> tuple[str, bytes]:
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head, body = data[:end], data[end + 4 :]
    else:
        end = data.find(b"\n\n")
        if end < 0:
            # No blank line: a datagram may end right after the last header's CRLF.
            if data.endswith(b"\r\n"):
                head, body = data[:-2], b""
            else:
                raise RemoteProtocolError("Message has no end of headers")
        else:
            head, body = data[:end], data[end + 2 :]
    text = head.decode("utf-8", "surrogateescape")
    return text, body


def parse_message(data: bytes, *, max_size: int = 65535, datagram: bool = True) -> Request | Response:
    """Parse one SIP message.

    ``datagram`` says the bytes are a whole UDP datagram: the body is what Content-Length says
    (bytes beyond it are ignored, RFC 3261 §18.3) and a Content-Length larger than what arrived
    is an error. For stream transports the framer has already cut the message out.
    """
    if len(data) > max_size:
        raise _too_large(data)
    data = data.lstrip(b"\r\n")
    if not data:
        raise RemoteProtocolError("Empty message")
    head, rest = _split_head(data)
    if "\n " in head or "\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    if "\r\n" in head:
        lines = head.split("\r\n")
        if "\r" in head.replace("\r\n", "") or "\n" in head.replace("\r\n", ""):
            # A bare CR or LF inside a CRLF message would end a header early for some peers:
            # relayed on, it could smuggle header fields into another leg (RFC 3261 §7.3.1).
            raise _error(lines[0], [], "Bare CR or LF in a header")
    else:
        lines = head.split("\n")
    start = lines[0]
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN_RE.fullmatch(name):
            raise _error(start, items, "Malformed header line")
        items.append((name, value.strip(" \t")))
    headers = Headers(items)

    if start.startswith(("SIP/", "sip/")) and " " in start:
        return _parse_response(start, headers, rest, datagram)
    return _parse_request(start, headers, rest, datagram)


def _too_large(data: bytes) -> RemoteProtocolError:
    """513 for an oversize message, with what can be salvaged of a request's headers."""
    text = data[:8192].decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not line or not colon or not _TOKEN_RE.fullmatch(name):
            break
        items.append((name, value.strip(" \t")))
    return _error(lines[0], items, "Message Too Large", 513)


def _error(start: str, items: list[tuple[str, str]], message: str, status: int = 400) -> RemoteProtocolError:
    parts = start.split(" ")
    if len(parts) >= 1 and parts[0] and not start.upper().startswith("SIP/"):
        return MalformedRequest(message, status, parts[0], Headers(items))
    return RemoteProtocolError(message, status)


def _body(headers: Headers, rest: bytes, datagram: bool) -> bytes:
    lines = headers.get_all("content-length")
    if not lines:
        if datagram:
            return rest
        raise RemoteProtocolError("Missing Content-Length")
    if len(lines) > 1:
        raise RemoteProtocolError("Multiple Content-Length values")
    value = lines[0]
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise RemoteProtocolError("Malformed Content-Length")
    length = int(value)
    if length > len(rest):
        raise RemoteProtocolError("Content-Length larger than message")
    return rest[:length]


def _check_core(headers: Headers) -> None:
    index = headers._lookup()
    for name in _SINGLE:
        values = index.get(name)
        if values is not None and len(values) > 1:
            raise RemoteProtocolError(f"Multiple {name} headers")
    missing = [n for n in ("Via", "From", "To", "Call-ID", "CSeq") if headers.get(n) is None]
    if missing:
        raise RemoteProtocolError("Missing " + ", ".join(missing))
    call_id = headers.get("call-id") or ""
    if not _CALLID_RE.fullmatch(call_id):
        raise RemoteProtocolError("Malformed Call-ID")
    max_forwards = headers.get("max-forwards")
    if max_forwards is not None and (
        not max_forwards.isdigit() or not max_forwards.isascii() or len(max_forwards) > 10
        or int(max_forwards) > 255
    ):
        raise RemoteProtocolError("Malformed Max-Forwards")
    expires = headers.get("expires")
    if expires is not None:
        _parse_delta(expires, "Expires")
    date = headers.get("date")
    if date is not None and not _DATE_RE.fullmatch(date):
        raise RemoteProtocolError("Malformed Date")


def _parse_request(start: str, headers: Headers, rest: bytes, datagram: bool) -> Request:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise _error(start, list(headers), "Malformed Request-Line")
    method, uri_text, version = parts
    if not _TOKEN_RE.fullmatch(method):
        raise RemoteProtocolError("Malformed method")
    try:
        match = _VERSION_RE.fullmatch(version)
        if not match:
            raise MalformedRequest("Malformed SIP version", 400, method, headers)
        if (match.group(1), match.group(2)) != ("2", "0"):
            raise MalformedRequest("Version Not Supported", 505, method, headers)
        if "<" in uri_text or ">" in uri_text:
            raise MalformedRequest("Malformed Request-URI", 400, method, headers)
        try:
            uri = parse_uri(uri_text)
        except ValueError as exc:
            raise MalformedRequest(f"Malformed Request-URI: {exc}", 400, method, headers) from None
        if getattr(uri, "headers", ()):
            raise MalformedRequest("Headers not allowed in Request-URI", 400, method, headers)
        _check_core(headers)
        body = _body(headers, rest, datagram)
        request = Request(method, uri, headers, body, "SIP/2.0")
        if request.cseq.method != method:
            raise MalformedRequest("CSeq method does not match", 400, method, headers)
        # Parse From/To now so a broken one is refused before any layer uses it.
        request.from_  # noqa: B018
        request.to  # noqa: B018
    except MalformedRequest:
        raise
    except RemoteProtocolError as exc:
        raise MalformedRequest(str(exc), exc.status_hint, method, headers) from None
    return request


def _parse_response(start: str, headers: Headers, rest: bytes, datagram: bool) -> Response:
    version, _, remainder = start.partition(" ")
    code, _, reason = remainder.partition(" ")
    match = _VERSION_RE.fullmatch(version)
    if not match or (match.group(1), match.group(2)) != ("2", "0"):
        raise RemoteProtocolError("Unsupported SIP version in response")
    if not re.fullmatch(r"[1-6][0-9][0-9]", code):
        raise RemoteProtocolError("Malformed status code")
    _check_core(headers)
    body = _body(headers, rest, datagram)
    response = Response(int(code), reason, headers, body, "SIP/2.0")
    response.from_  # noqa: B018
    response.to  # noqa: B018
    return response
