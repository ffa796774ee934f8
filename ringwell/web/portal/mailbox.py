"""Portal: the user's own mailbox settings on the Voicemail page — the ``*97`` PIN and the greeting.

A small panel under the messages (``voicemail/_mailbox.html``): whether a PIN is set (and the
mailbox locked), a form to set a new one (which unlocks it), the custom greeting's player, an
upload form (WAV or MP3, converted as through the API) and a button back to the default greeting.
Everyone manages only their own mailbox here (owners and admins reach others' through the API).
The forms post back and redirect to ``/voicemail?mailbox=<outcome>``; the PIN never appears in
a URL, a page or a log. The same audit events as the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from ringwell.errors import DomainError
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.voicemail.mailbox import MAX_PIN_LENGTH, MIN_PIN_LENGTH, GreetingNotFound
from ringwell.features.voicemail.mailbox_routes import MAX_GREETING_BYTES, mailbox_service
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.pages import need

__all__ = ["MailboxPanel", "mailbox_panel", "router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]

OUTCOMES = {
    "pin_set": ("ok", "Your voicemail PIN is set. Dial *97 from your phone to listen to your messages."),
    "greeting_set": ("ok", "Your greeting is saved: callers hear it before the tone."),
    "greeting_deleted": ("ok", "Callers hear the default greeting again."),
}


@dataclass(frozen=True, slots=True)
class MailboxPanel:
    """What the panel shows."""

    pin_set: bool
    locked: bool
    locked_until: datetime | None
    custom_greeting: bool
    writable: bool
    min_pin: int
    max_pin: int
    notice: tuple[str, str] | None


def _own(identity: Identity) -> str:
    if identity.user_id is None:
        raise PermissionDenied("only a user has a mailbox", {"permission": "voicemail.write"})
    return identity.user_id


async def mailbox_panel(request: Request, identity: Identity) -> MailboxPanel | None:
    """The panel of the logged-in user's mailbox (None for a login without a user)."""
    if identity.user_id is None:
        return None
    state = await mailbox_service(services(request)).state(identity.org_id, identity.user_id)
    now = datetime.now(UTC)
    outcome = request.query_params.get("mailbox", "")
    notice = OUTCOMES.get(outcome)
    if notice is None and outcome == "error":
        notice = ("error", request.query_params.get("reason", "That did not work.")[:300])
    return MailboxPanel(state.pin_set, state.locked(now), state.locked_until if state.locked(now) else None,
                        state.custom_greeting, can(identity, "voicemail.write"), MIN_PIN_LENGTH, MAX_PIN_LENGTH,
                        notice)


def _back(outcome: str, reason: str | None = None) -> RedirectResponse:
    query = {"mailbox": outcome, **({"reason": reason} if reason else {})}
    return RedirectResponse(f"/voicemail?{urlencode(query)}#mailbox", status_code=303)


@router.post("/voicemail/mailbox/pin")
async def set_pin(request: Request, identity: PageIdentity) -> RedirectResponse:
    need(identity, "voicemail.write")
    user_id = _own(identity)
    form = await request.form()
    pin = form.get("pin")
    web = services(request)
    try:
        await mailbox_service(web).set_pin(identity.org_id, user_id, pin if isinstance(pin, str) else "")
    except DomainError as exc:
        return _back("error", exc.message)
    await web.audit.record("voicemail.pin_set", actor_of(request, identity), org_id=identity.org_id,
                           target_type="mailbox", target_id=user_id)
    return _back("pin_set")


@router.post("/voicemail/mailbox/greeting")
async def upload_greeting(request: Request, identity: PageIdentity) -> RedirectResponse:
    need(identity, "voicemail.write")
    user_id = _own(identity)
    form = await request.form()
    try:
        upload = form.get("greeting")
        if not isinstance(upload, UploadFile):
            return _back("error", "Choose a WAV or MP3 file to upload.")
        data = await upload.read(MAX_GREETING_BYTES + 1)
    finally:
        await form.close()  # the spooled upload's temporary file
    if len(data) > MAX_GREETING_BYTES:
        return _back("error", f"The file is larger than {MAX_GREETING_BYTES // (1024 * 1024)} MiB.")
    web = services(request)
    try:
        await mailbox_service(web).upload_greeting(identity.org_id, user_id, data)
    except DomainError as exc:
        return _back("error", exc.message)
    await web.audit.record("voicemail.greeting_set", actor_of(request, identity), org_id=identity.org_id,
                           target_type="mailbox", target_id=user_id, details={"bytes": len(data)})
    return _back("greeting_set")


@router.post("/voicemail/mailbox/greeting/delete")
async def delete_greeting(request: Request, identity: PageIdentity) -> RedirectResponse:
    need(identity, "voicemail.write")
    user_id = _own(identity)
    web = services(request)
    try:
        await mailbox_service(web).delete_greeting(identity.org_id, user_id)
    except GreetingNotFound:
        return _back("greeting_deleted")
    await web.audit.record("voicemail.greeting_deleted", actor_of(request, identity), org_id=identity.org_id,
                           target_type="mailbox", target_id=user_id)
    return _back("greeting_deleted")


@router.get("/voicemail/mailbox/greeting")
async def greeting(request: Request, identity: PageIdentity) -> Response:
    """The custom greeting, for the panel's player."""
    need(identity, "voicemail.read")
    wav = await mailbox_service(services(request)).greeting_wav(identity.org_id, _own(identity))
    return Response(wav, media_type="audio/wav", headers={"Content-Disposition": 'inline; filename="greeting.wav"',
                                                          "Cache-Control": "no-store"})
