"""Queries of the CDR slice.

Writes are Core statements run as one ``executemany`` each (the B2BUA may open and close
thousands of calls a second). Reads are org-scoped, except the operator's all-organization
listing and the start-up recovery, which are server-wide on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization
from ringwell.features.cdr.models import CallRecord, CallState

__all__ = [
    "ANSWER_COLUMNS",
    "CLOSE_COLUMNS",
    "OpenCall",
    "answer_calls",
    "close_calls",
    "insert_calls",
    "list_calls",
    "open_calls",
    "touch_calls",
]

_TABLE = cast(Table, CallRecord.__table__)
# Keep well under SQLite's and asyncpg's bound-parameter limits.
_IN_CHUNK = 500

ANSWER_COLUMNS = ("callee_user_id", "callee_extension", "answered_at", "codec")
CLOSE_COLUMNS = (
    "callee_user_id", "callee_extension", "answered_at", "ended_at", "last_alive_at", "ring_seconds",
    "talk_seconds", "state", "disposition", "hangup_by", "sip_status", "sip_reason", "codec", "media",
    "trunk_id", "rate_deck", "rate_prefix", "price_micros", "billable_seconds", "charge_minor", "cost_minor",
    "currency", "direction",
)  # fmt: skip

# The SET clause comes from the parameters' keys (the columns above); the row is named by a
# parameter that is not a column's name. Only open records change: a late or repeated event
# cannot rewrite a closed one.
_UPDATE_OPEN = update(_TABLE).where(_TABLE.c.id == bindparam("call_id"), _TABLE.c.state == CallState.OPEN.value)


@dataclass(frozen=True, slots=True)
class OpenCall:
    """What recovery needs of a call left open."""

    id: str
    started_at: datetime
    answered_at: datetime | None
    last_alive_at: datetime


async def insert_calls(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert call records given as column dicts (every dict with the same keys)."""
    if rows:
        connection = await session.connection()
        await connection.execute(insert(_TABLE), list(rows))


async def answer_calls(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Mark open call records answered: each dict has ``call_id`` and every name in ``ANSWER_COLUMNS``."""
    if rows:
        connection = await session.connection()
        await connection.execute(_UPDATE_OPEN, list(rows))


async def close_calls(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Close open call records: each dict has ``call_id`` and the columns to set (the same in
    every dict): every name in ``CLOSE_COLUMNS`` for calls that ended; at start-up, only those an
    interruption decides for calls a stopped server left open.
    """
    if rows:
        connection = await session.connection()
        await connection.execute(_UPDATE_OPEN, list(rows))


async def touch_calls(session: AsyncSession, ids: Sequence[str], now: datetime) -> None:
    """Heartbeat: ``last_alive_at = now`` for these calls, if still open (one UPDATE per chunk)."""
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[start : start + _IN_CHUNK])
        await session.execute(
            update(_TABLE)
            .where(_TABLE.c.id.in_(chunk), _TABLE.c.state == CallState.OPEN.value)
            .values(last_alive_at=now)
        )


async def open_calls(session: AsyncSession) -> list[OpenCall]:
    """Every call record still open, server-wide (start-up recovery)."""
    result = await session.execute(
        select(_TABLE.c.id, _TABLE.c.started_at, _TABLE.c.answered_at, _TABLE.c.last_alive_at).where(
            _TABLE.c.state == CallState.OPEN.value
        )
    )
    return [OpenCall(*row) for row in result.all()]


async def list_calls(
    session: AsyncSession, org_id: str | None = None, limit: int = 100
) -> Sequence[tuple[CallRecord, str]]:
    """Call records with their organization's name, newest first; one org, or all for the operator."""
    query = (
        select(CallRecord, Organization.name)
        .join(Organization, Organization.id == CallRecord.org_id)
        .order_by(CallRecord.started_at.desc(), CallRecord.id.desc())
        .limit(limit)
    )
    if org_id is not None:
        query = query.where(CallRecord.org_id == org_id)
    result = await session.execute(query)
    return [(row, name) for row, name in result.all()]
