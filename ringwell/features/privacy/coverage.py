"""Does the data register cover the database? (issue 8: a model column it does not declare fails the suite).

Pure functions over a ``sqlalchemy.MetaData`` and a register mapping: no database, no I/O.
``undeclared`` lists what the models have and the register does not; ``stale`` lists what the
register declares and the models no longer have. Both name columns as ``table.column`` (a table
missing altogether is named by its columns too, so the message says exactly what to declare).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import MetaData

from ringwell.features.privacy.register import Table

__all__ = ["stale", "undeclared"]


def undeclared(metadata: MetaData, register: Mapping[str, Table]) -> list[str]:
    """``table.column`` for every column of ``metadata`` that ``register`` does not declare, sorted."""
    missing: list[str] = []
    for name, table in metadata.tables.items():
        declared = {c.name for c in register[name].columns} if name in register else set()
        missing.extend(f"{name}.{column.name}" for column in table.columns if column.name not in declared)
    return sorted(missing)


def stale(metadata: MetaData, register: Mapping[str, Table]) -> list[str]:
    """``table.column`` (or ``table`` for a whole table) declared in ``register`` but not in ``metadata``, sorted."""
    extra: list[str] = []
    for name, table in register.items():
        model = metadata.tables.get(name)
        if model is None:
            extra.append(name)
            continue
        extra.extend(f"{name}.{c.name}" for c in table.columns if c.name not in model.columns)
    return sorted(extra)
