"""API routes of call recording: policies, the recordings of calls, and live control.

* ``GET/PUT /orgs/{org_id}/recording-policy`` — the org's default, and the users' and numbers'
  own policies (``PUT .../users/{user_id}/recording-policy``, ``PUT .../numbers/{e164}/recording-policy``;
  ``{"mode": null}`` inherits again). Owners and admins (``recordings.policy``), audited.
* ``GET /orgs/{org_id}/recordings[?call_id=]``, ``GET .../recordings/{id}``, ``GET .../{id}/audio``
  (Ogg/Opus, decrypted as it streams), ``DELETE .../{id}``. A member sees the recordings of the calls
  they were on; a play or download by anyone but a party of the call is a ``recording.played``
  audit event, a list showing recordings of calls the reader was not on a ``recordings.read`` one;
  a delete is ``recording.delete``.
* ``POST /orgs/{org_id}/calls/{call_id}/recording`` ``{"action": "start"|"stop"|"pause"|"resume"}`` — a
  call in progress on this server; a member only on their own calls. Start answers once the
  announcement has been played to every party and the recording runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response, StreamingResponse

from ringwell.blobs import blob_store
from ringwell.features.audit.reads import record_reads
from ringwell.features.audit.service import Actor
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.permissions import Role
from ringwell.features.auth.tokens import Identity
from ringwell.features.recordings.errors import CallNotLive, RecordingNotFound
from ringwell.features.recordings.models import Mode, Recording
from ringwell.features.recordings.schemas import (
    ControlIn,
    ControlOut,
    PolicyIn,
    PolicyList,
    RecordingList,
    RecordingOut,
)
from ringwell.features.recordings.service import ORG_SCOPE, RecordingService, number_scope, user_scope
from ringwell.web.blob_response import blob_response
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, org_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["audio_response", "own_calls_only", "recording_service", "router"]

router = APIRouter(tags=["recordings"])

RecordingId = Annotated[str, Path(min_length=1, max_length=36)]
Web = Annotated[WebServices, Depends(services)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "recording_not_found"}}


def recording_service(web: WebServices) -> RecordingService:
    """The server's recordings service; composed here on first use when the server did not set one."""
    if web.recordings is None:
        web.recordings = RecordingService(web.sessions, blob_store(web.settings, web.sessions),
                                          retention_days=web.settings.recording_retention_days)
    return web.recordings


def _service(web: Web) -> RecordingService:
    return recording_service(web)


Service = Annotated[RecordingService, Depends(_service)]


def own_calls_only(identity: Identity, *, staff_access: bool = False) -> str | None:
    """The user a member is limited to (None: every call of the org). The portal uses it too."""
    if staff_access or identity.role != Role.MEMBER.value:
        return None
    if identity.user_id is None:
        raise PermissionDenied("your role only shows your own calls", {"permission": "recordings.read"})
    return identity.user_id


def _own_calls_only(scope: Scope) -> str | None:
    return own_calls_only(scope.identity, staff_access=scope.staff_access)


def _party(row: Recording, user_id: str | None) -> bool:
    return user_id is not None and user_id in (row.caller_user_id, row.callee_user_id)


async def _visible(service: RecordingService, scope: Scope, recording_id: str) -> Recording:
    row = await service.get(scope.org.id, recording_id)
    own = _own_calls_only(scope)
    if own is not None and not _party(row, own):
        raise RecordingNotFound("no such recording", {"recording_id": recording_id})
    return row


# -- policies ---------------------------------------------------------------------------------
@router.get("/orgs/{org_id}/recording-policy", response_model=PolicyList, operation_id="get_recording_policy",
            summary="Who is recorded: the org's default and the users' and numbers' own modes")
async def get_policy(scope: Annotated[Scope, Depends(org_scope("recordings.policy"))], service: Service) -> PolicyList:
    policies = await service.policies(scope.org.id)
    return PolicyList(
        organization=policies.get(ORG_SCOPE, Mode.OFF),
        users={key.removeprefix("user:"): mode for key, mode in policies.items() if key.startswith("user:")},
        numbers={key.removeprefix("number:"): mode for key, mode in policies.items() if key.startswith("number:")},
    )


async def _set(web: WebServices, service: RecordingService, scope: Scope, key: str, body: PolicyIn) -> PolicyList:
    mode = body.mode
    if key == ORG_SCOPE and mode is None:
        mode = Mode.OFF
    await service.set_policy(scope.org.id, key, mode)
    await web.audit.record("recording.policy", scope.actor, org_id=scope.org.id, target_type="recording_policy",
                           target_id=key[:64], details={"scope": key, "mode": mode.value if mode else None})
    return await get_policy(scope, service)


@router.put("/orgs/{org_id}/recording-policy", response_model=PolicyList, operation_id="set_org_recording_policy",
            summary="Set the org's default recording mode (off by default)")
async def set_org_policy(scope: Annotated[Scope, Depends(org_scope("recordings.policy"))], service: Service,
                         web: Web, body: PolicyIn) -> PolicyList:
    return await _set(web, service, scope, ORG_SCOPE, body)


@router.put("/orgs/{org_id}/users/{user_id}/recording-policy", response_model=PolicyList,
            operation_id="set_user_recording_policy", summary="Set (or, with null, inherit) a user's recording mode")
async def set_user_policy(scope: Annotated[Scope, Depends(org_scope("recordings.policy"))], service: Service,
                          web: Web, body: PolicyIn,
                          user_id: Annotated[str, Path(min_length=1, max_length=36)]) -> PolicyList:
    return await _set(web, service, scope, user_scope(user_id), body)


@router.put("/orgs/{org_id}/numbers/{e164}/recording-policy", response_model=PolicyList,
            operation_id="set_number_recording_policy",
            summary="Set (or, with null, inherit) the recording mode of one of the org's numbers")
async def set_number_policy(scope: Annotated[Scope, Depends(org_scope("recordings.policy"))], service: Service,
                            web: Web, body: PolicyIn,
                            e164: Annotated[str, Path(pattern=r"^\+[1-9][0-9]{1,14}$")]) -> PolicyList:
    return await _set(web, service, scope, number_scope(e164), body)


# -- recordings -------------------------------------------------------------------------------
@router.get("/orgs/{org_id}/recordings", response_model=RecordingList, operation_id="list_recordings",
            summary="Recordings, newest first (of one call with call_id; a member: the calls they were on)")
async def list_recordings(scope: Annotated[Scope, Depends(org_scope("recordings.read"))], service: Service, web: Web,
                          call_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> RecordingList:
    rows = await service.list(scope.org.id, call_record_id=call_id, user_id=_own_calls_only(scope), limit=limit)
    await record_reads(web.audit, scope.actor, action="recordings.read", org_id=scope.org.id,
                       target_type="recording", records=[(r.id, (r.caller_user_id, r.callee_user_id)) for r in rows],
                       staff=scope.staff_access)
    return RecordingList(items=[RecordingOut.of(row) for row in rows])


@router.get("/orgs/{org_id}/recordings/{recording_id}", response_model=RecordingOut, operation_id="get_recording",
            summary="One recording", responses=_NOT_FOUND)
async def get_recording(scope: Annotated[Scope, Depends(org_scope("recordings.read"))], service: Service,
                        recording_id: RecordingId) -> RecordingOut:
    return RecordingOut.of(await _visible(service, scope, recording_id))


@router.get("/orgs/{org_id}/recordings/{recording_id}/audio", response_class=StreamingResponse,
            operation_id="download_recording_audio", summary="The recording (Ogg/Opus, stereo, streamed)",
            responses={200: {"content": {"audio/ogg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "Ogg/Opus: left the caller, right the callee"}, **_NOT_FOUND})
async def download_audio(scope: Annotated[Scope, Depends(org_scope("recordings.read"))], service: Service, web: Web,
                         recording_id: RecordingId) -> StreamingResponse:
    row = await _visible(service, scope, recording_id)
    return await audio_response(web, service, row, scope.identity, scope.actor)


async def audio_response(web: WebServices, service: RecordingService, row: Recording, identity: Identity,
                         actor: Actor, *, attachment: bool = True) -> StreamingResponse:
    """The recording, streamed; a play by anyone but a party of the call is audited first.
    ``row`` is already scoped to what ``identity`` may see. The portal's player uses it too."""
    _, blob = await service.open_audio(row.org_id, row.id)  # errors answer before streaming starts
    if not _party(row, identity.user_id):
        try:
            await web.audit.record("recording.played", actor, org_id=row.org_id, target_type="recording",
                                   target_id=row.id, details={"call_id": row.call_record_id})
        except BaseException:
            blob.close()
            raise
    return blob_response(blob, "audio/ogg", f"recording-{row.id}.ogg", attachment=attachment)


@router.delete("/orgs/{org_id}/recordings/{recording_id}", status_code=204, response_class=Response,
               operation_id="delete_recording", summary="Delete a recording: its file, then its row",
               responses=_NOT_FOUND)
async def delete_recording(scope: Annotated[Scope, Depends(org_scope("recordings.write"))], service: Service,
                           web: Web, recording_id: RecordingId) -> Response:
    row = await _visible(service, scope, recording_id)
    await service.delete(scope.org.id, row.id)
    await web.audit.record("recording.delete", scope.actor, org_id=row.org_id, target_type="recording",
                           target_id=row.id, details={"call_id": row.call_record_id})
    return Response(status_code=204)


# -- live control -----------------------------------------------------------------------------
@router.post("/orgs/{org_id}/calls/{call_id}/recording", response_model=ControlOut,
             operation_id="control_call_recording",
             summary="Start (after the announcement), stop, pause or resume a call's recording",
             responses={404: {"model": ErrorBody, "description": "call_not_live"},
                        409: {"model": ErrorBody, "description": "recording_not_allowed | recording_state"}})
async def control(scope: Annotated[Scope, Depends(org_scope("recordings.control"))], web: Web, body: ControlIn,
                  call_id: Annotated[str, Path(min_length=1, max_length=36)]) -> ControlOut:
    live = web.live_recordings
    parties = live.parties(call_id) if live is not None else None
    own = _own_calls_only(scope)
    if (live is None or parties is None or parties.org_id != scope.org.id
            or (own is not None and own not in (parties.caller_user_id, parties.callee_user_id))):
        raise CallNotLive("the call is not in progress here", {"call_id": call_id})
    state = await live.control(call_id, body.action)
    await web.audit.record(f"recording.{body.action.value}", scope.actor, org_id=scope.org.id, target_type="call",
                           target_id=call_id, details={"state": state})
    return ControlOut(call_id=call_id, state=state)
