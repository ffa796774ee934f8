"""What a SIP server checks before it acts on a request, and how it builds responses.

Pure functions: ``check_request`` returns the response a UAS must send instead of processing
(RFC 3261 §8.2: method, URI scheme, Require, Content-Type, Accept), or None.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ringwell.sip.message import Headers, Request, Response
from ringwell.sip.uri import SipUri, TelUri

__all__ = ["KNOWN_METHODS", "Rejection", "check_request", "make_response", "new_tag", "reply_to_malformed"]

KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
     "INFO", "REFER", "MESSAGE", "UPDATE"}
)
SERVER_HEADER = "Ringwell"

REASONS = {
    100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops", 487: "Request Terminated", 489: "Bad Event", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "Version Not Supported", 513: "Message Too Large",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def new_tag() -> str:
    return secrets.token_hex(6)


def check_request(
    request: Request,
    *,
    allowed: frozenset[str],
    supported: frozenset[str] = frozenset(),
    accepted_types: frozenset[str] = frozenset({"application/sdp"}),
) -> Rejection | None:
    """The rejection RFC 3261 §8.2.1–§8.2.3 asks for, or None when the request may go on."""
    method = request.method
    if method not in KNOWN_METHODS:
        return Rejection(501, "Not Implemented", (("Allow", ", ".join(sorted(allowed))),))
    if method not in allowed:
        return Rejection(405, "Method Not Allowed", (("Allow", ", ".join(sorted(allowed))),))
    if not isinstance(request.uri, SipUri | TelUri):
        return Rejection(416, "Unsupported URI Scheme")
    if method not in ("ACK", "CANCEL"):
        required = [
            option
            for name in ("require", "proxy-require")
            for option in request.headers.values(name)
            if option and option.lower() not in supported
        ]
        if required:
            return Rejection(420, "Bad Extension", (("Unsupported", ", ".join(required)),))
    if request.body:
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type not in accepted_types:
            return Rejection(415, "Unsupported Media Type", (("Accept", ", ".join(sorted(accepted_types))),))
    if method == "INVITE":
        accept = [a.split(";")[0].strip().lower() for a in request.headers.values("accept")]
        if accept and not any(a in ("application/sdp", "application/*", "*/*") for a in accept):
            return Rejection(406, "Not Acceptable", (("Accept", "application/sdp"),))
    return None


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    to_tag: str | None = None,
) -> Response:
    """A response to ``request`` (§8.2.6.2): Via, From, To, Call-ID and CSeq copied."""
    out = Headers()
    for via in request.headers.get_all("via"):
        out.add("Via", via)
    out.add("From", request.headers.get("from") or "")
    to = request.headers.get("to") or ""
    if status > 100 and request.to.tag is None:
        to = f"{to};tag={to_tag or new_tag()}"
    out.add("To", to)
    out.add("Call-ID", request.call_id)
    out.add("CSeq", f"{request.cseq.number} {request.method}")
    for name, value in headers:
        out.add(name, value)
    out.add("Server", SERVER_HEADER)
    return Response.build(status, reason or REASONS.get(status, "Unknown"), out, request.vias, request.call_id,
                          request.cseq)


def reply_to_malformed(method: str, headers: Headers, status: int, reason: str) -> bytes | None:
    """Bytes answering a request the parser refused, from its raw headers; None if impossible."""
    vias = headers.get_all("via")
    if method == "ACK" or not vias:
        return None
    lines = [f"SIP/2.0 {status} {_phrase(reason)}"]
    lines += [f"Via: {via}" for via in vias]
    for name in ("From", "To", "Call-ID", "CSeq"):
        for value in headers.get_all(name)[:1]:
            lines.append(f"{name}: {value}")
    lines.append(f"Server: {SERVER_HEADER}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def _phrase(text: str) -> str:
    """A reason phrase: one line of printable text."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:120] or "Bad Request"
