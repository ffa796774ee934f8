"""API routes of the audit slice: an org's own trail, and every org's for operator auditors.

Reading another org's trail as staff is itself an audit event (``org_scope`` records it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ringwell.errors import Invalid
from ringwell.features.audit.schemas import AuditEventOut, AuditPage
from ringwell.storage.cursor import decode_position, encode_position
from ringwell.web.deps import Scope, operator_scope, org_scope, services

__all__ = ["router"]

router = APIRouter(tags=["audit"])

_ACTION = r"^[a-z_]+(\.[a-z_]+)*$"


class InvalidCursor(Invalid):
    error_id = "invalid_cursor"


async def _page(request: Request, org_id: str | None, limit: int, cursor: str | None, action: str | None) -> AuditPage:
    bad = InvalidCursor("the cursor is not one this API returned", {"field": "cursor"})
    before = decode_position(cursor, bad) if cursor else None
    events = await services(request).audit.events(org_id, limit=limit + 1, before=before, action=action)
    more = len(events) > limit
    events = events[:limit]
    next_cursor = encode_position(events[-1].at, events[-1].id) if more and events else None
    return AuditPage(items=[AuditEventOut.of(e) for e in events], next_cursor=next_cursor)


@router.get("/orgs/{org_id}/audit-events", response_model=AuditPage, operation_id="list_audit_events",
            summary="The organization's audit trail, newest first (permission audit.read)")
async def list_audit_events(
    request: Request,
    scope: Annotated[Scope, Depends(org_scope("audit.read"))],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=_ACTION)] = None,
) -> AuditPage:
    return await _page(request, scope.org.id, limit, cursor, action)


@router.get("/operator/audit-events", response_model=AuditPage, operation_id="list_all_audit_events",
            summary="Every organization's audit trail (operator permission operator.audit.read)",
            tags=["operator"])
async def list_all_audit_events(
    request: Request,
    _scope: Annotated[Scope, Depends(operator_scope("operator.audit.read"))],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=_ACTION)] = None,
    org_id: Annotated[str | None, Query(max_length=36)] = None,
) -> AuditPage:
    return await _page(request, org_id, limit, cursor, action)
