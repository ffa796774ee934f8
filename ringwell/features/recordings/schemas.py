"""API shapes of call recording (times in UTC)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ringwell.features.recordings.models import Action, Mode, Recording

__all__ = ["ControlIn", "ControlOut", "PolicyIn", "PolicyList", "RecordingList", "RecordingOut"]


class RecordingOut(BaseModel):
    id: str
    call_id: str = Field(description="The call it belongs to (see /calls/{call_id})")
    caller_user_id: str | None
    callee_user_id: str | None
    trigger: str = Field(description="policy | dtmf | api: what started it")
    started_at: datetime
    ended_at: datetime
    duration_s: float
    paused_s: float = Field(description="Seconds paused (silence in the file)")
    channels: int = Field(description="2: left the caller, right the callee")
    content_type: str
    size: int = Field(description="Bytes of the audio file")
    retention_until: datetime = Field(description="When the recording is deleted")

    @classmethod
    def of(cls, row: Recording) -> RecordingOut:
        return cls(id=row.id, call_id=row.call_record_id, caller_user_id=row.caller_user_id,
                   callee_user_id=row.callee_user_id, trigger=row.trigger, started_at=row.started_at,
                   ended_at=row.ended_at, duration_s=row.duration_s, paused_s=row.paused_s, channels=row.channels,
                   content_type=row.content_type, size=row.size, retention_until=row.retention_until)


class RecordingList(BaseModel):
    items: list[RecordingOut] = Field(description="Newest first")


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = Field(description="off | always | inbound | outbound | on_demand; null: inherit "
                                          "(for the organization: off)")


class PolicyList(BaseModel):
    organization: Mode = Field(description="The default for the org's users and numbers")
    users: dict[str, Mode] = Field(description="By user id, where set")
    numbers: dict[str, Mode] = Field(description="By E.164 number, where set")


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action = Field(description="start (after the announcement) | stop | pause | resume")


class ControlOut(BaseModel):
    call_id: str
    state: str = Field(description="announcing | recording | paused | stopped")
