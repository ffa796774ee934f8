"""Data register declarations of the tables the requests part owns (see register.py)."""

from __future__ import annotations

from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table

__all__ = ["EXTRA_COLUMNS", "TABLES"]

# The period itself (privacy_records_retention_days) is shown beside this text by the notice: not repeated here.
_KEPT = ("proof that the request was answered within its deadline (GDPR art. 5(2) accountability; CCPA record "
         "keeping asks for at least 24 months): kept for the privacy-records period after the request is closed")


def _record(name: str, category: Category, purpose: str, *, exported: bool = True) -> Column:
    """A column of the request record: kept after erasure as the proof it was carried out."""
    return Column(name, category, purpose, Basis.LEGAL_OBLIGATION, Retention.PRIVACY_RECORDS, exported,
                  Erasure.KEEP, _KEPT)


def _plain(name: str, purpose: str) -> Column:
    return Column(name, Category.NOT_PERSONAL, purpose, Basis.LEGAL_OBLIGATION, Retention.PRIVACY_RECORDS,
                  False, Erasure.NONE)


TABLES: tuple[Table, ...] = (
    Table(
        name="data_requests",
        description="a request you made about your data: access, export, correction, deletion, restriction or "
                    "objection, with its deadline and what was done",
        subject="the person who asked",
        columns=(
            _plain("id", "identifies the request"),
            _plain("org_id", "the organization the person belongs to"),
            _plain("user_id", "the person the request is about (cleared when they are deleted)"),
            _record("subject_email", Category.ACCOUNT, "the address the request came from or is about"),
            _record("kind", Category.USAGE, "what was asked"),
            _record("law", Category.USAGE, "the law the request is made under (its deadline)"),
            _record("source", Category.USAGE, "portal or by email through staff"),
            _record("details", Category.ACCOUNT, "what to correct or restrict, in the person's words"),
            _record("received_at", Category.USAGE, "when the request was received (starts the deadline)"),
            _record("due_at", Category.USAGE, "the deadline: the law's, and never later than 30 days"),
            _record("status", Category.USAGE, "open, in progress, done or refused"),
            _record("identity_verified", Category.USAGE, "how the person's identity was checked"),
            _plain("handled_by", "the staff member who handled it"),
            _record("closed_at", Category.USAGE, "when it was answered"),
            _record("outcome", Category.USAGE, "what was done: the export, the erasure receipt, the corrections"),
            _record("subjects", Category.ACCOUNT,
                    "the accounts (user ids and their organizations) the request was found to be about when it "
                    "was received: only these are acted on"),
        ),
    ),
)

# Columns this part adds to tables declared elsewhere: table name -> columns.
EXTRA_COLUMNS: dict[str, tuple[Column, ...]] = {
    "users": (
        Column("processing_restricted_at", Category.ACCOUNT,
               "when the person restricted or objected to processing: optional processing stops",
               Basis.LEGAL_OBLIGATION, Retention.ACCOUNT, True, Erasure.DELETE),
    ),
}
