"""The pure consent and cookie rules: the banner asks only before a choice and never under Global
Privacy Control, the analytics cookie lives at most 13 months, every purpose is off by default,
and the consent table is declared in the data register."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ringwell.features.privacy import consent, cookies
from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.consent import DEFAULTS, TEXTS, Subject, consent_cutoff, one_year_before
from ringwell.features.privacy.cookies import ANALYTICS_MAX_AGE, CookieChoice, banner, gpc_requested
from ringwell.features.privacy.models_consent import ConsentRecord, Purpose
from ringwell.features.privacy.register import Erasure, Retention


def test_every_purpose_is_off_until_opted_in():
    assert set(DEFAULTS) == set(Purpose)
    assert not any(DEFAULTS.values())
    assert DEFAULTS[Purpose.CPNI_MARKETING] is False


def test_the_cpni_notice_says_what_the_rules_require_in_plain_words():
    words = TEXTS[Purpose.CPNI_MARKETING].text
    for needed in ("right", "47 CFR 64.2007", "never sold", "changes nothing", "at any time"):
        assert needed in words, needed


def test_the_analytics_cookie_expires_within_13_months():
    assert ANALYTICS_MAX_AGE <= 395 * 86400
    assert cookies.CONSENT_MAX_AGE <= 395 * 86400


@pytest.mark.parametrize(("header", "expected"), [("1", True), (" 1 ", True), ("0", False), ("", False),
                                                  (None, False), ("yes", False)])
def test_gpc_is_the_header_value_1(header, expected):
    assert gpc_requested(header) is expected


def test_the_banner_asks_only_before_a_choice_and_never_under_gpc():
    accepted = CookieChoice("v" * 24, True)
    declined = CookieChoice("v" * 24, False)
    assert banner(None, gpc=False) == cookies.Banner(ask=True, analytics=False, gpc=False)
    assert banner(None, gpc=True) == cookies.Banner(ask=False, analytics=False, gpc=True)
    assert banner(accepted, gpc=False).analytics and not banner(accepted, gpc=False).ask
    assert not banner(accepted, gpc=True).analytics  # GPC wins over an earlier accept
    assert not banner(declined, gpc=False).analytics and not banner(declined, gpc=False).ask


def test_the_choice_cookie_round_trips_and_refuses_what_it_did_not_write():
    choice = CookieChoice("abcDEF0123456789_-xy", True)
    assert CookieChoice.parse(choice.value()) == choice
    for bad in (None, "", "1", "short.1", "abcDEF0123456789_-xy.2", "abc;DEF0123456789xy.1", "x" * 90 + ".1"):
        assert CookieChoice.parse(bad) is None, bad
    with pytest.raises(ValueError):
        CookieChoice("not a visitor id!", False)


def test_a_year_before_is_a_calendar_year():
    assert one_year_before(datetime(2026, 12, 7, 16, tzinfo=UTC)) == datetime(2025, 12, 7, 16, tzinfo=UTC)
    assert one_year_before(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2027, 2, 28, tzinfo=UTC)


def test_the_consent_period_is_the_policys_but_never_under_a_calendar_year():
    now = datetime(2026, 12, 7, 16, tzinfo=UTC)
    assert consent_cutoff(now, 365) == datetime(2025, 12, 7, 16, tzinfo=UTC)
    assert consent_cutoff(now, 30) == datetime(2025, 12, 7, 16, tzinfo=UTC)  # the minimum wins
    assert consent_cutoff(now, 730) == datetime(2024, 12, 7, 16, tzinfo=UTC)  # a longer period is kept
    assert consent_cutoff(now, None) is None  # not purged by age


def test_a_subject_is_a_person_with_their_org_or_a_visitor():
    with pytest.raises(ValueError):
        Subject()
    with pytest.raises(ValueError):
        Subject(user_id="u")
    assert Subject.person("o", "u").visitor_id is None
    assert Subject.visitor("v" * 20).user_id is None


def test_every_consent_column_is_in_the_register_and_kept_as_proof():
    table = REGISTER["consent_records"]
    assert {c.name for c in table.columns} == set(ConsentRecord.__table__.columns.keys())
    assert all(c.retention is Retention.CONSENT for c in table.columns)
    assert table.column("user_id").erasure is Erasure.KEEP and table.column("user_id").exported


def test_exports_are_honest():
    for module in (consent, cookies):
        for name in module.__all__:
            assert hasattr(module, name), name
