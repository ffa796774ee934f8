"""Bindings of connection-bound flows (SIP over WebSocket, RFC 7118 §5) and of short-lived
(web phone) credentials, without I/O."""

from __future__ import annotations

import dataclasses

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.pbx.registrar import Registrar, RegistrarLimits
from ringwell.transport.source import Source
from tests.factories import parsed_request

ALICE = CredentialRecord("cred-1", "org-1", "user-1", "alice", "ringwell", "x", "y", "101")
BOB = CredentialRecord("cred-2", "org-1", "user-2", "bob", "ringwell", "x", "y", "102")
TAB_1 = Source("wss", "192.0.2.10", 50001)
TAB_2 = Source("wss", "192.0.2.10", 50002)
PHONE = Source("udp", "192.0.2.20", 5060)


def register(registrar, cred, source, contact, *, expires=600, call_id="c1", cseq=1, now=1000.0):
    extra = f"Contact: {contact}\r\nExpires: {expires}\r\n"
    request = parsed_request("REGISTER", user=cred.username, call_id=call_id, cseq=cseq, extra=extra)
    return registrar.register(request, cred, source, now)


def test_closing_a_websocket_drops_only_its_bindings():
    reg = Registrar(RegistrarLimits())
    assert register(reg, ALICE, TAB_1, "<sip:a1@x1.invalid;transport=ws>").status == 200
    assert register(reg, ALICE, TAB_2, "<sip:a2@x2.invalid;transport=ws>", call_id="c2").status == 200
    assert register(reg, ALICE, PHONE, "<sip:alice@192.0.2.20:5060>", call_id="c3").status == 200
    assert register(reg, BOB, TAB_1, "<sip:b1@x3.invalid;transport=ws>", call_id="c4").status == 200
    reg.dirty.clear()

    dropped = reg.drop_flow(TAB_1)

    assert sorted(b.username for b in dropped) == ["alice", "bob"]
    assert sorted(b.contact for b in reg.lookup("cred-1", 1000.0)) == [
        "sip:a2@x2.invalid;transport=ws", "sip:alice@192.0.2.20:5060"]
    assert reg.lookup("cred-2", 1000.0) == []
    # the deletions reach the database with the next flush
    assert sorted(key for key, binding in reg.dirty.items() if binding is None) == sorted(
        (b.credential_id, b.key) for b in dropped)
    assert reg.drop_flow(TAB_1) == []  # idempotent


def test_a_binding_moved_to_another_connection_stays_when_the_old_one_closes():
    reg = Registrar(RegistrarLimits())
    contact = "<sip:a1@x1.invalid;transport=ws>;+sip.instance=\"<urn:uuid:1>\";reg-id=1"
    register(reg, ALICE, TAB_1, contact)
    register(reg, ALICE, TAB_2, contact, cseq=2)  # the page reconnected and registered again
    assert reg.drop_flow(TAB_1) == []
    (binding,) = reg.lookup("cred-1", 1000.0)
    assert binding.source == TAB_2
    assert [b.source for b in reg.drop_flow(TAB_2)] == [TAB_2]


def test_forgotten_or_expired_bindings_leave_no_flow_behind():
    reg = Registrar(RegistrarLimits(min_expires=1))
    register(reg, ALICE, TAB_1, "<sip:a1@x1.invalid;transport=ws>", expires=10)
    register(reg, BOB, TAB_2, "<sip:b1@x2.invalid;transport=ws>")
    assert len(reg.sweep(1011.0)) == 1
    assert reg.forget("cred-2") == 1
    assert reg._flows == {}  # nothing indexed for flows without bindings
    assert reg.drop_flow(TAB_1) == reg.drop_flow(TAB_2) == []


def test_a_short_lived_credential_binds_no_longer_than_it_lives():
    reg = Registrar(RegistrarLimits())
    webphone = dataclasses.replace(ALICE, kind="webphone", expires_at=1000.0 + 250)
    out = register(reg, webphone, TAB_1, "<sip:a1@x1.invalid;transport=ws>", expires=600)
    assert out.status == 200
    assert ("Contact", "<sip:a1@x1.invalid;transport=ws>;expires=250") in out.headers
    assert webphone.expired(1250.0) and not webphone.expired(1249.0) and not ALICE.expired(10**10)
    # removal still works
    out = register(reg, webphone, TAB_1, "<sip:a1@x1.invalid;transport=ws>", expires=0, cseq=2)
    assert out.status == 200 and reg.lookup("cred-1", 1000.0) == []
