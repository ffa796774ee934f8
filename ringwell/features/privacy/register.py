"""The data register: every stored column of every table, declared once (issue 8).

For each column: its category (account, communications metadata, content, billing, location,
device, usage; or not personal), why it is kept (purpose), the legal basis, the retention class
that decides how long (``ringwell.features.privacy.retention`` maps classes to periods), whether
a person's export contains it, and what erasing the person does to it (delete, anonymise, or keep
under a documented exception, which the erasure receipt lists).

The declarations themselves are in ``catalog.py``; the privacy notice (``/privacy``), the export
format and the erasure receipt are generated from them, and a test fails when a model has a
column that is not declared here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Basis", "Category", "Column", "Erasure", "Register", "Retention", "Table"]


class Category(StrEnum):
    ACCOUNT = "account"
    COMMUNICATIONS_METADATA = "communications_metadata"
    CONTENT = "content"
    BILLING = "billing"
    LOCATION = "location"
    DEVICE = "device"
    USAGE = "usage"
    NOT_PERSONAL = "not_personal"  # ids, flags and settings that say nothing about a person


class Basis(StrEnum):
    """GDPR art. 6(1) legal bases."""

    CONTRACT = "contract"  # (b) needed to provide the service the person or their org signed up for
    LEGAL_OBLIGATION = "legal_obligation"  # (c) tax, accounting, telecom law
    LEGITIMATE_INTEREST = "legitimate_interest"  # (f) security, fraud prevention
    CONSENT = "consent"  # (a) opt-in, withdrawable


class Retention(StrEnum):
    """Retention classes; periods, defaults and per-org bounds are in ``retention.py``."""

    CALL_RECORDS = "call_records"  # 12 months by default; per org within operator bounds
    USAGE = "usage"  # sign-ins, sessions, registrations, delivery attempts: 12 months
    MEDIA = "media"  # recordings, voicemail, transcripts: 12 months or until the customer deletes them
    ACCOUNT = "account"  # while the account exists, then 90 days after closure
    LEDGER = "ledger"  # the financial ledger: its legal period (without dialled numbers)
    CONSENT = "consent"  # at least a year after the consent changes
    AUDIT = "audit"  # the audit trail
    PRIVACY_RECORDS = "privacy_records"  # data requests, legal holds, incidents: proof of compliance
    SHORT_LIVED = "short_lived"  # tokens, reservations: until they expire
    CONFIGURATION = "configuration"  # not personal: kept while the org exists


class Erasure(StrEnum):
    """What erasing a person does to the column."""

    DELETE = "delete"  # the row goes (with the person, or with the org)
    ANONYMISE = "anonymise"  # the row stays for someone else (the org's books), the value is blanked
    KEEP = "keep"  # kept under a documented exception (``Column.exception``), listed in the receipt
    NONE = "none"  # not about the person (not personal)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    category: Category
    purpose: str
    basis: Basis
    retention: Retention
    exported: bool
    erasure: Erasure
    exception: str | None = None  # why it is kept after erasure (required when erasure is KEEP)

    def __post_init__(self) -> None:
        if (self.erasure is Erasure.KEEP) != bool(self.exception):
            raise ValueError(f"column {self.name}: an exception reason is given exactly when erasure is 'keep'")
        if (self.category is Category.NOT_PERSONAL) != (self.erasure is Erasure.NONE):
            raise ValueError(f"column {self.name}: erasure 'none' exactly for columns that are not personal")


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    description: str  # what a row is, in the words of the privacy notice
    subject: str  # how a row relates to a person ("the user", "caller or callee", "none")
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name}.{name} is not in the data register")

    @property
    def categories(self) -> frozenset[Category]:
        return frozenset(c.category for c in self.columns if c.category is not Category.NOT_PERSONAL)


class Register(Mapping[str, Table]):
    """Tables by name; each table and each column declared exactly once."""

    def __init__(self, tables: tuple[Table, ...]) -> None:
        self._tables: dict[str, Table] = {}
        for table in tables:
            if table.name in self._tables:
                raise ValueError(f"table {table.name} is declared twice in the data register")
            names = [c.name for c in table.columns]
            if len(names) != len(set(names)):
                raise ValueError(f"table {table.name} declares a column twice")
            self._tables[table.name] = table

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)
