"""API shapes of the webhooks slice."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ringwell.features.webhooks.service import (
    MAX_DESCRIPTION,
    AttemptView,
    CreatedEndpoint,
    DeliveryDetail,
    DeliveryView,
    EndpointView,
)
from ringwell.features.webhooks.urls import MAX_URL_LENGTH
from ringwell.web.schemas import RequestBody

__all__ = [
    "AttemptOut",
    "DeliveryDetailOut",
    "DeliveryOut",
    "DeliveryPage",
    "EndpointCreate",
    "EndpointCreatedOut",
    "EndpointList",
    "EndpointOut",
    "EndpointUpdate",
    "EventName",
]

# events.SUBSCRIBABLE and "*" (a unit test keeps the two in step).
EventName = Literal["*", "call.started", "call.answered", "call.ended", "balance.low", "number.rented",
                    "number.released", "user.created"]

_URL = Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://example.com/hooks/ringwell"],
             description="http(s) URL that receives a signed POST per event")
_EVENTS_DOC = 'Event types to receive; ["*"] for all of them'


class EndpointCreate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    url: str = _URL
    events: list[EventName] = Field(min_length=1, max_length=20, description=_EVENTS_DOC)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    enabled: bool = True


class EndpointUpdate(RequestBody):
    """Only the fields given change; ``description: ""`` clears it."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=20, description=_EVENTS_DOC)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    enabled: bool | None = Field(default=None, description="Enabling clears the disabled reason and failure run")


class EndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why it is disabled (by a user, or after failing for the "
                                                    "retry window)")
    failing_since: datetime | None = Field(description="First failed attempt of the current run of failures")
    created_at: datetime

    @classmethod
    def of(cls, view: EndpointView) -> EndpointOut:
        return cls(id=view.id, url=view.url, events=list(view.events), description=view.description,
                   enabled=view.enabled, disabled_reason=view.disabled_reason, failing_since=view.failing_since,
                   created_at=view.created_at)


class EndpointCreatedOut(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...): shown in this response only")

    @classmethod
    def created(cls, created: CreatedEndpoint) -> EndpointCreatedOut:
        return cls(**EndpointOut.of(created.endpoint).model_dump(), secret=created.secret)


class EndpointList(BaseModel):
    items: list[EndpointOut]
    next_cursor: str | None = None  # an org has at most 20 endpoints: always one page


class DeliveryOut(BaseModel):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int = Field(description="Automatic attempts made (replays are in the attempt log only)")
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_status: int | None = Field(description="HTTP status of the last attempt (null: no answer)")
    last_error: str | None

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        return cls(id=view.id, endpoint_id=view.endpoint_id, event_id=view.event_id, event_type=view.event_type,
                   status=view.status,  # type: ignore[arg-type]  # one of the three, by construction
                   attempts=view.attempts, next_attempt_at=view.next_attempt_at, created_at=view.created_at,
                   delivered_at=view.delivered_at, last_status=view.last_status, last_error=view.last_error)


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    id: str
    at: datetime
    status: int | None = Field(description="The receiver's HTTP status (null: no answer, see error)")
    error: str | None
    duration_ms: int
    manual: bool = Field(description="A replay asked for by a person")

    @classmethod
    def of(cls, view: AttemptView) -> AttemptOut:
        return cls(id=view.id, at=view.at, status=view.status, error=view.error, duration_ms=view.duration_ms,
                   manual=view.manual)


class DeliveryDetailOut(DeliveryOut):
    payload: str = Field(description="The exact JSON body that is signed and sent")
    attempt_log: list[AttemptOut] = Field(description="Every attempt, oldest first")

    @classmethod
    def detail(cls, detail: DeliveryDetail) -> DeliveryDetailOut:
        return cls(**DeliveryOut.of(detail.delivery).model_dump(), payload=detail.payload,
                   attempt_log=[AttemptOut.of(a) for a in detail.attempts])
