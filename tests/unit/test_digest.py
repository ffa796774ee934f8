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
