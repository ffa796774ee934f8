"""Small builders of SIP messages for tests."""

from __future__ import annotations

import secrets

from ringwell.sip.message import Request, Response, parse_message


def request(method: str = "REGISTER", *, user: str = "alice", host: str = "127.0.0.1", port: int = 5070,
            branch: str | None = None, call_id: str = "call-1", cseq: int = 1, transport: str = "UDP",
            extra: str = "", body: bytes = b"", to_tag: str | None = None) -> bytes:
    branch = branch or "z9hG4bK" + secrets.token_hex(6)
    to = f"<sip:{user}@{host}>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} sip:{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{host}>;tag=from1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def parsed_request(method: str = "REGISTER", **kw: object) -> Request:
    message = parse_message(request(method, **kw))  # type: ignore[arg-type]
    assert isinstance(message, Request)
    return message


def response_to(req: Request, status: int, reason: str = "X", to_tag: str = "tt") -> Response:
    vias = "".join(f"Via: {v}\r\n" for v in req.headers.get_all("via"))
    text = (
        f"SIP/2.0 {status} {reason}\r\n{vias}"
        f"From: {req.headers.get('from')}\r\nTo: {req.headers.get('to')};tag={to_tag}\r\n"
        f"Call-ID: {req.call_id}\r\nCSeq: {req.cseq}\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Response)
    return message
