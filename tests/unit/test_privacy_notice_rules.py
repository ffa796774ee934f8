"""The notice's wording rules and the ledger line of a call charge, without I/O (issue 8)."""

from __future__ import annotations

import pytest

from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.notice import describe_period, notice, register_document
from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table
from ringwell.features.privacy.retention import DEFAULT_DAYS, RetentionPolicy, policy_from_settings
from ringwell.pbx.calls import charge_description
from ringwell.settings import load_settings


@pytest.mark.parametrize(("retention", "days", "words"), [
    (Retention.CALL_RECORDS, 365, "12 months"),
    (Retention.CALL_RECORDS, 2557, "7 years"),
    (Retention.AUDIT, 1096, "3 years"),
    (Retention.USAGE, 180, "6 months"),
    (Retention.USAGE, 45, "45 days"),
    (Retention.ACCOUNT, 90, "while the account exists, then 90 days after it is closed"),
    (Retention.CONSENT, 365, "at least 12 months after the consent changes"),
    (Retention.SHORT_LIVED, 0, "until it expires or is used"),
    (Retention.CONFIGURATION, None, "as long as the organisation uses Ringwell"),
])  # fmt: skip
def test_periods_in_words(retention, days, words):
    assert describe_period(retention, days) == words


def test_a_category_nobody_stores_says_so_and_exceptions_are_listed_once():
    sections = {s.category: s for s in notice(REGISTER, RetentionPolicy())}
    assert Category.NOT_PERSONAL not in sections
    assert set(sections) == set(Category) - {Category.NOT_PERSONAL}
    billing = sections[Category.BILLING]
    ledger = [k for k in billing.exceptions if "without dialled numbers" in k.why]
    assert len(ledger) == 1 and ledger[0].until.endswith("7 years")


def test_a_synthetic_register_maps_to_sections():
    table = Table("notes", "a note", "the author", (
        Column("id", Category.NOT_PERSONAL, "its id", Basis.CONTRACT, Retention.USAGE, False, Erasure.NONE),
        Column("text", Category.CONTENT, "what you wrote", Basis.CONSENT, Retention.MEDIA, True, Erasure.DELETE),
        Column("at", Category.CONTENT, "when", Basis.CONSENT, Retention.MEDIA, False, Erasure.KEEP, "proof"),
    ))
    sections = {s.category: s for s in notice({"notes": table}, RetentionPolicy())}
    content = sections[Category.CONTENT]
    [item] = content.items
    assert item.purposes == ("what you wrote", "when") and item.exported
    assert "withdraw" in item.bases[0]
    assert [(k.what, k.why) for k in content.exceptions] == [("a note", "proof")]
    assert sections[Category.BILLING].empty


def _retention_of(policy: RetentionPolicy, table: str, category: Category) -> str:
    sections = {s.category: s for s in notice(REGISTER, policy)}
    [item] = [i for i in sections[category].items if i.table == table]
    return item.retention


def test_voicemail_shows_its_own_period_not_the_recordings(tmp_path):
    settings = load_settings(tmp_path, {"RINGWELL_SECRET_KEY": "k" * 32, "RINGWELL_VOICEMAIL_RETENTION_DAYS": "30",
                                        "RINGWELL_RECORDING_RETENTION_DAYS": "180"})
    policy = policy_from_settings(settings)
    words = _retention_of(policy, "voicemails", Category.CONTENT)
    assert "30 days for voicemail, 6 months for call recordings" in words
    assert _retention_of(policy, "recordings", Category.CONTENT) == words
    assert register_document(REGISTER, policy)["retention"]["media"]["voicemail_days"] == 30


def test_call_records_say_the_default_and_how_far_an_org_may_go_in_its_country():
    policy = RetentionPolicy(days={**DEFAULT_DAYS, Retention.CALL_RECORDS: 180}, call_record_max_days=365,
                             call_record_max_by_country={"US": 2557, "CA": 730})
    words = _retention_of(policy, "call_records", Category.COMMUNICATIONS_METADATA)
    assert words.startswith("call records: 6 months by default; ")
    assert "may choose its own period, up to 2 years in CA, 7 years in US, 12 months elsewhere" in words
    document = register_document(REGISTER, policy)["retention"]["call_records"]
    assert document["days"] == 180 and document["max_days"] == {"CA": 730, "US": 2557, "*": 365}
    # No country of its own: one bound for all.
    single = RetentionPolicy(call_record_max_by_country={})
    assert "up to 12 months" in _retention_of(single, "call_records", Category.COMMUNICATIONS_METADATA)
    assert "elsewhere" not in _retention_of(single, "call_records", Category.COMMUNICATIONS_METADATA)


def test_closed_requests_and_incidents_are_kept_for_the_configured_period_not_a_number_in_the_text():
    policy = RetentionPolicy(days={**DEFAULT_DAYS, Retention.PRIVACY_RECORDS: 1461})
    kept = [k for s in notice(REGISTER, policy) for k in s.exceptions
            if k.what.startswith(("a request you made", "Security incidents"))]
    assert kept and all(k.until.endswith(": 4 years") for k in kept)
    # The law's minimum may be named, never as the period itself (which is the operator's setting).
    assert all("at least" in k.why and "privacy-records period" in k.why for k in kept)
    assert not any("record keeping: 24 months" in k.why or "keeps records two years" in k.why for k in kept)


@pytest.mark.parametrize(("destination", "line"), [
    ("United Kingdom mobile", "call: United Kingdom mobile"),
    ("  USA \n", "call: USA"),
    (None, "call"),
    ("", "call"),
    ("+44 7700 900123", "call"),  # a number written as a destination name never reaches the ledger
    ("Zone 3", "call"),
])  # fmt: skip
def test_a_call_charge_never_names_the_number(destination, line):
    assert charge_description(destination) == line
