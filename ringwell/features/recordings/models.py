"""Tables of the recordings slice: who records what (policies) and what was recorded.

A policy row is scoped by ``scope``: ``org`` (the organization's default), ``user:<user id>`` or
``number:<E.164>`` (one of the org's phone numbers); one row per scope and org. No row anywhere
means off. A recording's audio is an encrypted blob (:mod:`ringwell.blobs`); its row holds the
blob's id, never audio, and the call record's id it belongs to (no foreign key: a call record
purged by its own retention leaves the recording to its own deadline).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id

__all__ = ["Action", "Mode", "Recording", "RecordingPolicy", "Trigger"]


class Mode(StrEnum):
    OFF = "off"
    ALWAYS = "always"
    INBOUND = "inbound"  # calls to the user or number (from the network, or internal calls they receive)
    OUTBOUND = "outbound"  # calls the user makes, or made with the number as caller ID
    ON_DEMAND = "on_demand"  # only when started from the phone (*1) or the API


class Trigger(StrEnum):
    POLICY = "policy"
    DTMF = "dtmf"
    API = "api"


class Action(StrEnum):
    """What a phone code or the API does to a call's recording."""

    START = "start"  # after the announcement
    STOP = "stop"
    PAUSE = "pause"  # silence in the file until resumed (a card number read out)
    RESUME = "resume"


class RecordingPolicy(Base):
    __tablename__ = "recording_policies"
    __table_args__ = (UniqueConstraint("org_id", "scope", name="uq_recording_policies_org_scope"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(80))
    mode: Mapped[str] = mapped_column(String(12))
    updated_at: Mapped[datetime]


class Recording(Base):
    """One recorded stretch of a call (a call recorded on demand twice has two). Times in UTC."""

    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_org_started", "org_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    call_record_id: Mapped[str] = mapped_column(String(36), index=True)
    caller_user_id: Mapped[str | None] = mapped_column(String(36))
    callee_user_id: Mapped[str | None] = mapped_column(String(36))
    trigger: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    paused_s: Mapped[float] = mapped_column(Float, default=0.0)
    channels: Mapped[int] = mapped_column(Integer, default=2)
    content_type: Mapped[str] = mapped_column(String(40))
    blob_id: Mapped[str] = mapped_column(String(36))
    size: Mapped[int] = mapped_column(Integer)
    retention_until: Mapped[datetime] = mapped_column(index=True)
