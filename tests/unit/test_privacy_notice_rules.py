"""The notice's wording rules and the ledger line of a call charge, without I/O (issue 8)."""

from __future__ import annotations

import pytest

from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.notice import describe_period, notice
from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table
from ringwell.features.privacy.retention import RetentionPolicy
from ringwell.pbx.calls import charge_description


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
