"""Tables of the CDR slice: one call detail record per call attempt, answered or not.

A row is inserted "open" when the call starts and closed when it ends. While it is open the
node that carries the call moves ``last_alive_at`` forward (a heartbeat), so after a crash the
row can be closed as ``interrupted`` at the last moment the call was known to be alive.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id

__all__ = ["CallRecord", "CallState", "Direction", "Disposition", "HangupBy"]


class Direction(StrEnum):
    INTERNAL = "internal"
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Disposition(StrEnum):
    """How a call attempt ended."""

    ANSWERED = "answered"
    VOICEMAIL = "voicemail"  # nobody answered; the caller reached the callee's voicemail
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELLED = "cancelled"  # the caller hung up before an answer
    FAILED = "failed"  # any other final failure (4xx-6xx, no route, media)
    INTERRUPTED = "interrupted"  # the node stopped while the call was up (closed at recovery)
    BLOCKED = "blocked"  # refused before ringing: destination not permitted, caps, no credit


class HangupBy(StrEnum):
    CALLER = "caller"
    CALLEE = "callee"
    SYSTEM = "system"


class CallRecord(Base):
    """One call attempt. Durations in seconds; times in UTC."""

    __tablename__ = "call_records"
    # The call history: one org's calls newest first, paged by (started_at, id) keyset.
    __table_args__ = (Index("ix_call_records_org_started", "org_id", "started_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    sip_call_id: Mapped[str] = mapped_column(String(255))  # the caller's Call-ID
    direction: Mapped[str] = mapped_column(String(16))
    caller_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    caller_extension: Mapped[str | None] = mapped_column(String(64))
    caller_number: Mapped[str | None] = mapped_column(String(64))
    callee_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    callee_extension: Mapped[str | None] = mapped_column(String(64))
    callee_number: Mapped[str] = mapped_column(String(64))  # what was dialled
    started_at: Mapped[datetime] = mapped_column(index=True)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    last_alive_at: Mapped[datetime]
    ring_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(8), index=True, default=CallState.OPEN.value)
    disposition: Mapped[str | None] = mapped_column(String(16))
    hangup_by: Mapped[str | None] = mapped_column(String(16))
    sip_status: Mapped[int | None] = mapped_column(Integer)
    sip_reason: Mapped[str | None] = mapped_column(String(255))
    codec: Mapped[str | None] = mapped_column(String(32))
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))  # per-leg summary
    node: Mapped[str | None] = mapped_column(String(64))
    # Calls to and from the phone network (issue 4): the trunk used, the rate applied and what it cost.
    trunk_id: Mapped[str | None] = mapped_column(ForeignKey("trunks.id", ondelete="SET NULL"))
    rate_deck: Mapped[str | None] = mapped_column(String(100))
    rate_prefix: Mapped[str | None] = mapped_column(String(32))
    price_micros: Mapped[int | None] = mapped_column(BigInteger)  # per minute, 10^-6 of the currency unit
    billable_seconds: Mapped[int | None] = mapped_column(Integer)
    charge_minor: Mapped[int | None] = mapped_column(BigInteger)  # what the org paid, minor units
    cost_minor: Mapped[int | None] = mapped_column(BigInteger)  # what the carrier costs, minor units
    currency: Mapped[str | None] = mapped_column(String(3))
