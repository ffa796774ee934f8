"""Fraud slice, pure parts: destination classification, emergency numbers, dialled strings,
the policy decision and its defaults, and the per-org call counters."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringwell.errors import Invalid
from ringwell.features.fraud.counters import CallCounters
from ringwell.features.fraud.destinations import (
    HIGH_RISK_RANGES,
    Risk,
    UnparseableNumber,
    classify,
    dialled_to_e164,
    emergency_number,
    is_emergency,
)
from ringwell.features.fraud.errors import InvalidFraudSetting
from ringwell.features.fraud.policy import (
    ALLOWED,
    CapOverrides,
    DestinationRule,
    FraudPolicy,
    Refused,
    Usage,
    decide,
    default_policy,
    major_to_micros,
    major_to_minor,
    micros_to_major,
    minor_to_major,
    overlay,
    spend_headroom_minor,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
IDLE = Usage(concurrent=0, calls_last_minute=0, spent_today_minor=0)


# -- classification ------------------------------------------------------------------------------
@pytest.mark.parametrize(("number", "org", "region", "number_type", "risk", "domestic"), [
    ("+14155550100", "US", "US", "fixed-or-mobile", Risk.DOMESTIC, True),
    ("+18765550100", "US", "JM", "mobile", Risk.INTERNATIONAL, False),  # +1 yet Jamaica: not domestic
    ("+18095550100", "US", "DO", "fixed-or-mobile", Risk.INTERNATIONAL, False),
    ("+14165550100", "US", "CA", "fixed-or-mobile", Risk.INTERNATIONAL, False),
    ("+14155550100", "CA", "US", "fixed-or-mobile", Risk.INTERNATIONAL, False),
    ("+17875550100", "US", "PR", "fixed-or-mobile", Risk.DOMESTIC, True),  # a US territory inside NANP
    ("+19005550100", "US", "US", "premium", Risk.PREMIUM, True),
    ("+18005550100", "US", "US", "toll-free", Risk.DOMESTIC, True),
    ("+442079460000", "US", "GB", "fixed", Risk.INTERNATIONAL, False),
    ("+442079460000", "GB", "GB", "fixed", Risk.DOMESTIC, True),
    ("+449012345678", "GB", "GB", "premium", Risk.PREMIUM, True),
    ("+448712345678", "GB", "GB", "premium", Risk.PREMIUM, True),  # 087x: service charge shared with the holder
    ("+447012345678", "GB", "GB", "personal", Risk.PREMIUM, True),  # 070 personal numbers
    ("+443001234567", "GB", "GB", "uan", Risk.DOMESTIC, True),  # 03: charged like a geographic number
    ("+447912345678", "GB", "GB", "mobile", Risk.DOMESTIC, True),
    ("+441534123456", "GB", "JE", "fixed", Risk.INTERNATIONAL, False),  # Jersey is not aliased
    ("+882123456789", "US", None, "unknown", Risk.HIGH_RISK, False),
    ("+88213456789", "US", None, "voip", Risk.HIGH_RISK, False),
    ("+881612345678", "US", None, "mobile", Risk.HIGH_RISK, False),  # satellite
    ("+870773111111", "US", None, "mobile", Risk.HIGH_RISK, False),  # Inmarsat
    ("+5352345678", "US", "CU", "mobile", Risk.HIGH_RISK, False),
    ("+37120000000", "US", "LV", "mobile", Risk.HIGH_RISK, False),
    ("+37120000000", "LV", "LV", "mobile", Risk.DOMESTIC, True),  # a listed country calling itself
    ("+979123456789", "US", None, "premium", Risk.PREMIUM, False),  # international premium rate
    ("+80012345678", "US", None, "toll-free", Risk.INTERNATIONAL, False),  # international freephone
    ("+12845550100", "US", None, "unknown", Risk.HIGH_RISK, False),  # unallocated in a +1 Caribbean code
    ("+15555550100", "US", None, "unknown", Risk.HIGH_RISK, False),  # +1 555: no region
    ("+493012345678", "DE", "DE", "fixed", Risk.DOMESTIC, True),
])
def test_classify(number, org, region, number_type, risk, domestic):
    destination = classify(number, org)
    assert (destination.e164, destination.region, destination.number_type, destination.risk,
            destination.domestic) == (number, region, number_type, risk, domestic)
    assert destination.country_code == phonenumbers.parse(number).country_code


def test_high_risk_destinations_say_why():
    cuba = classify("+5352345678", "US")
    assert cuba.note.startswith("Cuba: ") and "IRSF" in cuba.note
    unallocated = classify("+12845550100", "US")
    assert unallocated.note == "outside the allocated ranges of +1 (the region cannot be told)"
    assert classify("+14155550100", "US").note == ""


def test_high_risk_table_is_data_with_unique_prefixes():
    prefixes = [entry.prefix for entry in HIGH_RISK_RANGES]
    assert len(prefixes) == len(set(prefixes))
    assert all(prefix.isdigit() and entry.name and entry.why for prefix, entry in zip(prefixes, HIGH_RISK_RANGES,
                                                                                        strict=True))
    assert {"870", "881", "882", "883"} <= set(prefixes)


@pytest.mark.parametrize("text", ["4155550100", "14155550100", "", "+", "abc", "+999123", "+1"])
def test_classify_refuses_what_is_not_e164(text):
    with pytest.raises(UnparseableNumber) as caught:
        classify(text, "US")
    assert caught.value.error_id == "unparseable_number"


# -- emergency numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize("country", ["US", "GB", "AU", "JP", "DE", "FR", "IN", "BR", "NZ", "ZA", "XX"])
@pytest.mark.parametrize("code", ["911", "112", "999"])
def test_911_112_999_are_emergency_everywhere(country, code):
    assert is_emergency(code, country)
    assert classify(code, country).risk is Risk.EMERGENCY


@pytest.mark.parametrize(("dialled", "country", "expected"), [
    ("999", "GB", True),
    ("000", "AU", True),
    ("110", "JP", True),
    ("119", "JP", True),
    ("15", "FR", True),
    ("17", "FR", True),
    ("111", "NZ", True),
    ("10111", "ZA", True),
    ("000", "US", False),  # Australia's, not the US's
    ("110", "US", False),
    ("9111", "US", False),  # exact codes only: an emergency call skips every check
    ("1120", "GB", False),
    ("91", "US", False),
    ("411", "US", False),
    ("+1911", "US", True),  # the org's own country code in front: tolerated
    ("+44999", "GB", True),
    ("+1911", "GB", False),  # someone else's country code: no
    ("+44999", "US", False),
    ("+14155550100", "US", False),
    ("", "US", False),
    (" 911 ", "US", True),
])
def test_emergency_numbers_per_country(dialled, country, expected):
    assert is_emergency(dialled, country) is expected


@pytest.mark.parametrize(("dialled", "country", "sent"), [
    ("911", "US", "911"),
    ("+1911", "US", "911"),
    ("112", "GB", "112"),
    ("999", "GB", "999"),
    ("911", "GB", "112"),  # not a UK code: sent as the UK's 112
    ("112", "JP", "110"),  # Japan has no 112: police
    ("000", "AU", "000"),
    ("999", "NZ", "111"),
])
def test_emergency_number_is_what_the_carrier_gets(dialled, country, sent):
    assert emergency_number(dialled, country) == sent
    assert classify(dialled, country).e164 == sent


# -- dialled strings -----------------------------------------------------------------------------
@pytest.mark.parametrize(("dialled", "country", "e164"), [
    ("+14155550100", "US", "+14155550100"),
    ("14155550100", "US", "+14155550100"),
    ("0014155550100", "US", "+14155550100"),
    ("4155550100", "US", "+14155550100"),
    ("(415) 555-0100", "US", "+14155550100"),
    ("+1 415 555 0100", "US", "+14155550100"),
    ("00442079460000", "US", "+442079460000"),
    ("011442079460000", "US", "+442079460000"),  # the US's own international prefix
    ("02079460000", "GB", "+442079460000"),
    ("00442079460000", "GB", "+442079460000"),
    ("0011442079460000", "AU", "+442079460000"),  # AU's 0011 is not "00" + "11"
    ("0014155550100", "JP", "+14155550100"),  # two readings; the valid one wins
    ("+882123456789", "US", "+882123456789"),  # possible, so dialable; classify calls it high risk
])
def test_dialled_to_e164(dialled, country, e164):
    assert dialled_to_e164(dialled, country) == e164


@pytest.mark.parametrize(("dialled", "reason"), [
    ("", "not a phone number"),
    ("*97", "not a phone number"),
    ("#31#4155550100", "not a phone number"),
    ("1800FLOWERS", "not a phone number"),
    ("alice", "not a phone number"),
    ("5550100", "a local number without its area code"),
    ("12", "too short"),
    ("+999123456", "no valid country code"),
    ("+1415555010012345", "too long"),
    ("4" * 41, "too long"),
])
def test_dialled_to_e164_refuses_what_cannot_be_a_number(dialled, reason):
    with pytest.raises(UnparseableNumber) as caught:
        dialled_to_e164(dialled, "US")
    assert isinstance(caught.value, Invalid)
    assert caught.value.error_id == "unparseable_number"
    assert reason in caught.value.message


# -- decide ---------------------------------------------------------------------------------------
def policy(**changes) -> FraudPolicy:
    base = default_policy(OLD, NOW, country="US", currency="USD")
    return replace(base, **changes)


def rules(*extra: DestinationRule) -> FraudPolicy:
    return overlay(default_policy(OLD, NOW), extra, CapOverrides())


def test_decide_checks_in_order_and_names_each_refusal():
    cuba = classify("+5352345678", "US")
    tight = policy(max_concurrent=1, max_calls_per_minute=1, daily_spend_cap_minor=100,
                   max_price_per_minute_micros=10_000)
    busy = Usage(concurrent=1, calls_last_minute=1, spent_today_minor=100)
    expensive = 10_001
    expected = [
        (403, "Destination not permitted", "destination_blocked"),
        (403, "Too many concurrent calls", "too_many_calls"),
        (403, "Call rate exceeded", "call_rate_exceeded"),
        (403, "Daily spend cap reached", "daily_spend_cap"),
        (403, "Price cap exceeded", "price_cap_exceeded"),
    ]
    # Each step removes the cause of the previous refusal: the next check in the order answers.
    steps = [
        (cuba, busy),
        (classify("+14155550100", "US"), busy),
        (classify("+14155550100", "US"), replace(busy, concurrent=0)),
        (classify("+14155550100", "US"), replace(busy, concurrent=0, calls_last_minute=0)),
        (classify("+14155550100", "US"), IDLE),
    ]
    for (destination, usage), (status, reason, error_id) in zip(steps, expected, strict=True):
        decision = decide(destination, tight, usage, expensive)
        assert isinstance(decision, Refused)
        assert (decision.status, decision.reason, decision.error_id) == (status, reason, error_id)
    assert decide(classify("+14155550100", "US"), tight, IDLE, 10_000) is ALLOWED


def refusal(decision: object) -> Refused:
    assert isinstance(decision, Refused), decision
    return decision


def test_refusal_details_are_exact():
    us = classify("+14155550100", "US")
    tight = policy(max_concurrent=2, max_calls_per_minute=5, daily_spend_cap_minor=2500,
                   max_price_per_minute_micros=500_000)
    assert refusal(decide(us, tight, Usage(2, 0, 0), None)).detail == "2 calls up; the limit is 2"
    assert refusal(decide(us, tight, Usage(0, 5, 0), None)).detail == (
        "5 calls started in the last minute; the limit is 5")
    assert refusal(decide(us, tight, Usage(0, 0, 2600), None)).detail == (
        "spent 26.00 USD today; the cap is 25.00")
    assert refusal(decide(us, tight, IDLE, 512_300)).detail == (
        "0.5123 USD/min is above the cap of 0.50")
    assert refusal(decide(classify("+18765550100", "US"), tight, IDLE, None)).detail == (
        "calls to JM are not permitted")


@pytest.mark.parametrize(("usage", "price", "allowed"), [
    (Usage(1, 0, 0), None, True),
    (Usage(2, 0, 0), None, False),  # at the cap: the call would be the third
    (Usage(0, 4, 0), None, True),
    (Usage(0, 5, 0), None, False),
    (Usage(0, 0, 2499), None, True),
    (Usage(0, 0, 2500), None, False),
    (IDLE, 500_000, True),  # at the price cap is allowed
    (IDLE, 500_001, False),
    (IDLE, None, True),  # not rated: the price is not checked here
])
def test_cap_boundaries(usage, price, allowed):
    tight = policy(max_concurrent=2, max_calls_per_minute=5, daily_spend_cap_minor=2500,
                   max_price_per_minute_micros=500_000)
    assert (decide(classify("+14155550100", "US"), tight, usage, price) is ALLOWED) is allowed


def test_no_money_caps_means_unlimited_spend_and_price():
    open_ended = policy(daily_spend_cap_minor=None, max_price_per_minute_micros=None)
    assert decide(classify("+14155550100", "US"), open_ended, Usage(0, 0, 10**12), 10**12) is ALLOWED
    assert spend_headroom_minor(open_ended, 10**12) is None
    assert spend_headroom_minor(policy(daily_spend_cap_minor=2500), 2000) == 500
    assert spend_headroom_minor(policy(daily_spend_cap_minor=2500), 3000) == 0


def test_emergency_is_never_refused_by_decide():
    """Second line of defence: even a policy that refuses everything lets an emergency call through."""
    nothing = overlay(policy(max_concurrent=0, max_calls_per_minute=0, daily_spend_cap_minor=0,
                             max_price_per_minute_micros=0),
                      [DestinationRule("US", None, False)], CapOverrides())
    assert isinstance(decide(classify("+14155550100", "US"), nothing, IDLE, None), Refused)
    for dialled in ("911", "112", "999", "+1911"):
        assert decide(classify(dialled, "US"), nothing, Usage(99, 99, 10**9), 10**9) is ALLOWED


def permitted(number: str, the_policy: FraudPolicy, org: str = "US") -> bool:
    return decide(classify(number, org), the_policy, IDLE, None) is ALLOWED


def test_default_destinations():
    defaults = default_policy(OLD, NOW)
    assert permitted("+14155550100", defaults)
    assert permitted("+17875550100", defaults)  # Puerto Rico
    assert not permitted("+18765550100", defaults)  # Jamaica
    assert not permitted("+442079460000", defaults)
    assert not permitted("+19005550100", defaults)  # premium at home
    assert not permitted("+882123456789", defaults)
    gb = default_policy(OLD, NOW, country="GB", currency="GBP")
    assert permitted("+442079460000", gb, "GB")
    assert not permitted("+449012345678", gb, "GB")
    assert not permitted("+447012345678", gb, "GB")


def test_country_allow_does_not_unblock_premium_or_high_risk():
    with_gb = rules(DestinationRule("GB", None, True))
    assert permitted("+442079460000", with_gb)
    assert not permitted("+449012345678", with_gb)  # UK premium: still blocked
    assert not permitted("+18765550100", with_gb)
    with_cuba = rules(DestinationRule("CU", None, True))
    assert not permitted("+5352345678", with_cuba)


def test_class_rules_need_the_country_too():
    premium = rules(DestinationRule(None, Risk.PREMIUM, True))
    assert permitted("+19005550100", premium)  # premium at home
    assert not permitted("+449012345678", premium)  # premium abroad: GB is not allowed
    assert permitted("+449012345678", rules(DestinationRule(None, Risk.PREMIUM, True),
                                            DestinationRule("GB", None, True)))
    international = rules(DestinationRule(None, Risk.INTERNATIONAL, True))
    assert permitted("+18765550100", international)
    assert permitted("+442079460000", international)
    assert not permitted("+882123456789", international)  # high risk needs its own allow
    assert not permitted("+5352345678", international)
    everything = rules(DestinationRule(None, Risk.INTERNATIONAL, True), DestinationRule(None, Risk.HIGH_RISK, True))
    assert permitted("+882123456789", everything)
    assert permitted("+5352345678", everything)


def test_pair_rules_are_the_most_specific():
    cuba_only = rules(DestinationRule("CU", Risk.HIGH_RISK, True))
    assert permitted("+5352345678", cuba_only)
    assert not permitted("+37120000000", cuba_only)  # Latvia: another high-risk country
    assert not permitted("+18765550100", cuba_only)
    no_uk_premium = rules(DestinationRule(None, Risk.PREMIUM, True), DestinationRule(None, Risk.INTERNATIONAL, True),
                          DestinationRule("GB", Risk.PREMIUM, False))
    assert not permitted("+449012345678", no_uk_premium)
    assert permitted("+442079460000", no_uk_premium)
    assert permitted("+19005550100", no_uk_premium)
    detail = refusal(decide(classify("+449012345678", "US"), no_uk_premium, IDLE, None)).detail
    assert detail == "premium-rate numbers in GB are not permitted"


def test_country_deny_beats_international_allow():
    no_jamaica = rules(DestinationRule(None, Risk.INTERNATIONAL, True), DestinationRule("JM", None, False))
    assert not permitted("+18765550100", no_jamaica)
    assert permitted("+18095550100", no_jamaica)


def test_denying_the_home_country_covers_its_territories():
    closed = rules(DestinationRule("US", None, False))
    assert not permitted("+14155550100", closed)
    assert not permitted("+17875550100", closed)
    assert permitted("+17875550100", rules(DestinationRule("US", None, False), DestinationRule("PR", None, True)))


def test_overlay_replaces_rules_by_key_and_caps_by_name():
    merged = overlay(default_policy(OLD, NOW), [DestinationRule(None, Risk.PREMIUM, True)],
                     CapOverrides(max_concurrent=7, daily_spend_cap_minor=0))
    assert [(rule.region, rule.risk, rule.allow, rule.default) for rule in merged.rules] == [
        ("US", None, True, True), (None, Risk.INTERNATIONAL, False, True), (None, Risk.HIGH_RISK, False, True),
        (None, Risk.PREMIUM, True, False)]
    assert (merged.max_concurrent, merged.max_calls_per_minute, merged.daily_spend_cap_minor,
            merged.max_price_per_minute_micros) == (7, 60, 0, 1_000_000)


# -- defaults -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("age", "caps"), [
    (timedelta(0), (3, 10, 2500, 500_000)),
    (timedelta(days=29, hours=23, minutes=59), (3, 10, 2500, 500_000)),
    (timedelta(days=30), (20, 60, 25_000, 1_000_000)),
    (timedelta(days=400), (20, 60, 25_000, 1_000_000)),
])
def test_new_orgs_get_stricter_defaults(age, caps):
    defaults = default_policy(NOW - age, NOW)
    assert (defaults.max_concurrent, defaults.max_calls_per_minute, defaults.daily_spend_cap_minor,
            defaults.max_price_per_minute_micros) == caps
    assert (defaults.home_region, defaults.currency) == ("US", "USD")


@pytest.mark.parametrize(("currency", "daily_minor", "price_micros"), [
    ("EUR", 25_000, 1_000_000),  # 250.00 EUR
    ("JPY", 25_000, 100_000_000),  # ¥25,000 (no minor unit), ¥100/min
    ("KRW", 250_000, 1_000_000_000),
    ("SEK", 250_000, 10_000_000),  # 2500.00 SEK
    ("KWD", None, None),  # not in the scale table: no guessed money caps
    ("XYZ", None, None),
])
def test_money_defaults_follow_the_currency(currency, daily_minor, price_micros):
    defaults = default_policy(OLD, NOW, country="US", currency=currency)
    assert (defaults.daily_spend_cap_minor, defaults.max_price_per_minute_micros) == (daily_minor, price_micros)
    assert (defaults.max_concurrent, defaults.max_calls_per_minute) == (20, 60)


# -- money -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("50.00", "USD", 5000), ("50", "USD", 5000), ("0.01", "USD", 1), ("1234", "JPY", 1234), ("1.234", "KWD", 1234),
    ("0", "EUR", 0),
])
def test_major_to_minor_is_exact(amount, currency, minor):
    assert major_to_minor(Decimal(amount), currency) == minor
    assert minor_to_major(minor, currency) == Decimal(amount)


@pytest.mark.parametrize(("amount", "currency", "message"), [
    ("50.005", "USD", "USD has 2 decimals"), ("1.5", "JPY", "JPY has 0 decimals"), ("-1", "USD", "negative"),
    ("NaN", "USD", "not an amount"),
])
def test_major_to_minor_refuses_rounding(amount, currency, message):
    with pytest.raises(InvalidFraudSetting, match=message):
        major_to_minor(Decimal(amount), currency)


def test_micros():
    assert major_to_micros(Decimal("0.0123")) == 12_300
    assert major_to_micros(Decimal("1.00")) == 1_000_000
    with pytest.raises(InvalidFraudSetting, match="6 decimals"):
        major_to_micros(Decimal("0.0000001"))
    assert str(micros_to_major(500_000)) == "0.50"
    assert str(micros_to_major(12_300)) == "0.0123"
    assert str(micros_to_major(100_000_000)) == "100.00"


# -- counters -------------------------------------------------------------------------------------
def test_counters_concurrency_and_window():
    counters = CallCounters()
    counters.started("acme", "c1", 100.2)
    counters.started("acme", "c2", 100.7)
    counters.started("acme", "c3", 130.0)
    counters.started("other", "o1", 130.0)
    assert counters.usage("acme", 130.0) == (3, 3)
    counters.ended("c1")
    counters.ended("c1")  # twice: no effect
    counters.ended("never-started")
    assert counters.usage("acme", 159.9) == (2, 3)
    assert counters.usage("acme", 160.99) == (2, 3)  # calls of second 100 count for at least 60 s
    assert counters.usage("acme", 161.0) == (2, 1)
    assert counters.usage("acme", 190.99) == (2, 1)
    assert counters.usage("acme", 191.0) == (2, 0)
    assert counters.usage("other", 191.0) == (1, 0)
    assert counters.usage("nobody", 191.0) == (0, 0)


def test_started_is_idempotent_per_call():
    counters = CallCounters()
    assert counters.started("acme", "c1", 10.0) is True
    assert counters.started("acme", "c1", 10.5) is False
    assert counters.usage("acme", 11.0) == (1, 1)


def test_counters_forget_idle_orgs():
    counters = CallCounters()
    for n in range(1000):
        counters.started(f"org-{n}", f"call-{n}", 10.0)
        counters.ended(f"call-{n}")
    assert counters.tracked_orgs == 1000 and counters.calls_up == 0
    counters.started("busy", "b1", 200.0)  # a later start sweeps the idle orgs away
    assert counters.tracked_orgs == 1
    assert counters.usage("busy", 200.0) == (1, 1)
    counters.ended("b1")
    assert counters.usage("busy", 261.0) == (0, 0)
    assert counters.tracked_orgs == 0


def test_counters_after_a_long_pause():
    counters = CallCounters(window=60)
    for n in range(5):
        counters.started("acme", f"c{n}", 0.0)
    assert counters.usage("acme", 10_000.0) == (5, 0)
    counters.started("acme", "late", 10_000.5)
    assert counters.usage("acme", 10_000.5) == (6, 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0, max_value=500, allow_nan=False), st.booleans()), max_size=60),
       st.floats(min_value=0, max_value=120, allow_nan=False))
def test_counters_match_a_model(events, after):
    """Starts in time order (some ending at once): calls in the window are between the exact
    60 s count and the 61 s count; concurrency is exact."""
    counters = CallCounters(window=60)
    starts: list[float] = []
    up = 0
    for index, (when, ends) in enumerate(sorted(events)):
        counters.started("acme", f"c{index}", when)
        starts.append(when)
        up += 1
        if ends:
            counters.ended(f"c{index}")
            up -= 1
    now = max(starts, default=0.0) + after
    concurrent, recent = counters.usage("acme", now)
    assert concurrent == up
    assert sum(now - t < 60 for t in starts) <= recent <= sum(now - t < 61 for t in starts)
