"""Portal pages: the call history — filters, pages, and a link to the CSV export of the same filters.

Permissions as in the API: ``calls.read`` lists; ``calls.export`` shows the CSV link (served by
``GET /api/v1/orgs/{org_id}/calls.csv``, which the session cookie authenticates). A member sees
only the calls they made or took, here and in the export. A recorded call shows a player for each
of its recordings (``recordings.read``; ``/calls/recordings/{id}/audio``, audited as in the API
when the listener was not on the call). A page showing calls the viewer was not on is a
``calls.read`` audit event naming them.

The filter form speaks in days (``since`` and ``until`` both inclusive, UTC); the history
service and the API speak in instants (``until`` exclusive), so ``until`` becomes the next midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from ringwell.features.audit.reads import record_reads
from ringwell.features.auth.permissions import Role
from ringwell.features.auth.tokens import Identity
from ringwell.features.cdr import history
from ringwell.features.cdr.errors import InvalidCallQuery
from ringwell.features.cdr.models import CallRecord, Direction, Disposition
from ringwell.features.recordings.errors import RecordingNotFound
from ringwell.features.recordings.models import Recording
from ringwell.features.recordings.routes import audio_response, recording_service
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.pages import need, org_of, show

__all__ = ["CallRow", "call_row", "own_calls_only", "router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
PAGE = 50
OPTIONAL = Annotated[str | None, Query(max_length=64)]

# Disposition → badge colour.
_TONE = {
    Disposition.ANSWERED.value: "ok", Disposition.BUSY.value: "warn", Disposition.NO_ANSWER.value: "warn",
    Disposition.CANCELLED.value: "", Disposition.FAILED.value: "error", Disposition.INTERRUPTED.value: "error",
    Disposition.BLOCKED.value: "error",
}
_ARROW = {Direction.INBOUND.value: "↙ in", Direction.OUTBOUND.value: "↗ out", Direction.INTERNAL.value: "↔ internal"}


def own_calls_only(identity: Identity) -> str | None:
    """The user whose calls the identity is limited to (a member: their own), else None (every call)."""
    return identity.user_id if identity.role == Role.MEMBER.value else None


@dataclass(frozen=True, slots=True)
class CallRow:
    """A call as the tables show it."""

    id: str
    started_at: datetime
    direction: str
    arrow: str
    caller: str
    caller_sub: str
    callee: str
    callee_sub: str
    result: str
    tone: str
    talk_seconds: float | None
    charge_minor: int | None
    currency: str | None
    recordings: tuple[str, ...] = ()  # ids of the call's recordings the viewer may play


def call_row(record: CallRecord, recordings: tuple[str, ...] = ()) -> CallRow:
    caller = record.caller_number or record.caller_extension or "unknown"
    callee = record.callee_number
    caller_sub = f"ext. {record.caller_extension}" if record.caller_number and record.caller_extension else ""
    callee_sub = (f"ext. {record.callee_extension}"
                  if record.callee_extension and record.callee_extension != callee else "")
    result = record.disposition or ("in progress" if record.state == "open" else "—")
    return CallRow(record.id, record.started_at, record.direction, _ARROW.get(record.direction, record.direction),
                   caller, caller_sub, callee, callee_sub, result.replace("-", " "),
                   _TONE.get(record.disposition or "", "info"),
                   record.talk_seconds, record.charge_minor, record.currency, recordings)


def _day(name: str, text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidCallQuery(f"{name}: a date like 2026-03-01", {"field": name}) from None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@router.get("/calls", response_class=HTMLResponse)
async def calls_page(request: Request, identity: PageIdentity,
                     since: OPTIONAL = None, until: OPTIONAL = None, direction: OPTIONAL = None,
                     disposition: OPTIONAL = None, number: OPTIONAL = None,
                     user: Annotated[str | None, Query(max_length=36)] = None,
                     cursor: Annotated[str | None, Query(max_length=history.MAX_CURSOR)] = None) -> HTMLResponse:
    need(identity, "calls.read")
    org = await org_of(request, identity)
    web = services(request)
    own = own_calls_only(identity)
    form = {"since": since or "", "until": until or "", "direction": direction or "", "disposition": disposition or "",
            "number": (number or "").strip(), "user": "" if own else user or ""}
    users = [] if own else [(v.user.id, f"{v.user.extension} · {v.user.name or v.user.email}")
                            for v in await web.accounts.users_page(org.id, limit=200)]
    error = None
    page = history.CallPage([], None)
    api_query: dict[str, str] = {}
    try:
        first, last = _day("since", form["since"]), _day("until", form["until"])
        flt = history.CallFilter(
            since=_midnight(first) if first else None,
            until=_midnight(last + timedelta(days=1)) if last else None,
            direction=form["direction"] or None, disposition=form["disposition"] or None,
            number=form["number"] or None, user_id=own or form["user"] or None,
        )
        history.validate_filter(flt)
        page = await history.call_page(web.sessions, org.id, flt, cursor or None, PAGE)
        api_query = {key: value for key, value in {
            "since": _iso(flt.since) if flt.since else "", "until": _iso(flt.until) if flt.until else "",
            "direction": flt.direction or "", "disposition": flt.disposition or "", "number": flt.number or "",
            "user_id": "" if own else flt.user_id or "",
        }.items() if value}
    except InvalidCallQuery as exc:
        error = exc.message
    # Someone else's calls on the page (an owner's or admin's view of the org) are an audited read.
    await record_reads(web.audit, actor_of(request, identity), action="calls.read", org_id=org.id,
                       target_type="call", records=[(r.id, (r.caller_user_id, r.callee_user_id)) for r in page.items],
                       staff=False)
    recorded: dict[str, list[Recording]] = {}
    if can(identity, "recordings.read") and page.items:
        recorded = await recording_service(web).of_calls(org.id, [r.id for r in page.items], user_id=own)
    filtered = any(form[key] for key in ("since", "until", "direction", "disposition", "number", "user"))
    here = {key: value for key, value in form.items() if value}
    return show(request, "calls/list.html", {
        "rows": [call_row(r, tuple(x.id for x in recorded.get(r.id, ()))) for r in page.items], "form": form,
        "users": users, "error": error,
        "directions": [d.value for d in Direction], "dispositions": [d.value for d in Disposition],
        "filtered": filtered, "own": own is not None, "first_page": cursor is None,
        "next_url": f"/calls?{urlencode({**here, 'cursor': page.next_cursor})}" if page.next_cursor else None,
        "first_url": f"/calls?{urlencode(here)}" if here else "/calls",
        "csv_url": (f"/api/v1/orgs/{org.id}/calls.csv" + (f"?{urlencode(api_query)}" if api_query else ""))
        if can(identity, "calls.export") and error is None else None,
        "sip_host": web.settings.advertised_host, "now": datetime.now(UTC),
    }, status_code=422 if error else 200)


@router.get("/calls/recordings/{recording_id}/audio", response_class=StreamingResponse)
async def recording_audio(request: Request, identity: PageIdentity,
                          recording_id: Annotated[str, Path(min_length=1, max_length=36)],
                          download: Annotated[bool, Query()] = False) -> StreamingResponse:
    need(identity, "recordings.read")
    org = await org_of(request, identity)
    web = services(request)
    service = recording_service(web)
    row = await service.get(org.id, recording_id)
    own = own_calls_only(identity)
    if own is not None and own not in (row.caller_user_id, row.callee_user_id):
        raise RecordingNotFound("no such recording", {"recording_id": recording_id})
    return await audio_response(web, service, row, identity, actor_of(request, identity), attachment=download)
