"""Tables of the retention engine: legal holds and the reports of retention runs.

A legal hold pauses deletion (by retention, and by erasure requests) for one person (``user_id``)
or a whole organization (``user_id`` NULL) until staff release it. Holds and reports have no
foreign keys on purpose: they are proof of what was kept and why, and outlive what they name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["LegalHold", "RetentionRun"]


class LegalHold(Base):
    """A hold is active while ``released_at`` is NULL. Times in UTC."""

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_org_user", "org_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(36))  # None: the whole organization
    reason: Mapped[str] = mapped_column(String(500))  # e.g. the case or order it serves
    created_by: Mapped[str | None] = mapped_column(String(36))  # the staff user who placed it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(index=True)
    released_by: Mapped[str | None] = mapped_column(String(36))


class RetentionRun(Base):
    """The report of one retention run: per data class, how many were purged and how many a hold kept."""

    __tablename__ = "retention_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime]
    dry_run: Mapped[bool] = mapped_column(default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)  # {data class: {"purged": n, "held": n}}
