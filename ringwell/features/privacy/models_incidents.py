"""The breach register: security incidents, their notices and checklist, and a timeline of notes.

An incident belongs to the operator, not to one organization: ``org_ids`` lists the organizations
affected (no foreign keys — the record of a breach outlives the orgs it touched, like the audit
trail). The notification clocks are computed from these columns by ``incidents.clocks``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["Incident", "IncidentNote"]


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16))  # incidents.Severity
    personal_data: Mapped[bool] = mapped_column(Boolean)  # GDPR art. 33/34 apply
    cpni: Mapped[bool] = mapped_column(Boolean)  # 47 CFR § 64.2011 applies
    # When the operator became aware (the GDPR clock starts) and when it was reasonably determined to be
    # a CPNI breach (the US clock starts).
    detected_at: Mapped[datetime] = mapped_column(index=True)
    determined_at: Mapped[datetime | None] = mapped_column()
    org_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    people_affected: Mapped[int | None] = mapped_column(Integer)  # approximate
    created_by: Mapped[str | None] = mapped_column(String(36))  # the staff user (no FK: the record outlives them)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    authority_notified_at: Mapped[datetime | None] = mapped_column()
    authority_reference: Mapped[str | None] = mapped_column(String(200))  # the authority's case number
    law_enforcement_notified_at: Mapped[datetime | None] = mapped_column()
    law_enforcement_reference: Mapped[str | None] = mapped_column(String(200))  # the FCC facility's receipt
    law_enforcement_delay_until: Mapped[datetime | None] = mapped_column()  # LE asked to hold customer notice
    customers_notified_at: Mapped[datetime | None] = mapped_column()
    # Staff-ticked checklist items: key -> {"done_at": ISO 8601 UTC, "by": user id}.
    checklist: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_by: Mapped[str | None] = mapped_column(String(36))

    notes: Mapped[list[IncidentNote]] = relationship(
        back_populates="incident", order_by="IncidentNote.at", cascade="all, delete-orphan", lazy="raise")


class IncidentNote(Base):
    """One entry of an incident's timeline: what was found or done, by whom, when."""

    __tablename__ = "incident_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str | None] = mapped_column(String(36))
    text: Mapped[str] = mapped_column(Text)

    incident: Mapped[Incident] = relationship(back_populates="notes", lazy="raise")
