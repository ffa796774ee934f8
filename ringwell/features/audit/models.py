"""The audit event table. Rows are only ever inserted: the database refuses UPDATE and DELETE
(triggers created by migration 0008, on SQLite and PostgreSQL); the privacy issue chains them
by hash on top of this."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["AuditEvent"]


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Who: a user (with the org they acted from and their role), an API key, or the system.
    actor_user_id: Mapped[str | None] = mapped_column(String(36))
    actor_org_id: Mapped[str | None] = mapped_column(String(36))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    api_key_id: Mapped[str | None] = mapped_column(String(36))
    # Whose data: no foreign keys on purpose — the trail outlives what it describes.
    org_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64))  # dotted, e.g. "auth.login", "numbers.rent", "staff.read"
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | denied | failed
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(255))  # why, for staff access
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
