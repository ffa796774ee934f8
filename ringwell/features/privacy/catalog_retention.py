"""Data register declarations of the tables the retention part owns (see register.py).

Legal holds name a person (``user_id``) and the staff member who placed or released them: kept
after the person's erasure as proof that deletion was lawfully paused, for the privacy-records
period after release. Retention reports hold counts only.
"""

from __future__ import annotations

from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table

__all__ = ["EXTRA_COLUMNS", "TABLES"]

_HOLD_EXCEPTION = ("proof that deletion was paused under a legal obligation (a court order, an investigation); "
                   "kept for the privacy-records period after the hold is released")


def _n(name: str, purpose: str, basis: Basis = Basis.LEGAL_OBLIGATION,
       retention: Retention = Retention.PRIVACY_RECORDS) -> Column:
    return Column(name, Category.NOT_PERSONAL, purpose, basis, retention, False, Erasure.NONE)


def _kept(name: str, purpose: str, category: Category = Category.ACCOUNT) -> Column:
    return Column(name, category, purpose, Basis.LEGAL_OBLIGATION, Retention.PRIVACY_RECORDS, False, Erasure.KEEP,
                  _HOLD_EXCEPTION)


LEGAL_HOLDS = Table("legal_holds", "a legal hold pausing deletion of a person's or an organisation's data",
                    "the person held (or none: the whole organisation)", (
    _n("id", "the row's random identifier"),
    _n("org_id", "which organisation the hold covers"),
    _kept("user_id", "the person whose data is held (empty: the whole organisation)"),
    _kept("reason", "why the data is held (the case or order)", Category.USAGE),
    _kept("created_by", "the staff member who placed the hold"),
    _n("created_at", "when the hold was placed"),
    _n("released_at", "when the hold ended (empty: still active)"),
    _kept("released_by", "the staff member who released the hold"),
))

RETENTION_RUNS = Table("retention_runs", "the report of one retention run: counts of data deleted and kept",
                       "none", (
    _n("id", "the row's random identifier"),
    _n("started_at", "when the run started"),
    _n("finished_at", "when the run finished"),
    _n("dry_run", "whether the run only counted"),
    _n("counts", "per data class, how many items were deleted and how many a legal hold kept"),
))

TABLES: tuple[Table, ...] = (LEGAL_HOLDS, RETENTION_RUNS)

# Columns this part adds to tables declared elsewhere: table name -> columns.
EXTRA_COLUMNS: dict[str, tuple[Column, ...]] = {
    "organizations": (
        Column("call_record_retention_days", Category.NOT_PERSONAL,
               "how long the organisation keeps its call records (within the operator's bound for its country)",
               Basis.CONTRACT, Retention.CONFIGURATION, False, Erasure.NONE),
        Column("closed_at", Category.NOT_PERSONAL,
               "when the organisation was closed: its data is deleted the account-data period later",
               Basis.CONTRACT, Retention.LEDGER, False, Erasure.NONE),
        Column("purged_at", Category.NOT_PERSONAL,
               "when the closed organisation's data was deleted (its ledger stays for the legal period)",
               Basis.LEGAL_OBLIGATION, Retention.LEDGER, False, Erasure.NONE),
    ),
}
