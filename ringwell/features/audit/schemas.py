"""API shapes of the audit slice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ringwell.features.audit.models import AuditEvent

__all__ = ["AuditEventOut", "AuditPage"]


class AuditEventOut(BaseModel):
    id: str
    at: datetime
    org_id: str | None
    action: str
    outcome: str
    actor_user_id: str | None
    actor_org_id: str | None
    actor_role: str | None
    api_key_id: str | None
    target_type: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    reason: str | None
    details: dict[str, Any] | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id, at=event.at, org_id=event.org_id, action=event.action, outcome=event.outcome,
            actor_user_id=event.actor_user_id, actor_org_id=event.actor_org_id, actor_role=event.actor_role,
            api_key_id=event.api_key_id, target_type=event.target_type, target_id=event.target_id, ip=event.ip,
            user_agent=event.user_agent, reason=event.reason, details=event.details,
        )


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
