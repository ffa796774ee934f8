"""API shapes of people's privacy requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["ActIn", "DataRequestList", "DataRequestOut", "MyRequestIn", "RequestSubjectOut", "StaffRequestIn",
           "StatusIn"]

KindName = Literal["access", "export", "correction", "deletion", "restriction", "objection"]
LawName = Literal["gdpr", "ccpa"]


class RequestSubjectOut(BaseModel):
    """An account the request is about, fixed when it was received; only these are acted on."""

    org_id: str
    org: str = Field(description="the organization's name")
    user_id: str
    matched_by: str = Field(description="portal (the person's own account) | login_email (their verified login) | "
                                        "email (the user email, in the organization staff named)")


class DataRequestOut(BaseModel):
    id: str
    org_id: str | None
    user_id: str | None
    subject_email: str
    kind: str
    law: str
    source: str
    details: str | None
    received_at: datetime
    due_at: datetime = Field(description="the law's deadline, never later than 30 days after received_at")
    status: str = Field(description="open | in_progress | done | refused")
    identity_verified: str
    closed_at: datetime | None
    outcome: dict[str, Any] | None = Field(description="what was done: export size, erasure receipt, corrections, "
                                                       "or the reason for a refusal")
    overdue: bool
    subjects: list[RequestSubjectOut] = Field(description="the accounts the request is about (empty: nobody found)")


class DataRequestList(BaseModel):
    items: list[DataRequestOut]


class MyRequestIn(BaseModel):
    kind: KindName
    law: LawName = "gdpr"
    details: str | None = Field(None, max_length=4000, description="what to correct or restrict")
    confirm: str | None = Field(None, max_length=16, description='"DELETE" carries out a deletion at once')


class StaffRequestIn(BaseModel):
    kind: KindName
    law: LawName = "gdpr"
    subject_email: str = Field(max_length=320)
    org: str | None = Field(None, max_length=200,
                            description="the organization's name: also match the user with this email there (a "
                                        "user email is not verified, so it is matched only where staff say)")
    identity_verified: str = Field(min_length=1, max_length=200, description="how the person's identity was checked")
    details: str | None = Field(None, max_length=4000)
    received_at: datetime | None = Field(None, description="when the email arrived (default: now); starts the clock")


class StatusIn(BaseModel):
    status: Literal["in_progress", "done", "refused"]
    reason: str | None = Field(None, max_length=255, description="required to refuse: the person is told")


class ActIn(BaseModel):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=32)
