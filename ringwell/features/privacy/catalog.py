"""The data register itself: every table, assembled from the declarations of each part.

``catalog_core`` declares the tables that existed before the privacy center; each privacy part
declares the tables it adds, and the columns it adds to existing tables, in its own module.
"""

from __future__ import annotations

from dataclasses import replace

from ringwell.features.privacy import (
    catalog_audit,
    catalog_consent,
    catalog_core,
    catalog_incidents,
    catalog_keys,
    catalog_requests,
    catalog_retention,
)
from ringwell.features.privacy.register import Column, Register, Table

__all__ = ["REGISTER"]

_PARTS = (catalog_core, catalog_audit, catalog_retention, catalog_requests, catalog_keys, catalog_consent,
          catalog_incidents)


def _assemble() -> Register:
    tables = [table for part in _PARTS for table in part.TABLES]
    extra: dict[str, list[Column]] = {}
    for part in _PARTS:
        for name, columns in part.EXTRA_COLUMNS.items():
            extra.setdefault(name, []).extend(columns)
    unknown = set(extra) - {t.name for t in tables}
    if unknown:
        raise ValueError(f"columns declared for tables the register does not have: {sorted(unknown)}")
    merged: list[Table] = [replace(t, columns=t.columns + tuple(extra.get(t.name, ()))) for t in tables]
    return Register(tuple(merged))


REGISTER = _assemble()
