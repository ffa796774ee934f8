"""Webhook signatures (pure): the header a receiver gets, and what it must refuse."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from ringwell.features.webhooks import signing
from ringwell.features.webhooks.signing import SignatureError, new_secret, parse_header, sign, verify

BODY = b'{"id":"e1","type":"call.ended","data":{"talk_seconds":12.5}}'
T = 1_767_225_600


def test_round_trip_and_header_format():
    secret = new_secret()
    header = sign(secret, BODY, T)
    assert re.fullmatch(r"t=1767225600,v1=[0-9a-f]{64}", header)
    assert verify(secret, BODY, header, now=T + 10) == T
    # The documented recipe, computed independently: HMAC-SHA256(secret, f"{t}." + body).
    expected = hmac.new(secret.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"


def test_secret_format():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) >= 6 + 43
    assert secret != new_secret()


def test_tampered_body_is_refused():
    secret = new_secret()
    header = sign(secret, BODY, T)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(secret, BODY.replace(b"12.5", b"125"), header, now=T)


def test_tampered_timestamp_is_refused():
    secret = new_secret()
    header = sign(secret, BODY, T)
    moved = header.replace(f"t={T}", f"t={T + 60}")
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(secret, BODY, moved, now=T + 60)


def test_old_or_future_timestamps_are_refused():
    secret = new_secret()
    header = sign(secret, BODY, T)
    with pytest.raises(SignatureError, match="away from now"):
        verify(secret, BODY, header, now=T + signing.DEFAULT_TOLERANCE + 1)
    with pytest.raises(SignatureError, match="away from now"):
        verify(secret, BODY, header, now=T - signing.DEFAULT_TOLERANCE - 1)
    assert verify(secret, BODY, header, now=T + signing.DEFAULT_TOLERANCE) == T


def test_wrong_secret_is_refused():
    header = sign(new_secret(), BODY, T)
    with pytest.raises(SignatureError):
        verify(new_secret(), BODY, header, now=T)


def test_any_v1_may_match_and_unknown_schemes_are_ignored():
    old, new = new_secret(), new_secret()
    header = f"t={T},v1={signing.signature(old, BODY, T)},v0=abc,v1={signing.signature(new, BODY, T)}"
    assert verify(new, BODY, header, now=T) == T
    assert verify(old, BODY, header, now=T) == T


@pytest.mark.parametrize("header, message", [
    ("", "malformed"),
    ("v1=abc", "no timestamp"),
    (f"t={T}", "no v1"),
    ("t=soon,v1=abc", "whole number"),
    ("t=-5,v1=abc", "whole number"),
    (f"t={T};v1=abc", "whole number"),
])
def test_malformed_headers(header, message):
    with pytest.raises(SignatureError, match=message):
        parse_header(header)
    with pytest.raises(SignatureError):
        verify(new_secret(), BODY, header, now=T)
