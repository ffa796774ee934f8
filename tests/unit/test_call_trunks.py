"""The B2BUA core toward carrier trunks, on a fake clock: answering the carrier's 407 with the
trunk's credentials, failover to the next trunk on 5xx/408 but never after 486/600/603, and
hanging up when the caller's credit runs out."""

from __future__ import annotations

from ringwell.pbx.call import Call, DigestLogin, Ended, Party, Respond, SendRequest, Target
from ringwell.sip.digest import compute_ha1, expected_response, parse_credentials
from ringwell.transport.source import Source
from tests.unit.test_call import ANSWER, INVITE_TXN, Harness

CHALLENGE = 'Proxy-Authenticate: Digest realm="carrier.example", nonce="abc123", qop="auth", algorithm=MD5\r\n'


def trunk_harness(*, trunks: int = 2, auth: bool = False) -> Harness:
    h = Harness(targets=trunks)
    login = DigestLogin("ringwell-trunk", "s3cret-pass") if auth else None
    h.targets = [
        Target(f"sip:14155550100@127.0.0.1:{port}", Source("udp", "127.0.0.1", port), f"trunk{i}",
               trunk_id=f"t{i}", auth=login, from_user="14155550123", to_user="14155550100")
        for i, port in enumerate(h.ports)
    ]
    h.call = Call(
        call_id="call-1", invite=h.invite, txn=INVITE_TXN, source=h.caller_flow,
        caller=Party("u-alice", "2001", "+14155550123", "Alice"), callee=Party(None, None, "+14155550100"),
        targets=h.targets, media=h.media, config=h.config, ring_timeout=120.0, now=h.now(), sequential=True,
    )
    return h


def sent_invites(actions) -> list[SendRequest]:
    return [a for a in actions if isinstance(a, SendRequest) and a.request.method == "INVITE"]


def caller_final(actions) -> int | None:
    finals = [a.response.status for a in actions if isinstance(a, Respond) and a.response.status >= 200]
    return finals[-1] if finals else None


def ended(h: Harness) -> Ended:
    return next(a for _, a in h.history if isinstance(a, Ended))


def test_only_the_first_trunk_is_dialled_with_caller_id_and_number_format():
    h = trunk_harness()
    invites = sent_invites(h.start())
    assert len(invites) == 1 and invites[0].flow.port == h.ports[0]
    invite = invites[0].request
    assert invite.uri_text == f"sip:14155550100@127.0.0.1:{h.ports[0]}"
    assert "<sip:14155550123@" in (invite.headers.get("from") or "")
    assert (invite.headers.get("to") or "").startswith(f"<sip:14155550100@127.0.0.1:{h.ports[0]}>")


def test_a_407_is_answered_once_with_the_trunks_credentials():
    h = trunk_harness(auth=True)
    h.start()
    first = h.forks["b0"]
    again = sent_invites(h.fork_replies("b0", 407, "Proxy Authentication Required", headers=CHALLENGE))
    assert len(again) == 1
    retry = again[0].request
    assert retry.call_id == first.call_id and retry.from_.tag == first.from_.tag
    assert retry.cseq.number == first.cseq.number + 1 and retry.top_via.branch != first.top_via.branch
    creds = parse_credentials(retry.headers.get("proxy-authorization") or "")
    assert creds is not None and creds.username == "ringwell-trunk" and creds.realm == "carrier.example"
    ha1 = compute_ha1("ringwell-trunk", "carrier.example", "s3cret-pass")
    assert creds.response == expected_response(creds, ha1, "INVITE"), "the carrier can verify the password"
    # the carrier accepts it: answered through the same leg
    h.forks["b0"] = retry
    actions = h.fork_replies("b0", 200, "OK", sdp=ANSWER)
    assert caller_final(actions) == 200


def test_credentials_refused_again_fail_over_to_the_next_trunk():
    h = trunk_harness(auth=True)
    h.start()
    retry = sent_invites(h.fork_replies("b0", 407, headers=CHALLENGE))[0].request
    h.forks["b0"] = retry
    nxt = sent_invites(h.fork_replies("b0", 407, headers=CHALLENGE))
    assert len(nxt) == 1 and nxt[0].flow.port == h.ports[1], "a refused login is not retried on the same trunk"


def test_503_fails_over_and_the_second_trunk_answers():
    h = trunk_harness()
    h.start()
    nxt = sent_invites(h.fork_replies("b0", 503, "Service Unavailable"))
    assert len(nxt) == 1 and nxt[0].flow.port == h.ports[1]
    actions = h.fork_replies("b1", 200, "OK", sdp=ANSWER)
    assert caller_final(actions) == 200
    assert h.call.trunk_id == "t1"


def test_a_timeout_fails_over_too():
    h = trunk_harness()
    h.start()
    nxt = h.feed(h.call.request_failed("b0", h.forks["b0"], h.now()))
    assert sent_invites(nxt)[0].flow.port == h.ports[1]


def test_486_600_603_and_404_are_never_retried_on_another_trunk():
    for status, disposition in ((486, "busy"), (600, "busy"), (603, "failed"), (404, "failed")):
        h = trunk_harness()
        h.start()
        actions = h.fork_replies("b0", status)
        assert not sent_invites(actions), status
        assert caller_final(actions) == status
        assert ended(h).record.disposition == disposition


def test_all_trunks_failing_gives_503_and_the_record_says_why():
    h = trunk_harness()
    h.start()
    h.fork_replies("b0", 503, "Service Unavailable")
    actions = h.fork_replies("b1", 500, "Server Internal Error")
    assert caller_final(actions) == 503
    record = ended(h).record
    assert record.disposition == "failed" and record.sip_status == 503
    assert record.attempts == ("trunk0: 503 Service Unavailable", "trunk1: 500 Server Internal Error")
    assert "trunk0: 503" in (record.sip_reason or "") and record.trunk_id == "t1"


def test_credit_exhausted_hangs_up_both_legs_with_a_reason():
    h = trunk_harness()
    h.start()
    h.fork_replies("b0", 200, "OK", sdp=ANSWER)
    h.advance(30.0)
    actions = h.feed(h.call.credit_exhausted(h.now()))
    byes = [a for a in actions if isinstance(a, SendRequest) and a.request.method == "BYE"]
    assert len(byes) == 2
    assert all(b.request.headers.get("reason") == 'SIP;cause=402;text="Credit exhausted"' for b in byes)
    record = ended(h).record
    assert record.hangup_by == "system" and record.sip_status == 402 and record.disposition == "answered"
    assert 29.9 <= record.talk_seconds <= 30.1


def test_credit_exhausted_while_ringing_refuses_with_402():
    h = trunk_harness()
    h.start()
    h.fork_replies("b0", 180, "Ringing")
    actions = h.feed(h.call.credit_exhausted(h.now()))
    assert caller_final(actions) == 402
    assert any(isinstance(a, SendRequest) and a.request.method == "CANCEL" for a in actions)


def test_a_trunk_that_sends_nothing_readable_is_given_up_after_5_s():
    h = trunk_harness()
    h.start()
    actions = h.advance(4.9)
    assert not sent_invites(actions)
    actions = h.advance(0.2)
    nxt = sent_invites(actions)
    assert len(nxt) == 1 and nxt[0].flow.port == h.ports[1], "failed over after 5 s, not Timer B's 32 s"
    # the silent trunk wakes up with a 180 later: it gets a CANCEL, the call stays on the second trunk
    late = h.fork_replies("b0", 180, "Ringing")
    assert [a.request.method for a in late if isinstance(a, SendRequest)] == ["CANCEL"]
    assert caller_final(h.fork_replies("b1", 200, "OK", sdp=ANSWER)) == 200


def test_a_trunk_that_answers_100_is_not_timed_out():
    h = trunk_harness()
    h.start()
    h.fork_replies("b0", 100, "Trying")
    assert not sent_invites(h.advance(30.0))
    assert "try:b0" not in h.timers


def test_an_emergency_call_tries_the_next_trunk_even_after_a_404():
    h = trunk_harness()
    h.call.emergency = True
    h.start()
    nxt = sent_invites(h.fork_replies("b0", 404, "Not Found"))
    assert len(nxt) == 1 and nxt[0].flow.port == h.ports[1]
    h2 = trunk_harness()
    h2.call.emergency = True
    h2.start()
    assert not sent_invites(h2.fork_replies("b0", 603, "Decline")), "someone declined: not re-dialled"
