"""API shapes of a person's consent choices (``/api/v1/me/consents``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from ringwell.web.schemas import RequestBody

__all__ = ["ConsentChoiceOut", "ConsentRecordOut", "ConsentUpdate", "ConsentsOut"]


class ConsentChoiceOut(BaseModel):
    purpose: str
    granted: bool
    default: bool  # nothing chosen yet: the purpose's default (every purpose is off until opted in)
    source: str | None
    since: datetime | None
    text: str | None  # the words a choice is made with (None for notices such as recording announcements)
    text_version: str | None


class ConsentRecordOut(BaseModel):
    purpose: str
    granted: bool
    source: str
    text_shown: str
    text_version: str
    at: datetime
    superseded_at: datetime | None


class ConsentsOut(BaseModel):
    """The caller's current choices (every purpose) and their records, newest first."""

    choices: list[ConsentChoiceOut]
    history: list[ConsentRecordOut]


class ConsentUpdate(RequestBody):
    """The choices to change; a field left out stays as it is."""

    model_config = ConfigDict(strict=True, extra="forbid")

    cpni_marketing: bool | None = None
    marketing_email: bool | None = None
