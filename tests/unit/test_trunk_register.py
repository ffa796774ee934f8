"""The REGISTER client toward carriers: answers a challenge, and does not loop when the carrier
keeps refusing the credentials with a fresh nonce each time (the refresh is shown against a
SIPp registrar in tests/interop/test_carrier_calls.py)."""

from __future__ import annotations

import asyncio
import ipaddress

from ringwell.features.trunks.service import InboundMatch, TrunkRoute
from ringwell.pbx.trunk_register import TrunkRegistrations
from ringwell.sip.dialog import ViaSpec
from ringwell.sip.message import Request, Response, parse_message

TRUNK = TrunkRoute("t1", "carrier", "127.0.0.1", 5090, "udp", "acct", "pw", True, 120,
                   (InboundMatch(ipaddress.ip_network("127.0.0.1/32"), 5090),), "e164", "", 10, None, 0)


class Carrier:
    """Answers each REGISTER as a registrar would: 401 with a fresh nonce, or 200 once authorized."""

    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.sent: list[Request] = []

    def send_request(self, request, flow, on_response, on_failure) -> None:
        self.sent.append(request)
        authorized = request.headers.get("authorization") is not None
        if authorized and self.accept:
            head = "SIP/2.0 200 OK\r\n"
            extra = "Contact: <sip:acct@127.0.0.1:5060>;expires=60\r\n"
        else:
            head = "SIP/2.0 401 Unauthorized\r\n"
            extra = f'WWW-Authenticate: Digest realm="c", nonce="n{len(self.sent)}", algorithm=MD5\r\n'
        text = (head + "".join(f"Via: {v}\r\n" for v in request.headers.get_all("via"))
                + f"From: {request.headers.get('from')}\r\nTo: {request.headers.get('to')};tag=x\r\n"
                + f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq}\r\n{extra}Content-Length: 0\r\n\r\n")
        response = parse_message(text.encode())
        assert isinstance(response, Response)
        asyncio.get_running_loop().call_soon(on_response, response)


def registrations(carrier: Carrier) -> TrunkRegistrations:
    return TrunkRegistrations(carrier, lambda flow: ViaSpec("udp", "127.0.0.1", 5060), "127.0.0.1", 5060,
                              lambda: [TRUNK])


async def test_registers_answering_the_challenge_with_our_contact():
    carrier = Carrier(accept=True)
    regs = registrations(carrier)
    regs.start()
    try:
        await asyncio.sleep(0.2)
        assert regs.status()["carrier"]["state"] == "registered"
        assert [r.headers.get("authorization") is not None for r in carrier.sent] == [False, True]
        assert carrier.sent[0].headers.get("contact") == "<sip:acct@127.0.0.1:5060;transport=udp>"
        assert carrier.sent[1].call_id == carrier.sent[0].call_id and carrier.sent[1].cseq.number == 2
    finally:
        await regs.stop()


async def test_refused_credentials_do_not_loop():
    carrier = Carrier(accept=False)
    regs = registrations(carrier)
    regs.start()
    try:
        await asyncio.sleep(0.3)
        state = regs.status()["carrier"]
        assert state["state"] == "failed" and "credentials refused" in str(state["error"])
        assert len(carrier.sent) == 3, "one plain REGISTER, at most two answers, then back off"
    finally:
        await regs.stop()
