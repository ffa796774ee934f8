"""Consent records: what a person (or an anonymous browser) agreed to or refused, when, how, and the
exact words they were shown or played (issue 8, deliverable 4).

A row is written for every choice and never changed afterwards, except ``superseded_at``: set when
a later row for the same subject and purpose replaces it. The current choice is the subject's
newest row that is not superseded; no row means the purpose's default (``consent.DEFAULTS``).

Subjects: a person (``org_id`` + ``user_id``) or an anonymous visitor of the portal (``visitor_id``,
the random id in the essential ``rw_consent`` cookie; no org). ``user_id`` has no foreign key: the
proof that someone consented or withdrew outlives the user row by the consent retention (one year
after the record changed, ``ConsentService.purge``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id

__all__ = ["ConsentRecord", "Purpose", "Source"]


class Purpose(StrEnum):
    RECORDING_ANNOUNCEMENT = "recording_announcement"  # told "this call is being recorded" before it was
    CPNI_MARKETING = "cpni_marketing"  # use of call detail (CPNI) to market other services: 47 CFR 64.2007
    MARKETING_EMAIL = "marketing_email"
    ANALYTICS_COOKIES = "analytics_cookies"


class Source(StrEnum):
    PORTAL = "portal"
    API = "api"
    PHONE = "phone"
    COOKIE_BANNER = "cookie_banner"
    GPC = "gpc"  # the browser's Global Privacy Control signal (Sec-GPC: 1): an opt-out
    ANNOUNCEMENT = "announcement"  # the recording announcement was played to the parties of a call


class ConsentRecord(Base):
    __tablename__ = "consent_records"
    __table_args__ = (
        Index("ix_consent_records_person", "org_id", "user_id", "purpose", "at"),
        Index("ix_consent_records_visitor", "visitor_id", "purpose", "at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(36))
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))
    text_shown: Mapped[str] = mapped_column(Text)
    text_version: Mapped[str] = mapped_column(String(32))
    call_record_id: Mapped[str | None] = mapped_column(String(36))  # the call an announcement was played in
    at: Mapped[datetime]
    superseded_at: Mapped[datetime | None] = mapped_column(index=True)
