"""The erasure's pure rules: it covers every table the data register says holds a person's data,
its receipt lists the register's exceptions with their deadlines, and scrubbing replaces the
longest identifier first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ringwell.features.privacy import erasure
from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.erasure import ANONYMISED, kept_columns, scrub_text
from ringwell.features.privacy.register import Erasure

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
# Rows that go with the organization, never with one person; and tables whose rows the erasure
# removes through their parent (a foreign key with ON DELETE CASCADE).
_NOT_PER_PERSON = {"organizations"}


def test_every_table_with_a_persons_deletable_data_is_handled_by_the_erasure():
    missing = sorted(
        table.name for table in REGISTER.values()
        if any(c.erasure in (Erasure.DELETE, Erasure.ANONYMISE) for c in table.columns)
        and table.name not in erasure._HANDLED and table.name not in _NOT_PER_PERSON
    )
    assert missing == [], f"the erasure does not know how to find a person's rows in {missing}"


def test_the_receipt_lists_each_kept_column_with_why_and_until_when():
    kept = kept_columns(REGISTER, NOW)
    by_column = {(k.table, k.column): k for k in kept}
    declared = {(t.name, c.name) for t in REGISTER.values() for c in t.columns if c.erasure is Erasure.KEEP}
    assert declared <= set(by_column)
    ledger = next(k for k in kept if k.table == "ledger_transactions")
    assert ledger.why and ledger.until is not None and ledger.until - NOW >= timedelta(days=7 * 365)
    assert all(k.why for k in kept)
    only_ledger = kept_columns(REGISTER, NOW, ["ledger_transactions"])
    assert {k.table for k in only_ledger} == {"ledger_transactions"}


def test_scrubbing_replaces_the_longest_identifier_first():
    text = "call to +14155550123 from ext 0123, ask for Alicia"
    assert scrub_text(text, ["0123", "+14155550123", "Alicia", ""]) == \
        f"call to {ANONYMISED} from ext {ANONYMISED}, ask for {ANONYMISED}"
    assert scrub_text("nothing here", ["+1415"]) == "nothing here"
