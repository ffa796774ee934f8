"""API routes of the call history (``/api/v1/orgs/{org_id}/calls...``): thin — parse, query, serialise.

A member sees only the calls they took part in (as caller or callee), in the list, the CSV and
one by one; owners, admins, API keys with the scope and operator staff see every call of the org.
Reading calls that are not one's own is a ``calls.read`` audit event naming them (``audit.reads``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import AwareDatetime, BeforeValidator

from ringwell.features.audit.reads import record_reads
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.permissions import Role, grants
from ringwell.features.cdr import history
from ringwell.features.cdr.models import Direction, Disposition
from ringwell.features.cdr.schemas import CallList, CallOut, call_out
from ringwell.features.recordings.routes import recording_service
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, org_scope, services
from ringwell.web.errors import ErrorBody


def _iso_only(value: Any) -> Any:
    """ISO 8601 only: pydantic would read "0" or "1700000000" as seconds since 1970."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("expected an ISO 8601 date and time with its zone, e.g. 2026-12-07T09:00:00Z")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_only)]

__all__ = ["router"]

router = APIRouter(tags=["calls"])

_CSV_BATCH = 1000  # rows per query and per chunk of the streamed CSV
_SLUG_RE = re.compile(r"[^a-z0-9]+")

Web = Annotated[WebServices, Depends(services)]


def call_filter(
    since: Annotated[IsoTime | None, Query(description="Calls that started at or after (ISO 8601 with zone)")]
    = None,
    until: Annotated[IsoTime | None, Query(description="Calls that started before (ISO 8601 with zone)")] = None,
    direction: Annotated[Direction | None, Query()] = None,
    disposition: Annotated[Disposition | None, Query()] = None,
    number: Annotated[str | None, Query(min_length=1, max_length=64,
                                        description="A party's number or extension (exact; separators ignored)")]
    = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=36,
                                         description="Calls where this user is the caller or the callee")] = None,
) -> history.CallFilter:
    return history.CallFilter(since=since, until=until, direction=direction.value if direction else None,
                              disposition=disposition.value if disposition else None, number=number, user_id=user_id)


Filter = Annotated[history.CallFilter, Depends(call_filter)]


def _own_calls_only(scope: Scope) -> str | None:
    """The user whose calls a member is limited to (None: the caller sees every call of the org)."""
    if scope.staff_access or scope.identity.role != Role.MEMBER.value:
        return None
    if scope.identity.user_id is None:  # a member is always a user; refuse rather than widen
        raise PermissionDenied("your role only shows your own calls", {"permission": "calls.read"})
    return scope.identity.user_id


def _visible(scope: Scope, flt: history.CallFilter) -> history.CallFilter:
    own = _own_calls_only(scope)
    return flt if own is None else replace(flt, user_id=own)


@router.get("/orgs/{org_id}/calls", response_model=CallList, operation_id="list_calls",
            summary="List calls, newest first (filters, cursor pagination)")
async def list_calls(
    scope: Annotated[Scope, Depends(org_scope("calls.read"))], web: Web, flt: Filter,
    limit: Annotated[int, Query(ge=1, le=history.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=history.MAX_CURSOR, description="next_cursor of the last page")]
    = None,
) -> Response:
    page = await history.call_page(web.sessions, scope.org.id, _visible(scope, flt), cursor, limit)
    await record_reads(web.audit, scope.actor, action="calls.read", org_id=scope.org.id, target_type="call",
                       records=[(r.id, (r.caller_user_id, r.callee_user_id)) for r in page.items],
                       staff=scope.staff_access)
    return CallList.model_construct(items=[call_out(row) for row in page.items],
                                    next_cursor=page.next_cursor).response()


def _filename(scope: Scope) -> str:
    slug = _SLUG_RE.sub("-", scope.org.name.lower()).strip("-")[:40] or scope.org.id
    return f"calls-{slug}-{datetime.now(UTC).date().isoformat()}.csv"


def _filter_details(flt: history.CallFilter) -> dict[str, Any]:
    """The export's filter for its audit event; a phone number is personal data: only that one was used."""
    details: dict[str, Any] = {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in (("since", flt.since), ("until", flt.until), ("direction", flt.direction),
                            ("disposition", flt.disposition), ("user_id", flt.user_id))
        if value is not None}
    if flt.number is not None:
        details["number"] = True
    return details


async def _csv_chunks(web: WebServices, org_id: str, flt: history.CallFilter) -> AsyncIterator[str]:
    """The header, then one chunk per batch of rows: memory holds one batch, whatever the export's size."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(history.CSV_COLUMNS)
    rows = 0
    async for record in history.iter_calls(web.sessions, org_id, flt, batch=_CSV_BATCH):
        writer.writerow(history.csv_row(record))
        rows += 1
        if rows % _CSV_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get("/orgs/{org_id}/calls.csv", response_class=StreamingResponse, operation_id="export_calls_csv",
            summary="Export calls as CSV (same filters; streamed)",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "The calls, newest first, one row each, with a header row"}})
async def export_calls(scope: Annotated[Scope, Depends(org_scope("calls.export"))], web: Web,
                       flt: Filter) -> StreamingResponse:
    visible = _visible(scope, flt)
    history.validate_filter(visible)  # a bad filter is a 422 now, not a broken download later
    await web.audit.record("calls.export", scope.actor, org_id=scope.org.id, target_type="calls",
                           details={"filter": _filter_details(visible), "format": "csv"})
    return StreamingResponse(_csv_chunks(web, scope.org.id, visible), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{_filename(scope)}"'})


@router.get("/orgs/{org_id}/calls/{call_id}", response_model=CallOut, operation_id="get_call",
            summary="One call", responses={404: {"model": ErrorBody, "description": "call_not_found"}})
async def get_call(scope: Annotated[Scope, Depends(org_scope("calls.read"))], web: Web, call_id: str) -> CallOut:
    own = _own_calls_only(scope)
    row = await history.get_call(web.sessions, scope.org.id, call_id, own)
    await record_reads(web.audit, scope.actor, action="calls.read", org_id=scope.org.id, target_type="call",
                       records=[(row.id, (row.caller_user_id, row.callee_user_id))], staff=scope.staff_access)
    out = call_out(row)
    if grants(scope.identity.permissions, "recordings.read"):
        recorded = await recording_service(web).of_calls(scope.org.id, [row.id], user_id=own)
        out.recordings = [r.id for r in recorded.get(row.id, [])]
    return out

