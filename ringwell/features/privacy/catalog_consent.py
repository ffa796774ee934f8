"""Data register declarations of the tables the consent part owns (see register.py)."""

from __future__ import annotations

from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table

__all__ = ["EXTRA_COLUMNS", "TABLES"]

_PROOF = ("proof that the person consented or withdrew consent (GDPR art. 7(1), 47 CFR 64.2009(c)): kept one "
          "year after the choice changed, then purged")


def _proof(name: str, category: Category, purpose: str) -> Column:
    return Column(name, category, purpose, Basis.LEGAL_OBLIGATION, Retention.CONSENT, exported=True,
                  erasure=Erasure.KEEP, exception=_PROOF)


def _plain(name: str, purpose: str) -> Column:
    return Column(name, Category.NOT_PERSONAL, purpose, Basis.LEGAL_OBLIGATION, Retention.CONSENT, exported=False,
                  erasure=Erasure.NONE)


TABLES: tuple[Table, ...] = (
    Table(
        "consent_records",
        "A choice about consent: recording announcements played, use of call detail (CPNI) for marketing, "
        "marketing email, analytics cookies; with the time, how it was given and the words shown",
        "the user, or an anonymous browser of the portal",
        (
            _plain("id", "identifies the record"),
            _plain("org_id", "the organization the person belongs to"),
            _proof("user_id", Category.ACCOUNT, "whose choice it is"),
            _proof("visitor_id", Category.DEVICE, "the anonymous browser whose cookie choice it is"),
            _proof("purpose", Category.USAGE, "what the choice is about"),
            _proof("granted", Category.USAGE, "whether consent was given (or the notice played)"),
            _proof("source", Category.USAGE, "how the choice was made: portal, API, phone, cookie banner, "
                                             "Global Privacy Control, call announcement"),
            _plain("text_shown", "the exact words shown or played (the same for everyone)"),
            _plain("text_version", "which version of those words"),
            _proof("call_record_id", Category.COMMUNICATIONS_METADATA, "the call a recording announcement was "
                                                                        "played in"),
            _proof("at", Category.USAGE, "when the choice was made"),
            _proof("superseded_at", Category.USAGE, "when a later choice replaced it (starts the one-year "
                                                    "retention)"),
        ),
    ),
)

# Columns this part adds to tables declared elsewhere: table name -> columns.
EXTRA_COLUMNS: dict[str, tuple[Column, ...]] = {}
