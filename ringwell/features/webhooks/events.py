"""Webhook event types and the event envelope (pure).

An event is serialised once, when it is published, into the exact JSON body that is stored,
signed and sent (and sent again, unchanged, on every retry and replay)::

    {"id": "<uuid>", "type": "call.ended", "created_at": "2026-01-01T12:00:00.000Z",
     "org_id": "<uuid>", "data": {...}}

``docs/webhooks.md`` lists each type's ``data``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from ringwell.storage.base import new_id

__all__ = [
    "ALL",
    "EVENT_TYPES",
    "SUBSCRIBABLE",
    "TEST_EVENT",
    "Event",
    "iso",
    "make_event",
    "subscribed",
]

ALL = "*"  # an endpoint subscribed to "*" gets every event type
TEST_EVENT = "webhook.test"  # sent on request to one endpoint, whatever it subscribed to

# Every event type, with what it means (shown in the portal and the API description).
EVENT_TYPES: dict[str, str] = {
    "call.started": "a call attempt started (a phone dialled, or a call came in from the phone network)",
    "call.answered": "the callee answered",
    "call.ended": "the call ended, answered or not, with its duration and charge",
    "balance.low": "the available balance fell below the organization's low-balance threshold",
    "number.rented": "a phone number was rented",
    "number.released": "a phone number was released",
    "user.created": "a user was added",
    TEST_EVENT: "a test event sent from the portal or the API",
}

SUBSCRIBABLE: tuple[str, ...] = tuple(name for name in EVENT_TYPES if name != TEST_EVENT)


def subscribed(events: list[Any], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``events`` gets ``event_type``."""
    return ALL in events or event_type in events


def iso(moment: datetime) -> str:
    """A UTC timestamp as ISO 8601 with milliseconds and ``Z`` (naive datetimes are refused)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: webhook timestamps are UTC")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: object) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not allowed in webhook event data")


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one org: ``body`` is the JSON sent to every endpoint that gets it."""

    id: str
    type: str
    org_id: str
    created_at: datetime
    body: str


def make_event(org_id: str, event_type: str, data: dict[str, Any], *, now: datetime,
               event_id: str | None = None) -> Event:
    """Build and serialise an event. ``ValueError`` for an unknown type, ``TypeError`` for data
    that is not JSON (datetimes, dates, decimals and enums are converted)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    event_id = event_id or new_id()
    envelope = {"id": event_id, "type": event_type, "created_at": iso(now), "org_id": org_id, "data": data}
    body = json.dumps(envelope, default=_jsonable, ensure_ascii=False, separators=(",", ":"))
    return Event(event_id, event_type, org_id, now, body)
