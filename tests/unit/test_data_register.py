"""The data register declares every column of every table, and nothing that is not there (issue 8).

A new model column without a declaration in ``ringwell/features/privacy/catalog_*.py`` fails
here, naming ``table.column``; so does a declaration left behind after a column was dropped.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Column as SaColumn
from sqlalchemy import MetaData, String
from sqlalchemy import Table as SaTable

import ringwell.storage.models  # noqa: F401  (registers every table on Base.metadata)
from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.coverage import stale, undeclared
from ringwell.features.privacy.register import (
    Basis,
    Category,
    Column,
    Erasure,
    Register,
    Retention,
    Table,
)
from ringwell.storage.base import Base


def test_every_model_column_is_declared() -> None:
    missing = undeclared(Base.metadata, REGISTER)
    assert not missing, "columns the data register does not declare (add them to a catalog_*.py): " + ", ".join(
        missing)


def test_nothing_declared_is_missing_from_the_models() -> None:
    extra = stale(Base.metadata, REGISTER)
    assert not extra, "declared in the data register but not in the models: " + ", ".join(extra)


def test_every_table_of_the_metadata_is_in_the_register() -> None:
    assert set(Base.metadata.tables) <= set(REGISTER)


def test_the_tables_that_hold_people_data_are_there() -> None:
    for name in ("users", "call_records", "voicemails", "recordings", "ledger_transactions", "audit_events",
                 "bindings", "web_sessions", "sip_credentials"):
        assert REGISTER[name].categories, name


def test_kept_columns_say_why() -> None:
    for table in REGISTER.values():
        for column in table.columns:
            if column.erasure is Erasure.KEEP:
                assert column.exception and column.exception.strip(), f"{table.name}.{column.name}"
            assert column.purpose.strip(), f"{table.name}.{column.name} has no purpose"


def test_secrets_are_never_exported() -> None:
    for table, column in [("users", "password_hash"), ("users", "mfa_secret"), ("sip_credentials", "ha1_md5"),
                          ("sip_credentials", "ha1_sha256"), ("web_sessions", "token_hash"),
                          ("mailboxes", "pin_hash"), ("recovery_codes", "code_hash")]:
        declared = REGISTER[table].column(column)
        assert declared.exported is False
        assert declared.erasure is Erasure.DELETE


def test_call_parties_are_anonymised_and_the_ledger_kept_without_numbers() -> None:
    cdr = REGISTER["call_records"]
    for name in ("caller_user_id", "caller_number", "caller_extension", "callee_user_id", "callee_number",
                 "callee_extension"):
        column = cdr.column(name)
        assert (column.category, column.erasure, column.exported) == (
            Category.COMMUNICATIONS_METADATA, Erasure.ANONYMISE, True), name
    description = REGISTER["ledger_transactions"].column("description")
    assert (description.category, description.retention, description.erasure) == (
        Category.BILLING, Retention.LEDGER, Erasure.KEEP)
    assert description.exception is not None and "without dialled numbers" in description.exception
    for table in ("voicemails", "recordings"):
        media = [c for c in REGISTER[table].columns if c.category is Category.CONTENT]
        assert media and all(c.erasure is Erasure.DELETE and c.exported for c in media), table


# -- the checker itself, on a synthetic metadata ----------------------------------------------

def _declared(*names: str) -> Table:
    return Table("people", "a person", "the person", tuple(
        Column(n, Category.ACCOUNT, "who", Basis.CONTRACT, Retention.ACCOUNT, True, Erasure.DELETE) for n in names))


def test_an_undeclared_column_is_reported_by_name() -> None:
    metadata = MetaData()
    SaTable("people", metadata, SaColumn("id", String, primary_key=True), SaColumn("email", String),
            SaColumn("shoe_size", String))
    register = Register((_declared("id", "email"),))
    assert undeclared(metadata, register) == ["people.shoe_size"]
    assert stale(metadata, register) == []


def test_a_table_missing_from_the_register_reports_each_column() -> None:
    metadata = MetaData()
    SaTable("people", metadata, SaColumn("id", String, primary_key=True))
    SaTable("pets", metadata, SaColumn("id", String, primary_key=True), SaColumn("owner", String))
    assert undeclared(metadata, Register((_declared("id"),))) == ["pets.id", "pets.owner"]


def test_a_stale_declaration_is_reported() -> None:
    metadata = MetaData()
    SaTable("people", metadata, SaColumn("id", String, primary_key=True))
    register = Register((_declared("id", "fax"), Table("gone", "gone", "none", ())))
    assert stale(metadata, register) == ["gone", "people.fax"]


def test_a_new_column_on_a_real_model_fails_the_check() -> None:
    # A copy of the real metadata with one column added, as a careless migration would.
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    metadata.tables["users"].append_column(SaColumn("favourite_colour", String))
    assert "users.favourite_colour" in undeclared(metadata, REGISTER)


def test_keep_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="exception"):
        Column("x", Category.BILLING, "why", Basis.CONTRACT, Retention.LEDGER, True, Erasure.KEEP)
