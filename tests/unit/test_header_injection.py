"""A bare CR or LF inside a CRLF message is refused: relayed on by the B2BUA (a Reason, a reason
phrase, a Content-Type) it would smuggle header fields into the other leg."""

from __future__ import annotations

import pytest

from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import MalformedRequest, parse_message

CANCEL = (
    "CANCEL sip:201@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
    "From: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:201@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 CANCEL\r\n"
    "Max-Forwards: 70\r\nReason: {reason}\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize("smuggled", ["SIP;cause=487\nX-Evil: 1", "SIP;cause=487\rX-Evil: 1"])
def test_bare_line_break_inside_a_header_is_a_400(smuggled):
    with pytest.raises(MalformedRequest) as info:
        parse_message(CANCEL.format(reason=smuggled).encode())
    assert info.value.status_hint == 400 and "Bare CR or LF" in str(info.value)


def test_bare_line_break_in_a_response_reason_phrase_is_refused():
    response = ("SIP/2.0 486 Busy\nX-Evil: 1\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
                "From: <sip:a@h>;tag=a\r\nTo: <sip:b@h>;tag=b\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
                "Content-Length: 0\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        parse_message(response.encode())


def test_lf_only_messages_still_parse():
    message = parse_message(CANCEL.format(reason="SIP;cause=487").replace("\r\n", "\n").encode())
    assert message.headers.get("reason") == "SIP;cause=487"
