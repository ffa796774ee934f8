"""Portal pages: voicemail — list, search the transcripts, play, download, mark read, delete.

Permissions and scope as in the API (:mod:`ringwell.features.voicemail.routes`, whose helpers
this reuses): ``voicemail.read`` lists and plays, ``voicemail.write`` marks read and deletes; a
member reaches only their own mailbox (another's message is not found), owners and admins every
mailbox of the org, with a user filter. ``GET /voicemail/{id}/audio`` streams the WAV for the
page's player (``?download=1``: as an attachment); a play by anyone but the mailbox's owner is the
same ``voicemail.played`` audit event as through the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from ringwell.features.audit.reads import record_reads
from ringwell.features.auth.tokens import Identity
from ringwell.features.voicemail.errors import InvalidVoicemail, TranscriptNotReady, VoicemailNotFound
from ringwell.features.voicemail.models import Folder, TranscriptStatus, Voicemail
from ringwell.features.voicemail.routes import (
    audio_response,
    delete_message,
    own_mailbox_only,
    voicemail_service,
)
from ringwell.features.voicemail.service import VoicemailService
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.mailbox import mailbox_panel
from ringwell.web.portal.pages import need, org_of, show

__all__ = ["router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
VoicemailId = Annotated[str, Path(min_length=1, max_length=36)]
LIMIT = 200

_DONE = {"read": ("ok", "Message marked as read."), "deleted": ("ok", "Message deleted.")}


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message as the page shows it."""

    id: str
    caller: str
    caller_sub: str
    mailbox: str
    received_at: datetime
    duration_s: float
    new: bool
    transcript: str | None
    transcript_note: str  # shown when there is no transcript text


def _service(request: Request) -> VoicemailService:
    return voicemail_service(services(request))


async def _visible(service: VoicemailService, identity: Identity, voicemail_id: str) -> Voicemail:
    row = await service.get(identity.org_id, voicemail_id)
    own = own_mailbox_only(identity)
    if own is not None and row.user_id != own:
        raise VoicemailNotFound("no such voicemail", {"voicemail_id": voicemail_id})
    return row


async def _row(service: VoicemailService, message: Voicemail, mailboxes: dict[str, str]) -> MessageRow:
    transcript: str | None = None
    note = "no transcript"
    if message.transcript_status == TranscriptStatus.DONE.value:
        try:
            transcript = await service.transcript(message.org_id, message.id)
        except TranscriptNotReady:  # replaced or failed meanwhile
            transcript = None
    elif message.transcript_status == TranscriptStatus.PENDING.value:
        note = "transcribing…"
    caller = message.caller_name or message.caller_number or "unknown"
    caller_sub = message.caller_number if message.caller_name and message.caller_number else ""
    return MessageRow(message.id, caller, caller_sub, mailboxes.get(message.user_id, ""), message.received_at,
                      message.duration_s, message.folder == Folder.NEW.value, transcript or None, note)


@router.get("/voicemail", response_class=HTMLResponse)
async def voicemail_page(request: Request, identity: PageIdentity,
                         user: Annotated[str | None, Query(max_length=36)] = None,
                         q: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
    need(identity, "voicemail.read")
    org = await org_of(request, identity)
    web = services(request)
    service = _service(request)
    own = own_mailbox_only(identity)
    users: list[tuple[str, str]] = []
    mailboxes: dict[str, str] = {}
    if own is None:
        views = await web.accounts.users_page(org.id, limit=200)
        users = [(v.user.id, f"{v.user.extension} · {v.user.name or v.user.email}") for v in views]
        mailboxes = dict(users)
    chosen = "" if own is not None else (user or "")
    search = (q or "").strip()
    try:
        messages = await service.list(org.id, own if own is not None else chosen or None, limit=LIMIT,
                                      query=search or None)
    except InvalidVoicemail:  # a search without words or digits finds nothing
        messages = []
    # Messages (and transcripts) of someone else's mailbox on the page are an audited read.
    await record_reads(web.audit, actor_of(request, identity), action="voicemail.read", org_id=org.id,
                       target_type="voicemail", records=[(m.id, (m.user_id,)) for m in messages], staff=False)
    rows = [await _row(service, m, mailboxes) for m in messages]
    done = request.query_params.get("done", "")
    return show(request, "voicemail/list.html", {
        "rows": rows, "users": users, "user": chosen, "q": search, "own": own is not None,
        "writable": can(identity, "voicemail.write"), "new_count": sum(1 for r in rows if r.new),
        "back": f"/voicemail?{urlencode({'user': chosen})}" if chosen else "/voicemail",
        "now": datetime.now(UTC), "mailbox": await mailbox_panel(request, identity),
    }, flash=_DONE.get(done))


@router.get("/voicemail/{voicemail_id}/audio", response_class=StreamingResponse)
async def voicemail_audio(request: Request, identity: PageIdentity, voicemail_id: VoicemailId,
                          download: Annotated[bool, Query()] = False) -> StreamingResponse:
    need(identity, "voicemail.read")
    service = _service(request)
    row = await _visible(service, identity, voicemail_id)
    return await audio_response(services(request), service, row, identity, actor_of(request, identity),
                                attachment=download)


def _back(request: Request, done: str) -> RedirectResponse:
    user = request.query_params.get("user", "")
    query = {"done": done, **({"user": user} if user and len(user) <= 36 else {})}
    return RedirectResponse(f"/voicemail?{urlencode(query)}", status_code=303)


@router.post("/voicemail/{voicemail_id}/read")
async def mark_read(request: Request, identity: PageIdentity, voicemail_id: VoicemailId) -> RedirectResponse:
    need(identity, "voicemail.write")
    service = _service(request)
    row = await _visible(service, identity, voicemail_id)
    await service.mark_read(row.org_id, row.id)
    return _back(request, "read")


@router.post("/voicemail/{voicemail_id}/delete")
async def delete(request: Request, identity: PageIdentity, voicemail_id: VoicemailId) -> RedirectResponse:
    need(identity, "voicemail.write")
    service = _service(request)
    row = await _visible(service, identity, voicemail_id)
    await delete_message(services(request), service, row, actor_of(request, identity))
    return _back(request, "deleted")
