"""API shapes of the breach register (operator console, ``/api/v1/operator/incidents``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field

from ringwell.features.privacy.incidents_service import MAX_NOTE, IncidentView
from ringwell.web.schemas import RequestBody

__all__ = ["ChecklistIn", "ChecklistItemOut", "ClockOut", "IncidentIn", "IncidentList", "IncidentOut",
           "IncidentPatch", "NoteIn", "NoteOut", "NoticeIn", "incident_out"]

# Times arrive as ISO 8601 strings with a zone ("2026-12-07T09:30:00Z"): the one place strict mode is relaxed.
When = Annotated[AwareDatetime, Field(strict=False)]
SeverityName = Literal["low", "medium", "high", "critical"]
ClockState = Literal["pending", "due_soon", "overdue", "done", "not_applicable"]
_OrgIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=36)]], Field(max_length=1000)]


class ClockOut(BaseModel):
    kind: Literal["authority", "law_enforcement", "customers"]
    state: ClockState = Field(description="due_soon: less than 24 hours left")
    due_at: datetime | None = Field(description="Null: not applicable, or not started")
    done_at: datetime | None = Field(description="When the notice was sent")
    seconds_left: int | None = Field(description="Until due_at (negative: overdue); null when done or not applicable")


class ChecklistItemOut(BaseModel):
    key: str
    label: str
    clock: str | None = Field(description="The notice that ticks it (null: ticked by staff)")
    applicable: bool
    done_at: datetime | None
    by: str | None = Field(description="The staff user who ticked it")


class NoteOut(BaseModel):
    id: str
    at: datetime
    by: str | None
    text: str


class IncidentOut(BaseModel):
    id: str
    title: str
    description: str
    severity: str
    personal_data: bool
    cpni: bool
    detected_at: datetime = Field(description="When the operator became aware (the GDPR clock starts)")
    determined_at: datetime | None = Field(description="When it was determined a CPNI breach (the US clock starts)")
    org_ids: list[str]
    people_affected: int | None
    created_by: str | None
    created_at: datetime
    authority_notified_at: datetime | None
    authority_reference: str | None
    law_enforcement_notified_at: datetime | None
    law_enforcement_reference: str | None
    law_enforcement_delay_until: datetime | None
    customers_notified_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    overdue: bool = Field(description="A notice is late")
    clocks: list[ClockOut]
    checklist: list[ChecklistItemOut]
    notes: list[NoteOut] = Field(description="The timeline (empty in listings)")


class IncidentList(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None = Field(description="Always null: open incidents first, then the latest closed ones")


class IncidentIn(RequestBody):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    severity: SeverityName = "medium"
    personal_data: bool = Field(description="Personal data is involved: GDPR arts. 33-34 apply")
    cpni: bool = Field(description="CPNI is involved: 47 CFR § 64.2011 applies")
    detected_at: When = Field(description="When the operator became aware")
    determined_at: When | None = None
    org_ids: _OrgIds = Field(default_factory=list)
    people_affected: int | None = Field(default=None, ge=0, le=10**9)


class IncidentPatch(RequestBody):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    severity: SeverityName | None = None
    personal_data: bool | None = None
    cpni: bool | None = None
    detected_at: When | None = None
    determined_at: When | None = None
    org_ids: _OrgIds | None = None
    people_affected: int | None = Field(default=None, ge=0, le=10**9)
    law_enforcement_delay_until: When | None = Field(
        default=None, description="Law enforcement asked to hold customer notice until then (null: no delay)")


class NoticeIn(RequestBody):
    at: When | None = Field(default=None, description="When it was sent (default: now)")
    reference: str | None = Field(default=None, max_length=200, description="The case number or receipt")


class ChecklistIn(RequestBody):
    done: bool = True


class NoteIn(RequestBody):
    text: str = Field(min_length=1, max_length=MAX_NOTE)


def incident_out(view: IncidentView, now: datetime) -> IncidentOut:
    incident = view.incident
    clocks = []
    for clock in view.clocks:
        left = clock.time_left(now)
        clocks.append(ClockOut(kind=clock.kind.value, state=clock.state.value, due_at=clock.due_at,
                               done_at=clock.done_at, seconds_left=int(left.total_seconds()) if left else None))
    return IncidentOut(
        id=incident.id, title=incident.title, description=incident.description, severity=incident.severity,
        personal_data=incident.personal_data, cpni=incident.cpni, detected_at=incident.detected_at,
        determined_at=incident.determined_at, org_ids=list(incident.org_ids or []),
        people_affected=incident.people_affected, created_by=incident.created_by, created_at=incident.created_at,
        authority_notified_at=incident.authority_notified_at, authority_reference=incident.authority_reference,
        law_enforcement_notified_at=incident.law_enforcement_notified_at,
        law_enforcement_reference=incident.law_enforcement_reference,
        law_enforcement_delay_until=incident.law_enforcement_delay_until,
        customers_notified_at=incident.customers_notified_at, closed_at=incident.closed_at,
        closed_by=incident.closed_by, overdue=view.clocks.overdue, clocks=clocks,
        checklist=[ChecklistItemOut(key=item.key.value, label=item.label,
                                    clock=item.clock.value if item.clock else None, applicable=item.applicable,
                                    done_at=item.done_at, by=item.by) for item in view.checklist],
        notes=[NoteOut(id=note.id, at=note.at, by=note.by, text=note.text) for note in view.notes],
    )
