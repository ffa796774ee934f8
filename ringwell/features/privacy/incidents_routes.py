"""API routes of the breach register (operator console): thin — parse, call the service, serialise.

Privacy staff change it (``operator.privacy.incidents``); privacy staff and auditors read it
(``operator.privacy.incidents.read``). Every change is audited by the service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from ringwell.features.privacy.incidents import ChecklistKey, ClockKind, Severity
from ringwell.features.privacy.incidents_schemas import (
    ChecklistIn,
    IncidentIn,
    IncidentList,
    IncidentOut,
    IncidentPatch,
    NoteIn,
    NoticeIn,
    incident_out,
)
from ringwell.features.privacy.incidents_service import IncidentSpec, IncidentsService
from ringwell.storage.base import utcnow
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, operator_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["incidents_of", "router"]

router = APIRouter(tags=["operator"])

Web = Annotated[WebServices, Depends(services)]
Manage = Annotated[Scope, Depends(operator_scope("operator.privacy.incidents"))]
Read = Annotated[Scope, Depends(operator_scope("operator.privacy.incidents.read"))]
IncidentId = Annotated[str, Path(min_length=1, max_length=36)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "incident_not_found"}}
_CLOSED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "incident_closed (or incident_notice_already_sent)"}}


def incidents_of(web: WebServices) -> IncidentsService:
    """The service over the server's database and audit log (it holds no state of its own)."""
    return IncidentsService(web.sessions, web.audit)


@router.get("/operator/incidents", response_model=IncidentList, operation_id="list_incidents",
            summary="The breach register: open incidents first (most urgent clock first), with their clocks")
async def list_incidents(_scope: Read, web: Web,
                         status: Annotated[Literal["open", "all"], Query()] = "all") -> IncidentList:
    now = utcnow()
    views = await incidents_of(web).listing(include_closed=status == "all", now=now)
    return IncidentList(items=[incident_out(view, now) for view in views], next_cursor=None)


@router.post("/operator/incidents", response_model=IncidentOut, status_code=201, operation_id="create_incident",
             summary="Record a security incident; its notification clocks start")
async def create_incident(scope: Manage, web: Web, body: IncidentIn) -> IncidentOut:
    spec = IncidentSpec(title=body.title, description=body.description, severity=Severity(body.severity),
                        personal_data=body.personal_data, cpni=body.cpni, detected_at=body.detected_at,
                        determined_at=body.determined_at, org_ids=tuple(body.org_ids),
                        people_affected=body.people_affected)
    now = utcnow()
    return incident_out(await incidents_of(web).create(spec, actor=scope.actor, now=now), now)


@router.get("/operator/incidents/{incident_id}", response_model=IncidentOut, operation_id="get_incident",
            summary="One incident with its clocks, checklist and timeline", responses=_NOT_FOUND)
async def get_incident(_scope: Read, web: Web, incident_id: IncidentId) -> IncidentOut:
    now = utcnow()
    return incident_out(await incidents_of(web).get(incident_id, now=now), now)


@router.patch("/operator/incidents/{incident_id}", response_model=IncidentOut, operation_id="update_incident",
              summary="Correct or complete the facts of an open incident", responses=_NOT_FOUND | _CLOSED)
async def update_incident(scope: Manage, web: Web, incident_id: IncidentId, body: IncidentPatch) -> IncidentOut:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    now = utcnow()
    return incident_out(await incidents_of(web).update(incident_id, changes, actor=scope.actor, now=now), now)


@router.post("/operator/incidents/{incident_id}/notices/{notice}", response_model=IncidentOut,
             operation_id="mark_incident_notice", responses=_NOT_FOUND | _CLOSED,
             summary="Record that a notice was sent (authority, law_enforcement or customers): stops its clock")
async def mark_notice(scope: Manage, web: Web, incident_id: IncidentId,
                      notice: Annotated[Literal["authority", "law_enforcement", "customers"], Path()],
                      body: NoticeIn | None = None) -> IncidentOut:
    body = body or NoticeIn()
    now = utcnow()
    view = await incidents_of(web).mark_notice(incident_id, ClockKind(notice), actor=scope.actor, at=body.at,
                                               reference=body.reference, now=now)
    return incident_out(view, now)


@router.put("/operator/incidents/{incident_id}/checklist/{item}", response_model=IncidentOut,
            operation_id="tick_incident_checklist", responses=_NOT_FOUND | _CLOSED,
            summary="Tick or untick a checklist item (a notify_* item: marks its notice sent now)")
async def tick_checklist(scope: Manage, web: Web, incident_id: IncidentId,
                         item: Annotated[Literal["contain", "assess_scope", "preserve_evidence", "notify_authority",
                                                 "notify_law_enforcement", "notify_customers", "document",
                                                 "review"], Path()],
                         body: ChecklistIn | None = None) -> IncidentOut:
    done = body.done if body is not None else True
    now = utcnow()
    view = await incidents_of(web).tick(incident_id, ChecklistKey(item), actor=scope.actor, done=done, now=now)
    return incident_out(view, now)


@router.post("/operator/incidents/{incident_id}/notes", response_model=IncidentOut, status_code=201,
             operation_id="add_incident_note", summary="Add a note to the incident's timeline", responses=_NOT_FOUND)
async def add_note(scope: Manage, web: Web, incident_id: IncidentId, body: NoteIn) -> IncidentOut:
    now = utcnow()
    return incident_out(await incidents_of(web).add_note(incident_id, body.text, actor=scope.actor, now=now), now)


@router.post("/operator/incidents/{incident_id}/close", response_model=IncidentOut, operation_id="close_incident",
             summary="Close the incident (refused while a required notice is unsent: incident_notices_pending)",
             responses=_NOT_FOUND | _CLOSED)
async def close_incident(scope: Manage, web: Web, incident_id: IncidentId) -> IncidentOut:
    now = utcnow()
    return incident_out(await incidents_of(web).close(incident_id, actor=scope.actor, now=now), now)
