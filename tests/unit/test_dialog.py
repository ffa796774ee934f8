"""RFC 3261 §12 dialogs: what each side remembers from the INVITE exchange, and the in-dialog
requests (§12.2.1.1), ACKs (§13.2.2.4) and CANCELs (§9.1) built from it."""

from __future__ import annotations

from ringwell.sip.dialog import Dialog, ViaSpec, new_branch
from ringwell.sip.message import Request, Response, parse_message
from ringwell.sip.transaction import make_cancel

VIA = ViaSpec("udp", "203.0.113.5", 5060)


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n"


# An INVITE that went through two proxies, which both record-routed (one on its own line).
INVITE = crlf("""
INVITE sip:bob@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKalice1;rport
Record-Route: <sip:p2.example.com;lr>
Record-Route: <sip:p1.example.com;lr>, <sip:p0.example.com;lr>
Max-Forwards: 68
From: "Alice" <sip:alice@example.com>;tag=alice-tag
To: <sip:bob@example.com>
Call-ID: dialog-test-1@192.0.2.10
CSeq: 314 INVITE
Contact: <sip:alice@192.0.2.10:5062;transport=udp>
Content-Length: 0
""")


def parse(data: bytes) -> Request | Response:
    return parse_message(data)


def invite() -> Request:
    message = parse(INVITE)
    assert isinstance(message, Request)
    return message


def response_200(request: Request, *, record_route: str = "", contact: str = "<sip:bob@198.51.100.7:5080>") -> Response:
    vias = "".join(f"Via: {v}\r\n" for v in request.headers.get_all("via"))
    rr = f"Record-Route: {record_route}\r\n" if record_route else ""
    text = (
        f"SIP/2.0 200 OK\r\n{vias}{rr}"
        f"From: {request.headers.get('from')}\r\nTo: {request.headers.get('to')};tag=bob-tag\r\n"
        f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq}\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse(text.encode())
    assert isinstance(message, Response)
    return message


def in_dialog(method: str, cseq: int, *, contact: str | None = None) -> Request:
    extra = f"Contact: {contact}\r\n" if contact else ""
    text = (
        f"{method} sip:bob@203.0.113.5 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5062;branch={new_branch()};rport\r\n"
        "From: <sip:alice@example.com>;tag=alice-tag\r\nTo: <sip:bob@example.com>;tag=ours\r\n"
        f"Call-ID: dialog-test-1@192.0.2.10\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    message = parse(text.encode())
    assert isinstance(message, Request)
    return message


def reparsed(request: Request) -> Request:
    """What the peer receives: the request must survive encoding and strict parsing."""
    message = parse(request.encode())
    assert isinstance(message, Request)
    return message


# -- creation ---------------------------------------------------------------------------------
def test_uas_dialog_from_invite_per_12_1_1():
    dialog = Dialog.uas(invite(), "ours")
    assert dialog.call_id == "dialog-test-1@192.0.2.10"
    assert dialog.key == ("dialog-test-1@192.0.2.10", "ours")
    assert (dialog.local_tag, dialog.remote_tag) == ("ours", "alice-tag")
    assert dialog.remote_seq == 314
    assert dialog.local_seq == 0
    assert dialog.remote_target == "sip:alice@192.0.2.10:5062;transport=udp"
    # §12.1.1: the route set is the Record-Route list *in order*, across header lines.
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>", "<sip:p0.example.com;lr>"]
    assert "tag=" not in dialog.local_addr and "bob@example.com" in dialog.local_addr
    assert "tag=" not in dialog.remote_addr and "alice@example.com" in dialog.remote_addr


def test_uac_dialog_from_2xx_per_12_1_2_reverses_the_route_set():
    request = invite()
    response = response_200(request, record_route="<sip:p0.example.com;lr>, <sip:p1.example.com;lr>")
    dialog = Dialog.uac(request, response)
    assert dialog.key == ("dialog-test-1@192.0.2.10", "alice-tag")
    assert (dialog.local_tag, dialog.remote_tag) == ("alice-tag", "bob-tag")
    assert dialog.local_seq == 314
    assert dialog.remote_seq is None
    assert dialog.remote_target == "sip:bob@198.51.100.7:5080"
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p0.example.com;lr>"]


def test_uas_dialog_without_contact_falls_back_to_the_from_uri():
    data = INVITE.replace(b"Contact: <sip:alice@192.0.2.10:5062;transport=udp>\r\n", b"")
    message = parse(data)
    assert isinstance(message, Request)
    assert Dialog.uas(message, "ours").remote_target == "sip:alice@example.com"


# -- requests inside the dialog -----------------------------------------------------------------
def test_request_increments_cseq_and_goes_to_the_remote_target_through_the_route_set():
    dialog = Dialog.uas(invite(), "ours")
    first = reparsed(dialog.request("BYE", VIA, extra=[("Reason", "Q.850;cause=16")]))
    second = reparsed(dialog.request("INFO", VIA, body=b"Signal=1\r\n", content_type="application/dtmf-relay"))

    assert (first.cseq.number, first.cseq.method) == (1, "BYE")
    assert (second.cseq.number, second.cseq.method) == (2, "INFO")
    assert first.uri_text == "sip:alice@192.0.2.10:5062;transport=udp"
    assert first.headers.get_all("route") == dialog.route_set
    assert first.call_id == "dialog-test-1@192.0.2.10"
    assert first.from_.tag == "ours" and first.to.tag == "alice-tag"
    assert first.top_via.host == "203.0.113.5" and first.top_via.port == 5060
    assert first.top_via.branch != second.top_via.branch
    assert first.headers.get("reason") == "Q.850;cause=16"
    assert first.headers.get("contact") is None
    assert second.body == b"Signal=1\r\n"
    assert second.headers.get("content-type") == "application/dtmf-relay"


def test_request_carries_contact_and_sdp_for_a_target_refresh():
    dialog = Dialog.uac(invite(), response_200(invite()))
    reinvite = reparsed(dialog.request("INVITE", VIA, contact="<sip:203.0.113.5:5060>", body=b"v=0\r\n"))
    assert reinvite.cseq.number == 315
    assert reinvite.uri_text == "sip:bob@198.51.100.7:5080"
    assert reinvite.headers.get("contact") == "<sip:203.0.113.5:5060>"
    assert reinvite.headers.get("content-type") == "application/sdp"
    assert reinvite.from_.tag == "alice-tag" and reinvite.to.tag == "bob-tag"
    assert reinvite.headers.get("route") is None


def test_ack_keeps_the_invite_cseq_with_a_new_branch_and_does_not_consume_a_cseq():
    request = invite()
    dialog = Dialog.uac(request, response_200(request))
    ack = reparsed(dialog.ack(314, VIA))
    again = reparsed(dialog.ack(314, VIA))
    assert (ack.method, ack.cseq.number, ack.cseq.method) == ("ACK", 314, "ACK")
    assert ack.uri_text == "sip:bob@198.51.100.7:5080"
    assert ack.top_via.branch != request.top_via.branch
    assert ack.top_via.branch != again.top_via.branch
    assert ack.to.tag == "bob-tag"
    assert dialog.request("BYE", VIA).cseq.number == 315


def test_cancel_keeps_branch_cseq_number_uri_and_addresses_of_the_invite():
    request = invite()
    cancel = reparsed(make_cancel(request, (("Reason", 'SIP;cause=200;text="Call completed elsewhere"'),)))
    assert cancel.method == "CANCEL"
    assert cancel.uri_text == request.uri_text
    assert cancel.top_via.branch == "z9hG4bKp2"
    assert len(cancel.vias) == 1
    assert (cancel.cseq.number, cancel.cseq.method) == (314, "CANCEL")
    assert cancel.call_id == request.call_id
    assert cancel.from_.tag == "alice-tag" and cancel.to.tag is None
    assert cancel.headers.get("reason") == 'SIP;cause=200;text="Call completed elsewhere"'


def test_refresh_target_follows_a_new_contact_only():
    dialog = Dialog.uas(invite(), "ours")
    dialog.refresh_target(in_dialog("INVITE", 315, contact="<sip:alice@192.0.2.99:6000>"))
    assert dialog.remote_target == "sip:alice@192.0.2.99:6000"
    dialog.refresh_target(in_dialog("UPDATE", 316))
    assert dialog.remote_target == "sip:alice@192.0.2.99:6000"
    assert dialog.request("BYE", VIA).uri_text == "sip:alice@192.0.2.99:6000"


# -- remote CSeq ordering (§12.2.2) ----------------------------------------------------------
def test_accept_remote_seq_rejects_lower_and_records_higher():
    dialog = Dialog.uas(invite(), "ours")
    assert not dialog.accept_remote_seq(in_dialog("INFO", 313))
    assert dialog.remote_seq == 314
    assert dialog.accept_remote_seq(in_dialog("INFO", 320))
    assert dialog.remote_seq == 320
    assert not dialog.accept_remote_seq(in_dialog("BYE", 315))


def test_accept_remote_seq_lets_a_retransmission_with_the_same_cseq_through():
    # §12.2.2 rejects only a *lower* CSeq; an equal one is a retransmission, not out of order.
    dialog = Dialog.uas(invite(), "ours")
    assert dialog.accept_remote_seq(in_dialog("BYE", 315))
    assert dialog.accept_remote_seq(in_dialog("BYE", 315))
    assert dialog.remote_seq == 315


def test_accept_remote_seq_ignores_ack_and_cancel():
    dialog = Dialog.uas(invite(), "ours")
    assert dialog.accept_remote_seq(in_dialog("ACK", 314))
    assert dialog.accept_remote_seq(in_dialog("CANCEL", 1))
    assert dialog.remote_seq == 314


def test_uac_dialog_takes_the_first_remote_cseq_as_is():
    request = invite()
    dialog = Dialog.uac(request, response_200(request))
    assert dialog.accept_remote_seq(in_dialog("BYE", 1))
    assert dialog.remote_seq == 1
    assert not dialog.accept_remote_seq(in_dialog("INFO", 0))


def test_via_brackets_an_ipv6_host():
    from ringwell.sip.message import parse_via

    header = ViaSpec("udp", "2001:db8::5", 5060).header("z9hG4bKx")
    assert header.startswith("SIP/2.0/UDP [2001:db8::5]:5060;")
    (via,) = parse_via(header)
    assert via.port == 5060 and via.branch == "z9hG4bKx"
