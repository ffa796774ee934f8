"""An organization's call history: filtered, keyset-paged, streamed as CSV, summed per day.

Contract (shared by the API and the portal):

- Calls come newest first, ordered by ``(started_at, id)`` descending: calls that started in the
  same microsecond are still in one fixed order, so paging never skips or repeats one.
- A page's ``next_cursor`` is opaque (URL-safe base64 of the last call's position); the next
  page starts right after that position, whatever was added since. A cursor that does not
  decode is refused with :class:`InvalidCallQuery` (HTTP 422), never guessed at.
- Every query is ``org_id = ?`` plus a range on ``started_at`` walking the index
  ``ix_call_records_org_started`` backwards; there is no OFFSET and no COUNT, so a page costs
  the same on the first page and the millionth, whatever the size of the table. Conditions the
  index cannot apply (direction, disposition, number, user) are checked on at most
  :data:`SCAN_BUDGET` calls per page: a page may hold fewer calls than asked — even none — and
  still have a ``next_cursor``. The history ends where ``next_cursor`` is None.
- Filters (:class:`CallFilter`): times are aware datetimes (``since`` inclusive, ``until``
  exclusive); ``number`` is normalised and then compared **exactly** (see :func:`number_forms`)
  with the caller's and callee's number and extension; ``user_id`` matches calls where that user
  is the caller or the callee.
- CSV (:data:`CSV_COLUMNS`, :func:`csv_row`): times in UTC ISO 8601, money as decimals of the
  currency; cells a spreadsheet would read as a formula are defused with a leading ``'``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.billing.money import format_minor
from ringwell.features.cdr import repository as repo
from ringwell.features.cdr.errors import CallNotFound, InvalidCallQuery
from ringwell.features.cdr.models import CallRecord, Direction, Disposition
from ringwell.storage.cursor import decode_position, encode_position

__all__ = [
    "CSV_COLUMNS",
    "MAX_BATCH",
    "MAX_CURSOR",
    "MAX_DAYS",
    "MAX_PAGE",
    "SCAN_BUDGET",
    "CallFilter",
    "CallPage",
    "DaySummary",
    "call_page",
    "csv_row",
    "csv_safe",
    "daily_summary",
    "decode_cursor",
    "encode_cursor",
    "get_call",
    "iter_calls",
    "number_forms",
    "validate_filter",
]

log = logging.getLogger(__name__)

MAX_PAGE = 200  # calls per page
# Calls a page may examine: bounds the cost of a rare filter (measured on PostgreSQL: a few ms).
SCAN_BUDGET = 10_000
MAX_BATCH = 5_000  # calls per query of an export
MAX_DAYS = 366  # days of a daily summary
MAX_CURSOR = 256  # characters
MAX_NUMBER = 64  # characters, as the columns

_DIRECTIONS = frozenset(d.value for d in Direction)
_DISPOSITIONS = frozenset(d.value for d in Disposition)
# What people put between digits when they write a number: "+1 (415) 555-0100", "0044 20.7946.0000".
_SEPARATORS_RE = re.compile(r"[\s\-.()/]")
_DIGITS_RE = re.compile(r"\+?[0-9]{1,20}")
_TOKEN_RE = re.compile(r"\+?[0-9A-Za-z*#_.@\-]{1,64}")
_MIN_E164_DIGITS = 8  # shorter digit strings are extensions, not numbers missing their '+'
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What to list (every field optional; all given fields must match)."""

    since: datetime | None = None  # started_at >= since (aware; compared in UTC)
    until: datetime | None = None  # started_at < until
    direction: str | None = None  # internal | inbound | outbound
    disposition: str | None = None  # answered | busy | no-answer | cancelled | failed | interrupted | blocked
    number: str | None = None  # a party's number or extension, exact after normalising (number_forms)
    user_id: str | None = None  # calls where this user is the caller or the callee


@dataclass(frozen=True, slots=True)
class CallPage:
    items: list[CallRecord]
    next_cursor: str | None  # None: this is the last page


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One UTC day of calls (talk time rounded to whole seconds; charges in the org's minor units)."""

    day: date
    calls: int
    answered: int
    talk_seconds: int
    charge_minor: int


# -- filters and cursors ----------------------------------------------------------------------
def number_forms(text: str) -> frozenset[str]:
    """The exact values a ``number`` filter matches (in any party's number or extension column).

    The text itself (trimmed), and when it is a written phone number its digits without the
    separators people type (spaces, ``-``, ``.``, ``(``, ``)``, ``/``) with ``00`` read as ``+``;
    digits of 8 or more without ``+`` also match the same digits with ``+`` (``14155550100``
    finds ``+14155550100``). Shorter digit strings are extensions and match only themselves.
    Raises :class:`InvalidCallQuery` for empty or unreasonable text.
    """
    token = text.strip()
    digits = _SEPARATORS_RE.sub("", token)
    if len(token) > MAX_NUMBER or not _TOKEN_RE.fullmatch(digits):
        raise InvalidCallQuery("number: a phone number, extension or SIP user name of at most 64 characters",
                               {"field": "number"})
    forms = {token}
    if _DIGITS_RE.fullmatch(digits):
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        forms.add(digits)
        if not digits.startswith("+") and len(digits) >= _MIN_E164_DIGITS:
            forms.add("+" + digits)
    return frozenset(form for form in forms if form)


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidCallQuery(f"{name} needs a time zone (e.g. 2026-03-01T00:00:00Z)", {"field": name})
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC
        raise InvalidCallQuery(f"{name} is out of range", {"field": name}) from None


def validate_filter(flt: CallFilter) -> repo.CallConditions:
    """Check a filter and turn it into query conditions; :class:`InvalidCallQuery` says what is wrong.

    Call it before starting a response that streams :func:`iter_calls` (which checks too, but
    only once the first row is asked for).
    """
    since, until = _aware("since", flt.since), _aware("until", flt.until)
    if since is not None and until is not None and since >= until:
        raise InvalidCallQuery("since must be before until", {"field": "since"})
    if flt.direction is not None and flt.direction not in _DIRECTIONS:
        raise InvalidCallQuery(f"direction must be one of {', '.join(sorted(_DIRECTIONS))}", {"field": "direction"})
    if flt.disposition is not None and flt.disposition not in _DISPOSITIONS:
        raise InvalidCallQuery(f"disposition must be one of {', '.join(sorted(_DISPOSITIONS))}",
                               {"field": "disposition"})
    if flt.user_id is not None and not 1 <= len(flt.user_id) <= 36:
        raise InvalidCallQuery("user_id is not a user id", {"field": "user_id"})
    numbers = number_forms(flt.number) if flt.number is not None else frozenset()
    return repo.CallConditions(since, until, flt.direction, flt.disposition, numbers, flt.user_id)


def encode_cursor(record: CallRecord) -> str:
    """The position right after ``record`` (opaque to clients)."""
    return _encode_position(record.started_at, record.id)


def _encode_position(started_at: datetime, call_id: str) -> str:
    return encode_position(started_at, call_id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(started_at, id)`` of a cursor made by :func:`encode_cursor`; :class:`InvalidCallQuery` otherwise."""
    bad = InvalidCallQuery("the cursor is not valid: start again from the first page", {"field": "cursor"})
    return decode_position(cursor, bad, max_id=36)


# -- reading ----------------------------------------------------------------------------------
async def call_page(sessions: async_sessionmaker[Any], org_id: str, flt: CallFilter, cursor: str | None = None,
                    limit: int = 50) -> CallPage:
    """One page of the org's calls matching ``flt``, newest first, after ``cursor`` (None: the first page).

    A page examines at most :data:`SCAN_BUDGET` calls of the time range, so a filter that matches
    rarely (a number, a user, in a large history) returns fewer than ``limit`` calls — possibly
    none — with a ``next_cursor`` to continue from: follow ``next_cursor`` until it is None.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidCallQuery(f"limit must be 1 to {MAX_PAGE}", {"field": "limit"})
    cond = validate_filter(flt)
    before = decode_cursor(cursor) if cursor is not None else None
    async with sessions() as session:
        scan = await repo.scan_calls(session, org_id, cond, before, limit + 1, SCAN_BUDGET)
    rows = scan.rows
    if len(rows) > limit:
        return CallPage(rows[:limit], encode_cursor(rows[limit - 1]))
    if scan.stopped_at is not None:
        return CallPage(rows, _encode_position(*scan.stopped_at))
    return CallPage(rows, None)


async def iter_calls(sessions: async_sessionmaker[Any], org_id: str, flt: CallFilter,
                     batch: int = 1000) -> AsyncIterator[CallRecord]:
    """Every call of the org matching ``flt``, newest first, read ``batch`` at a time (memory stays
    bounded by one batch; each batch is its own short read, so no transaction stays open)."""
    if not 1 <= batch <= MAX_BATCH:
        raise InvalidCallQuery(f"batch must be 1 to {MAX_BATCH}", {"field": "batch"})
    cond = validate_filter(flt)
    before: tuple[datetime, str] | None = None
    while True:
        async with sessions() as session:
            scan = await repo.scan_calls(session, org_id, cond, before, batch, max(SCAN_BUDGET, 10 * batch))
        for row in scan.rows:
            yield row
        if scan.stopped_at is not None:
            before = scan.stopped_at
        elif len(scan.rows) == batch:
            before = (scan.rows[-1].started_at, scan.rows[-1].id)
        else:
            return


async def get_call(sessions: async_sessionmaker[Any], org_id: str, call_id: str,
                   user_id: str | None = None) -> CallRecord:
    """The org's call ``call_id`` (with ``user_id``: only if that user took part); :class:`CallNotFound` else."""
    row = None
    if 1 <= len(call_id) <= 36:
        async with sessions() as session:
            row = await repo.call_by_id(session, org_id, call_id, user_id)
    if row is None:
        raise CallNotFound("no such call", {"call_id": call_id[:36]})
    return row


async def daily_summary(sessions: async_sessionmaker[Any], org_id: str, days: int, now: datetime,
                        user_id: str | None = None) -> list[DaySummary]:
    """The last ``days`` UTC days up to and including ``now``'s, oldest first, days without calls as
    zeros; only the calls ``user_id`` took part in when given (a member's own)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidCallQuery(f"days must be 1 to {MAX_DAYS}", {"field": "days"})
    current = _aware("now", now)
    assert current is not None
    today = current.date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(), UTC)
    until = datetime.combine(today + timedelta(days=1), time(), UTC)
    async with sessions() as session:
        totals = {row.day: row for row in await repo.daily_totals(session, org_id, since, until, user_id)}
    summary = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = totals.get(day)
        summary.append(DaySummary(day, 0, 0, 0, 0) if row is None else
                       DaySummary(day, row.calls, row.answered, round(row.talk_seconds), row.charge_minor))
    return summary


# -- CSV --------------------------------------------------------------------------------------
CSV_COLUMNS: tuple[str, ...] = (
    "id", "started_at", "answered_at", "ended_at", "direction", "from", "from_extension", "to", "to_extension",
    "disposition", "hangup_by", "sip_status", "ring_seconds", "talk_seconds", "billable_seconds", "charge",
    "currency", "codec",
)  # fmt: skip


def csv_safe(cell: str) -> str:
    """``cell``, with a leading ``'`` if a spreadsheet would run it as a formula (=, +, -, @, tab, CR).

    Phone numbers start with ``+``: in the export they read ``'+14155550100``, which spreadsheets
    show as the number itself, as text.
    """
    return "'" + cell if cell.startswith(_FORMULA_LEADS) else cell


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else ""


def _seconds(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else ""


def _text(value: object) -> str:
    return "" if value is None else str(value)


def csv_row(record: CallRecord) -> list[str]:
    """The cells of one call in the order of :data:`CSV_COLUMNS`, already defused (:func:`csv_safe`)."""
    charge = (format_minor(record.charge_minor, record.currency)
              if record.charge_minor is not None and record.currency else "")
    cells = [
        record.id, _time(record.started_at), _time(record.answered_at), _time(record.ended_at), record.direction,
        _text(record.caller_number or record.caller_extension), _text(record.caller_extension),
        record.callee_number, _text(record.callee_extension), _text(record.disposition), _text(record.hangup_by),
        _text(record.sip_status), _seconds(record.ring_seconds), _seconds(record.talk_seconds),
        _text(record.billable_seconds), charge, _text(record.currency), _text(record.codec),
    ]
    return [csv_safe(cell) for cell in cells]
