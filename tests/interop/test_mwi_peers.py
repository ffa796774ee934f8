"""Message-waiting lamps against the running server on loopback (in this process).

baresip with ``mwi=yes`` registers, SUBSCRIBEs to ``message-summary`` (answering the digest
challenge) and shows each NOTIFY body as an ``MWI_NOTIFY`` event: first ``Messages-Waiting: no``,
then ``yes`` with ``Voice-Message: 1/0`` once the mailbox has a message and the voicemail side
calls ``notify_mailbox``, then ``no`` again. A plain UDP phone (the test's own SIP client)
that registered without subscribing gets the unsolicited NOTIFY; SUBSCRIBEs for another user's
mailbox (403), another Event package (489) and too short an interval (423) are refused.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time

import pytest

from ringwell.features.accounts.service import UserSpec
from ringwell.pbx.mwi import MessageSummary
from ringwell.sip import digest
from ringwell.sip.message import Request, Response, parse_message
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.inprocess import inprocess_server
from tests.peers.ports import LOOPBACK
from tests.sipclient import Client

pytestmark = pytest.mark.peers

ORG = "Acme"


class MwiBaresip(Baresip):
    """baresip with its ``mwi`` module loaded (the account's ``mwi=yes`` makes it subscribe)."""

    def write_config(self) -> None:
        super().write_config()
        with (self.dir / "config").open("a") as config:
            config.write("module_app\t\tmwi.so\n")


@pytest.fixture
async def ringwell(tmp_path):
    async with inprocess_server(tmp_path) as server:
        accounts = server.accounts
        await accounts.create_org(ORG)
        alice = await accounts.create_user(ORG, UserSpec("alice@example.com", "101", "alice", "alice-secret-1"))
        bob = await accounts.create_user(ORG, UserSpec("bob@example.com", "102", "bob", "bob-secret-12"))
        counts: dict[str, tuple[int, int]] = {}

        async def mailbox(user_id: str) -> tuple[int, int]:
            return counts.get(user_id, (0, 0))

        server.mwi.counts = mailbox  # what the voicemail slice will provide
        yield server, counts, {"alice": alice.user.id, "bob": bob.user.id}


_MWI_SHOWN = re.compile(r"^----- MWI for \S+ -----\n((?:[A-Za-z-]+: .*\n)+)", re.MULTILINE)


def mwi_shown(phone: Baresip) -> list[MessageSummary]:
    """Every message summary baresip showed its user (its ``menu`` prints the NOTIFY body under
    "MWI for <aor>"; baresip 1.0's ctrl_tcp does not forward MWI events)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", phone.proc.log_text() if phone.proc else "")
    return [MessageSummary.parse(m.group(1).encode()) for m in _MWI_SHOWN.finditer(text)]


async def next_shown(phone: Baresip, seen: int, timeout: float = 10.0) -> MessageSummary:
    """The summary baresip shows after the first ``seen`` ones."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = await asyncio.to_thread(mwi_shown, phone)
        if len(shown) > seen:
            return shown[seen]
        await asyncio.sleep(0.1)
    raise TimeoutError(f"baresip showed no MWI notification #{seen + 1} within {timeout} s")


async def test_baresip_lamp_follows_the_mailbox(ringwell, tmp_path):
    server, counts, users = ringwell
    port = server.settings.sip_port
    phone = MwiBaresip(tmp_path / "alice", BaresipAccount("alice", "alice-secret-1", port,
                                                          extra=("mwi=yes", "pubint=0")))
    await asyncio.to_thread(phone.start)
    try:
        await asyncio.to_thread(phone.wait_registered)
        first = await next_shown(phone, 0)
        assert not first.waiting and (first.new, first.old) == (0, 0)
        assert first.account == f"sip:101@{server.settings.sip_realm}"
        assert len(server.mwi.subscriptions) == 1

        counts[users["alice"]] = (1, 0)
        await server.mwi.notify_mailbox(users["alice"])
        lit = await next_shown(phone, 1)
        assert lit.waiting and (lit.new, lit.old) == (1, 0)

        counts[users["alice"]] = (0, 0)  # the message was deleted
        await server.mwi.notify_mailbox(users["alice"])
        dark = await next_shown(phone, 2)
        assert not dark.waiting and (dark.new, dark.old) == (0, 0)

        trace = await asyncio.to_thread(phone.sip_trace)
        subscribes = [e for e in trace if e.method == "SUBSCRIBE"]
        assert subscribes and "message-summary" in subscribes[0].text.lower()
        notifies = [e for e in trace if e.method == "NOTIFY"]
        assert all("Subscription-State: active" in e.text for e in notifies)
        # baresip answered every NOTIFY 200 (no 481: the dialog held)
        assert sum(1 for e in trace if e.status == 200 and e.cseq and e.cseq.endswith("NOTIFY")) >= 3
        await asyncio.to_thread(phone.stop)  # quitting unsubscribes: Expires: 0, a final NOTIFY
        assert len(server.mwi.subscriptions) == 0
        final = [e for e in phone.sip_trace() if e.method == "NOTIFY"][-1]
        assert "Subscription-State: terminated" in final.text
    finally:
        await asyncio.to_thread(phone.stop)


class Phone:
    """The test's own UDP phone: registers, subscribes with digest (407), answers NOTIFYs."""

    def __init__(self, client: Client, user: str, password: str) -> None:
        self.client = client
        self.user = user
        self.password = password

    @classmethod
    async def open(cls, port: int, user: str, password: str) -> Phone:
        return cls(await Client("udp", LOOPBACK, port).open(), user, password)

    def _subscribe(self, ruri: str, event: str, expires: int, call_id: str, cseq: int, auth: str = "") -> bytes:
        host, port = self.client.local
        extra = (f"Contact: <sip:{self.user}@{host}:{port}>\r\nEvent: {event}\r\nExpires: {expires}\r\n"
                 f"Accept: application/simple-message-summary\r\n{auth}")
        return self.client.build("SUBSCRIBE", user=self.user, extra=extra, call_id=call_id, cseq=cseq, ruri=ruri)

    async def subscribe(self, mailbox: str, *, event: str = "message-summary", expires: int = 600) -> Response:
        ruri = f"sip:{mailbox}@{LOOPBACK}"
        call_id = secrets.token_hex(8)
        self.client.send(self._subscribe(ruri, event, expires, call_id, 1))
        first = await self.client.final()
        if first.status != 407:
            return first
        challenge = next(c for c in (digest.parse_challenge(v) for v in first.headers.get_all("proxy-authenticate"))
                         if c is not None)
        auth = digest.authorize(challenge, "SUBSCRIBE", ruri, self.user, self.password)
        self.client.send(self._subscribe(ruri, event, expires, call_id, 2, f"Proxy-Authorization: {auth}\r\n"))
        return await self.client.final()

    async def next_request(self, timeout: float = 5.0) -> Request:
        deadline = time.monotonic() + timeout
        while True:
            message = parse_message(await self.client.recv_raw(max(0.05, deadline - time.monotonic())))
            if isinstance(message, Request):
                return message

    def answer(self, request: Request, status: int = 200, reason: str = "OK") -> None:
        vias = "".join(f"Via: {v}\r\n" for v in request.headers.get_all("via"))
        self.client.send((f"SIP/2.0 {status} {reason}\r\n{vias}From: {request.headers.get('from')}\r\n"
                          f"To: {request.headers.get('to')};tag={secrets.token_hex(4)}\r\n"
                          f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq}\r\nContent-Length: 0\r\n\r\n").encode())


async def test_a_phone_that_only_registers_gets_unsolicited_notifies(ringwell):
    server, counts, users = ringwell
    phone = await Phone.open(server.settings.sip_port, "alice", "alice-secret-1")
    try:
        assert (await phone.client.register("alice", "alice-secret-1", algorithm="MD5")).status == 200
        counts[users["alice"]] = (2, 5)
        await server.mwi.notify_mailbox(users["alice"])
        notify = await phone.next_request()
        phone.answer(notify)
        host, port = phone.client.local
        assert notify.method == "NOTIFY" and notify.uri_text == f"sip:alice@{host}:{port};transport=udp"
        assert notify.to.tag is None and notify.headers.get("event") == "message-summary"
        assert notify.headers.get("content-type") == "application/simple-message-summary"
        summary = MessageSummary.parse(notify.body)
        assert summary.waiting and (summary.new, summary.old) == (2, 5)
        counts[users["alice"]] = (0, 7)
        await server.mwi.notify_mailbox(users["alice"])
        again = await phone.next_request()
        phone.answer(again)
        assert not MessageSummary.parse(again.body).waiting
    finally:
        await phone.client.close()


async def test_subscribe_refusals_and_a_481_ending_the_subscription(ringwell):
    server, counts, users = ringwell
    phone = await Phone.open(server.settings.sip_port, "alice", "alice-secret-1")
    try:
        assert (await phone.subscribe("102")).status == 403  # bob's mailbox
        refused = await phone.subscribe("alice", event="presence")
        assert refused.status == 489 and refused.headers.get("allow-events") == "message-summary"
        brief = await phone.subscribe("alice", expires=5)
        assert brief.status == 423 and brief.headers.get("min-expires") == str(server.settings.min_expires)

        ok = await phone.subscribe("101")
        assert ok.status == 200 and ok.headers.get("expires") == "600"
        first = await phone.next_request()
        assert first.headers.get("subscription-state") == "active;expires=600"
        assert not MessageSummary.parse(first.body).waiting
        phone.answer(first)
        counts[users["alice"]] = (1, 0)
        await server.mwi.notify_mailbox(users["alice"])
        lit = await phone.next_request()
        assert MessageSummary.parse(lit.body).waiting
        phone.answer(lit, 481, "Call/Transaction Does Not Exist")  # the phone forgot the subscription
        deadline = time.monotonic() + 3
        while len(server.mwi.subscriptions) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(server.mwi.subscriptions) == 0
    finally:
        await phone.client.close()
