"""The calls driver around the B2BUA core: what happens between the INVITE and the first fork.

The SIP endpoint, relay, registrar and record writer are replaced by recorders of what the
driver asks of them (they are Ringwell's own seams, exercised for real in tests/interop)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace as NS

from ringwell.features.accounts.repository import Reachable
from ringwell.pbx.call import CallConfig
from ringwell.pbx.calls import CallManager
from ringwell.transport.source import Source
from tests.unit.test_call import RINGWELL, caller_invite, contact_for, via_for

CALLER = NS(org_id="o1", user_id="u-alice", extension="101", username="alice")
TXN = ("z9hG4bKcaller", "192.0.2.10:5062", "INVITE")


class Sip:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.statuses: list[int] = []
        self.final: set[object] = set()

    def send_request(self, request, flow, on_response, on_failure):
        self.sent.append(request.method)

    def respond(self, txn, response):
        self.statuses.append(response.status)
        if response.status >= 200:
            self.final.add(txn)

    def transmit(self, flow, data):
        pass

    def pending(self, txn):
        return txn not in self.final


class Session:
    def __init__(self) -> None:
        self.label, self.closed = "call", False
        self.a = self.b = NS(local_port=30000, set_remote=lambda *a, **k: None)

    def arm(self):
        pass

    def disarm(self):
        pass

    def summary(self):
        return {}

    def close(self):
        self.closed = True


class Relay:
    timeout = 60.0

    def __init__(self) -> None:
        self.sessions: list[Session] = []

    def create(self, label):
        session = Session()
        self.sessions.append(session)
        return session


class Records:
    def __init__(self) -> None:
        self.opened: list[object] = []
        self.closed: list[object] = []


def manager(directory, registrar=None):
    records = Records()
    cdr = NS(opened=records.opened.append, closed=records.closed.append, answered=lambda e: None)
    registrar = registrar or NS(lookup=lambda cid, now: [
        NS(contact="sip:bob@192.0.2.20:5080", source=Source("udp", "192.0.2.20", 5080), user_agent="x")])
    sip, relay = Sip(), Relay()
    calls = CallManager(sip=sip, registrar=registrar, directory=directory, relay=relay, cdr=cdr,
                        config=CallConfig(host=RINGWELL, via_for=via_for, contact_for=contact_for))
    return calls, sip, relay, records


async def test_cancel_during_the_dial_plan_lookup_rings_nobody():
    gate = asyncio.Event()

    async def directory(org_id, dialled):
        await gate.wait()
        return Reachable("u-bob", "201", ("c1",), 30)

    calls, sip, relay, records = manager(directory)
    invite = caller_invite()
    calls.invite(invite, TXN, Source("udp", "192.0.2.10", 5062), CALLER)
    await asyncio.sleep(0)
    assert calls.cancel(TXN, invite) is False  # no call yet: the endpoint answers the INVITE 487 itself
    sip.respond(TXN, NS(status=487))
    gate.set()
    await asyncio.sleep(0.01)
    assert sip.sent == [], "no device may ring for a caller who already hung up"
    assert calls.active == 0 and relay.sessions == []
    (record,) = records.closed
    assert (record.disposition, record.hangup_by, record.sip_status) == ("cancelled", "caller", 487)
    await calls.stop()


async def test_a_call_that_cannot_start_releases_its_ports_and_closes_its_record():
    async def directory(org_id, dialled):
        return Reachable("u-bob", "201", ("c1",), 30)

    def broken_lookup(credential_id, now):
        raise RuntimeError("location service down")

    calls, sip, relay, records = manager(directory, NS(lookup=broken_lookup))
    calls.invite(caller_invite(), TXN, Source("udp", "192.0.2.10", 5062), CALLER)
    await asyncio.sleep(0.01)
    assert sip.statuses == [500]
    assert [s.closed for s in relay.sessions] == [True]
    assert calls.active == 0
    (record,) = records.closed
    assert (record.disposition, record.sip_status) == ("failed", 500)
    await calls.stop()


async def test_do_not_disturb_without_a_mailbox_is_busy_and_rings_nothing():
    async def directory(org_id, dialled):
        return Reachable("u-bob", "201", ("c1",), 30, voicemail=True, dnd=True)  # the server has no boxes

    calls, sip, relay, records = manager(directory)
    calls.invite(caller_invite(), TXN, Source("udp", "192.0.2.10", 5062), CALLER)
    await asyncio.sleep(0.01)
    assert sip.statuses == [486] and sip.sent == [], "no device may ring"
    assert [s.closed for s in relay.sessions] == [True] and calls.active == 0
    (record,) = records.closed
    assert (record.disposition, record.hangup_by, record.sip_status, record.sip_reason) == (
        "busy", "callee", 486, "Do not disturb")
    await calls.stop()
