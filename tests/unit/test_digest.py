"""Digest authentication: RFC 7616 vectors, nonce expiry, replay protection."""

from __future__ import annotations

import pytest

from ringwell.sip import digest as d

# RFC 7616 §3.9.1: user Mufasa, password "Circle of Life".
RFC7616 = dict(
    realm="http-auth@example.org",
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    uri="/dir/index.html",
)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm, expected):
    creds = d.Credentials("Mufasa", RFC7616["realm"], RFC7616["nonce"], RFC7616["uri"], "", algorithm, "auth",
                          "00000001", RFC7616["cnonce"])
    ha1 = d.compute_ha1("Mufasa", RFC7616["realm"], "Circle of Life", algorithm)
    assert d.expected_response(creds, ha1, "GET") == expected


def roundtrip(nonces, password="right", algorithm="SHA-256", nc=1, now=100.0, stored="right"):
    chal = d.parse_challenge(d.challenge("ringwell", nonces.issue(now), algorithms=(algorithm,))[0])
    creds = d.parse_credentials(d.authorize(chal, "REGISTER", "sip:example.com", "alice", password, nc=nc))
    return creds, d.compute_ha1("alice", "ringwell", stored, algorithm)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_right_password_is_accepted_wrong_is_not(algorithm):
    nonces = d.NonceManager(b"k" * 32)
    creds, ha1 = roundtrip(nonces, algorithm=algorithm)
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 101.0) is d.Verdict.OK
    creds, ha1 = roundtrip(nonces, password="wrong", algorithm=algorithm)
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 101.0) is d.Verdict.FAIL


def test_replayed_nonce_count_is_refused_and_higher_count_accepted():
    nonces = d.NonceManager(b"k" * 32)
    creds, ha1 = roundtrip(nonces)
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 101.0) is d.Verdict.OK
    # The same count again is refused; the password was right, so it is "stale", not a failure.
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 102.0) is d.Verdict.STALE
    chal = d.Challenge("ringwell", creds.nonce, "SHA-256", ("auth",))
    again = d.parse_credentials(d.authorize(chal, "REGISTER", "sip:example.com", "alice", "right", nc=2))
    assert d.verify(again, ha1, "REGISTER", "ringwell", nonces, 103.0) is d.Verdict.OK


def test_expired_nonce_is_stale_only_with_the_right_password():
    nonces = d.NonceManager(b"k" * 32, lifetime=300)
    creds, ha1 = roundtrip(nonces, now=0.0)
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 301.0) is d.Verdict.STALE
    creds, ha1 = roundtrip(nonces, password="wrong", now=0.0)
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 301.0) is d.Verdict.FAIL
    assert 'stale=true' in d.challenge("ringwell", "n", stale=True)[0]


def test_forged_nonce_and_other_realm_fail():
    nonces = d.NonceManager(b"k" * 32)
    other = d.NonceManager(b"x" * 32)
    creds, ha1 = roundtrip(other)
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 101.0) is d.Verdict.UNKNOWN_NONCE
    creds, ha1 = roundtrip(nonces)
    assert d.verify(creds, ha1, "REGISTER", "elsewhere", nonces, 101.0) is d.Verdict.FAIL


def test_replay_memory_is_bounded_by_nonce_lifetime():
    nonces = d.NonceManager(b"k" * 32, lifetime=10)
    for i in range(50):
        creds, ha1 = roundtrip(nonces, now=float(i))
        assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, float(i)) is d.Verdict.OK
    assert len(nonces) <= 12


def test_unknown_scheme_and_garbage():
    assert d.parse_credentials("NoOneKnowsThisScheme opaque-data=here") is None
    with pytest.raises(ValueError):
        d.parse_credentials('Digest username="a", realm=')
    with pytest.raises(ValueError):
        d.parse_credentials('Digest username="a"')


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess"])
def test_sess_variants(algorithm):
    nonces = d.NonceManager(b"k" * 32)
    base = algorithm.upper().removesuffix("-SESS")
    chal = d.Challenge("ringwell", nonces.issue(1.0), algorithm.upper(), ("auth",))
    creds = d.parse_credentials(d.authorize(chal, "REGISTER", "sip:x", "alice", "pw"))
    ha1 = d.compute_ha1("alice", "ringwell", "pw", base)
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 2.0) is d.Verdict.OK


def test_only_offered_algorithms_and_hex_responses_are_accepted():
    nonces = d.NonceManager(b"k" * 32)
    creds, ha1 = roundtrip(nonces, algorithm="MD5")
    assert d.verify(creds, ha1, "REGISTER", "ringwell", nonces, 101.0, offered=("SHA-256",)) is d.Verdict.FAIL
    creds, ha1 = roundtrip(nonces, algorithm="MD5")
    forged = d.Credentials(creds.username, creds.realm, creds.nonce, creds.uri, "é" * 32, "MD5", "auth", "00000001",
                           "c")
    assert d.verify(forged, ha1, "REGISTER", "ringwell", nonces, 101.0) is d.Verdict.FAIL


def test_answer_challenge_and_resend_with_credentials():
    """Client side of §22.2: the 401's usable challenge answered in Authorization, the request
    resent with a new branch and the next CSeq; an unusable algorithm gives None."""
    from ringwell.sip.digest import (
        answer_challenge,
        compute_ha1,
        expected_response,
        parse_credentials,
        with_credentials,
    )
    from ringwell.sip.message import Request, Response, parse_message

    invite = parse_message(
        b"INVITE sip:14155550100@198.51.100.7 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKone\r\n"
        b"From: <sip:a@192.0.2.1>;tag=t1\r\nTo: <sip:14155550100@198.51.100.7>\r\nCall-ID: c1\r\n"
        b"CSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(invite, Request)

    def challenge(values: str) -> Response:
        response = parse_message(
            b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKone\r\n"
            b"From: <sip:a@192.0.2.1>;tag=t1\r\nTo: <sip:14155550100@198.51.100.7>;tag=x\r\n"
            b"Call-ID: c1\r\nCSeq: 7 INVITE\r\n" + values.encode()
            + b"Content-Length: 0\r\n\r\n")
        assert isinstance(response, Response)
        return response

    unusable = challenge('WWW-Authenticate: Digest realm="c", nonce="n", algorithm=SHA-512-256\r\n')
    assert answer_challenge(unusable, "INVITE", invite.uri_text, "u", "p") is None
    usable = challenge('WWW-Authenticate: Digest realm="c", nonce="n", algorithm=SHA-512-256\r\n'
                       'WWW-Authenticate: Digest realm="c", nonce="n2", algorithm=MD5\r\n')
    answer = answer_challenge(usable, "INVITE", invite.uri_text, "u", "p")
    assert answer is not None and answer[0] == "Authorization" and answer[2].nonce == "n2"
    creds = parse_credentials(answer[1])
    assert creds is not None and creds.response == expected_response(creds, compute_ha1("u", "c", "p"), "INVITE")
    again = with_credentials(invite, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKtwo", answer[:2])
    assert again.cseq.number == 8 and again.top_via.branch == "z9hG4bKtwo" and again.call_id == "c1"
    assert again.headers.get("authorization") == answer[1] and again.from_.tag == "t1"
