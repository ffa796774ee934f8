"""SIP, SIPS and tel URIs (RFC 3261 §19.1 and §25.1, RFC 3966) and name-addr values.

Parsing is strict: anything outside the ABNF raises ``ValueError`` with a short reason, which
callers turn into a 400 reason phrase. Escapes are validated but kept as written, because
comparing URIs is the only place that needs them decoded (RFC 3261 §19.1.4).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = [
    "AbsoluteUri",
    "NameAddr",
    "SipUri",
    "TelUri",
    "Uri",
    "parse_host",
    "parse_name_addr",
    "parse_uri",
]

_ALNUM = "A-Za-z0-9"
_MARK = r"\-_.!~*'()"
_ESC = "%[0-9A-Fa-f]{2}"
_USER_RE = re.compile(rf"(?:[{_ALNUM}{_MARK}&=+$,;?/]|{_ESC})+")
_PASSWORD_RE = re.compile(rf"(?:[{_ALNUM}{_MARK}&=+$,]|{_ESC})*")
_PARAM_RE = re.compile(rf"(?:[{_ALNUM}{_MARK}\[\]/:&+$]|{_ESC})+")
_HNV_RE = re.compile(rf"(?:[{_ALNUM}{_MARK}\[\]/?:+$]|{_ESC})*")
_HOSTNAME_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?")
_IPV4_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_TEL_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()pw]+")


def parse_host(text: str) -> str:
    """Validate a host (hostname, IPv4 address or bracketed IPv6 reference) and return it.

    Hostnames are lower-cased (they compare case-insensitively); IPv6 references keep their
    brackets.
    """
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError("unterminated IPv6 reference")
        address = text[1:-1]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            # RFC 5118 §4.10: RFC 3261's ABNF let "::" before an IPv4 tail be written ":::";
            # accept both spellings.
            try:
                ipaddress.IPv6Address(address.replace(":::", "::", 1))
            except ValueError:
                raise ValueError("invalid IPv6 reference") from None
        return text.lower()
    if _IPV4_RE.fullmatch(text):
        if any(int(part) > 255 for part in text.split(".")):
            raise ValueError("invalid IPv4 address")
        return text
    if _HOSTNAME_RE.fullmatch(text):
        return text.lower()
    raise ValueError("invalid host")


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` and validate both parts."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("invalid host")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    port: int | None = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            raise ValueError("invalid port")
        port = int(port_text)
    return parse_host(host), port


def _parse_params(text: str, regex: re.Pattern[str]) -> tuple[tuple[str, str | None], ...]:
    params: list[tuple[str, str | None]] = []
    if not text:
        return ()
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not regex.fullmatch(name):
            raise ValueError("invalid URI parameter")
        if eq:
            if not value or not regex.fullmatch(value):
                raise ValueError("invalid URI parameter")
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    password: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """The value of URI parameter ``name`` (case-insensitive); '' for a flag parameter."""
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname:
                return "" if value is None else value
        return None

    @property
    def transport(self) -> str:
        """The transport the URI asks for, lower-case ('udp' when unspecified)."""
        value = self.param("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unquote(self.user)

    def with_params(self, params: tuple[tuple[str, str | None], ...]) -> SipUri:
        return SipUri(self.scheme, self.user, self.host, self.port, self.password, params, self.headers)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.hostport)
        for key, value in self.params:
            out.append(f";{key}" if value is None else f";{key}={value}")
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): a global (+E.164) or local number with parameters."""

    number: str
    params: tuple[tuple[str, str | None], ...] = ()

    @property
    def scheme(self) -> str:
        return "tel"

    def __str__(self) -> str:
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"tel:{self.number}{params}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other absolute URI (RFC 3986); kept opaque."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | TelUri | AbsoluteUri


def _parse_sip(scheme: str, rest: str) -> SipUri:
    headers: tuple[tuple[str, str], ...] = ()
    if "?" in rest:
        # '?' is legal inside the user part, so split headers only after the host.
        at = rest.rfind("@")
        qpos = rest.find("?", at + 1)
        if qpos >= 0:
            rest, header_text = rest[:qpos], rest[qpos + 1 :]
            items = []
            for item in header_text.split("&"):
                hname, eq, hvalue = item.partition("=")
                if not eq or not hname or not _HNV_RE.fullmatch(hname) or not _HNV_RE.fullmatch(hvalue):
                    raise ValueError("invalid URI header")
                items.append((hname, hvalue))
            headers = tuple(items)
    user: str | None = None
    password: str | None = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        # The password is after the first ':' that is not part of the user.
        user, colon, pw = userinfo.partition(":")
        if colon:
            if not _PASSWORD_RE.fullmatch(pw):
                raise ValueError("invalid URI password")
            password = pw
        if not _USER_RE.fullmatch(user):
            raise ValueError("invalid URI user")
    hostport, _, param_text = rest.partition(";")
    if not hostport:
        raise ValueError("URI has no host")
    host, port = split_hostport(hostport)
    params = _parse_params(param_text, _PARAM_RE)
    return SipUri(scheme, user, host, port, password, params, headers)


_URI_CACHE: dict[str, Uri] = {}
_URI_CACHE_SIZE = 20_000
_BAD_URI_CHAR = re.compile(r'[ \t\r\n<>"]')


def parse_uri(text: str) -> Uri:
    """Parse an absolute URI; ``sip``/``sips``/``tel`` get structure, others stay opaque.

    URIs are immutable, and the same ones come back in every request of a phone, so parsed
    URIs are cached (bounded).
    """
    cached = _URI_CACHE.get(text)
    if cached is not None:
        return cached
    uri = _parse_uri(text)
    if len(text) > 256:  # bounded in bytes too: URIs are attacker-chosen
        return uri
    if len(_URI_CACHE) >= _URI_CACHE_SIZE:
        _URI_CACHE.clear()
    _URI_CACHE[text] = uri
    return uri


def _parse_uri(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme) or not rest:
        raise ValueError("invalid URI")
    if _BAD_URI_CHAR.search(rest):
        raise ValueError("invalid character in URI")
    lscheme = scheme.lower()
    if lscheme in ("sip", "sips"):
        return _parse_sip(lscheme, rest)
    if lscheme == "tel":
        number, _, param_text = rest.partition(";")
        if not _TEL_RE.fullmatch(number):
            raise ValueError("invalid tel URI")
        return TelUri(number, _parse_params(param_text, _PARAM_RE))
    return AbsoluteUri(lscheme, rest)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``[display-name] <URI> *(;param)`` or ``addr-spec *(;param)`` (RFC 3261 §20.10)."""

    uri: Uri
    display: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname:
                return "" if value is None else value
        return None

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def __str__(self) -> str:
        display = f"{self.display} " if self.display else ""
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"{display}<{self.uri}>{params}"


_QUOTED_RE = re.compile(r'"(?:[^"\\\r\n]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"')
_GENVALUE_RE = re.compile(r'[A-Za-z0-9\-.!%*_+`\'~\[\]:]+|"(?:[^"\\\r\n]|\\[^\r\n])*"')


def parse_generic_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``*( SEMI generic-param )`` where ``text`` starts with ';' or is empty."""
    params: list[tuple[str, str | None]] = []
    text = text.strip()
    if not text:
        return ()
    if not text.startswith(";"):
        raise ValueError("junk after value")
    for raw in text[1:].split(";") if '"' not in text else _split_quoted(text[1:], ";"):
        item = raw.strip()
        name, eq, value = item.partition("=")
        name = name.strip()
        if not _TOKEN_RE.fullmatch(name):
            raise ValueError("invalid parameter")
        if eq:
            value = value.strip()
            if not _GENVALUE_RE.fullmatch(value):
                raise ValueError("invalid parameter value")
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


def _split_quoted(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    start = 0
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def parse_name_addr(text: str) -> NameAddr:
    """Parse a From/To/Contact/Route value (a single one, already split at commas)."""
    text = text.strip()
    display: str | None = None
    if text.startswith('"'):
        match = _QUOTED_RE.match(text)
        if not match:
            raise ValueError("unterminated quoted display name")
        display = match.group(0)
        text = text[match.end() :].lstrip()
        if not text.startswith("<"):
            raise ValueError("display name without <URI>")
    lt = text.find("<")
    if lt >= 0:
        before = text[:lt].strip()
        if display is None and before:
            words = before.split()
            if not all(_TOKEN_RE.fullmatch(word) for word in words):
                raise ValueError("invalid display name")
            display = " ".join(words)
        gt = text.find(">", lt)
        if gt < 0:
            raise ValueError("unterminated <URI>")
        inner = text[lt + 1 : gt]
        if inner != inner.strip():
            raise ValueError("whitespace inside <URI>")
        uri = parse_uri(inner)
        return NameAddr(uri, display, parse_generic_params(text[gt + 1 :]))
    # addr-spec: the URI may not contain ';', '?' or ',' (RFC 3261 §20.10) — parameters after
    # the first ';' belong to the header field.
    if '"' in text:
        raise ValueError("quoted text without <URI>")
    spec, semi, rest = text.partition(";")
    spec = spec.strip()
    if "?" in spec or "," in spec or " " in spec or "\t" in spec:
        raise ValueError("addr-spec needs <> around this URI")
    uri = parse_uri(spec)
    return NameAddr(uri, None, parse_generic_params(semi + rest))


def split_commas(value: str) -> list[str]:
    """Split a header value at top-level commas (not inside quotes or <>)."""
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    start = 0
    quoted = False
    angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append(value[start:].strip())
    return parts
