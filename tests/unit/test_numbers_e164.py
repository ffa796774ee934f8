"""E.164 normalization: what people and carriers write in, '+' E.164 out, or a reason why not."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringwell.errors import Invalid
from ringwell.features.numbers.e164 import (
    NUMBER_TYPES,
    InvalidNumber,
    is_e164,
    is_region,
    national_number,
    normalize,
    number_type,
    region_of,
)


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("+1 415 555 0100", "US", "+14155550100"),
    ("+1 415 555 0100", None, "+14155550100"),
    ("(415) 555-0100", "US", "+14155550100"),
    ("415.555.0100", "us", "+14155550100"),
    ("1-415-555-0100", "US", "+14155550100"),
    ("  +14155550100  ", "GB", "+14155550100"),  # the country code wins over the region
    ("011 44 20 7946 0000", "US", "+442079460000"),  # the US international prefix
    ("0044 20 7946 0000", "GB", "+442079460000"),
    ("0044 20 7946 0000", "DE", "+442079460000"),
    ("0044 20 7946 0000", "US", "+442079460000"),  # 00 is not the US prefix, but no US number starts with it
    ("020 7946 0000", "GB", "+442079460000"),  # national trunk prefix 0 dropped
    ("tel:+1-415-555-0100", None, "+14155550100"),  # RFC 3966
    ("tel:5550100;phone-context=+1-415", "US", "+14155550100"),
    ("tel:0044 20 7946 0000", "US", "+442079460000"),
    ("+39 06 1234 5678", None, "+390612345678"),  # Italian leading zero kept
    ("1-800-FLOWERS", "US", "+18003569377"),  # vanity letters are digits on a keypad
    ("+800 1234 5678", None, "+80012345678"),  # non-geographic (international freephone)
])
def test_normalize(raw, region, expected):
    assert normalize(raw, region) == expected


@pytest.mark.parametrize(("raw", "region", "message"), [
    ("", "US", "empty phone number"),
    ("   ", "US", "empty phone number"),
    ("abc", "US", "not a phone number: 'abc' (no number in it)"),
    ("911", "US", "not a phone number: '911' (too short for +1 (US))"),
    ("+1 415", None, "not a phone number: '+1 415' (too short for +1 (US))"),
    ("5550100", "US", "not a phone number: '5550100' (a local number without its area code for +1 (US))"),
    ("+1 415 555 01000", None, "not a phone number: '+1 415 555 01000' (too long for +1 (US))"),
    ("12345678901234567890", "US", "not a phone number: '12345678901234567890' (too long)"),
    ("+999 1234 5678", None, "not a phone number: '+999 1234 5678' (no valid country code)"),
    ("4155550100", None,
     "not a phone number: '4155550100' (no country code (write it with '+' or give a region))"),
    ("+1 415 555 0100 ext. 12", "US", "not a phone number: '+1 415 555 0100 ext. 12' has an extension (12)"),
    ("tel:+1-415-555-0100;ext=5", None, "not a phone number: 'tel:+1-415-555-0100;ext=5' has an extension (5)"),
    ("(415) 555-0100", "XX", "unknown region 'XX' for phone number '(415) 555-0100'"),
    ("1" * 65, "US", "not a phone number: '" + "1" * 64 + "'… is too long"),
])
def test_bad_input_says_why(raw, region, message):
    with pytest.raises(InvalidNumber) as info:
        normalize(raw, region)
    assert info.value.message == message
    assert info.value.error_id == "invalid_number"
    assert isinstance(info.value, Invalid)


@pytest.mark.parametrize(("e164", "region"), [
    ("+14155550100", "US"),  # fictional 555-01XX: not in the plan, so +1's main region
    ("+14165550100", "CA"),  # Toronto: +1 is shared, the area code decides
    ("+442079460000", "GB"),
    ("+80012345678", None),  # non-geographic
    ("4155550100", None),  # not E.164
    ("+", None),
])
def test_region_of(e164, region):
    assert region_of(e164) == region


@pytest.mark.parametrize(("e164", "kind"), [
    ("+18005550100", "toll-free"),
    ("+19005550100", "premium"),
    ("+447911123456", "mobile"),
    ("+442079460000", "fixed"),
    ("+14155550100", "fixed-or-mobile"),
    ("+447700900123", "unknown"),  # Ofcom drama range: possible, not in the plan
    ("14155550100", "unknown"),
])
def test_number_type(e164, kind):
    assert number_type(e164) == kind
    assert kind in NUMBER_TYPES


def test_national_number_and_helpers():
    assert national_number("+14155550100") == "4155550100"
    assert national_number("+390612345678") == "0612345678"
    assert national_number("nope") == ""
    assert is_e164("+14155550100")
    assert not is_e164("+1 415 555 0100") and not is_e164("14155550100") and not is_e164("+1415")
    assert is_region("US") and not is_region("us") and not is_region("XX")


_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@st.composite
def example_numbers(draw):
    """Example numbers of the numbering plans, written the way people write them."""
    region = draw(st.sampled_from(_REGIONS))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]))
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        example = phonenumbers.example_number(region)
    style = draw(st.sampled_from([phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL,
                                  phonenumbers.PhoneNumberFormat.RFC3966, phonenumbers.PhoneNumberFormat.E164]))
    return region, example, phonenumbers.format_number(example, style)


@given(example_numbers())
def test_every_way_of_writing_a_number_normalizes_to_the_same_e164(case):
    region, example, written = case
    expected = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert normalize(written, region) == expected
    assert normalize(expected, None) == expected  # idempotent
    assert is_e164(expected)
    assert region_of(expected) == phonenumbers.region_code_for_number(example)


@given(st.text(max_size=40), st.sampled_from(["US", "GB", "DE", "JP", None]))
def test_normalize_returns_e164_or_raises_invalid_number(raw, region):
    try:
        e164 = normalize(raw, region)
    except InvalidNumber as exc:
        assert exc.message
    else:
        assert is_e164(e164)
        assert normalize(e164, None) == e164
