"""Call detail records: every call attempt, answered or not, becomes one record.

The B2BUA reports leg-neutral call events (``CallOpened``, ``CallAnswered``, ``CallClosed``) to
a ``CdrWriter``. Reporting never blocks and never raises: events are queued in memory and
written behind the calls, like the registrar's bindings (docs/decisions/0002): every
``flush_interval`` the queue is written in one transaction, one ``executemany`` per statement.

A record is inserted ``open`` and closed when the call ends. While a call is up its record's
``last_alive_at`` is moved forward every ``heartbeat_interval``; after a crash ``recover()``
closes what was left open as ``interrupted`` at that last sign of life. So a ``kill -9`` loses
at most the last ``flush_interval`` of events, and an open record is never left open for good.

Failures: a flush that fails is logged and retried at the next interval with everything kept.
If the database refuses the batch's *data* (a user deleted mid-call, an impossible value),
the batch is split until the offending records are isolated; those are retried without their
user references, then, if still refused, logged in full and counted in ``rejected``. The
queue is bounded (``max_pending``); events beyond it are dropped, counted in ``dropped`` and
logged as errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.cdr import repository as repo
from ringwell.features.cdr.errors import InvalidCallQuery
from ringwell.features.cdr.models import CallRecord, CallState, Direction, Disposition, HangupBy
from ringwell.storage.base import utcnow

__all__ = [
    "BILLING_COLUMNS",
    "MAX_LIST_LIMIT",
    "CallAnswered",
    "CallBilling",
    "CallClosed",
    "CallOpened",
    "CallView",
    "CdrWriter",
    "Direction",
    "Disposition",
    "HangupBy",
    "list_calls",
]

log = logging.getLogger(__name__)

MAX_LIST_LIMIT = 10_000
_FAILURE_LOG_EVERY = 10.0  # seconds between reports of an ongoing database outage
_USER_COLUMNS = ("caller_user_id", "callee_user_id")


@dataclass(frozen=True, slots=True)
class CallOpened:
    """A call attempt started (the caller's INVITE was accepted for routing)."""

    id: str
    org_id: str
    sip_call_id: str
    direction: str
    caller_user_id: str | None
    caller_extension: str | None
    caller_number: str | None
    callee_number: str
    started_at: datetime
    node: str | None = None


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The callee answered (optional: it lets recovery count talk time of interrupted calls)."""

    id: str
    answered_at: datetime
    callee_user_id: str | None
    callee_extension: str | None
    codec: str | None = None


@dataclass(frozen=True, slots=True)
class CallBilling:
    """What a call to or from the phone network was rated and charged (issue 4)."""

    trunk_id: str | None = None
    rate_deck: str | None = None
    rate_prefix: str | None = None
    price_micros: int | None = None  # per minute, 10^-6 of the currency's unit
    billable_seconds: int | None = None
    charge_minor: int | None = None  # what the organization paid
    cost_minor: int | None = None  # what the carrier costs the operator
    currency: str | None = None


BILLING_COLUMNS = tuple(CallBilling.__slots__)


@dataclass(frozen=True, slots=True)
class CallClosed:
    """The call attempt ended; carries everything known at the end."""

    id: str
    callee_user_id: str | None
    callee_extension: str | None
    answered_at: datetime | None
    ended_at: datetime
    ring_seconds: float
    talk_seconds: float
    disposition: str
    hangup_by: str
    sip_status: int | None
    sip_reason: str | None
    codec: str | None
    media: dict[str, Any] | None
    billing: CallBilling | None = None
    direction: str = "internal"  # known for sure only once the dial plan has been looked up


@dataclass(frozen=True, slots=True)
class CallView:
    """One call record as shown to an operator, with its organization's name."""

    id: str
    org_id: str
    org_name: str
    sip_call_id: str
    direction: str
    caller_user_id: str | None
    caller_extension: str | None
    caller_number: str | None
    callee_user_id: str | None
    callee_extension: str | None
    callee_number: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    last_alive_at: datetime
    ring_seconds: float | None
    talk_seconds: float | None
    state: str
    disposition: str | None
    hangup_by: str | None
    sip_status: int | None
    sip_reason: str | None
    codec: str | None
    media: dict[str, Any] | None
    node: str | None
    trunk_id: str | None = None
    rate_deck: str | None = None
    rate_prefix: str | None = None
    price_micros: int | None = None
    billable_seconds: int | None = None
    charge_minor: int | None = None
    cost_minor: int | None = None
    currency: str | None = None


async def list_calls(sessions: async_sessionmaker[Any], org_id: str | None = None, limit: int = 100) -> list[CallView]:
    """Newest call records first: of one organization, or of all (``org_id=None``, operator only)."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidCallQuery(f"limit must be between 1 and {MAX_LIST_LIMIT}", {"field": "limit"})
    async with sessions() as session:
        rows = await repo.list_calls(session, org_id, limit)
    return [_view(row, org_name) for row, org_name in rows]


def _view(row: CallRecord, org_name: str) -> CallView:
    return CallView(
        row.id, row.org_id, org_name, row.sip_call_id, row.direction, row.caller_user_id, row.caller_extension,
        row.caller_number, row.callee_user_id, row.callee_extension, row.callee_number, row.started_at,
        row.answered_at, row.ended_at, row.last_alive_at, row.ring_seconds, row.talk_seconds, row.state,
        row.disposition, row.hangup_by, row.sip_status, row.sip_reason, row.codec, row.media, row.node,
        row.trunk_id, row.rate_deck, row.rate_prefix, row.price_micros, row.billable_seconds, row.charge_minor,
        row.cost_minor, row.currency,
    )  # fmt: skip


def _refused(exc: BaseException) -> bool:
    """Whether the database (or the driver) refused the rows themselves: retrying the same rows
    cannot help. Anything else (connection lost, database locked, table missing) is retried."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, DBAPIError):
        # SQLSTATE class 22 (data exception) or 23 (integrity constraint violation); asyncpg's
        # data errors arrive as a plain DBAPIError that carries the SQLSTATE.
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(state, str) and state[:2] in ("22", "23")
    # Raised while binding the values (before the database saw them).
    return isinstance(exc, StatementError)


# -- events to rows -------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: call records are kept in UTC")
    return value


def _text(value: str | None, limit: int) -> str | None:
    # Truncated rather than refused: a long header must not cost the record (or, on
    # PostgreSQL, the whole batch).
    return None if value is None else str(value).replace("\x00", "")[:limit]


def _status(value: int | None) -> int | None:
    return value if value is None or 0 <= value < 1000 else None


def _media(call_id: str, value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        log.warning("call %s: media summary is not JSON (%s); not recorded", call_id, exc)
        return None
    return value


def _seconds(value: float) -> float:
    return max(0.0, float(value))


def _open_row(event: CallOpened) -> dict[str, Any]:
    started_at = _utc(event.started_at)
    return {
        "id": event.id,
        "org_id": event.org_id,
        "sip_call_id": _text(event.sip_call_id, 255),
        "direction": _text(event.direction, 16),
        "caller_user_id": event.caller_user_id,
        "caller_extension": _text(event.caller_extension, 64),
        "caller_number": _text(event.caller_number, 64),
        "callee_user_id": None,
        "callee_extension": None,
        "callee_number": _text(event.callee_number, 64),
        "started_at": started_at,
        "answered_at": None,
        "ended_at": None,
        "last_alive_at": started_at,
        "ring_seconds": None,
        "talk_seconds": None,
        "state": CallState.OPEN.value,
        "disposition": None,
        "hangup_by": None,
        "sip_status": None,
        "sip_reason": None,
        "codec": None,
        "media": None,
        "node": _text(event.node, 64),
        **dict.fromkeys(BILLING_COLUMNS),
    }


def _answer_values(event: CallAnswered) -> dict[str, Any]:
    return {
        "callee_user_id": event.callee_user_id,
        "callee_extension": _text(event.callee_extension, 64),
        "answered_at": _utc(event.answered_at),
        "codec": _text(event.codec, 32),
    }


def _close_values(event: CallClosed) -> dict[str, Any]:
    ended_at = _utc(event.ended_at)
    return {
        "callee_user_id": event.callee_user_id,
        "callee_extension": _text(event.callee_extension, 64),
        "answered_at": None if event.answered_at is None else _utc(event.answered_at),
        "ended_at": ended_at,
        "last_alive_at": ended_at,
        "ring_seconds": _seconds(event.ring_seconds),
        "talk_seconds": _seconds(event.talk_seconds),
        "state": CallState.CLOSED.value,
        "disposition": _text(event.disposition, 16),
        "hangup_by": _text(event.hangup_by, 16),
        "sip_status": _status(event.sip_status),
        "sip_reason": _text(event.sip_reason, 255),
        "codec": _text(event.codec, 32),
        "media": _media(event.id, event.media),
        **_billing(event.billing),
        "direction": _text(event.direction, 16),
    }


def _billing(billing: CallBilling | None) -> dict[str, Any]:
    if billing is None:
        return dict.fromkeys(BILLING_COLUMNS)
    values = {name: getattr(billing, name) for name in BILLING_COLUMNS}
    for name in ("rate_deck", "rate_prefix", "currency"):
        values[name] = _text(values[name], {"rate_deck": 100, "rate_prefix": 32, "currency": 3}[name])
    return values


def _interrupted(call: repo.OpenCall, now: datetime) -> dict[str, Any]:
    # ended_at is the last sign of life; a clock that went backwards cannot put it after now.
    ended_at = min(call.last_alive_at, now)
    answered_at = call.answered_at
    ring_end = ended_at if answered_at is None else min(answered_at, ended_at)
    talk = 0.0 if answered_at is None else (ended_at - answered_at).total_seconds()
    # Only the columns an interruption decides: the callee, codec and answer time stay as known.
    return {
        "call_id": call.id,
        "ended_at": ended_at,
        "last_alive_at": ended_at,
        "ring_seconds": max(0.0, (ring_end - call.started_at).total_seconds()),
        "talk_seconds": max(0.0, talk),
        "state": CallState.CLOSED.value,
        "disposition": Disposition.INTERRUPTED.value,
        "hangup_by": HangupBy.SYSTEM.value,
        "sip_reason": "server restarted",
    }


# -- the writer -------------------------------------------------------------------------------
_Rows = dict[str, dict[str, Any]]  # call id -> column values, in arrival order
_Write = Callable[[AsyncSession, Sequence[dict[str, Any]]], Awaitable[None]]


class CdrWriter:
    """Writes call detail records behind the calls (one per node; see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        *,
        flush_interval: float = 0.2,
        heartbeat_interval: float = 5.0,
        max_pending: int = 100_000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._max_pending = max_pending
        self._clock = clock
        self._inserts: _Rows = {}
        self._answers: _Rows = {}
        self._closes: _Rows = {}
        self._open: dict[str, None] = {}  # calls opened here and not closed (an ordered set)
        self._in_flight = 0  # events taken off the queue by the flush in progress, not yet committed
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_heartbeat = time.monotonic()
        self._failing_since: float | None = None
        self._failure_logged = 0.0
        self._unreported_drops = 0
        self.dropped = 0  # events refused: queue full, or invalid
        self.rejected = 0  # records the database refused even alone (logged in full)

    @property
    def pending(self) -> int:
        """Writes not yet in the database: those queued and those a flush in progress is writing
        (a flush takes the queue at its start and puts it back if it fails)."""
        return len(self._inserts) + len(self._answers) + len(self._closes) + self._in_flight

    @property
    def open_calls(self) -> int:
        return len(self._open)

    # -- events (never block, never raise) -------------------------------------------------
    def opened(self, event: CallOpened) -> None:
        """Queue an ``open`` record with ``last_alive_at = started_at``."""
        try:
            row = _open_row(event)
        except ValueError as exc:
            self._drop("invalid call opened event %s: %s", event.id, exc)
            return
        if event.id in self._open or event.id in self._inserts:
            self._drop("call %s opened twice; the second is ignored", event.id)
            return
        if self.pending >= self._max_pending:
            self._full(event.id)
            return
        self._inserts[event.id] = row
        self._open[event.id] = None

    def answered(self, event: CallAnswered) -> None:
        """Queue the answer of an open call (so that recovery can count its talk time)."""
        try:
            values = _answer_values(event)
        except ValueError as exc:
            self._drop("invalid call answered event %s: %s", event.id, exc)
            return
        if event.id not in self._open:
            log.debug("answer of call %s, which is not open here; ignored", event.id)
            return
        pending_insert = self._inserts.get(event.id)
        if pending_insert is not None:
            pending_insert.update(values)
            return
        if event.id not in self._answers and self.pending >= self._max_pending:
            self._full(event.id)
            return
        self._answers[event.id] = {"call_id": event.id, **values}

    def closed(self, event: CallClosed) -> None:
        """Queue the end of a call: its record becomes ``closed``."""
        try:
            values = _close_values(event)
        except ValueError as exc:
            self._drop("invalid call closed event %s: %s", event.id, exc)
            return
        if event.id not in self._open:
            # Closed twice, or its opening was dropped (already counted): no record to close.
            log.debug("close of call %s, which is not open here; ignored", event.id)
            return
        # From here the call is no longer kept alive; if this close is dropped, recovery
        # closes the record at its last heartbeat.
        del self._open[event.id]
        self._answers.pop(event.id, None)
        pending_insert = self._inserts.get(event.id)
        if pending_insert is not None:
            pending_insert.update(values)  # open and close in one batch: a single closed insert
            return
        if self.pending >= self._max_pending:
            self._full(event.id)
            return
        self._closes[event.id] = {"call_id": event.id, **values}

    def _drop(self, message: str, *args: object) -> None:
        self.dropped += 1
        log.error(message, *args)

    def _full(self, call_id: str) -> None:
        self.dropped += 1
        if self._unreported_drops == 0:
            log.error("call record queue full (%d pending): dropping events, starting with call %s; "
                      "is the database reachable?", self.pending, call_id)
        self._unreported_drops += 1

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start writing in the background (every ``flush_interval``)."""
        if self._task is None:
            self._stopping.clear()
            self._last_heartbeat = time.monotonic()
            self._task = asyncio.create_task(self._run(), name="cdr-writer")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._flush_interval)
            if self._stopping.is_set():
                return
            heartbeat = time.monotonic() - self._last_heartbeat >= self._heartbeat_interval
            try:
                await self.flush(heartbeat=heartbeat)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)
            else:
                if self._failing_since is not None:
                    log.info("call records written again after %.1f s of failures", time.monotonic()
                             - self._failing_since)
                    self._failing_since = None
            if self._unreported_drops:
                log.error("dropped %d call record events (queue full); %d in total", self._unreported_drops,
                          self.dropped)
                self._unreported_drops = 0

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._failure_logged = now
            log.exception("could not write call records (%d pending); will retry", self.pending)
        elif now - self._failure_logged >= _FAILURE_LOG_EVERY:
            self._failure_logged = now
            log.error("still cannot write call records (%d pending, failing for %.0f s): %s", self.pending,
                      now - self._failing_since, exc)

    async def stop(self) -> None:
        """Stop the background task and write everything queued (idempotent).

        The calls still open get a last heartbeat. If the database cannot be reached the
        error is raised, with the number of records lost logged.
        """
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task  # lets a flush in progress finish rather than cancelling it mid-commit
        try:
            await self.flush(heartbeat=True)
        except Exception:
            log.exception("could not write %d call record events at shutdown; they are lost", self.pending)
            raise

    # -- writing ---------------------------------------------------------------------------
    async def flush(self, *, heartbeat: bool = False) -> int:
        """Write what is queued in one transaction (and, with ``heartbeat``, set
        ``last_alive_at = now`` for every call open here); returns how many events were written.

        On failure everything is queued again and the error raised.
        """
        async with self._lock:
            return await self._flush(heartbeat)

    async def _flush(self, heartbeat: bool) -> int:
        inserts, answers, closes = self._inserts, self._answers, self._closes
        self._inserts, self._answers, self._closes = {}, {}, {}
        # Still pending until committed (or put back): the taken events must not vanish from
        # ``pending`` (nor from the ``max_pending`` bound) while the write is in progress.
        self._in_flight = len(inserts) + len(answers) + len(closes)
        touch = list(self._open) if heartbeat else []
        try:
            if inserts or answers or closes or touch:
                async with self._sessions() as session, session.begin():
                    await repo.insert_calls(session, list(inserts.values()))
                    await repo.answer_calls(session, list(answers.values()))
                    await repo.close_calls(session, list(closes.values()))
                    await repo.touch_calls(session, touch, self._clock())
        except BaseException as exc:  # cancelled too: nothing was committed, so nothing may be lost
            if not _refused(exc):
                self._requeue(inserts, answers, closes)
                raise
            log.warning("the database refused a batch of %d call record events; isolating the refused ones",
                        len(inserts) + len(answers) + len(closes), exc_info=True)
            return await self._isolate(inserts, answers, closes)
        finally:
            self._in_flight = 0
        if heartbeat:
            self._last_heartbeat = time.monotonic()
        return len(inserts) + len(answers) + len(closes)

    def _requeue(self, inserts: _Rows, answers: _Rows, closes: _Rows) -> None:
        # Older events go first; an event that arrived meanwhile for the same call wins.
        self._inserts = {**inserts, **self._inserts}
        for call_id, row in answers.items():
            if call_id not in self._open:
                continue  # closed since: the close carries the answer
            pending_insert = self._inserts.get(call_id)
            if pending_insert is not None:
                pending_insert.update((name, value) for name, value in row.items() if name != "call_id")
            else:
                self._answers.setdefault(call_id, row)
        self._closes = {**closes, **self._closes}

    async def _isolate(self, inserts: _Rows, answers: _Rows, closes: _Rows) -> int:
        """Write a refused batch in halves, down to single records, so that only those the
        database refuses by themselves are set aside."""
        written = 0
        steps: list[tuple[_Rows, _Write, str]] = [
            (inserts, repo.insert_calls, "insert"),
            (answers, repo.answer_calls, "answer"),
            (closes, repo.close_calls, "close"),
        ]
        for index, (rows, write, kind) in enumerate(steps):
            stack = [list(rows.items())] if rows else []
            while stack:
                chunk = stack.pop()
                try:
                    written += await self._write_chunk(chunk, write, kind)
                except BaseException as exc:
                    if _refused(exc):
                        half = len(chunk) // 2
                        stack += [chunk[half:], chunk[:half]]
                        continue
                    left: list[_Rows] = [{}, {}, {}]
                    left[index] = dict(item for part in [*stack, chunk] for item in part)
                    for later in range(index + 1, len(steps)):
                        left[later] = steps[later][0]
                    self._requeue(*left)
                    raise
        return written

    async def _write_chunk(self, chunk: list[tuple[str, dict[str, Any]]], write: _Write, kind: str) -> int:
        """Write a chunk; a chunk of several that is refused raises, a single record is set aside."""
        if len(chunk) > 1:
            async with self._sessions() as session, session.begin():
                await write(session, [row for _, row in chunk])
            return len(chunk)
        ((call_id, row),) = chunk
        error = await self._attempt(write, row)
        if error is None:
            return 1
        if any(row.get(name) is not None for name in _USER_COLUMNS):
            # The likeliest cause: a user deleted while the call was up. Keep the call.
            anonymous = {**row, **{name: None for name in _USER_COLUMNS if name in row}}
            if await self._attempt(write, anonymous) is None:
                log.warning("call %s: %s written without its user references: %s", call_id, kind, error)
                return 1
        self.rejected += 1
        log.error("call %s: the database refused the %s; it is dropped: %s; values: %r", call_id, kind, error, row)
        return 0

    async def _attempt(self, write: _Write, row: dict[str, Any]) -> Exception | None:
        """Write one record alone; returns the database's refusal, if any (other errors raise)."""
        try:
            async with self._sessions() as session, session.begin():
                await write(session, [row])
        except Exception as exc:
            if not _refused(exc):
                raise
            return exc
        return None

    # -- start-up ----------------------------------------------------------------------------
    async def recover(self, now: datetime) -> int:
        """Close every record still open as ``interrupted`` (call at start-up, before taking calls).

        ``ended_at`` is the record's last heartbeat (``last_alive_at``, at most ``now``); ring time
        runs from the start to the answer (or that end), talk time from the answer to that end.
        Returns how many records were closed.
        """
        _utc(now)
        async with self._sessions() as session, session.begin():
            rows = [_interrupted(call, now) for call in await repo.open_calls(session)]
            await repo.close_calls(session, rows)
        if rows:
            log.warning("closed %d call records left open by a stopped server as interrupted", len(rows))
        return len(rows)
