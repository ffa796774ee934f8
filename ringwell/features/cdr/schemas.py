"""API shapes of the call history (times in UTC, money in minor units with a display form)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, Field

from ringwell.features.billing.schemas import Money, money
from ringwell.features.cdr.models import CallRecord

__all__ = ["CallList", "CallOut", "call_out"]


class CallOut(BaseModel):
    """One call attempt, answered or not."""

    id: str
    direction: str = Field(description="internal | inbound | outbound")
    from_: str | None = Field(serialization_alias="from", description="The caller's number, else extension")
    from_extension: str | None = Field(description="The calling extension (internal and outbound calls)")
    from_user_id: str | None
    to: str = Field(description="What was dialled")
    to_extension: str | None = Field(description="The extension that rang or answered (internal and inbound)")
    to_user_id: str | None
    state: str = Field(description="open while the call is up, closed once it ended")
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    ring_seconds: float | None
    talk_seconds: float | None
    billable_seconds: int | None = Field(description="What the rate's increments billed (phone network calls)")
    disposition: str | None = Field(
        description="answered | busy | no-answer | cancelled | failed | interrupted | blocked; null while open")
    hangup_by: str | None = Field(description="caller | callee | system")
    sip_status: int | None
    sip_reason: str | None
    charge: Money | None = Field(description="What the call cost the organization (null: not charged)")
    rate_prefix: str | None
    codec: str | None
    media: dict[str, Any] | None = Field(description="Per-leg media quality summary, when measured")
    recordings: list[str] | None = Field(
        default=None, description="One call: ids of its recordings you may play (see /recordings/{id}); "
                                  "not filled in lists")


class CallList(BaseModel):
    items: list[CallOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")

    def response(self) -> Response:
        """Serialised as is (FastAPI would validate the page again before serialising it)."""
        return Response(self.model_dump_json(by_alias=True), media_type="application/json")


def call_out(row: CallRecord) -> CallOut:
    """The API's view of a stored record. Built without validation (``model_construct``): the
    values come typed from the database, and the call list is the API's busiest response."""
    charge = money(row.charge_minor, row.currency) if row.charge_minor is not None and row.currency else None
    return CallOut.model_construct(
        id=row.id, direction=row.direction, from_=row.caller_number or row.caller_extension,
        from_extension=row.caller_extension, from_user_id=row.caller_user_id, to=row.callee_number,
        to_extension=row.callee_extension, to_user_id=row.callee_user_id, state=row.state, started_at=row.started_at,
        answered_at=row.answered_at, ended_at=row.ended_at, ring_seconds=row.ring_seconds,
        talk_seconds=row.talk_seconds, billable_seconds=row.billable_seconds, disposition=row.disposition,
        hangup_by=row.hangup_by, sip_status=row.sip_status, sip_reason=row.sip_reason, charge=charge,
        rate_prefix=row.rate_prefix, codec=row.codec, media=row.media,
    )
