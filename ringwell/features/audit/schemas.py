"""API shapes of the audit slice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ringwell.features.audit.models import AuditEvent

__all__ = ["AccessReviewOut", "AuditEventOut", "AuditPage", "StaffAccessOut", "VerifyOut"]


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
    seq: int
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id, at=event.at, org_id=event.org_id, action=event.action, outcome=event.outcome,
            actor_user_id=event.actor_user_id, actor_org_id=event.actor_org_id, actor_role=event.actor_role,
            api_key_id=event.api_key_id, target_type=event.target_type, target_id=event.target_id, ip=event.ip,
            user_agent=event.user_agent, reason=event.reason, details=event.details,
            seq=event.seq, prev_hash=event.prev_hash, hash=event.hash,
        )


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class VerifyOut(BaseModel):
    intact: bool
    count: int  # events checked
    head_seq: int
    head_hash: str
    anchor_seq: int  # the last purged event (0: none)
    message: str
    problem: str | None  # edited | removed | reordered
    event_id: str | None
    seq: int | None


class StaffAccessOut(BaseModel):
    user_id: str
    email: str
    name: str | None
    org: str
    role: str
    mfa: bool
    disabled: bool
    last_sign_in: datetime | None
    created_at: datetime


class AccessReviewOut(BaseModel):
    items: list[StaffAccessOut]
