"""Money in minor units: exact parsing, formatting, Stripe's smallest units; Stripe settings."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringwell.errors import ConfigError
from ringwell.features.billing.errors import InvalidBillingData
from ringwell.features.billing.money import exponent, format_minor, from_stripe_amount, parse_amount, to_stripe_amount
from ringwell.settings import ensure_config, load_settings


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("10.00", "USD", 1000), ("10", "USD", 1000), ("10.5", "usd", 1050), ("0.01", "EUR", 1), ("-2.50", "USD", -250),
    ("+3", "GBP", 300), (" 7.25 ", "USD", 725), ("1000", "JPY", 1000), ("1.234", "KWD", 1234), ("0.1", "BHD", 100),
    ("99999999999.99", "USD", 9_999_999_999_999),
])
def test_amounts_parse_exactly(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "currency", "message"), [
    ("10.005", "USD", "USD has 2 decimal places; '10.005' has 3"),
    ("1.5", "JPY", "JPY has 0 decimal places; '1.5' has 1"),
    ("1.2345", "KWD", "KWD has 3 decimal places"),
    ("1e3", "USD", "not an amount: '1e3'"),
    ("10,00", "EUR", "not an amount"),
    ("ten", "USD", "not an amount"),
    ("", "USD", "not an amount"),
    ("10.", "USD", "not an amount"),
    ("NaN", "USD", "not an amount"),
    ("1.00", "US", "not an ISO 4217 currency code"),
])
def test_amounts_that_cannot_be_exact_are_refused(text, currency, message):
    with pytest.raises(InvalidBillingData, match=re.escape(message)):
        parse_amount(text, currency)


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (1050, "USD", "10.50"), (-5, "USD", "-0.05"), (0, "USD", "0.00"), (1000, "JPY", "1000"), (-7, "JPY", "-7"),
    (1234, "KWD", "1.234"), (5, "BHD", "0.005"),
])
def test_minor_units_format_with_the_currencys_decimals(minor, currency, text):
    assert format_minor(minor, currency) == text


def test_exponents_follow_iso_4217():
    assert [exponent(c) for c in ("USD", "EUR", "JPY", "KRW", "CLP", "BHD", "KWD", "JOD", "OMR", "TND")] == [
        2, 2, 0, 0, 0, 3, 3, 3, 3, 3]


@given(minor=st.integers(-(10**15), 10**15), currency=st.sampled_from(["USD", "JPY", "KWD", "EUR", "CLF"]))
def test_format_then_parse_gives_the_same_minor_units(minor, currency):
    text = format_minor(minor, currency)
    assert parse_amount(text, currency) == minor
    assert Decimal(text).scaleb(exponent(currency)) == minor


@pytest.mark.parametrize(("minor", "currency", "stripe_amount"), [
    (1000, "USD", 1000), (500, "JPY", 500), (1230, "KWD", 1230),
    (5, "ISK", 500), (7, "UGX", 700),  # two-decimal in the Stripe API for backwards compatibility
    (300, "MGA", 3),  # zero-decimal in the Stripe API
])
def test_stripe_amounts_are_in_stripes_smallest_unit(minor, currency, stripe_amount):
    assert to_stripe_amount(minor, currency) == stripe_amount
    assert from_stripe_amount(stripe_amount, currency) == minor


def test_amounts_stripe_cannot_take_are_refused_not_rounded():
    with pytest.raises(InvalidBillingData, match=r"steps of 0\.010"):
        to_stripe_amount(1234, "KWD")
    with pytest.raises(InvalidBillingData, match="whole units of MGA"):
        to_stripe_amount(150, "MGA")


def test_stripe_settings_are_optional_secret_and_checked(tmp_path):
    ensure_config(tmp_path)
    assert load_settings(tmp_path, {}).stripe_secret_key == ""  # empty: top-ups disabled
    settings = load_settings(tmp_path, {"RINGWELL_STRIPE_SECRET_KEY": "sk_test_secret_value",
                                        "RINGWELL_STRIPE_WEBHOOK_SECRET": "whsec_secret_value",
                                        "RINGWELL_STRIPE_API_BASE": "http://127.0.0.1:12111"})
    assert (settings.stripe_secret_key, settings.stripe_api_base) == ("sk_test_secret_value", "http://127.0.0.1:12111")
    assert "secret_value" not in repr(settings)
    with pytest.raises(ConfigError, match="stripe_webhook_secret"):
        load_settings(tmp_path, {"RINGWELL_STRIPE_SECRET_KEY": "sk_test_x"})
    with pytest.raises(ConfigError, match="stripe_api_base"):
        load_settings(tmp_path, {"RINGWELL_STRIPE_SECRET_KEY": "sk_test_x", "RINGWELL_STRIPE_WEBHOOK_SECRET": "w",
                                 "RINGWELL_STRIPE_API_BASE": "api.stripe.com"})
