"""RFC 4475 torture messages and RFC 5118 IPv6 messages: the reaction the RFCs expect."""

from __future__ import annotations

import pytest

from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Request, Response, parse_message
from tests.sipdata import reaction, vectors

VECTORS = vectors()


def test_every_rfc_message_is_present():
    names = {v.id for v in VECTORS}
    assert len([n for n in names if n.startswith("rfc4475/")]) == 49
    assert len([n for n in names if n.startswith("rfc5118/")]) == 12


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_reaction_matches_the_rfc(vector):
    got = reaction(vector.data)
    expected = {vector.expect, *vector.also}
    if vector.kind == "response" and vector.syntax == "valid":
        # bcast: well formed, dropped because no transaction of ours matches it (see the
        # server test, which checks that nothing is sent back).
        expected.add("valid")
    assert got in expected, f"{vector.id}: expected {vector.expect}, got {got}"


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.syntax == "valid" and v.expect in ("valid", 501, 401)],
                         ids=lambda v: v.id)
def test_well_formed_messages_parse(vector):
    message = parse_message(vector.data)
    expected = Request if vector.kind == "request" else Response
    assert isinstance(message, expected)
    # Serialising and parsing again keeps the message's meaning.
    again = parse_message(message.encode())
    assert again.call_id == message.call_id
    assert again.cseq == message.cseq
    assert again.body == message.body
    assert [str(v) for v in again.vias] == [str(v) for v in message.vias]


def test_wsinv_details():
    """The short tortuous INVITE: folding, compact forms and odd whitespace read right."""
    message = next(v for v in VECTORS if v.name == "wsinv")
    request = parse_message(message.data)
    assert isinstance(request, Request)
    assert request.method == "INVITE"
    assert request.headers.get("t") == request.headers.get("To")
    assert request.call_id
    assert request.cseq.method == "INVITE"
    assert len(request.body) == int(request.headers.get("content-length") or "0")
    assert len(request.vias) >= 2


def test_dblreq_ignores_trailing_octets():
    vector = next(v for v in VECTORS if v.name == "dblreq")
    message = parse_message(vector.data)
    assert message.body == b""
    assert b"INVITE" in vector.data[vector.data.index(b"\r\n\r\n") :]


def test_malformed_reason_phrases_say_what_is_wrong():
    cases = {"badvers": "Version", "clerr": "Content-Length", "mismatch01": "CSeq", "quotbal": "quoted",
             "escruri": "Request-URI", "ncl": "Content-Length", "scalar02": "Max-Forwards"}
    for name, word in cases.items():
        vector = next(v for v in VECTORS if v.name == name)
        with pytest.raises(RemoteProtocolError) as info:
            parse_message(vector.data)
        assert word.lower() in str(info.value).lower(), (name, str(info.value))
