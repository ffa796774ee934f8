"""Portal pages of people's privacy requests.

- ``/privacy/me``: the logged-in person's requests and the forms to make one (export, correction,
  deletion with a clear warning, restriction, objection). It needs MFA on and a login of the last
  10 minutes: otherwise the person is redirected to ``/privacy/me/check`` with a message and a
  way on (turn MFA on; log in again: ``POST /privacy/me/relogin`` ends this session and comes back
  here after the new login).
- ``/operator/privacy/requests``: privacy staff's queue (overdue highlighted first), the form to
  enter a request received by email (with how identity was verified), and acting on each.

Every change goes through ``RequestsService`` (audited there); forms post the session's CSRF token.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringwell.errors import DomainError
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.requests import FRESH_LOGIN, Gate, Kind, Law, Source, Status, receipt_lines
from ringwell.features.privacy.requests_routes import (
    DELETE_CONFIRMATION,
    PERMISSION,
    carry_out_mine,
    export_response,
    fresh_person,
    requests_service,
)
from ringwell.features.privacy.requests_service import PORTAL_VERIFICATION, Correction
from ringwell.storage.base import utcnow
from ringwell.web.deps import actor_of
from ringwell.web.portal.auth import clear_session_cookie
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.operator import TABS
from ringwell.web.portal.pages import show

__all__ = ["router"]

router = APIRouter()
PageIdentity = Annotated[Identity, Depends(page_identity)]
RequestId = Annotated[str, Path(min_length=1, max_length=36)]
HOME = "/privacy/me"
QUEUE = "/operator/privacy/requests"
_KIND_LABELS = {
    Kind.ACCESS.value: "A copy of my data", Kind.EXPORT.value: "My data to take elsewhere (export)",
    Kind.CORRECTION.value: "Correct my data", Kind.DELETION.value: "Delete my account and data",
    Kind.RESTRICTION.value: "Restrict processing", Kind.OBJECTION.value: "Object to processing",
}
_MINE_DONE = {
    "export": ("ok", "Your export is ready: download it below."),
    "restricted": ("ok", "Done: optional processing of your data (voicemail transcripts, marketing, analytics) "
                         "has stopped."),
    "received": ("ok", "Your request was received. We answer before its due date."),
}
_STAFF_DONE = {
    "entered": ("ok", "The request was entered; its due date is set."),
    "updated": ("ok", "The request was updated."),
}


def _form_value(form: Any, key: str, limit: int = 4000) -> str:
    value = form.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# -- the person's page ---------------------------------------------------------------------------
async def _gate_redirect(request: Request, identity: Identity) -> RedirectResponse | None:
    _user, state = await fresh_person(request, identity)
    if state is Gate.OK:
        return None
    return _redirect(f"{HOME}/check?reason={state.value}")


async def _mine(request: Request, identity: Identity, *, error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    user, _state = await fresh_person(request, identity)
    rows = await requests_service(services(request)).of_user(user.id)
    return show(request, "privacy/requests_me.html", {
        "rows": rows, "kinds": _KIND_LABELS, "laws": [law.value for law in Law], "error": error, "now": utcnow(),
        "confirm_word": DELETE_CONFIRMATION, "exportable": (Kind.ACCESS.value, Kind.EXPORT.value),
        "open_states": (Status.OPEN.value, Status.IN_PROGRESS.value),
    }, status_code=status_code, flash=_MINE_DONE.get(request.query_params.get("done", "")))


@router.get(HOME, response_class=HTMLResponse)
async def my_requests(request: Request, identity: PageIdentity) -> Response:
    return await _gate_redirect(request, identity) or await _mine(request, identity)


@router.get(f"{HOME}/check", response_class=HTMLResponse)
async def check(request: Request, identity: PageIdentity) -> Response:
    """Why the privacy page is not open yet, and the way on."""
    _user, state = await fresh_person(request, identity)
    if state is Gate.OK:
        return _redirect(HOME)
    return show(request, "privacy/requests_check.html", {"state": state.value,
                                                         "minutes": int(FRESH_LOGIN.total_seconds() // 60)})


@router.post(f"{HOME}/relogin")
async def relogin(request: Request, identity: PageIdentity) -> Response:
    """End this session and log in again (password, then the code), coming back to the privacy page."""
    if identity.session_id is not None:
        await services(request).auth.logout(identity.session_id, actor_of(request, identity))
    response = _redirect(f"/login?next={quote(HOME)}")
    clear_session_cookie(response)
    return response


@router.post(f"{HOME}/requests", response_class=HTMLResponse)
async def make_request(request: Request, identity: PageIdentity) -> Response:
    redirect = await _gate_redirect(request, identity)
    if redirect is not None:
        return redirect
    user, _state = await fresh_person(request, identity)
    form = await request.form()
    kind = _form_value(form, "kind", 16)
    service = requests_service(services(request))
    actor = actor_of(request, identity)
    try:
        if kind == Kind.DELETION.value and _form_value(form, "confirm", 16) != DELETE_CONFIRMATION:
            return await _mine(request, identity, error=f"To delete your account, type {DELETE_CONFIRMATION} in "
                                                        "the box: it cannot be undone.", status_code=422)
        row = await service.create(kind=kind, law=_form_value(form, "law", 8) or Law.GDPR.value,
                                   source=Source.PORTAL.value, subject_email=user.login_email or user.email,
                                   identity_verified=PORTAL_VERIFICATION, actor=actor,
                                   details=_form_value(form, "details") or None, org_id=user.org_id,
                                   user_id=user.id)
        row = await carry_out_mine(service, row, actor, confirm=_form_value(form, "confirm", 16))
    except DomainError as exc:
        return await _mine(request, identity, error=exc.message, status_code=exc.status)
    if row.kind == Kind.DELETION.value and row.status == Status.DONE.value:
        # The receipt, now: after this response the person has no account to read it from.
        request.state.identity = None  # the account is gone: the page is rendered as for nobody
        outcome = row.outcome or {}
        response = show(request, "privacy/receipt.html", {
            "kept": receipt_lines(outcome.get("receipts") or []), "emailed": bool(outcome.get("receipt_emailed")),
            "address": row.subject_email})
        clear_session_cookie(response)  # its sessions went with it
        return response
    if row.kind in (Kind.ACCESS.value, Kind.EXPORT.value):
        return _redirect(f"{HOME}?done=export")
    if row.status == Status.DONE.value:
        return _redirect(f"{HOME}?done=restricted")
    return _redirect(f"{HOME}?done=received")


@router.get(f"{HOME}/requests/{{request_id}}/export")
async def download(request: Request, identity: PageIdentity, request_id: RequestId) -> Response:
    redirect = await _gate_redirect(request, identity)
    if redirect is not None:
        return redirect
    user, _state = await fresh_person(request, identity)
    service = requests_service(services(request))
    row = await service.get(request_id)
    if row.user_id != user.id:
        raise PermissionDenied("this is not your request", {"request_id": request_id})
    return export_response(await service.export(row.id, actor=actor_of(request, identity)), row)


# -- privacy staff ---------------------------------------------------------------------------------
def _staff(identity: Identity) -> None:
    if not identity.staff or not can(identity, PERMISSION):
        raise PermissionDenied("this is the operator's privacy request queue: privacy staff only",
                               {"permission": PERMISSION})


def _tabs(identity: Identity) -> list[tuple[str, str]]:
    return [(path, label) for path, label, permission in TABS if can(identity, permission)]


async def _queue(request: Request, identity: Identity, *, error: str | None = None, form: dict[str, str] | None = None,
                 status_code: int = 200) -> HTMLResponse:
    service = requests_service(services(request))
    return show(request, "operator/privacy_requests.html", {
        "tabs": _tabs(identity), "items": await service.queue(), "closed": await service.queue(closed=True, limit=50),
        "kinds": _KIND_LABELS, "laws": [law.value for law in Law], "error": error, "form": form or {},
        "now": utcnow(),
    }, status_code=status_code, flash=_STAFF_DONE.get(request.query_params.get("done", "")))


@router.get(QUEUE, response_class=HTMLResponse)
async def staff_queue(request: Request, identity: PageIdentity) -> Response:
    _staff(identity)
    return await _queue(request, identity)


@router.post(QUEUE, response_class=HTMLResponse)
async def staff_enter(request: Request, identity: PageIdentity) -> Response:
    _staff(identity)
    form = await request.form()
    values = {key: _form_value(form, key)
              for key in ("kind", "law", "subject_email", "org", "identity_verified", "details")}
    try:
        await requests_service(services(request)).create(
            kind=values["kind"], law=values["law"] or Law.GDPR.value, source=Source.STAFF.value,
            subject_email=values["subject_email"], identity_verified=values["identity_verified"],
            actor=actor_of(request, identity), details=values["details"] or None, org=values["org"] or None)
    except DomainError as exc:
        return await _queue(request, identity, error=exc.message, form=values, status_code=exc.status)
    return _redirect(f"{QUEUE}?done=entered")


@router.post(f"{QUEUE}/{{request_id}}", response_class=HTMLResponse)
async def staff_act(request: Request, identity: PageIdentity, request_id: RequestId) -> Response:
    """``action``: start | refuse (with ``reason``) | done | carry-out (correction fields for a correction)."""
    _staff(identity)
    form = await request.form()
    action = _form_value(form, "action", 16)
    service = requests_service(services(request))
    actor = actor_of(request, identity)
    try:
        if action == "start":
            await service.transition(request_id, Status.IN_PROGRESS.value, actor=actor)
        elif action == "refuse":
            await service.transition(request_id, Status.REFUSED.value, actor=actor,
                                     reason=_form_value(form, "reason", 255))
        elif action == "done":
            await service.transition(request_id, Status.DONE.value, actor=actor)
        elif action == "carry-out":
            row = await service.get(request_id)
            if row.kind == Kind.CORRECTION.value:
                await service.correct(request_id, Correction(_form_value(form, "name", 200) or None,
                                                             _form_value(form, "email", 320) or None,
                                                             _form_value(form, "phone", 32) or None), actor=actor)
            elif row.kind == Kind.DELETION.value:
                await service.erase(request_id, actor=actor)
            elif row.kind in (Kind.RESTRICTION.value, Kind.OBJECTION.value):
                await service.restrict(request_id, actor=actor)
        else:
            return await _queue(request, identity, error="unknown action", status_code=422)
    except DomainError as exc:
        return await _queue(request, identity, error=exc.message, status_code=exc.status)
    return _redirect(f"{QUEUE}?done=updated")


@router.get(f"{QUEUE}/{{request_id}}/export")
async def staff_export(request: Request, identity: PageIdentity, request_id: RequestId) -> Response:
    _staff(identity)
    service = requests_service(services(request))
    row = await service.get(request_id)
    return export_response(await service.export(row.id, actor=actor_of(request, identity)), row)
