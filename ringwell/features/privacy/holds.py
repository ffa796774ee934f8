"""Legal holds: pause deletion of a person's or a whole organization's data until released.

Placed and released by operator staff holding ``operator.privacy.manage``; each change is an
audit event in the same transaction. While a hold is active the retention run keeps what it
covers (and counts it as held) and erasure must refuse (``held``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.errors import Conflict, Invalid, NotFound
from ringwell.features.accounts.models import Organization, User
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.privacy.models_holds import LegalHold
from ringwell.storage.base import utcnow

__all__ = [
    "ActiveHolds",
    "HoldAlreadyReleased",
    "InvalidLegalHold",
    "LegalHoldNotFound",
    "LegalHolds",
    "active_holds",
    "held",
]


class LegalHoldNotFound(NotFound):
    error_id = "legal_hold_not_found"


class HoldAlreadyReleased(Conflict):
    error_id = "legal_hold_released"


class InvalidLegalHold(Invalid):
    """No such org, a user of another org, or no reason given."""

    error_id = "invalid_legal_hold"


@dataclass(frozen=True, slots=True)
class ActiveHolds:
    """Every active hold at one moment: orgs held whole, and people held."""

    orgs: frozenset[str]
    users: frozenset[str]

    def covers(self, org_id: str | None, *user_ids: str | None) -> bool:
        """Whether data of ``org_id`` about any of ``user_ids`` is held."""
        return (org_id is not None and org_id in self.orgs) or any(u is not None and u in self.users
                                                                  for u in user_ids)

    def __bool__(self) -> bool:
        return bool(self.orgs or self.users)


async def active_holds(session: AsyncSession) -> ActiveHolds:
    rows = (await session.execute(select(LegalHold.org_id, LegalHold.user_id).where(
        LegalHold.released_at.is_(None)))).all()
    return ActiveHolds(orgs=frozenset(org for org, user in rows if user is None),
                       users=frozenset(user for _, user in rows if user is not None))


async def held(session: AsyncSession, org_id: str, user_id: str | None = None) -> bool:
    """Whether an active hold covers ``org_id`` as a whole, or the person ``user_id`` (of any org)."""
    query = select(LegalHold.id).where(LegalHold.released_at.is_(None))
    condition: ColumnElement[bool] = and_(LegalHold.org_id == org_id, LegalHold.user_id.is_(None))
    if user_id is not None:
        condition = or_(condition, LegalHold.user_id == user_id)
    return (await session.execute(query.where(condition).limit(1))).first() is not None


class LegalHolds:
    """Place, list and release legal holds (operator console)."""

    def __init__(self, sessions: async_sessionmaker[Any], audit: AuditLog) -> None:
        self._sessions = sessions
        self._audit = audit

    async def place(self, org_id: str, user_id: str | None, reason: str, *, actor: Actor) -> LegalHold:
        """Hold the org (``user_id`` None) or one of its people; ``reason`` (1-500 characters) says why."""
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise InvalidLegalHold("a legal hold needs a reason of 1-500 characters", {"field": "reason"})
        async with self._sessions() as session, session.begin():
            if await session.get(Organization, org_id) is None:
                raise InvalidLegalHold("no such organization", {"field": "org_id"})
            if user_id is not None:
                user = await session.get(User, user_id)
                if user is None or user.org_id != org_id:
                    raise InvalidLegalHold("no such user in the organization", {"field": "user_id"})
            hold = LegalHold(org_id=org_id, user_id=user_id, reason=reason, created_by=actor.user_id,
                             created_at=utcnow())
            session.add(hold)
            await session.flush()
            await self._audit.record("legal_hold.place", actor, org_id=org_id, target_type="legal_hold",
                                     target_id=hold.id, reason=reason,
                                     details={"user_id": user_id, "scope": "person" if user_id else "organization"},
                                     session=session)
        return hold

    async def release(self, hold_id: str, *, actor: Actor, now: datetime | None = None) -> LegalHold:
        """End a hold: what it kept is deleted by the next retention run if it is past its period."""
        async with self._sessions() as session, session.begin():
            hold: LegalHold | None = await session.get(LegalHold, hold_id, with_for_update=True)
            if hold is None:
                raise LegalHoldNotFound("no such legal hold", {"hold_id": hold_id})
            if hold.released_at is not None:
                raise HoldAlreadyReleased("the legal hold was already released", {"hold_id": hold_id})
            hold.released_at = now or utcnow()
            hold.released_by = actor.user_id
            await self._audit.record("legal_hold.release", actor, org_id=hold.org_id, target_type="legal_hold",
                                     target_id=hold.id, details={"user_id": hold.user_id}, session=session)
        return hold

    async def all(self, *, active_only: bool = False, limit: int = 200) -> Sequence[LegalHold]:
        """Newest first."""
        query = select(LegalHold).order_by(LegalHold.created_at.desc(), LegalHold.id.desc()).limit(limit)
        if active_only:
            query = query.where(LegalHold.released_at.is_(None))
        async with self._sessions() as session:
            rows: Sequence[LegalHold] = (await session.execute(query)).scalars().all()
        return rows
