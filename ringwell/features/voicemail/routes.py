"""API routes of voicemail (``/api/v1/orgs/{org_id}/voicemails...``): thin — parse, service, serialise.

A member sees, plays, marks and deletes only the messages of their own mailbox (another's is
not found, as in the call history); owners, admins, API keys with the scope and operator staff
reach every mailbox of the org. Playing or downloading a message by anyone but the mailbox's
owner is a ``voicemail.played`` audit event; listing or opening (with its transcript) messages
of someone else's mailbox is a ``voicemail.read`` one.
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
from ringwell.features.voicemail.errors import TranscriptNotReady, VoicemailNotFound
from ringwell.features.voicemail.models import Folder, TranscriptStatus, Voicemail
from ringwell.features.voicemail.schemas import VoicemailDetail, VoicemailList, VoicemailOut
from ringwell.features.voicemail.service import MAX_LIST, VoicemailService
from ringwell.web.blob_response import blob_response
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, org_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["audio_response", "delete_message", "own_mailbox_only", "router", "voicemail_service"]

router = APIRouter(tags=["voicemail"])

VoicemailId = Annotated[str, Path(min_length=1, max_length=36)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "voicemail_not_found"}}


def voicemail_service(web: WebServices) -> VoicemailService:
    """The server's voicemail service; composed here on first use when the server did not set one."""
    if web.voicemail is None:
        web.voicemail = VoicemailService(web.sessions, blob_store(web.settings, web.sessions),
                                         retention_days=web.settings.voicemail_retention_days)
    return web.voicemail


def _service(web: Annotated[WebServices, Depends(services)]) -> VoicemailService:
    return voicemail_service(web)


Service = Annotated[VoicemailService, Depends(_service)]


def own_mailbox_only(identity: Identity, *, staff_access: bool = False) -> str | None:
    """The user a member is limited to (None: every mailbox of the org). The portal uses it too."""
    if staff_access or identity.role != Role.MEMBER.value:
        return None
    if identity.user_id is None:
        raise PermissionDenied("your role only shows your own voicemail", {"permission": "voicemail.read"})
    return identity.user_id


def _own_mailbox_only(scope: Scope) -> str | None:
    return own_mailbox_only(scope.identity, staff_access=scope.staff_access)


async def _visible(service: VoicemailService, scope: Scope, voicemail_id: str) -> Voicemail:
    row = await service.get(scope.org.id, voicemail_id)
    own = _own_mailbox_only(scope)
    if own is not None and row.user_id != own:
        raise VoicemailNotFound("no such voicemail", {"voicemail_id": voicemail_id})
    return row


@router.get("/orgs/{org_id}/voicemails", response_model=VoicemailList, operation_id="list_voicemails",
            summary="List voicemail messages, newest first (a member: their own mailbox)")
async def list_voicemails(
    scope: Annotated[Scope, Depends(org_scope("voicemail.read"))], service: Service,
    web: Annotated[WebServices, Depends(services)],
    user_id: Annotated[str | None, Query(min_length=1, max_length=36, description="One user's mailbox")] = None,
    folder: Annotated[Folder | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    q: Annotated[str | None, Query(min_length=1, max_length=200,
                                   description="Only messages whose transcript has every word of this "
                                               "(numbers compared as digits: \"312 704\")")] = None,
) -> VoicemailList:
    own = _own_mailbox_only(scope)
    rows = await service.list(scope.org.id, own if own is not None else user_id, folder, limit=limit, query=q)
    await record_reads(web.audit, scope.actor, action="voicemail.read", org_id=scope.org.id, target_type="voicemail",
                       records=[(row.id, (row.user_id,)) for row in rows], staff=scope.staff_access)
    return VoicemailList(items=[VoicemailOut.of(row) for row in rows])


@router.get("/orgs/{org_id}/voicemails/{voicemail_id}", response_model=VoicemailDetail,
            operation_id="get_voicemail", summary="One voicemail message, with its transcript when done",
            responses=_NOT_FOUND)
async def get_voicemail(scope: Annotated[Scope, Depends(org_scope("voicemail.read"))], service: Service,
                        web: Annotated[WebServices, Depends(services)], voicemail_id: VoicemailId) -> VoicemailDetail:
    row = await _visible(service, scope, voicemail_id)
    await record_reads(web.audit, scope.actor, action="voicemail.read", org_id=scope.org.id, target_type="voicemail",
                       records=[(row.id, (row.user_id,))], staff=scope.staff_access)
    transcript: str | None = None
    if row.transcript_status == TranscriptStatus.DONE.value:
        try:
            transcript = await service.transcript(scope.org.id, row.id)
        except TranscriptNotReady:  # replaced or failed meanwhile
            transcript = None
    return VoicemailDetail(**VoicemailOut.of(row).model_dump(), transcript=transcript)


@router.get("/orgs/{org_id}/voicemails/{voicemail_id}/audio", response_class=StreamingResponse,
            operation_id="download_voicemail_audio", summary="The message's audio (WAV, streamed)",
            responses={200: {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "16-bit 8 kHz mono WAV"}, **_NOT_FOUND})
async def download_audio(scope: Annotated[Scope, Depends(org_scope("voicemail.read"))], service: Service,
                         web: Annotated[WebServices, Depends(services)],
                         voicemail_id: VoicemailId) -> StreamingResponse:
    row = await _visible(service, scope, voicemail_id)
    return await audio_response(web, service, row, scope.identity, scope.actor)


async def audio_response(web: WebServices, service: VoicemailService, row: Voicemail, identity: Identity,
                         actor: Actor, *, attachment: bool = True) -> StreamingResponse:
    """The message's WAV, streamed; a play by anyone but the mailbox's owner is audited first.
    ``row`` is already scoped to what ``identity`` may see. The portal's player uses it too."""
    _, blob = await service.open_audio(row.org_id, row.id)  # errors answer before streaming starts
    if identity.user_id != row.user_id:
        try:
            await web.audit.record("voicemail.played", actor, org_id=row.org_id, target_type="voicemail",
                                   target_id=row.id, details={"mailbox_user_id": row.user_id})
        except BaseException:
            blob.close()
            raise
    return blob_response(blob, "audio/wav", f"voicemail-{row.id}.wav", attachment=attachment)


@router.post("/orgs/{org_id}/voicemails/{voicemail_id}/read", response_model=VoicemailOut,
             operation_id="mark_voicemail_read", summary="Mark a message read (moves it to saved)",
             responses=_NOT_FOUND)
async def mark_read(scope: Annotated[Scope, Depends(org_scope("voicemail.write"))], service: Service,
                    voicemail_id: VoicemailId) -> VoicemailOut:
    row = await _visible(service, scope, voicemail_id)
    return VoicemailOut.of(await service.mark_read(scope.org.id, row.id))


@router.delete("/orgs/{org_id}/voicemails/{voicemail_id}", status_code=204, response_class=Response,
               operation_id="delete_voicemail", summary="Delete a message: its audio, transcript and row",
               responses=_NOT_FOUND)
async def delete_voicemail(scope: Annotated[Scope, Depends(org_scope("voicemail.write"))], service: Service,
                           web: Annotated[WebServices, Depends(services)], voicemail_id: VoicemailId) -> Response:
    row = await _visible(service, scope, voicemail_id)
    await delete_message(web, service, row, scope.actor)
    return Response(status_code=204)


async def delete_message(web: WebServices, service: VoicemailService, row: Voicemail, actor: Actor) -> None:
    """Delete a message already scoped to what the actor may see, and audit it. The portal uses it too."""
    await service.delete(row.org_id, row.id)
    await web.audit.record("voicemail.delete", actor, org_id=row.org_id, target_type="voicemail",
                           target_id=row.id, details={"mailbox_user_id": row.user_id})
