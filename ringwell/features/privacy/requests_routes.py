"""HTTP routes of people's privacy requests (thin: parse → service → serialise).

- ``/api/v1/me/privacy/requests``: the logged-in person's own requests. Making one (and
  downloading an export) needs a session with MFA on and a login of the last 10 minutes
  (:func:`ringwell.features.privacy.requests.gate`); an API key is an org's, not a person's (403).
  Restriction and objection take effect at once; a deletion is carried out at once when
  ``confirm`` is ``"DELETE"`` (else, and when it cannot be — legal hold, last owner — it stays
  open for privacy staff); a correction waits for staff; an export is downloaded from
  ``/me/privacy/requests/{id}/export``.
- ``/api/v1/operator/privacy/requests``: privacy staff (``operator.privacy.requests``): the queue
  (overdue first), entering a request received by email (with how identity was verified), moving
  it on, carrying it out, and downloading an export to send.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse

from ringwell.blobs import blob_store
from ringwell.errors import DomainError
from ringwell.features.accounts.models import User
from ringwell.features.audit.service import Actor
from ringwell.features.auth.errors import FreshLoginRequired, PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.requests import Gate, Kind, Source, Status, gate, is_overdue
from ringwell.features.privacy.requests_errors import MfaNotEnabled, RequestNotFound
from ringwell.features.privacy.requests_schemas import (
    ActIn,
    DataRequestList,
    DataRequestOut,
    MyRequestIn,
    RequestSubjectOut,
    StaffRequestIn,
    StatusIn,
)
from ringwell.features.privacy.requests_service import PORTAL_VERIFICATION, Correction, RequestsService
from ringwell.storage.base import utcnow
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, actor_of, operator_scope, require_identity, services
from ringwell.web.errors import ErrorBody

__all__ = ["DELETE_CONFIRMATION", "carry_out_mine", "export_response", "fresh_person", "out", "requests_service",
           "router"]

router = APIRouter(tags=["privacy"])
PERMISSION = "operator.privacy.requests"
Staff = Annotated[Scope, Depends(operator_scope(PERMISSION))]
RequestId = Annotated[str, Path(min_length=1, max_length=36)]
DELETE_CONFIRMATION = "DELETE"
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The request's state does not allow it (already done, a legal hold, "
                                             "the org's last owner)"}}


def requests_service(web: WebServices) -> RequestsService:
    """The server's RequestsService, composed on first use (the register is assembled then).

    Deletions go through the server's ErasureService (``web.erasure``), whose hook makes the SIP
    side forget the erased person's logins and registrations at once."""
    if web.privacy_requests is None:
        from ringwell.features.privacy.catalog import REGISTER  # noqa: PLC0415 - assembled at first use

        web.privacy_requests = RequestsService(web.sessions, web.audit, web.accounts,
                                               blob_store(web.settings, web.sessions), REGISTER, eraser=web.erasure,
                                               mailer=web.mailer)
    return web.privacy_requests


def out(row: DataRequest) -> DataRequestOut:
    return DataRequestOut(id=row.id, org_id=row.org_id, user_id=row.user_id, subject_email=row.subject_email,
                          kind=row.kind, law=row.law, source=row.source, details=row.details,
                          received_at=row.received_at, due_at=row.due_at, status=row.status,
                          identity_verified=row.identity_verified, closed_at=row.closed_at, outcome=row.outcome,
                          overdue=is_overdue(Status(row.status), row.due_at, utcnow()),
                          subjects=[RequestSubjectOut.model_validate(s) for s in row.subjects or []])


async def fresh_person(request: Request, identity: Identity) -> tuple[User, Gate]:
    """The logged-in person's ``users`` row and whether they pass the fresh-login + MFA gate."""
    if identity.user_id is None or identity.session_id is None:
        raise PermissionDenied("privacy requests are a person's: log in to the portal (an API key is not one)",
                               {"reason": "not_a_person"})
    async with services(request).sessions() as session:
        user = await session.get(User, identity.user_id)
    if user is None:
        raise PermissionDenied("your account no longer exists", {"reason": "not_a_person"})
    return user, gate(authenticated_at=identity.authenticated_at, mfa_enabled=user.mfa_enabled_at is not None,
                      mfa_pending=identity.mfa_pending, now=utcnow())


def _require(state: Gate) -> None:
    if state is Gate.MFA_SETUP:
        raise MfaNotEnabled("turn on two-step verification (Settings → Security) before making a privacy request")
    if state is Gate.STALE:
        raise FreshLoginRequired("log in again (password and code): privacy requests need a login of the last "
                                 "10 minutes")


async def carry_out_mine(service: RequestsService, row: DataRequest, actor: Actor, *,
                         confirm: str | None) -> DataRequest:
    """What a person's own request does at once: restriction/objection always; deletion when confirmed.

    A deletion that cannot be done now (legal hold, the org's last owner) stays open for staff; its
    reason is returned in the request's outcome so the person sees it."""
    kind = Kind(row.kind)
    if kind in (Kind.RESTRICTION, Kind.OBJECTION):
        return await service.restrict(row.id, actor=actor)
    if kind is Kind.DELETION and confirm == DELETE_CONFIRMATION:
        try:
            return await service.erase(row.id, actor=actor)
        except DomainError as exc:
            return await service.note(row.id, {"waiting": exc.message, "error_id": exc.error_id})
    return row


def export_response(stream: Any, row: DataRequest) -> StreamingResponse:
    day = row.received_at.strftime("%Y%m%d")
    return StreamingResponse(stream, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="ringwell-export-{day}-{row.id[:8]}.zip"',
        "Cache-Control": "no-store"})


# -- the person's own --------------------------------------------------------------------------------
@router.get("/me/privacy/requests", response_model=DataRequestList, operation_id="list_my_privacy_requests",
            summary="The caller's own privacy requests, newest first")
async def list_mine(request: Request) -> DataRequestList:
    identity = await require_identity(request)
    user, _state = await fresh_person(request, identity)
    rows = await requests_service(services(request)).of_user(user.id)
    return DataRequestList(items=[out(r) for r in rows])


@router.post("/me/privacy/requests", response_model=DataRequestOut, status_code=201,
             operation_id="create_my_privacy_request",
             summary="Ask for your data (access/export), its correction, deletion, restriction or objection")
async def create_mine(request: Request, body: MyRequestIn) -> DataRequestOut:
    identity = await require_identity(request)
    user, state = await fresh_person(request, identity)
    _require(state)
    service = requests_service(services(request))
    actor = actor_of(request, identity)
    row = await service.create(kind=body.kind, law=body.law, source=Source.PORTAL.value,
                               subject_email=user.login_email or user.email, identity_verified=PORTAL_VERIFICATION,
                               actor=actor, details=body.details, org_id=user.org_id, user_id=user.id)
    return out(await carry_out_mine(service, row, actor, confirm=body.confirm))


@router.get("/me/privacy/requests/{request_id}/export", operation_id="download_my_export",
            response_class=StreamingResponse, summary="Download the zip of your access or export request")
async def export_mine(request: Request, request_id: RequestId) -> StreamingResponse:
    identity = await require_identity(request)
    user, state = await fresh_person(request, identity)
    _require(state)
    service = requests_service(services(request))
    row = await service.get(request_id)
    if row.user_id != user.id:
        raise RequestNotFound("no such privacy request", {"request_id": request_id})
    return export_response(await service.export(row.id, actor=actor_of(request, identity)), row)


# -- privacy staff -----------------------------------------------------------------------------------
@router.get("/operator/privacy/requests", response_model=DataRequestList, operation_id="privacy_request_queue",
            summary="The queue: unanswered requests, overdue first (closed=true: the answered ones)")
async def queue(scope: Staff, request: Request, closed: bool = False) -> DataRequestList:
    items = await requests_service(services(request)).queue(closed=closed)
    return DataRequestList(items=[out(i.request) for i in items])


@router.post("/operator/privacy/requests", response_model=DataRequestOut, status_code=201,
             operation_id="enter_privacy_request", summary="Enter a request received by email or post")
async def enter(scope: Staff, request: Request, body: StaffRequestIn) -> DataRequestOut:
    row = await requests_service(services(request)).create(
        kind=body.kind, law=body.law, source=Source.STAFF.value, subject_email=body.subject_email,
        identity_verified=body.identity_verified, actor=scope.actor, details=body.details,
        received_at=body.received_at, org=body.org)
    return out(row)


@router.get("/operator/privacy/requests/{request_id}", response_model=DataRequestOut,
            operation_id="get_privacy_request", summary="One request")
async def get_one(scope: Staff, request: Request, request_id: RequestId) -> DataRequestOut:
    return out(await requests_service(services(request)).get(request_id))


@router.post("/operator/privacy/requests/{request_id}/status", response_model=DataRequestOut, responses=_CONFLICT,
             operation_id="move_privacy_request", summary="Start, close or refuse (with the reason told) a request")
async def move(scope: Staff, request: Request, request_id: RequestId, body: StatusIn) -> DataRequestOut:
    return out(await requests_service(services(request)).transition(request_id, body.status, actor=scope.actor,
                                                                    reason=body.reason))


@router.post("/operator/privacy/requests/{request_id}/carry-out", response_model=DataRequestOut,
             responses=_CONFLICT, operation_id="carry_out_privacy_request",
             summary="Carry out a correction (the new values), deletion, restriction or objection")
async def carry_out(scope: Staff, request: Request, request_id: RequestId, body: ActIn) -> DataRequestOut:
    service = requests_service(services(request))
    row = await service.get(request_id)
    kind = Kind(row.kind)
    if kind is Kind.CORRECTION:
        return out(await service.correct(request_id, Correction(body.name, body.email, body.phone), actor=scope.actor))
    if kind is Kind.DELETION:
        return out(await service.erase(request_id, actor=scope.actor))
    if kind in (Kind.RESTRICTION, Kind.OBJECTION):
        return out(await service.restrict(request_id, actor=scope.actor))
    return out(row)  # access / export: download it from .../export


@router.get("/operator/privacy/requests/{request_id}/export", operation_id="download_privacy_export",
            response_class=StreamingResponse, summary="The zip of an access or export request, to send to the person")
async def export_for_person(scope: Staff, request: Request, request_id: RequestId) -> StreamingResponse:
    service = requests_service(services(request))
    row = await service.get(request_id)
    return export_response(await service.export(row.id, actor=scope.actor), row)
