"""The registrar's decisions (RFC 3261 §10.3), without I/O."""

from __future__ import annotations

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.pbx.registrar import Registrar, RegistrarLimits
from ringwell.transport.source import Source
from tests.factories import parsed_request

CRED = CredentialRecord("cred-1", "org-1", "user-1", "alice", "ringwell", "x", "y", "101")
SRC = Source("udp", "127.0.0.1", 5070)


def register(registrar, contacts, *, expires=None, call_id="c1", cseq=1, user="alice", now=1000.0):
    extra = "".join(f"Contact: {c}\r\n" for c in contacts)
    if expires is not None:
        extra += f"Expires: {expires}\r\n"
    return registrar.register(parsed_request("REGISTER", user=user, call_id=call_id, cseq=cseq, extra=extra),
                              CRED, SRC, now)


def contacts_of(registrar, now=1000.0):
    return [b.contact for b in registrar.lookup("cred-1", now)]


def test_add_refresh_remove():
    reg = Registrar(RegistrarLimits())
    out = register(reg, ["<sip:alice@10.0.0.1:5070>"], expires=600)
    assert out.status == 200
    assert ("Contact", "<sip:alice@10.0.0.1:5070>;expires=600") in out.headers
    out = register(reg, ["<sip:alice@10.0.0.1:5070>"], expires=300, cseq=2, now=1100.0)
    assert [b.remaining(1100.0) for b in reg.lookup("cred-1", 1100.0)] == [300]
    out = register(reg, ["<sip:alice@10.0.0.1:5070>;expires=0"], cseq=3, now=1200.0)
    assert out.status == 200 and reg.lookup("cred-1", 1200.0) == []
    assert not [h for h in out.headers if h[0] == "Contact"]


def test_contact_expires_param_wins_over_header_and_max_is_capped():
    reg = Registrar(RegistrarLimits(max_expires=3600))
    register(reg, ["<sip:alice@10.0.0.1>;expires=120", "<sip:alice@10.0.0.2>"], expires=99999)
    remaining = {b.contact: b.remaining(1000.0) for b in reg.lookup("cred-1", 1000.0)}
    assert remaining == {"sip:alice@10.0.0.1": 120, "sip:alice@10.0.0.2": 3600}


def test_interval_too_brief():
    reg = Registrar(RegistrarLimits(min_expires=60))
    out = register(reg, ["<sip:alice@10.0.0.1>"], expires=30)
    assert out.status == 423 and ("Min-Expires", "60") in out.headers
    assert reg.lookup("cred-1", 1000.0) == []


def test_star_with_expires_zero_removes_everything():
    reg = Registrar(RegistrarLimits())
    register(reg, ["<sip:alice@10.0.0.1>", "<sip:alice@10.0.0.2>"])
    assert register(reg, ["*"], cseq=1, call_id="other").status == 400  # Expires: 0 is required
    out = register(reg, ["*"], expires=0, call_id="other")
    assert out.status == 200 and reg.lookup("cred-1", 1000.0) == []


def test_q_values_order_lookup():
    reg = Registrar(RegistrarLimits())
    register(reg, ["<sip:alice@10.0.0.1>;q=0.1", "<sip:alice@10.0.0.2>;q=0.9", "<sip:alice@10.0.0.3>"])
    assert contacts_of(reg) == ["sip:alice@10.0.0.3", "sip:alice@10.0.0.2", "sip:alice@10.0.0.1"]


def test_several_devices_and_the_limit_drops_the_stalest():
    reg = Registrar(RegistrarLimits(max_bindings=2))
    register(reg, ["<sip:alice@10.0.0.1>"], expires=100, call_id="a")
    register(reg, ["<sip:alice@10.0.0.2>"], expires=200, call_id="b")
    register(reg, ["<sip:alice@10.0.0.3>"], expires=300, call_id="c")
    assert sorted(contacts_of(reg)) == ["sip:alice@10.0.0.2", "sip:alice@10.0.0.3"]


def test_out_of_order_cseq_is_refused():
    reg = Registrar(RegistrarLimits())
    register(reg, ["<sip:alice@10.0.0.1>"], cseq=5)
    assert register(reg, ["<sip:alice@10.0.0.1>"], cseq=4).status == 400


def test_to_must_be_the_authenticated_user():
    reg = Registrar(RegistrarLimits())
    assert register(reg, ["<sip:bob@10.0.0.1>"], user="bob").status == 403


def test_sweep_removes_expired_bindings_and_marks_them_dirty():
    reg = Registrar(RegistrarLimits(min_expires=1))
    register(reg, ["<sip:alice@10.0.0.1>"], expires=5)
    reg.dirty.clear()
    assert reg.sweep(1004.0) == []
    removed = reg.sweep(1005.0)
    assert [b.contact for b in removed] == ["sip:alice@10.0.0.1"]
    assert list(reg.dirty.values()) == [None]


def test_instance_id_keys_the_binding():
    reg = Registrar(RegistrarLimits())
    inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1'
    register(reg, [f"<sip:alice@10.0.0.1:5070>;{inst}"], call_id="a")
    register(reg, [f"<sip:alice@10.0.0.9:6000>;{inst}"], call_id="b")  # same phone, new address
    assert contacts_of(reg) == ["sip:alice@10.0.0.9:6000"]
