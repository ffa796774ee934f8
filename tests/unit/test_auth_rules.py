"""Pure rules of the accounts slice: login rate limits, TOTP steps and replay, recovery codes, redirects."""

from __future__ import annotations

import pyotp
import pytest

from ringwell.features.auth import mfa
from ringwell.features.auth.errors import InvalidAuthData
from ringwell.features.auth.ratelimit import FailureLimiter
from ringwell.features.auth.service import check_password, normalize_email
from ringwell.features.trunks.sealing import Sealer
from ringwell.web.portal.auth import safe_next


def test_limiter_refuses_after_the_limit_until_the_oldest_failure_ages_out():
    limiter = FailureLimiter(3, 60)
    for t in (0.0, 10.0, 20.0):
        assert limiter.retry_after("a", t) is None
        limiter.failed("a", t)
    assert limiter.retry_after("a", 20.5) == 40  # the failure at 0 ages out at 60
    assert limiter.retry_after("b", 20.5) is None  # other keys are not affected
    assert limiter.retry_after("a", 60.0) is None  # two failures left in the window
    limiter.failed("a", 61.0)
    assert limiter.retry_after("a", 61.0) == 9  # 10 + 60 - 61


def test_limiter_clear_and_bounded_keys():
    limiter = FailureLimiter(1, 60, max_keys=2)
    limiter.failed("a", 0.0)
    limiter.clear("a")
    assert limiter.retry_after("a", 1.0) is None
    for key in ("x", "y", "z"):
        limiter.failed(key, 1.0)
    assert limiter.retry_after("x", 2.0) is None  # the stalest key was forgotten
    assert limiter.retry_after("z", 2.0) == 59


def test_totp_accepts_one_step_either_side_and_never_the_same_step_twice():
    secret = mfa.new_secret()
    totp = pyotp.TOTP(secret)
    now = 1_700_000_000.0
    step = int(now) // 30
    assert mfa.matching_step(secret, totp.at(now), now, 0) == step
    assert mfa.matching_step(secret, totp.at(now - 30), now, 0) == step - 1
    assert mfa.matching_step(secret, totp.at(now + 30), now, 0) == step + 1
    assert mfa.matching_step(secret, totp.at(now - 60), now, 0) is None
    # Used once: the same code (and any earlier one) is refused; a later one is fine.
    assert mfa.matching_step(secret, totp.at(now), now, step) is None
    assert mfa.matching_step(secret, totp.at(now - 30), now, step) is None
    assert mfa.matching_step(secret, totp.at(now + 30), now, step) == step + 1
    assert mfa.matching_step(secret, "12345", now, 0) is None
    assert mfa.matching_step(secret, "abcdef", now, 0) is None


def test_totp_state_is_sealed_per_user():
    sealer = Sealer("k" * 32, label=b"ringwell totp v1")
    sealed = mfa.TotpState("JBSWY3DPEHPK3PXP", 42).seal(sealer, "user-1")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert mfa.TotpState.open(sealer, "user-1", sealed) == mfa.TotpState("JBSWY3DPEHPK3PXP", 42)
    with pytest.raises(ValueError):
        mfa.TotpState.open(sealer, "user-2", sealed)  # bound to its user: cannot be copied to another row
    with pytest.raises(ValueError):
        mfa.TotpState.open(Sealer("other" * 8, label=b"ringwell totp v1"), "user-1", sealed)


def test_provisioning_uri_and_qr():
    secret = mfa.new_secret()
    assert len(secret) == 32  # 160 bits
    uri = mfa.provisioning_uri(secret, "ann@example.com")
    assert uri.startswith("otpauth://totp/Ringwell:ann%40example.com?")
    assert f"secret={secret}" in uri and "issuer=Ringwell" in uri
    assert mfa.qr_data_uri(uri).startswith("data:image/svg+xml")


def test_recovery_codes():
    codes = mfa.new_recovery_codes()
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        assert len(code) == 19 and code.count("-") == 3
        assert mfa.code_kind(code) == "recovery"
        # Typed without dashes, in capitals, with spaces: the same code.
        assert mfa.recovery_hash(code.replace("-", " ").upper()) == mfa.recovery_hash(code)
    assert mfa.normalize_recovery_code("short") is None
    assert mfa.code_kind("123 456") == "totp"


def test_password_policy_and_email():
    check_password("a long enough passphrase", "ann@example.com")
    with pytest.raises(InvalidAuthData, match="characters"):
        check_password("short", None)
    with pytest.raises(InvalidAuthData, match="characters"):
        check_password("x" * 201, None)
    with pytest.raises(InvalidAuthData, match="email"):
        check_password("Ann@Example.com", "ann@example.com")
    assert normalize_email("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("ann", "ann@example", "a b@example.com", "x" * 320 + "@example.com"):
        with pytest.raises(InvalidAuthData):
            normalize_email(bad)


@pytest.mark.parametrize(("given", "expected"), [
    ("/settings", "/settings"),
    ("/calls?page=2#top", "/calls?page=2#top"),
    ("", "/"),
    (None, "/"),
    ("https://evil.example/", "/"),
    ("//evil.example/x", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("/ok\r\nSet-Cookie: x=1", "/"),
    ("settings", "/"),
])
def test_next_redirects_only_to_local_paths(given, expected):
    assert safe_next(given) == expected
