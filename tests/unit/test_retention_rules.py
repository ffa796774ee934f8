"""Retention rules (pure): the policies' default periods, each org's choice within the operator's
bound for its country, cut-offs from a given ``now``, the ledger without dialled numbers, and the
settings that configure them (a bad value is a ConfigError naming the key)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ringwell.errors import ConfigError
from ringwell.features.privacy.register import Retention
from ringwell.features.privacy.retention import (
    DEFAULT_DAYS,
    OrgRetention,
    RetentionPolicy,
    cutoff,
    effective_call_record_days,
    parse_country_bounds,
    policy_from_settings,
    scrub_ledger_description,
)
from ringwell.settings import load_settings

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)


def test_defaults_are_the_policies_promises():
    assert DEFAULT_DAYS[Retention.CALL_RECORDS] == 365  # 12 months
    assert DEFAULT_DAYS[Retention.USAGE] == 365
    assert DEFAULT_DAYS[Retention.MEDIA] == 365
    assert DEFAULT_DAYS[Retention.ACCOUNT] == 90  # after closure
    assert DEFAULT_DAYS[Retention.LEDGER] >= 7 * 365  # the legal period
    assert DEFAULT_DAYS[Retention.CONSENT] >= 365  # at least a year after a change
    assert DEFAULT_DAYS[Retention.PRIVACY_RECORDS] >= 3 * 365
    assert DEFAULT_DAYS[Retention.SHORT_LIVED] == 0  # until expiry
    assert DEFAULT_DAYS[Retention.CONFIGURATION] is None  # never by age
    assert set(DEFAULT_DAYS) == set(Retention)  # every class has a rule


def test_cutoff_is_now_minus_the_period():
    policy = RetentionPolicy()
    us, fr = OrgRetention("US"), OrgRetention("FR")
    assert cutoff(Retention.CALL_RECORDS, fr, policy, NOW) == NOW - timedelta(days=365)
    assert cutoff(Retention.USAGE, us, policy, NOW) == NOW - timedelta(days=365)
    assert cutoff(Retention.ACCOUNT, us, policy, NOW) == NOW - timedelta(days=90)
    assert cutoff(Retention.SHORT_LIVED, us, policy, NOW) == NOW
    assert cutoff(Retention.CONFIGURATION, us, policy, NOW) is None
    assert cutoff(Retention.MEDIA, OrgRetention("FR", media_days=30), policy, NOW) == NOW - timedelta(days=30)
    with pytest.raises(ValueError, match="aware"):
        cutoff(Retention.USAGE, us, policy, NOW.replace(tzinfo=None))


def test_an_org_chooses_its_call_record_period_within_its_countrys_bound():
    policy = RetentionPolicy(call_record_max_days=365, call_record_max_by_country={"US": 2557})
    assert policy.check_call_record_days(2557, "US") is None  # a US org may keep CDRs 7 years
    assert policy.check_call_record_days(2557, "us") is None
    assert "1-365" in (policy.check_call_record_days(366, "FR") or "")  # others at most 12 months
    assert policy.check_call_record_days(30, "FR") is None
    assert policy.check_call_record_days(None, "FR") is None  # back to the server's default
    assert policy.check_call_record_days(0, "US") is not None
    assert policy.check_call_record_days(2558, "US") is not None
    assert effective_call_record_days(OrgRetention("US", 2000), policy) == 2000
    assert effective_call_record_days(OrgRetention("FR", 30), policy) == 30
    assert effective_call_record_days(OrgRetention("FR"), policy) == 365  # the server's default
    # The operator lowered the bound after the org chose: the bound wins.
    assert effective_call_record_days(OrgRetention("FR", 2000), policy) == 365
    assert cutoff(Retention.CALL_RECORDS, OrgRetention("US", 2000), policy, NOW) == NOW - timedelta(days=2000)


def test_country_bounds_parse_or_say_which_entry_is_wrong():
    assert parse_country_bounds(("US=2557", " CA=730 ")) == {"US": 2557, "CA": 730}
    assert parse_country_bounds(()) == {}
    for bad in (("us=10",), ("USA=10",), ("US=",), ("US=0",), ("US=10", "US=20"), ("US:10",)):
        with pytest.raises(ValueError):
            parse_country_bounds(bad)


def test_the_ledger_keeps_amounts_but_not_dialled_numbers():
    assert scrub_ledger_description("call to +14155550100") == "call"
    assert scrub_ledger_description("Call to +14155550100") == "call"  # as the run's lower(...) LIKE
    assert scrub_ledger_description("top-up") == "top-up"
    assert scrub_ledger_description("number rental +14155550100") == "number rental +14155550100"


def _settings(tmp_path, **env):
    return load_settings(tmp_path, {"RINGWELL_SECRET_KEY": "k" * 32, **{f"RINGWELL_{k.upper()}": v
                                                                        for k, v in env.items()}})


def test_settings_give_the_policy_and_media_defaults_are_12_months(tmp_path):
    settings = _settings(tmp_path)
    assert settings.voicemail_retention_days == settings.recording_retention_days == 365
    policy = policy_from_settings(settings)
    assert policy.call_record_bound("US") == 2557 and policy.call_record_bound("DE") == 365
    custom = policy_from_settings(_settings(tmp_path, call_record_max_days_by_country="US=3650,CA=730",
                                            usage_retention_days="180", ledger_retention_days="3650"))
    assert custom.call_record_bound("CA") == 730 and custom.call_record_bound("US") == 3650
    assert custom.period_days(Retention.USAGE) == 180 and custom.period_days(Retention.LEDGER) == 3650
    assert policy_from_settings(_settings(tmp_path, privacy_records_retention_days="731")).period_days(
        Retention.PRIVACY_RECORDS) == 731  # two years, the least the settings allow


@pytest.mark.parametrize(("key", "value"), [
    ("call_record_max_days_by_country", "US=10,usa=3"),
    ("call_record_max_days_by_country", "US=10,US=20"),
    ("call_record_retention_days", "0"),
    ("call_record_retention_days", "400"),  # above call_record_max_days (365)
    ("ledger_retention_days", "30"),
    ("usage_retention_days", "0"),
    ("privacy_records_retention_days", "730"),  # 47 CFR 64.2011(d): breach records two years at least
])
def test_bad_retention_settings_name_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, **{key: value})
    assert key in str(caught.value)
