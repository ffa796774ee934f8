"""Queries of the CDR slice.

Writes are Core statements run as one ``executemany`` each (the B2BUA may open and close
thousands of calls a second). Reads are org-scoped, except the operator's all-organization
listing and the start-up recovery, which are server-wide on purpose.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Date,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ringwell.features.accounts.models import Organization
from ringwell.features.cdr.models import CallRecord, CallState
from ringwell.storage.base import UTCDateTime

__all__ = [
    "ANSWER_COLUMNS",
    "CLOSE_COLUMNS",
    "CallConditions",
    "DayTotals",
    "OpenCall",
    "Scan",
    "answer_calls",
    "call_by_id",
    "close_calls",
    "daily_totals",
    "insert_calls",
    "list_calls",
    "open_calls",
    "scan_calls",
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


# -- the call history (one org's calls, newest first) -----------------------------------------
#
# Every query below is ``org_id = ? AND <range on started_at>`` ordered by (started_at, id)
# descending: a backward walk of ix_call_records_org_started (org_id, started_at, id) that stops
# after LIMIT rows — or, with conditions the index cannot apply, after a fixed window of rows
# (scan_calls). The keyset is a row comparison on the index's own columns, so the walk starts
# where the last page ended (no OFFSET); no function touches an indexed column.


@dataclass(frozen=True, slots=True)
class CallConditions:
    """What narrows a history query (all optional; ``numbers``: any of these matches any party)."""

    since: datetime | None = None
    until: datetime | None = None
    direction: str | None = None
    disposition: str | None = None
    numbers: Collection[str] = ()
    user_id: str | None = None

    @property
    def selective(self) -> bool:
        """Whether some rows of the time range may not match (conditions the index cannot apply)."""
        return bool(self.direction or self.disposition or self.numbers or self.user_id)


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which conditions a history query has: its SQL depends on this only, the values are parameters."""

    since: bool
    until: bool
    before: bool
    direction: bool
    disposition: bool
    numbers: bool
    user: bool

    @classmethod
    def of(cls, cond: CallConditions, before: tuple[datetime, str] | None) -> _Shape:
        return cls(cond.since is not None, cond.until is not None, before is not None, cond.direction is not None,
                   cond.disposition is not None, bool(cond.numbers), cond.user_id is not None)

    @property
    def selective(self) -> bool:
        return self.direction or self.disposition or self.numbers or self.user


def _params(org_id: str, cond: CallConditions, before: tuple[datetime, str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"org_id": org_id, "since": cond.since, "until": cond.until,
                              "direction": cond.direction, "disposition": cond.disposition,
                              "numbers": sorted(cond.numbers), "user_id": cond.user_id}
    if before is not None:
        params["before_at"], params["before_id"] = before
    return params


def _range(calls: Any, shape: _Shape) -> list[ColumnElement[bool]]:
    """The index's own conditions: the org, the time range and the keyset position."""
    clauses: list[ColumnElement[bool]] = [calls.org_id == bindparam("org_id")]
    if shape.since:
        clauses.append(calls.started_at >= bindparam("since"))
    if shape.until:
        clauses.append(calls.started_at < bindparam("until"))
    if shape.before:
        # typed like the columns: the tuple comparison does not lend them its columns' types
        # (UTCDateTime stores SQLite's times without their zone)
        position = tuple_(bindparam("before_at", type_=UTCDateTime()), bindparam("before_id", type_=String()))
        clauses.append(tuple_(calls.started_at, calls.id) < position)
    return clauses


def _match(calls: Any, shape: _Shape) -> list[ColumnElement[bool]]:
    """The other conditions, checked on each row the range yields."""
    clauses: list[ColumnElement[bool]] = []
    if shape.direction:
        clauses.append(calls.direction == bindparam("direction"))
    if shape.disposition:
        clauses.append(calls.disposition == bindparam("disposition"))
    if shape.numbers:
        wanted: BindParameter[list[str]] = bindparam("numbers", expanding=True)
        clauses.append(or_(calls.caller_number.in_(wanted), calls.caller_extension.in_(wanted),
                           calls.callee_number.in_(wanted), calls.callee_extension.in_(wanted)))
    if shape.user:
        clauses.append(or_(calls.caller_user_id == bindparam("user_id"), calls.callee_user_id == bindparam("user_id")))
    return clauses


def _newest_first(calls: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    return calls.started_at.desc(), calls.id.desc()


@functools.cache
def _plain_query(shape: _Shape) -> Select[CallRecord]:
    return select(CallRecord).where(*_range(CallRecord, shape)).order_by(*_newest_first(CallRecord)).limit(
        bindparam("limit"))


@functools.cache
def _window_query(shape: _Shape) -> Select[Any]:
    """Built once per shape (at most 2^7): aliasing the ORM entity over the window costs
    milliseconds of Python, more than the query itself takes in PostgreSQL."""
    # One row past the budget says whether there is more to walk after the window.
    window = (
        select(CallRecord, func.row_number().over(order_by=_newest_first(CallRecord)).label("seen"))
        .where(*_range(CallRecord, shape))
        .order_by(*_newest_first(CallRecord))
        .limit(bindparam("window"))
        .subquery("window")
    )
    calls = aliased(CallRecord, window)
    matched = and_(*_match(calls, shape))
    return (
        select(calls, window.c.seen, case((matched, True), else_=False).label("matched"))
        .where(or_(and_(matched, window.c.seen <= bindparam("budget")), window.c.seen >= bindparam("budget")))
        .order_by(*_newest_first(window.c))
        .limit(bindparam("limit"))  # fewer than `limit` matches, then the window's last row and the one past it
    )


@dataclass(frozen=True, slots=True)
class Scan:
    """What one bounded walk of the history found: the matches, newest first, and where the walk
    stopped when it ran out of budget before the end (None: it reached the end, or ``limit`` matches)."""

    rows: list[CallRecord]
    stopped_at: tuple[datetime, str] | None


async def scan_calls(session: AsyncSession, org_id: str, cond: CallConditions, before: tuple[datetime, str] | None,
                     limit: int, budget: int) -> Scan:
    """Up to ``limit`` of the org's calls matching ``cond``, newest first by (started_at, id), after
    the keyset position ``before``, examining at most ``budget`` calls of the time range.

    Without conditions beyond the time range every row matches and the walk is a plain LIMIT.
    Otherwise the walk is a window of the next ``budget`` rows of the index, filtered: a rare
    filter costs at most ``budget`` rows per query, never a scan of the organization's history.
    When fewer than ``limit`` rows matched and more rows follow the window, the window's last row
    is returned as ``stopped_at`` (whether it matched or not): the caller continues right after it.
    """
    shape = _Shape.of(cond, before)
    params = _params(org_id, cond, before)
    if not shape.selective:
        result = await session.execute(_plain_query(shape), {**params, "limit": limit})
        return Scan(list(result.scalars().all()), None)
    result = await session.execute(_window_query(shape),
                                   {**params, "window": budget + 1, "budget": budget, "limit": limit + 2})
    rows: list[CallRecord] = []
    last: tuple[datetime, str] | None = None
    more = False
    for row in result.all():
        record, seen, is_match = cast(tuple[CallRecord, int, bool], tuple(row))
        if seen > budget:
            more = True
            break
        if is_match and len(rows) < limit:
            rows.append(record)
        if seen == budget:
            last = (record.started_at, record.id)
    stopped_at = last if more and len(rows) < limit else None
    return Scan(rows, stopped_at)


async def call_by_id(session: AsyncSession, org_id: str, call_id: str, user_id: str | None = None) -> CallRecord | None:
    """The org's call with this id (None for another org's), optionally only if ``user_id`` took part."""
    query = select(CallRecord).where(CallRecord.id == call_id, CallRecord.org_id == org_id)
    if user_id is not None:
        query = query.where(or_(CallRecord.caller_user_id == user_id, CallRecord.callee_user_id == user_id))
    result = await session.execute(query)
    return result.scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class DayTotals:
    day: date
    calls: int
    answered: int
    talk_seconds: float
    charge_minor: int


async def daily_totals(session: AsyncSession, org_id: str, since: datetime, until: datetime,
                       user_id: str | None = None) -> list[DayTotals]:
    """Per UTC day with calls in [since, until): how many, how many answered, talk time and charges
    (only calls ``user_id`` took part in, when given)."""
    connection = await session.connection()
    # The day of a call, in UTC: SQLite stores UTC text ("2026-03-01 12:00:00.000000"); PostgreSQL
    # a timestamptz, read in UTC whatever the session's time zone. Only in the SELECT list.
    if connection.dialect.name == "sqlite":
        day: ColumnElement[Any] = func.date(CallRecord.started_at)
    else:
        day = sql_cast(func.timezone("UTC", CallRecord.started_at), Date)
    answered = case((CallRecord.disposition == "answered", 1), else_=0)
    query = (
        select(day.label("day"), func.count(), func.sum(answered), func.coalesce(func.sum(CallRecord.talk_seconds), 0),
               func.coalesce(func.sum(CallRecord.charge_minor), 0))
        .where(CallRecord.org_id == org_id, CallRecord.started_at >= since, CallRecord.started_at < until)
        .group_by(day)
    )
    if user_id is not None:
        query = query.where(or_(CallRecord.caller_user_id == user_id, CallRecord.callee_user_id == user_id))
    rows = (await session.execute(query)).all()
    return [
        DayTotals(value if isinstance(value, date) else date.fromisoformat(str(value)), int(calls), int(ans or 0),
                  float(talk or 0), int(charge or 0))
        for value, calls, ans, talk, charge in rows
    ]


async def add_leg_report(session: AsyncSession, *, org_id: str, call_id: str, side: str, user_id: str,
                         key: str, report: dict[str, Any]) -> bool | None:
    """Store ``report`` under ``media[side][key]`` of a closed call of ``org_id`` that ``user_id``
    took part in. None: no such call for that user; False: the call is not closed yet."""
    row = await session.get(CallRecord, call_id)
    if row is None or row.org_id != org_id or user_id not in (row.caller_user_id, row.callee_user_id):
        return None
    if row.state == CallState.OPEN.value:
        return False
    media = dict(row.media or {})
    leg = dict(media.get(side) or {})
    leg[key] = report
    media[side] = leg
    row.media = media  # a new dict: the JSON column sees the change
    return True
