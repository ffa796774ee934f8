"""Recording, reading, verifying, exporting and purging audit events.

A change is recorded in the same transaction as the change itself (pass ``session``), so one
never exists without the other. Sign-ins, failed sign-ins and staff reads are recorded on
their own. Every event is hash-chained as it is inserted (``models._chain``, ``chain.py``);
nothing here updates an event, and the only deletion is ``purge_before``, which removes the
oldest events (a prefix of the chain) and leaves an anchor that ``verify`` starts from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.audit.chain import FIELDS, GENESIS, Break, ChainChecker, Problem, format_time
from ringwell.features.audit.models import HEAD_ID, AuditChainHead, AuditEvent

__all__ = ["PURGE_ACTION", "SYSTEM", "Actor", "AuditLog", "ChainHead", "VerifyResult"]

PURGE_ACTION = "audit.purge"
_PAGE = 1000  # events read per query by verify and export: memory is one page, whatever the trail's length
_events = AuditEvent.__table__


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, from where. ``user_id`` None with no ``api_key_id``: the system itself."""

    user_id: str | None = None
    org_id: str | None = None
    role: str | None = None
    api_key_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    reason: str | None = None  # why, for staff (the X-Access-Reason header); events record it unless given one


SYSTEM = Actor()


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else value


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int  # the last event written (0: none yet)
    hash: str
    anchor_seq: int  # the last event purged (0: none)
    anchor_hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What ``AuditLog.verify`` found: ``broken`` None means every event is as it was written."""

    count: int  # events checked
    head: ChainHead
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None


def _fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in FIELDS}


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self._sessions = sessions

    @property
    def sessions(self) -> async_sessionmaker[Any]:
        return self._sessions

    def event(self, action: str, actor: Actor, *, org_id: str | None, target_type: str | None = None,
              target_id: str | None = None, outcome: str = "ok", reason: str | None = None,
              details: dict[str, Any] | None = None) -> AuditEvent:
        return AuditEvent(
            actor_user_id=actor.user_id, actor_org_id=actor.org_id, actor_role=actor.role,
            api_key_id=actor.api_key_id, ip=_clip(actor.ip, 64), user_agent=_clip(actor.user_agent, 255),
            org_id=org_id, action=action, target_type=target_type, target_id=_clip(target_id, 64),
            outcome=outcome, reason=_clip(reason if reason is not None else actor.reason, 255), details=details,
        )

    async def record(self, action: str, actor: Actor, *, org_id: str | None, target_type: str | None = None,
                     target_id: str | None = None, outcome: str = "ok", reason: str | None = None,
                     details: dict[str, Any] | None = None, session: AsyncSession | None = None) -> None:
        """Append one event; inside ``session``'s transaction when given (commits with the change)."""
        row = self.event(action, actor, org_id=org_id, target_type=target_type, target_id=target_id,
                         outcome=outcome, reason=reason, details=details)
        if session is not None:
            session.add(row)
            return
        async with self._sessions() as own, own.begin():
            own.add(row)

    async def events(self, org_id: str | None, *, limit: int = 100, before: tuple[datetime, str] | None = None,
                     action: str | None = None) -> list[AuditEvent]:
        """Newest first, keyset-paged: ``before`` is the (at, id) of the last event of the previous
        page. ``org_id`` None: every org's (operator auditors)."""
        query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
        if org_id is not None:
            query = query.where(AuditEvent.org_id == org_id)
        if before is not None:
            at, event_id = before
            query = query.where(or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < event_id)))
        if action is not None:
            query = query.where(AuditEvent.action == action)
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars().all())

    # -- the chain ----------------------------------------------------------------------------------
    async def head(self) -> ChainHead:
        async with self._sessions() as session:
            row = await session.get(AuditChainHead, HEAD_ID)
        if row is None:
            return ChainHead(0, GENESIS, 0, GENESIS)
        return ChainHead(row.seq, row.hash, row.anchor_seq, row.anchor_hash)

    async def _rows(self, *, after_seq: int, through_seq: int | None = None,
                    since: datetime | None = None) -> AsyncIterator[Any]:
        """Events in seq order, one page per query (keyset on seq), each page in a short session."""
        last = after_seq
        while True:
            query = select(_events).where(_events.c.seq > last).order_by(_events.c.seq).limit(_PAGE)
            if through_seq is not None:
                query = query.where(_events.c.seq <= through_seq)
            if since is not None:
                query = query.where(_events.c.at >= since)
            async with self._sessions() as session:
                rows = (await session.execute(query)).all()
            for row in rows:
                yield row
            if len(rows) < _PAGE:
                return
            last = rows[-1].seq

    async def verify(self) -> VerifyResult:
        """Walk the trail in seq order and name the first event that is not as written.

        Memory is bounded (a page of rows and a window of recent hashes). The head is read first,
        so events appended while verifying are simply not checked this time. After a purge, the
        walk starts from the anchor, which an ``audit.purge`` event in the trail must confirm.
        """
        head = await self.head()
        checker = ChainChecker(head.anchor_seq, head.anchor_hash)
        anchor_recorded = head.anchor_seq == 0
        async for row in self._rows(after_seq=head.anchor_seq, through_seq=head.seq):
            if checker.feed(_fields(row), row.prev_hash, row.hash) is not None:
                break
            details = row.details or {}
            if (row.action == PURGE_ACTION and details.get("through_seq") == head.anchor_seq
                    and details.get("through_hash") == head.anchor_hash):
                anchor_recorded = True
        broken = checker.finish(head.seq, head.hash)
        if broken is None and not anchor_recorded:
            broken = Break(Problem.REMOVED, None, head.anchor_seq,
                           f"the trail starts after seq {head.anchor_seq}, but no audit.purge event records "
                           "that purge (events were removed from the start)")
        return VerifyResult(checker.count, head, broken)

    async def purge_before(self, cutoff: datetime, actor: Actor = SYSTEM) -> int:
        """Delete the oldest events written before ``cutoff``; returns how many went.

        Only a prefix of the chain goes: from the first event up to the last one before the
        first event at or after ``cutoff``. In the same transaction the head's anchor is moved to
        the last purged event (which is what lets the DELETE trigger allow these rows, and only
        these) and an ``audit.purge`` event records the anchor inside the remaining chain, so
        ``verify`` still passes and a prefix removed any other way does not.
        """
        async with self._sessions() as session, session.begin():
            head = (await session.execute(select(AuditChainHead).where(AuditChainHead.id == HEAD_ID)
                                          .with_for_update())).scalar_one_or_none()
            if head is None:
                return 0
            first_kept = (await session.execute(select(func.min(AuditEvent.seq)).where(
                AuditEvent.at >= cutoff, AuditEvent.seq > head.anchor_seq))).scalar_one_or_none()
            through = head.seq if first_kept is None else int(first_kept) - 1
            if through <= head.anchor_seq:
                return 0
            through_hash = (await session.execute(select(AuditEvent.hash).where(AuditEvent.seq == through)))\
                .scalar_one()
            previous = head.anchor_seq
            await session.execute(update(AuditChainHead).where(AuditChainHead.id == HEAD_ID).values(
                anchor_seq=through, anchor_hash=through_hash))
            result = await session.execute(delete(AuditEvent).where(AuditEvent.seq <= through)
                                           .execution_options(synchronize_session=False))
            count = int(getattr(result, "rowcount", 0) or 0)
            session.add(self.event(PURGE_ACTION, actor, org_id=None, target_type="audit_events",
                                   details={"through_seq": through, "through_hash": through_hash,
                                            "previous_anchor_seq": previous, "count": count,
                                            "cutoff": format_time(cutoff)}))
        return count

    async def export(self, since: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every event (from ``since`` on), in seq order, as the JSON objects of the auditor export:
        every field, ``prev_hash`` and ``hash``, times in the chain's canonical format."""
        head = await self.head()
        async for row in self._rows(after_seq=head.anchor_seq, since=since):
            item = _fields(row)
            item["at"] = format_time(row.at)
            item["prev_hash"] = row.prev_hash
            item["hash"] = row.hash
            yield item
