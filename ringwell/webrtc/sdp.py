"""SDP between a browser's WebRTC description and the plain RTP one the B2BUA relays (pure).

A browser leg speaks ICE + DTLS-SRTP (``UDP/TLS/RTP/SAVPF``, RFC 8829 / 8843); the rest of a
call speaks plain ``RTP/AVP`` G.711. The server's WebRTC leg (``ringwell.webrtc.leg``) sits
between them, and these functions write the two descriptions it presents:

- ``choose_codec(offer)``: what the browser leg will carry — the first G.711 codec the browser
  offers (payload passed through, no transcoding), else Opus (transcoded to G.711), plus the
  browser's RFC 4733 telephone-event at that codec's clock rate.
- ``plain_description(...)``: the ``RTP/AVP`` side, G.711 and telephone-event/8000 only.
- ``with_event`` / ``with_direction`` / ``with_public_address`` / ``as_answer``: edits to the
  description aiortc wrote, which knows nothing of telephone-event (aiortc has no RFC 4733),
  of hold, of a NAT in front of the server, or of answering with its own earlier offer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ringwell.sip.sdp import (
    Codec,
    Direction,
    Line,
    NoCommonCodec,
    Origin,
    SessionDescription,
    audio_codecs,
    direction,
    parse_sdp,
)

__all__ = [
    "EVENT_PT",
    "G711",
    "BrowserChoice",
    "as_answer",
    "choose_codec",
    "direction_of",
    "event_at",
    "free_payload_type",
    "is_webrtc",
    "mirrored",
    "only_formats",
    "plain_description",
    "setup_of",
    "with_direction",
    "with_event",
    "with_public_address",
]

G711 = ("PCMU", "PCMA")
EVENT_PT = 101  # telephone-event on the plain side, as most SIP phones number it
_STATIC_PT = {"PCMU": 0, "PCMA": 8}
_DIRECTION_NAMES_TYPED: dict[str, Direction] = {
    "sendrecv": "sendrecv", "sendonly": "sendonly", "recvonly": "recvonly", "inactive": "inactive",
}
_DIRECTION_NAMES = frozenset(_DIRECTION_NAMES_TYPED)
_MIRROR: dict[Direction, Direction] = {
    "sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
}


@dataclass(frozen=True, slots=True)
class BrowserChoice:
    """The speech codec the browser leg carries and its telephone-event (None if not offered)."""

    codec: Codec
    event: Codec | None

    @property
    def passthrough(self) -> bool:
        return self.codec.name.upper() in G711


def _first_audio(sdp: SessionDescription) -> int | None:
    return next((i for i, m in enumerate(sdp.media) if m.media == "audio" and m.port != 0), None)


def is_webrtc(sdp: SessionDescription) -> bool:
    """Whether the first active audio stream is DTLS-SRTP with ICE (a browser's), not plain RTP."""
    index = _first_audio(sdp)
    if index is None:
        return False
    stream = sdp.media[index]
    return "SAVP" in stream.proto.upper() or bool(stream.attributes("fingerprint") or sdp.attributes("fingerprint"))


def event_at(sdp: SessionDescription, rate: int) -> Codec | None:
    """The telephone-event format at ``rate`` in the first audio stream, if any."""
    return next((c for c in audio_codecs(sdp) if c.name.casefold() == "telephone-event" and c.rate == rate), None)


def choose_codec(offer: SessionDescription) -> BrowserChoice:
    """G.711 if offered (first in the browser's order), else Opus; ``NoCommonCodec`` (488) otherwise."""
    codecs = audio_codecs(offer)
    chosen = next((c for c in codecs if c.name.upper() in G711 and c.rate == 8000), None)
    if chosen is None:
        chosen = next((c for c in codecs if c.name.casefold() == "opus" and c.rate == 48000), None)
    if chosen is None:
        raise NoCommonCodec("The browser offered neither G.711 nor Opus")
    return BrowserChoice(chosen, event_at(offer, chosen.rate))


def plain_description(*, origin: Origin, address: str, port: int, codecs: Sequence[str], event_pt: int | None,
                      stream_direction: Direction) -> SessionDescription:
    """An ``RTP/AVP`` audio description at ``address:port``: ``codecs`` (G.711 names, in order) and
    telephone-event/8000 as ``event_pt`` unless None."""
    if not codecs or any(name not in _STATIC_PT for name in codecs):
        raise ValueError(f"plain codecs must be G.711 names, got {list(codecs)}")
    family = "IP6" if ":" in address else "IP4"
    pts = [str(_STATIC_PT[name]) for name in codecs] + ([str(event_pt)] if event_pt is not None else [])
    lines = [
        "v=0", origin.encode(), "s=ringwell", f"c=IN {family} {address}", "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(pts)}",
        *(f"a=rtpmap:{_STATIC_PT[name]} {name}/8000" for name in codecs),
    ]
    if event_pt is not None:
        lines += [f"a=rtpmap:{event_pt} telephone-event/8000", f"a=fmtp:{event_pt} 0-16"]
    lines += ["a=ptime:20", f"a={stream_direction}"]
    return parse_sdp(("\r\n".join(lines) + "\r\n").encode())


def _with_audio_lines(sdp: SessionDescription, index: int, formats: tuple[str, ...],
                      lines: tuple[Line, ...]) -> SessionDescription:
    media = list(sdp.media)
    media[index] = replace(media[index], formats=formats, lines=lines)
    return replace(sdp, media=tuple(media))


def with_event(sdp: SessionDescription, event: Codec) -> SessionDescription:
    """``sdp`` with ``event`` (telephone-event) added to its first audio stream, if not there yet."""
    index = _first_audio(sdp)
    if index is None or event_at(sdp, event.rate) is not None:
        return sdp
    stream = sdp.media[index]
    extra = [Line("a", f"rtpmap:{event.pt} telephone-event/{event.rate}"), Line("a", f"fmtp:{event.pt} 0-16")]
    # after the last rtpmap/fmtp line, where readers expect format attributes
    last = max((i for i, line in enumerate(stream.lines) if line.attribute in ("rtpmap", "fmtp")), default=-1)
    lines = (*stream.lines[: last + 1], *extra, *stream.lines[last + 1:])
    return _with_audio_lines(sdp, index, (*stream.formats, str(event.pt)), lines)


def only_formats(sdp: SessionDescription, pts: Sequence[int]) -> SessionDescription:
    """``sdp`` with its first audio stream cut down to the payload types ``pts`` (in ``m=`` order);
    aiortc answers with every codec it shares with the offer, whatever the preferences say."""
    index = _first_audio(sdp)
    if index is None:
        return sdp
    stream = sdp.media[index]
    keep = {str(pt) for pt in pts}
    lines = tuple(line for line in stream.lines
                  if not (line.attribute in ("rtpmap", "fmtp", "rtcp-fb")
                          and line.value.partition(":")[2].split(" ")[0] not in keep))
    return _with_audio_lines(sdp, index, tuple(f for f in stream.formats if f in keep), lines)


def with_direction(sdp: SessionDescription, wanted: Direction) -> SessionDescription:
    """``sdp`` with its first audio stream's direction attribute set to ``wanted``."""
    index = _first_audio(sdp)
    if index is None:
        return sdp
    stream = sdp.media[index]
    kept = [line for line in stream.lines if not (line.type == "a" and line.value in _DIRECTION_NAMES)]
    at = next((i for i, line in enumerate(stream.lines) if line.type == "a" and line.value in _DIRECTION_NAMES),
              len(kept))
    kept.insert(min(at, len(kept)), Line("a", wanted))
    sessionless = tuple(line for line in sdp.lines if not (line.type == "a" and line.value in _DIRECTION_NAMES))
    return replace(_with_audio_lines(sdp, index, stream.formats, tuple(kept)), lines=sessionless)


def mirrored(stream_direction: Direction) -> Direction:
    """The direction an answerer writes to agree with an offer's (RFC 3264 §6.1)."""
    return _MIRROR[stream_direction]


def with_public_address(sdp: SessionDescription, public: str) -> SessionDescription:
    """Each IPv4 host candidate also announced at ``public`` (a server-reflexive candidate on the same
    port), for a server behind a 1:1 NAT; the private one stays for browsers on the same LAN."""
    index = _first_audio(sdp)
    if index is None:
        return sdp
    stream = sdp.media[index]
    lines: list[Line] = []
    for line in stream.lines:
        lines.append(line)
        if line.attribute != "candidate":
            continue
        parts = line.value.split()
        # candidate:<foundation> <component> <transport> <priority> <address> <port> typ host ...
        if len(parts) >= 8 and parts[6] == "typ" and parts[7] == "host" and "." in parts[4] and parts[4] != public:
            foundation = parts[0].partition(":")[2]
            priority = int(parts[3]) - (126 - 100) * (1 << 24)  # RFC 8445 §5.1.2.1: srflx type preference 100
            lines.append(Line("a", f"candidate:{foundation}x {parts[1]} {parts[2]} {priority} {public} {parts[5]} "
                                   f"typ srflx raddr {parts[4]} rport {parts[5]}"))
    return _with_audio_lines(sdp, index, stream.formats, tuple(lines))


def free_payload_type(sdp: SessionDescription, *, taken: Sequence[int] = ()) -> int:
    """A dynamic payload type (96-127) not used by ``sdp``'s first audio stream nor in ``taken``."""
    index = _first_audio(sdp)
    used: set[int] = {int(f) for f in sdp.media[index].formats if f.isdigit()} if index is not None else set()
    used.update(taken)
    for pt in (EVENT_PT, *range(96, 128)):
        if pt not in used:
            return int(pt)
    raise NoCommonCodec("No free RTP payload type for telephone-event")


def setup_of(sdp: SessionDescription) -> str | None:
    """The DTLS ``a=setup`` role (RFC 4145 / 5763) of the first audio stream or the session."""
    index = _first_audio(sdp)
    values = (sdp.media[index].attributes("setup") if index is not None else []) or sdp.attributes("setup")
    return values[0] if values else None


def as_answer(local_offer: SessionDescription, remote_answer: SessionDescription,
              stream_direction: Direction) -> SessionDescription:
    """Our earlier *offer* re-used as an *answer* to a browser's re-offer (hold, resume): only the
    formats the browser's answer kept, ``a=setup`` fixed to the DTLS role we took, the direction
    given. ICE credentials and fingerprints stay, so nothing is renegotiated."""
    index = _first_audio(local_offer)
    if index is None:
        return local_offer
    stream = local_offer.media[index]
    kept = {str(c.pt) for c in audio_codecs(remote_answer)}
    their_setup = setup_of(remote_answer)
    ours = "passive" if their_setup == "active" else "active"
    removed = {f for f in stream.formats if f not in kept}
    lines = []
    for line in stream.lines:
        if line.attribute in ("rtpmap", "fmtp", "rtcp-fb") and line.value.partition(":")[2].split(" ")[0] in removed:
            continue
        lines.append(Line("a", f"setup:{ours}") if line.attribute == "setup" else line)
    answer = _with_audio_lines(local_offer, index, tuple(f for f in stream.formats if f in kept), tuple(lines))
    return with_direction(answer, stream_direction)


def direction_of(sdp: SessionDescription) -> Direction:
    """The first audio stream's direction attribute (RFC 3264 §6.1; default sendrecv).

    Unlike ``ringwell.sip.sdp.direction`` a ``c=`` of 0.0.0.0 is *not* an RFC 2543 hold here: a
    browser always writes it, its addresses are in the ICE candidates (RFC 8839 §4.2.1.1). A plain
    description from the call is also read by its attribute (``anchor()`` writes one for a hold).
    """
    if is_webrtc(sdp):
        index = _first_audio(sdp)
        if index is None:
            return "inactive"
        values = [line.value for line in (*sdp.media[index].lines, *sdp.lines)
                  if line.type == "a" and line.value in _DIRECTION_NAMES]
        return _DIRECTION_NAMES_TYPED[values[0]] if values else "sendrecv"
    return direction(sdp)
