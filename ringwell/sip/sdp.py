"""SDP session descriptions (RFC 4566) and the offer/answer steps a media-anchoring B2BUA needs
(RFC 3264).

``parse_sdp(body)`` returns an immutable ``SessionDescription`` or raises ``SdpError`` (400).
Lines keep their order and spelling, unknown line types and attributes included, so
``encode()`` reproduces a well-formed CRLF body byte for byte; only ``v=0`` and ``o=`` are
rewritten, always as the first two lines (RFC 4566 §5). Every transformation returns a new
object. The functions below look at the *first active audio stream*: the first ``m=audio``
whose port is not 0 (RFC 3264 §8.2: port 0 means the stream is disabled).

Decisions:

- ``c=`` with an unspecified address (``0.0.0.0`` or ``::``) means "send neither RTP nor RTCP
  to me" (RFC 3264 §8.4) and says nothing about whether the author sends. ``direction()``
  therefore drops the receive half: sendrecv becomes sendonly, recvonly becomes inactive. This
  is how an RFC 2543 hold (``c=IN IP4 0.0.0.0`` and no attribute) reads as ``sendonly``.
- ``anchor()`` always presents Ringwell's own address, so the meaning carried by a held
  ``0.0.0.0`` would be lost; it writes the stream's effective direction as a media-level
  attribute instead (``a=sendonly`` for a plain RFC 2543 hold).
- ``anchor()`` removes ``a=rtcp``: the relay's RTCP port is always ``rtp_port + 1``, which is
  the RFC 3605 §2.1 default, and the attribute's optional address would leak the original one.
- ``anchor()`` disables every stream but the first audio one (port 0), because the relay only
  carries that one and any other port or address would point past Ringwell.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from ringwell.sip.errors import RemoteProtocolError

__all__ = [
    "Codec", "Direction", "Line", "MediaDescription", "NoCommonCodec", "Origin", "SdpError",
    "SessionDescription", "anchor", "answer_matches_offer", "audio_codecs", "audio_target", "direction",
    "first_codec", "parse_sdp", "restrict_codecs", "telephone_event",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_DIRECTIONS: dict[str, Direction] = {d: d for d in ("sendrecv", "sendonly", "recvonly", "inactive")}

# What anchor() drops: ICE (RFC 8839 §5), meaningless once Ringwell relays the media itself, and
# RTCP placement (RFC 3605, RFC 5761), because the relay uses rtp_port + 1.
_DROPPED = frozenset({
    "candidate", "remote-candidates", "end-of-candidates", "ice-ufrag", "ice-pwd", "ice-options",
    "ice-lite", "ice-mismatch", "ice-pacing", "rtcp", "rtcp-mux",
})
# Payload formats that ride along with a codec but never are "the" codec (RFC 4733, 3389, 2198,
# 5109, 4588).
_AUXILIARY = frozenset({"telephone-event", "cn", "red", "ulpfec", "flexfec", "rtx"})
# Attributes whose value starts with the payload type they describe (RFC 4566 §6, RFC 4585).
_PER_FORMAT = frozenset({"rtpmap", "fmtp", "rtcp-fb"})

# RFC 3551 §6 tables 4 and 5: static payload types, recognised without an a=rtpmap line.
_STATIC: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, None), 3: ("GSM", 8000, None), 4: ("G723", 8000, None),
    5: ("DVI4", 8000, None), 6: ("DVI4", 16000, None), 7: ("LPC", 8000, None),
    8: ("PCMA", 8000, None), 9: ("G722", 8000, None), 10: ("L16", 44100, 2), 11: ("L16", 44100, 1),
    12: ("QCELP", 8000, None), 13: ("CN", 8000, None), 14: ("MPA", 90000, None),
    15: ("G728", 8000, None), 16: ("DVI4", 11025, None), 17: ("DVI4", 22050, None),
    18: ("G729", 8000, None), 25: ("CelB", 90000, None), 26: ("JPEG", 90000, None),
    28: ("nv", 90000, None), 31: ("H261", 90000, None), 32: ("MPV", 90000, None),
    33: ("MP2T", 90000, None), 34: ("H263", 90000, None),
}

_LINE_RE = re.compile(r"([a-z])=(.*)", re.DOTALL)
_NUMBER_RE = re.compile(r"[0-9]{1,20}")
_PORT_RE = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")
_PT_RE = re.compile(r"[0-9]{1,3}")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PROTO_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9\-.]+")
_DOTTED_RE = re.compile(r"[0-9.]+")
_TTL_RE = re.compile(r"(?:/[0-9]{1,5}){0,2}")
_RTPMAP_RE = re.compile(r"([0-9]{1,3}) +([^/\s]+)/([0-9]{1,10})(?:/([0-9]{1,3}))?\s*")
_RTCP_RE = re.compile(r"([0-9]{1,5})(?: +IN +IP[46] +\S+)?\s*")
_TIMING_RE = re.compile(r"\s*[0-9]{1,20} +[0-9]{1,20}\s*")


class SdpError(RemoteProtocolError):
    """The peer's SDP is malformed (400 unless said otherwise)."""


class NoCommonCodec(SdpError):
    """Nothing in the offer can be used (488 Not Acceptable Here, RFC 3261 §21.4.26)."""

    def __init__(self, message: str = "No common codec") -> None:
        super().__init__(message, 488)


@dataclass(frozen=True, slots=True)
class Codec:
    """One RTP payload format (RFC 4566 §6 ``a=rtpmap``); ``name`` is spelled as received."""

    pt: int
    name: str
    rate: int
    channels: int | None = None
    fmtp: str | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 4566 §5.2); ``IN IP4``/``IN IP6`` follow from ``address``."""

    username: str
    session_id: str
    version: int
    address: str

    def bumped(self) -> Origin:
        """The origin of a changed description: version + 1 (RFC 3264 §8)."""
        return replace(self, version=self.version + 1)

    def encode(self) -> str:
        return f"o={self.username} {self.session_id} {self.version} IN {_addrtype(self.address)} {self.address}"


@dataclass(frozen=True, slots=True)
class Line:
    """One ``<type>=<value>`` line, value kept exactly as received (RFC 4566 §5)."""

    type: str
    value: str

    @property
    def attribute(self) -> str | None:
        """The attribute name of an ``a=`` line, else None."""
        return self.value.partition(":")[0] if self.type == "a" else None


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """An ``m=`` line and the lines that follow it (RFC 4566 §5.14)."""

    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]
    lines: tuple[Line, ...] = ()

    @property
    def connection(self) -> str | None:
        """The address of the media-level ``c=`` line, without TTL or count."""
        return _connection(self.lines)

    def attributes(self, name: str) -> list[str]:
        """Values of the media-level ``a=name[:value]`` lines, in order."""
        return _attributes(self.lines, name)

    def codecs(self) -> list[Codec]:
        """The RTP payload formats in ``m=`` order; dynamic types without ``a=rtpmap`` are skipped."""
        if "RTP/" not in self.proto:
            return []
        rtpmap: dict[int, tuple[str, int, int | None]] = {}
        fmtp: dict[int, str] = {}
        for value in self.attributes("rtpmap"):
            if match := _RTPMAP_RE.fullmatch(value):
                channels = int(match[4]) if match[4] else None
                rtpmap.setdefault(int(match[1]), (match[2], int(match[3]), channels))
        for value in self.attributes("fmtp"):
            number, _, params = value.partition(" ")
            if _PT_RE.fullmatch(number):
                fmtp.setdefault(int(number), params.strip())
        codecs = []
        for fmt in self.formats:
            pt = int(fmt)
            known = rtpmap.get(pt) or _STATIC.get(pt)
            if known is not None:
                codecs.append(Codec(pt, known[0], known[1], known[2], fmtp.get(pt)))
        return codecs

    def encode(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        m_line = " ".join((f"m={self.media}", port, self.proto, *self.formats))
        return [m_line, *(f"{line.type}={line.value}" for line in self.lines)]


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed SDP body. ``lines`` are the session-level lines other than ``v=`` and ``o=``."""

    origin: Origin
    lines: tuple[Line, ...]
    media: tuple[MediaDescription, ...]

    @property
    def connection(self) -> str | None:
        """The address of the session-level ``c=`` line, without TTL or count."""
        return _connection(self.lines)

    def attributes(self, name: str) -> list[str]:
        """Values of the session-level ``a=name[:value]`` lines, in order."""
        return _attributes(self.lines, name)

    def encode(self) -> bytes:
        """The body with CRLF line endings, ``v=0`` and ``o=`` first (RFC 4566 §5)."""
        out = ["v=0", self.origin.encode(), *(f"{line.type}={line.value}" for line in self.lines)]
        for media in self.media:
            out.extend(media.encode())
        return ("\r\n".join(out) + "\r\n").encode()


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body (RFC 4566 §5); LF-only line endings and blank lines are tolerated.

    Raises ``SdpError`` (400) for non-UTF-8 input, a missing or repeated ``v=``/``o=``, a
    missing ``s=``/``t=``, malformed ``o=``/``c=``/``t=``/``m=``/``a=rtpmap``/``a=rtcp`` lines,
    and an active stream without any ``c=`` (RFC 4566 §5.7).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    lines: list[Line] = []
    for raw in text.split("\n"):
        stripped = raw.rstrip("\r")
        if not stripped:
            continue
        match = _LINE_RE.fullmatch(stripped)
        if match is None or "\r" in stripped or "\x00" in stripped:
            raise SdpError("Malformed SDP line")
        lines.append(Line(match[1], match[2]))
    if not lines or lines[0] != Line("v", "0"):
        raise SdpError("SDP does not start with v=0")
    origin: Origin | None = None
    session: list[Line] = []
    media: list[tuple[Line, list[Line]]] = []
    for line in lines[1:]:
        if line.type == "v":
            raise SdpError("Repeated v= in SDP")
        if line.type == "o":
            if origin is not None or media:
                raise SdpError("Misplaced o= in SDP")
            origin = _parse_origin(line.value)
            continue
        if line.type == "m":
            media.append((line, []))
            continue
        if line.type == "c":
            fields = line.value.split()
            if len(fields) != 3 or fields[:2] not in (["IN", "IP4"], ["IN", "IP6"]):
                raise SdpError("Bad c= in SDP")
            _check_address(fields[1], fields[2])
        elif line.type == "t" and (media or not _TIMING_RE.fullmatch(line.value)):
            raise SdpError("Bad t= in SDP")
        elif line.attribute == "rtpmap" and not _RTPMAP_RE.fullmatch(line.value[7:]):
            raise SdpError("Bad a=rtpmap in SDP")
        elif line.attribute == "rtcp" and not ((rtcp := _RTCP_RE.fullmatch(line.value[5:])) and int(rtcp[1]) < 65536):
            raise SdpError("Bad a=rtcp in SDP")
        (media[-1][1] if media else session).append(line)
    if origin is None:
        raise SdpError("SDP without o=")
    types = {line.type for line in session}
    if "s" not in types or "t" not in types:
        raise SdpError("SDP without s= or t=")
    sdp = SessionDescription(origin, tuple(session), tuple(_parse_media(m.value, tuple(ls)) for m, ls in media))
    if sdp.connection is None and any(m.port and m.connection is None for m in sdp.media):
        raise SdpError("SDP stream without c=")
    return sdp


def audio_codecs(sdp: SessionDescription) -> list[Codec]:
    """The codecs of the first active audio stream in ``m=`` order (empty if there is none)."""
    index = _first_audio(sdp)
    return [] if index is None else sdp.media[index].codecs()


def audio_target(sdp: SessionDescription) -> tuple[str, int, int] | None:
    """Where to send the first active audio stream: (address, RTP port, RTCP port).

    A media-level ``c=`` overrides the session-level one (RFC 4566 §5.7); the RTCP port comes
    from ``a=rtcp`` (RFC 3605 §2.1) or is RTP + 1 (RFC 3550 §11). None without an active audio
    stream. An unspecified address is returned as is; ``direction()`` says what it means.
    """
    index = _first_audio(sdp)
    if index is None:
        return None
    stream = sdp.media[index]
    address = stream.connection or sdp.connection
    if address is None:  # parse_sdp rejects this; only a hand-built description gets here
        return None
    rtcp = next((int(value.split()[0]) for value in stream.attributes("rtcp")), stream.port + 1)
    return address, stream.port, rtcp


def direction(sdp: SessionDescription) -> Direction:
    """The direction of the first active audio stream from its author's point of view.

    The media-level attribute wins over the session-level one, the default is sendrecv (RFC 3264
    §6.1); an unspecified ``c=`` address removes the receive half (RFC 3264 §8.4, module
    docstring). Without an active audio stream nothing flows: inactive.
    """
    index = _first_audio(sdp)
    if index is None:
        return "inactive"
    stream = sdp.media[index]
    found = _direction(stream.lines) or _direction(sdp.lines) or "sendrecv"
    if _is_unspecified(stream.connection or sdp.connection):
        return "sendonly" if found in ("sendrecv", "sendonly") else "inactive"
    return found


def first_codec(sdp: SessionDescription) -> Codec | None:
    """The first audio codec that carries speech (not telephone-event, CN, RED, FEC or RTX).

    In an answer this is the codec the answerer chose (RFC 3264 §6.1).
    """
    return next((c for c in audio_codecs(sdp) if c.name.casefold() not in _AUXILIARY), None)


def telephone_event(sdp: SessionDescription) -> Codec | None:
    """The RFC 4733 telephone-event format, preferring the one at the speech codec's rate."""
    events = [c for c in audio_codecs(sdp) if c.name.casefold() == "telephone-event"]
    chosen = first_codec(sdp)
    same_rate = [c for c in events if chosen is not None and c.rate == chosen.rate]
    candidates = same_rate or events
    return candidates[0] if candidates else None


def answer_matches_offer(offer: SessionDescription, answer: SessionDescription) -> bool:
    """Whether the answer's chosen codec is one the offer listed, by name and rate (RFC 3264 §6.1)."""
    chosen = first_codec(answer)
    key = None if chosen is None else (chosen.name.casefold(), chosen.rate)
    return key is not None and key in {(codec.name.casefold(), codec.rate) for codec in audio_codecs(offer)}


def restrict_codecs(sdp: SessionDescription, allowed: frozenset[str]) -> SessionDescription:
    """Keep only the ``allowed`` codec names (case-insensitive) in the first active audio stream.

    Removed payload types lose their ``a=rtpmap``/``a=fmtp``/``a=rtcp-fb`` lines; every other
    stream is disabled with port 0, its line kept (RFC 3264 §6, §8.2). Raises ``NoCommonCodec``
    (488) when no speech codec remains or there is no active audio stream.
    """
    index = _first_audio(sdp)
    if index is None:
        raise NoCommonCodec("No audio stream")
    stream = sdp.media[index]
    wanted = {name.casefold() for name in allowed}
    kept = [c for c in stream.codecs() if c.name.casefold() in wanted]
    if all(c.name.casefold() in _AUXILIARY for c in kept):
        raise NoCommonCodec()
    pts = {c.pt for c in kept}
    removed = {int(fmt) for fmt in stream.formats} - pts
    restricted = replace(
        stream,
        formats=tuple(fmt for fmt in stream.formats if int(fmt) in pts),
        lines=tuple(line for line in stream.lines if _format_of(line) not in removed),
    )
    media = tuple(restricted if i == index else replace(m, port=0) for i, m in enumerate(sdp.media))
    return replace(sdp, media=media)


def anchor(sdp: SessionDescription, *, address: str, rtp_port: int, origin: Origin) -> SessionDescription:
    """The description as Ringwell presents it to the other leg, media relayed at ``address``.

    ``o=`` becomes ``origin``, every ``c=`` names ``address``, the first active audio stream gets
    ``rtp_port``, other streams port 0; ICE, ``a=rtcp`` and ``a=rtcp-mux`` go (module docstring).
    Raises ``NoCommonCodec`` without an active audio stream, ``ValueError`` for a bad port.
    """
    if not 0 < rtp_port < 65535:
        raise ValueError(f"RTP port out of range: {rtp_port}")
    index = _first_audio(sdp)
    if index is None:
        raise NoCommonCodec("No audio stream")
    connection = Line("c", f"IN {_addrtype(address)} {address}")
    stream = sdp.media[index]
    held = _is_unspecified(stream.connection or sdp.connection)
    effective = direction(sdp)

    def rewrite(lines: Iterable[Line]) -> list[Line]:
        return [connection if line.type == "c" else line for line in lines if line.attribute not in _DROPPED]

    anchored = rewrite(stream.lines)
    if held:
        at = next((i for i, line in enumerate(anchored) if _is_direction(line)), len(anchored))
        anchored = [line for line in anchored if not _is_direction(line)]
        anchored.insert(at, Line("a", effective))
    media = tuple(
        replace(m, port=rtp_port, port_count=None, lines=tuple(anchored))
        if i == index
        else replace(m, port=0, lines=tuple(rewrite(m.lines)))
        for i, m in enumerate(sdp.media)
    )
    return SessionDescription(origin, tuple(rewrite(sdp.lines)), media)


def _first_audio(sdp: SessionDescription) -> int | None:
    return next((i for i, m in enumerate(sdp.media) if m.media == "audio" and m.port != 0), None)


def _attributes(lines: Iterable[Line], name: str) -> list[str]:
    return [line.value[len(name) + 1 :] for line in lines if line.attribute == name]


def _connection(lines: Iterable[Line]) -> str | None:
    return next((line.value.split()[2].split("/")[0] for line in lines if line.type == "c"), None)


def _direction(lines: Iterable[Line]) -> Direction | None:
    return next((_DIRECTIONS[line.value.strip()] for line in lines if _is_direction(line)), None)


def _is_direction(line: Line) -> bool:
    return line.type == "a" and line.value.strip() in _DIRECTIONS


def _format_of(line: Line) -> int | None:
    if line.attribute not in _PER_FORMAT:
        return None
    pt = line.value.partition(":")[2].partition(" ")[0]
    return int(pt) if _PT_RE.fullmatch(pt) else None


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _is_unspecified(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _check_address(addrtype: str, text: str) -> str:
    """Validate a unicast or multicast address (RFC 4566 §5.7, §9) and return the host part."""
    host, _, suffix = text.partition("/")
    if suffix and not _TTL_RE.fullmatch("/" + suffix):
        raise SdpError("Bad address in SDP")
    try:
        if addrtype == "IP6" and ":" in host:
            ipaddress.IPv6Address(host)
        elif addrtype == "IP4" and _DOTTED_RE.fullmatch(host):
            ipaddress.IPv4Address(host)
        elif not _HOSTNAME_RE.fullmatch(host):
            raise SdpError("Bad address in SDP")
    except ValueError:
        raise SdpError("Bad address in SDP") from None
    return host


def _parse_origin(value: str) -> Origin:
    fields = value.split()
    if len(fields) != 6 or not _NUMBER_RE.fullmatch(fields[2]) or fields[3:5] not in (["IN", "IP4"], ["IN", "IP6"]):
        raise SdpError("Bad o= in SDP")
    return Origin(fields[0], fields[1], int(fields[2]), _check_address(fields[4], fields[5]))


def _parse_media(value: str, lines: tuple[Line, ...]) -> MediaDescription:
    fields = value.split()
    if len(fields) < 3 or not _TOKEN_RE.fullmatch(fields[0]) or not _PROTO_RE.fullmatch(fields[2]):
        raise SdpError("Bad m= in SDP")
    port = _PORT_RE.fullmatch(fields[1])
    if port is None or int(port[1]) > 65535 or (port[2] is not None and int(port[2]) == 0):
        raise SdpError("Bad port in SDP")
    formats = tuple(fields[3:])
    if not formats and int(port[1]) != 0:  # tolerated on a rejected stream only (RFC 3264 §6)
        raise SdpError("Bad m= in SDP")
    for fmt in formats:
        if not _TOKEN_RE.fullmatch(fmt) or ("RTP/" in fields[2] and not (_PT_RE.fullmatch(fmt) and int(fmt) < 128)):
            raise SdpError("Bad format in SDP")
    port_count = int(port[2]) if port[2] is not None else None
    return MediaDescription(fields[0], int(port[1]), port_count, fields[2], formats, lines)
