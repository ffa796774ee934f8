"""Recording and reading audit events (append-only: there is no update or delete here).

A change is recorded in the same transaction as the change itself (pass ``session``), so one
never exists without the other. Sign-ins, failed sign-ins and staff reads are recorded on
their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.audit.models import AuditEvent

__all__ = ["SYSTEM", "Actor", "AuditLog"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, from where. ``user_id`` None with no ``api_key_id``: the system itself."""

    user_id: str | None = None
    org_id: str | None = None
    role: str | None = None
    api_key_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


SYSTEM = Actor()


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else value


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self._sessions = sessions

    def event(self, action: str, actor: Actor, *, org_id: str | None, target_type: str | None = None,
              target_id: str | None = None, outcome: str = "ok", reason: str | None = None,
              details: dict[str, Any] | None = None) -> AuditEvent:
        return AuditEvent(
            actor_user_id=actor.user_id, actor_org_id=actor.org_id, actor_role=actor.role,
            api_key_id=actor.api_key_id, ip=_clip(actor.ip, 64), user_agent=_clip(actor.user_agent, 255),
            org_id=org_id, action=action, target_type=target_type, target_id=_clip(target_id, 64),
            outcome=outcome, reason=_clip(reason, 255), details=details,
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
