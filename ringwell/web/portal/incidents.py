"""Portal pages: the breach register in the operator console (``/operator/incidents``).

Privacy staff (``operator.privacy.incidents``) record incidents, mark notices sent, tick the
checklist, add notes and close; auditors (``operator.privacy.incidents.read``) read. Anyone else
gets a 403 page. The list shows each incident's three clocks as coloured badges with the time
left — red when overdue, amber under 24 hours — open incidents first, most urgent first. Every
change goes through ``IncidentsService`` and is audited there. Times are UTC (entered and shown).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringwell.errors import DomainError
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.incidents import ChecklistKey, Clock, ClockKind, ClockState, Severity, time_left
from ringwell.features.privacy.incidents_errors import InvalidIncident
from ringwell.features.privacy.incidents_routes import incidents_of
from ringwell.features.privacy.incidents_service import IncidentSpec
from ringwell.storage.base import utcnow
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.operator import TABS
from ringwell.web.portal.pages import show

__all__ = ["clock_badge", "router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
IncidentId = Annotated[str, Path(min_length=1, max_length=36)]
READ = "operator.privacy.incidents.read"
MANAGE = "operator.privacy.incidents"
_LABELS = {ClockKind.AUTHORITY: "Authority (72 h)", ClockKind.LAW_ENFORCEMENT: "Law enforcement (7 business days)",
           ClockKind.CUSTOMERS: "Customers"}
_BADGE = {ClockState.OVERDUE: "error", ClockState.DUE_SOON: "warn", ClockState.PENDING: "info",
          ClockState.DONE: "ok", ClockState.NOT_APPLICABLE: ""}
_DONE = {
    "created": ("ok", "The incident was recorded. Its clocks are running."),
    "notice": ("ok", "The notice was recorded as sent."),
    "checklist": ("ok", "The checklist was updated."),
    "note": ("ok", "The note was added to the timeline."),
    "closed": ("ok", "The incident was closed."),
}


def clock_badge(clock: Clock) -> str:
    """The badge's CSS class: red overdue, amber due soon, blue running, green sent, grey not applicable."""
    return _BADGE[clock.state]


def _staff(identity: Identity, permission: str) -> None:
    if not identity.staff or not can(identity, permission):
        raise PermissionDenied("this is the operator's breach register: privacy staff only",
                               {"permission": permission})


def _tabs(identity: Identity) -> list[tuple[str, str]]:
    return [(path, label) for path, label, permission in TABS if can(identity, permission)]


def _page(request: Request, identity: Identity, template: str, context: dict[str, Any], *,
          status_code: int = 200) -> HTMLResponse:
    done = request.query_params.get("done")
    return show(request, template, {
        "tabs": _tabs(identity), "can_manage": can(identity, MANAGE), "labels": _LABELS,
        "time_left": time_left, "clock_badge": clock_badge, "now": utcnow(), **context,
    }, status_code=status_code, flash=_DONE.get(done or ""))


def _parse_time(value: str, name: str) -> datetime | None:
    """A ``datetime-local`` field (``2026-12-07T09:30``), read as UTC; blank → None."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidIncident(f"{name}: enter a date and time like 2026-12-07 09:30 (UTC)", {"field": name}) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# -- the register --------------------------------------------------------------------------------
@router.get("/operator/incidents", response_class=HTMLResponse)
async def incidents_page(request: Request, identity: PageIdentity) -> HTMLResponse:
    _staff(identity, READ)
    return await _list_page(request, identity)


async def _list_page(request: Request, identity: Identity, *, error: str | None = None,
                     form: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    now = utcnow()
    views = await incidents_of(services(request)).listing(now=now)
    return _page(request, identity, "operator/incidents.html", {
        "views": views, "error": error, "form": form or {"severity": "medium"},
        "severities": [s.value for s in Severity], "now": now,
    }, status_code=status_code)


@router.post("/operator/incidents", response_model=None)
async def create_incident(request: Request, identity: PageIdentity,
                          title: Annotated[str, Form(max_length=200)] = "",
                          description: Annotated[str, Form(max_length=20_000)] = "",
                          severity: Annotated[str, Form(max_length=16)] = "medium",
                          personal_data: Annotated[str, Form(max_length=5)] = "",
                          cpni: Annotated[str, Form(max_length=5)] = "",
                          detected_at: Annotated[str, Form(max_length=40)] = "",
                          determined_at: Annotated[str, Form(max_length=40)] = "",
                          people_affected: Annotated[str, Form(max_length=12)] = "") -> Response:
    _staff(identity, MANAGE)
    form = {"title": title, "description": description, "severity": severity, "personal_data": personal_data,
            "cpni": cpni, "detected_at": detected_at, "determined_at": determined_at,
            "people_affected": people_affected}
    try:
        if severity not in {s.value for s in Severity}:
            raise InvalidIncident("choose a severity", {"field": "severity"})
        if people_affected.strip() and not people_affected.strip().isdigit():
            raise InvalidIncident("people affected: a whole number", {"field": "people_affected"})
        spec = IncidentSpec(
            title=title, description=description, severity=Severity(severity),
            personal_data=personal_data in ("1", "on", "true"), cpni=cpni in ("1", "on", "true"),
            detected_at=_parse_time(detected_at, "detected_at") or utcnow(),
            determined_at=_parse_time(determined_at, "determined_at"),
            people_affected=int(people_affected) if people_affected.strip() else None,
        )
        view = await incidents_of(services(request)).create(spec, actor=actor_of(request, identity))
    except DomainError as exc:
        return await _list_page(request, identity, error=exc.message, form=form, status_code=exc.status)
    return RedirectResponse(f"/operator/incidents/{view.incident.id}?done=created", status_code=303)


# -- one incident --------------------------------------------------------------------------------
@router.get("/operator/incidents/{incident_id}", response_class=HTMLResponse)
async def incident_page(request: Request, identity: PageIdentity, incident_id: IncidentId) -> HTMLResponse:
    _staff(identity, READ)
    return await _incident_page(request, identity, incident_id)


async def _incident_page(request: Request, identity: Identity, incident_id: str, *, error: str | None = None,
                         status_code: int = 200) -> HTMLResponse:
    now = utcnow()
    view = await incidents_of(services(request)).get(incident_id, now=now)
    return _page(request, identity, "operator/incident.html", {"view": view, "i": view.incident, "error": error,
                                                                "now": now}, status_code=status_code)


async def _act(request: Request, identity: Identity, incident_id: str, done: str, action: Any) -> Response:
    """Run ``action`` (a coroutine); on a domain error show the incident page with the message."""
    try:
        await action
    except DomainError as exc:
        return await _incident_page(request, identity, incident_id, error=exc.message, status_code=exc.status)
    return RedirectResponse(f"/operator/incidents/{incident_id}?done={done}", status_code=303)


@router.post("/operator/incidents/{incident_id}/notices/{notice}", response_model=None)
async def mark_notice(request: Request, identity: PageIdentity, incident_id: IncidentId,
                      notice: Annotated[str, Path(max_length=20)],
                      at: Annotated[str, Form(max_length=40)] = "",
                      reference: Annotated[str, Form(max_length=200)] = "") -> Response:
    _staff(identity, MANAGE)
    if notice not in {k.value for k in ClockKind}:
        raise InvalidIncident("no such notice", {"notice": notice})
    service = incidents_of(services(request))

    async def run() -> None:
        await service.mark_notice(incident_id, ClockKind(notice), actor=actor_of(request, identity),
                                  at=_parse_time(at, "at"), reference=reference)

    return await _act(request, identity, incident_id, "notice", run())


@router.post("/operator/incidents/{incident_id}/checklist/{item}", response_model=None)
async def tick(request: Request, identity: PageIdentity, incident_id: IncidentId,
               item: Annotated[str, Path(max_length=32)],
               done: Annotated[str, Form(max_length=5)] = "1") -> Response:
    _staff(identity, MANAGE)
    if item not in {k.value for k in ChecklistKey}:
        raise InvalidIncident("no such checklist item", {"item": item})
    action = incidents_of(services(request)).tick(incident_id, ChecklistKey(item), actor=actor_of(request, identity),
                                                  done=done in ("1", "on", "true"))
    return await _act(request, identity, incident_id, "checklist", action)


@router.post("/operator/incidents/{incident_id}/notes", response_model=None)
async def add_note(request: Request, identity: PageIdentity, incident_id: IncidentId,
                   text: Annotated[str, Form(max_length=5_000)] = "") -> Response:
    _staff(identity, MANAGE)
    action = incidents_of(services(request)).add_note(incident_id, text, actor=actor_of(request, identity))
    return await _act(request, identity, incident_id, "note", action)


@router.post("/operator/incidents/{incident_id}/close", response_model=None)
async def close(request: Request, identity: PageIdentity, incident_id: IncidentId) -> Response:
    _staff(identity, MANAGE)
    action = incidents_of(services(request)).close(incident_id, actor=actor_of(request, identity))
    return await _act(request, identity, incident_id, "closed", action)
