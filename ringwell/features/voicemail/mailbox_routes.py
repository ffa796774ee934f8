"""API routes of mailbox access (``/api/v1/orgs/{org_id}/users/{user_id}/voicemail/...``).

* ``GET .../voicemail/mailbox``: whether a PIN is set, failures in a row, the lock, whether a
  custom greeting plays — never the PIN or its hash.
* ``PUT .../voicemail/pin`` ``{"pin": "4–10 digits"}``: set it (which also unlocks the mailbox).
* ``PUT .../voicemail/greeting`` with a WAV (``audio/wav``) or MP3 (``audio/mpeg``) body: the
  custom greeting, converted to 8 kHz mono; ``GET`` returns it as WAV, ``DELETE`` goes back to the
  default greeting.
* ``PUT/GET/DELETE /orgs/{org_id}/hold-music``: the org's hold music, uploaded the same way
  (``org.update`` to change it, ``org.read`` to fetch it).

Who: the user themself, or an owner or admin of the org (and API keys with the scope). A member
asking about another member's mailbox gets 404, as for their messages. Setting a PIN and changing
the greeting are audit events (without the PIN).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ringwell.features.voicemail.hold_music import HOLD_MUSIC_MAX_SECONDS, HoldMusicService
from ringwell.features.voicemail.mailbox import (
    MAX_PIN_LENGTH,
    MIN_PIN_LENGTH,
    GreetingTooLarge,
    MailboxService,
    MailboxState,
    MailboxUserNotFound,
    UnsupportedGreetingType,
)
from ringwell.features.voicemail.routes import own_mailbox_only, voicemail_service
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, org_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["AUDIO_TYPES", "MAX_GREETING_BYTES", "MAX_HOLD_MUSIC_BYTES", "HoldMusicOut", "MailboxOut", "PinIn",
           "hold_music_service", "mailbox_service", "router"]

router = APIRouter(tags=["voicemail"])

MAX_GREETING_BYTES = 10 * 1024 * 1024
MAX_HOLD_MUSIC_BYTES = 30 * 1024 * 1024
# What the body is decides (WAV or MP3, else 422); a generic binary type is accepted for clients
# that send no audio type.
AUDIO_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3",
                         "application/octet-stream"})
UserId = Annotated[str, Path(min_length=1, max_length=36)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "user_not_found"}}
_AUDIO_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in ("audio/wav", "audio/mpeg",
                                                                     "application/octet-stream")}}}


class PinIn(BaseModel):
    pin: str = Field(min_length=1, max_length=64, repr=False,
                     description=f"{MIN_PIN_LENGTH}-{MAX_PIN_LENGTH} digits; not one digit repeated, not a run "
                                 "like 1234")


class MailboxOut(BaseModel):
    """A mailbox's access state."""

    user_id: str
    pin_set: bool
    failed_pin_attempts: int = Field(description="Wrong PINs in a row on *97")
    locked: bool = Field(description="Locked after too many wrong PINs; setting a PIN unlocks it")
    locked_until: datetime | None
    custom_greeting: bool

    @classmethod
    def of(cls, state: MailboxState) -> MailboxOut:
        locked = state.locked(datetime.now(UTC))
        return cls(user_id=state.user_id, pin_set=state.pin_set, failed_pin_attempts=state.failed_pin_attempts,
                   locked=locked, locked_until=state.locked_until if locked else None,
                   custom_greeting=state.custom_greeting)


def mailbox_service(web: WebServices) -> MailboxService:
    """Mailbox access over the server's voicemail service (stateless: composed per use)."""
    return MailboxService(web.sessions, voicemail_service(web), audit=web.audit,
                          lockout_minutes=web.settings.voicemail_pin_lockout_minutes)


def _service(web: Annotated[WebServices, Depends(services)]) -> MailboxService:
    return mailbox_service(web)


Service = Annotated[MailboxService, Depends(_service)]


async def audio_body(request: Request, limit: int) -> bytes:
    """A WAV or MP3 request body of at most ``limit`` bytes (415 for another type, 413 beyond)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in AUDIO_TYPES:
        raise UnsupportedGreetingType("upload the audio as audio/wav or audio/mpeg (or application/octet-stream)",
                                      {"content_type": content_type[:100], "accepted": sorted(AUDIO_TYPES)})
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise GreetingTooLarge("the audio file is too large", {"max_bytes": limit})
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise GreetingTooLarge("the audio file is too large", {"max_bytes": limit})
    return bytes(body)


def check_mailbox_access(scope: Scope, user_id: str) -> None:
    """A member reaches only their own mailbox (another's is not found)."""
    own = own_mailbox_only(scope.identity, staff_access=scope.staff_access)
    if own is not None and own != user_id:
        raise MailboxUserNotFound("no such user", {"user_id": user_id})


@router.get("/orgs/{org_id}/users/{user_id}/voicemail/mailbox", response_model=MailboxOut,
            operation_id="get_mailbox", summary="A mailbox's PIN state, lock and greeting", responses=_NOT_FOUND)
async def get_mailbox(scope: Annotated[Scope, Depends(org_scope("voicemail.read"))], service: Service,
                      user_id: UserId) -> MailboxOut:
    check_mailbox_access(scope, user_id)
    return MailboxOut.of(await service.state(scope.org.id, user_id))


@router.put("/orgs/{org_id}/users/{user_id}/voicemail/pin", response_model=MailboxOut,
            operation_id="set_mailbox_pin", summary="Set the PIN for *97 (unlocks the mailbox)",
            responses=_NOT_FOUND)
async def set_pin(scope: Annotated[Scope, Depends(org_scope("voicemail.write"))], service: Service,
                  web: Annotated[WebServices, Depends(services)], user_id: UserId, body: PinIn) -> MailboxOut:
    check_mailbox_access(scope, user_id)
    await service.state(scope.org.id, user_id)  # no such user: 404 before the PIN's rules
    state = await service.set_pin(scope.org.id, user_id, body.pin)
    await web.audit.record("voicemail.pin_set", scope.actor, org_id=scope.org.id, target_type="mailbox",
                           target_id=user_id)
    return MailboxOut.of(state)


@router.put("/orgs/{org_id}/users/{user_id}/voicemail/greeting", response_model=MailboxOut,
            operation_id="upload_mailbox_greeting", summary="Upload a custom greeting (WAV or MP3)",
            openapi_extra=_AUDIO_BODY,
            responses={**_NOT_FOUND, 413: {"model": ErrorBody, "description": "greeting_too_large"},
                       415: {"model": ErrorBody, "description": "unsupported_media_type"},
                       422: {"model": ErrorBody, "description": "invalid_greeting: not WAV/MP3 audio"}})
async def upload_greeting(request: Request, scope: Annotated[Scope, Depends(org_scope("voicemail.write"))],
                          service: Service, web: Annotated[WebServices, Depends(services)],
                          user_id: UserId) -> MailboxOut:
    check_mailbox_access(scope, user_id)
    await service.state(scope.org.id, user_id)  # no such user: 404 before reading the body
    body = await audio_body(request, MAX_GREETING_BYTES)
    state = await service.upload_greeting(scope.org.id, user_id, body)
    await web.audit.record("voicemail.greeting_set", scope.actor, org_id=scope.org.id, target_type="mailbox",
                           target_id=user_id, details={"bytes": len(body)})
    return MailboxOut.of(state)


@router.get("/orgs/{org_id}/users/{user_id}/voicemail/greeting", response_class=Response,
            operation_id="get_mailbox_greeting", summary="The custom greeting (16-bit 8 kHz mono WAV)",
            responses={200: {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "16-bit 8 kHz mono WAV"},
                       404: {"model": ErrorBody, "description": "greeting_not_found | user_not_found"}})
async def get_greeting(scope: Annotated[Scope, Depends(org_scope("voicemail.read"))], service: Service,
                       user_id: UserId) -> Response:
    check_mailbox_access(scope, user_id)
    wav = await service.greeting_wav(scope.org.id, user_id)
    return Response(wav, media_type="audio/wav",
                    headers={"Content-Disposition": f'inline; filename="greeting-{user_id}.wav"'})


@router.delete("/orgs/{org_id}/users/{user_id}/voicemail/greeting", status_code=204, response_class=Response,
               operation_id="delete_mailbox_greeting", summary="Back to the default greeting",
               responses={404: {"model": ErrorBody, "description": "greeting_not_found | user_not_found"}})
async def delete_greeting(scope: Annotated[Scope, Depends(org_scope("voicemail.write"))], service: Service,
                          web: Annotated[WebServices, Depends(services)], user_id: UserId) -> Response:
    check_mailbox_access(scope, user_id)
    await service.delete_greeting(scope.org.id, user_id)
    await web.audit.record("voicemail.greeting_deleted", scope.actor, org_id=scope.org.id, target_type="mailbox",
                           target_id=user_id)
    return Response(status_code=204)


# -- hold music (org-level) -----------------------------------------------------------------------
class HoldMusicOut(BaseModel):
    seconds: float = Field(description="Length of the stored hold music (8 kHz mono)")


def hold_music_service(web: WebServices) -> HoldMusicService:
    return HoldMusicService(voicemail_service(web).blobs)


_HOLD_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "hold_music_not_found"}}


@router.put("/orgs/{org_id}/hold-music", response_model=HoldMusicOut, operation_id="upload_hold_music",
            summary=f"Upload the org's hold music (WAV or MP3, up to {HOLD_MUSIC_MAX_SECONDS:g} s)",
            openapi_extra=_AUDIO_BODY,
            responses={413: {"model": ErrorBody, "description": "greeting_too_large"},
                       415: {"model": ErrorBody, "description": "unsupported_media_type"},
                       422: {"model": ErrorBody, "description": "invalid_hold_music: not WAV/MP3 audio"}})
async def upload_hold_music(request: Request, scope: Annotated[Scope, Depends(org_scope("org.update"))],
                            web: Annotated[WebServices, Depends(services)]) -> HoldMusicOut:
    body = await audio_body(request, MAX_HOLD_MUSIC_BYTES)
    seconds = await hold_music_service(web).upload(scope.org.id, body)
    await web.audit.record("org.hold_music_set", scope.actor, org_id=scope.org.id, target_type="org",
                           target_id=scope.org.id, details={"bytes": len(body)})
    return HoldMusicOut(seconds=round(seconds, 3))


@router.get("/orgs/{org_id}/hold-music", response_class=Response, operation_id="get_hold_music",
            summary="The org's hold music (16-bit 8 kHz mono WAV)",
            responses={200: {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "16-bit 8 kHz mono WAV"}, **_HOLD_NOT_FOUND})
async def get_hold_music(scope: Annotated[Scope, Depends(org_scope("org.read"))],
                         web: Annotated[WebServices, Depends(services)]) -> Response:
    wav = await hold_music_service(web).wav(scope.org.id)
    return Response(wav, media_type="audio/wav", headers={"Content-Disposition": 'inline; filename="hold-music.wav"'})


@router.delete("/orgs/{org_id}/hold-music", status_code=204, response_class=Response,
               operation_id="delete_hold_music", summary="Remove the org's hold music", responses=_HOLD_NOT_FOUND)
async def delete_hold_music(scope: Annotated[Scope, Depends(org_scope("org.update"))],
                            web: Annotated[WebServices, Depends(services)]) -> Response:
    await hold_music_service(web).delete(scope.org.id)
    await web.audit.record("org.hold_music_deleted", scope.actor, org_id=scope.org.id, target_type="org",
                           target_id=scope.org.id)
    return Response(status_code=204)
