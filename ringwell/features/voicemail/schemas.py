"""API shapes of voicemail (times in UTC)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ringwell.features.voicemail.models import Voicemail

__all__ = ["VoicemailDetail", "VoicemailList", "VoicemailOut"]


class VoicemailOut(BaseModel):
    """One message in a mailbox."""

    id: str
    user_id: str = Field(description="Whose mailbox it is in")
    caller_number: str
    caller_name: str | None
    call_id: str | None = Field(description="The call it was left on (see /calls/{call_id})")
    received_at: datetime
    duration_s: float = Field(description="Length of the message in seconds")
    folder: str = Field(description="new | saved")
    read_at: datetime | None
    transcript_status: str = Field(description="pending | done | failed")
    retention_until: datetime = Field(description="When the message and its transcript are deleted")

    @classmethod
    def of(cls, row: Voicemail) -> VoicemailOut:
        return cls(id=row.id, user_id=row.user_id, caller_number=row.caller_number, caller_name=row.caller_name,
                   call_id=row.call_record_id, received_at=row.received_at, duration_s=row.duration_s,
                   folder=row.folder, read_at=row.read_at, transcript_status=row.transcript_status,
                   retention_until=row.retention_until)


class VoicemailDetail(VoicemailOut):
    transcript: str | None = Field(description="What the caller said (null until transcript_status is done)")


class VoicemailList(BaseModel):
    items: list[VoicemailOut] = Field(description="Newest first")
