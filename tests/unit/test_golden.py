"""Messages captured from baresip, linphonec and SIPp registering with Ringwell parse, pass the
server's checks and survive a round trip (tests/peers/capture_golden.py made them)."""

from __future__ import annotations

import pytest

from ringwell.pbx.endpoint import screen_request
from ringwell.sip.digest import parse_credentials
from ringwell.sip.message import Request, Response, parse_message
from tests.golden import golden_messages

GOLDEN = golden_messages()


def test_each_peer_is_represented():
    peers = {name.split("-")[0] for name, _ in GOLDEN}
    assert peers == {"baresip", "linphone", "sipp"}
    assert sum(1 for name, _ in GOLDEN if "register" in name) >= 9


@pytest.mark.parametrize(("name", "data"), GOLDEN, ids=[n for n, _ in GOLDEN])
def test_golden_message(name, data):
    message = parse_message(data)
    if "register" in name or "options" in name:
        assert isinstance(message, Request)
        assert screen_request(message) is None
        for value in message.headers.get_all("authorization"):
            creds = parse_credentials(value)
            assert creds is not None and creds.realm == "ringwell" and creds.qop == "auth"
    else:
        assert isinstance(message, Response)
    again = parse_message(message.encode())
    assert again.call_id == message.call_id and again.cseq == message.cseq
    assert [str(v) for v in again.vias] == [str(v) for v in message.vias]
    assert list(again.headers) == [(n, v) for n, v in message.headers if n.lower() not in ("content-length", "l")] + [
        ("Content-Length", str(len(message.body)))
    ]
