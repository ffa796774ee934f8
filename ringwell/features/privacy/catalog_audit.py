"""Data register declarations of the tables the audit part owns (see register.py)."""

from __future__ import annotations

from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table

__all__ = ["EXTRA_COLUMNS", "TABLES"]


def _chain(name: str, purpose: str) -> Column:
    return Column(name, Category.NOT_PERSONAL, purpose, Basis.LEGITIMATE_INTEREST, Retention.AUDIT,
                  exported=False, erasure=Erasure.NONE)


AUDIT_CHAIN_HEAD = Table(
    "audit_chain_head", "the end of the audit trail's hash chain, and where a purged trail now starts", "none", (
        _chain("id", "identifies the one row"),
        _chain("seq", "the number of the last audit event written, so the next one follows it"),
        _chain("hash", "the hash of the last audit event written: removing events at the end is detected"),
        _chain("anchor_seq", "the last audit event removed at the end of the audit period"),
        _chain("anchor_hash", "that event's hash: the trail left after a purge still verifies"),
    ))

TABLES: tuple[Table, ...] = (AUDIT_CHAIN_HEAD,)

# Columns this part adds to tables declared elsewhere: table name -> columns.
EXTRA_COLUMNS: dict[str, tuple[Column, ...]] = {
    "audit_events": (
        _chain("seq", "the event's place in the audit trail (1, 2, 3 …): a removed event leaves a gap"),
        _chain("prev_hash", "the hash of the event before it: events cannot be removed or moved unnoticed"),
        _chain("hash", "a SHA-256 of the event and the one before it: an edited event is detected"),
    ),
}
