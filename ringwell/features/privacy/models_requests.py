"""The ``data_requests`` table: one request a person made about their data (GDPR arts. 15-21, CCPA).

A request comes from the portal (the person, logged in with a fresh login and MFA) or is entered
by privacy staff for a request received by email (``identity_verified`` says how they checked who
asked). ``due_at`` is fixed when it is received (:func:`ringwell.features.privacy.requests.due_date`);
``outcome`` holds what was done (the export's size, the erasure receipts, the corrected fields).
``subjects`` are the accounts the request is about, fixed when it is received (a list of
``{"org_id", "org", "user_id", "matched_by"}``): staff see them, and only they are acted on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id

__all__ = ["DataRequest"]


class DataRequest(Base):
    __tablename__ = "data_requests"
    # The staff queue: open ones by due date.
    __table_args__ = (Index("ix_data_requests_status_due", "status", "due_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # No cascade from the person: the request is the proof the erasure was done (it outlives them).
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="SET NULL"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    subject_email: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(16))  # requests.Kind
    law: Mapped[str] = mapped_column(String(8))  # requests.Law
    source: Mapped[str] = mapped_column(String(8))  # portal | staff
    details: Mapped[str | None] = mapped_column(Text)  # what to correct, what to restrict, the request's words
    received_at: Mapped[datetime]
    due_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # requests.Status
    identity_verified: Mapped[str] = mapped_column(String(255))  # how: "portal login + MFA", "staff: <method>"
    handled_by: Mapped[str | None] = mapped_column(String(36))  # the staff user's id (no FK: outlives them)
    closed_at: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Fixed at receipt (migration 0023); NULL on requests received before it (then user_id alone).
    subjects: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
