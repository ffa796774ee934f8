"""API routes of the audit slice: an org's own trail, and every org's for operator auditors;
the auditor export (JSON Lines with the hash chain, re-verifiable offline), the chain's
verification, and the staff access review.

Reading another org's trail as staff is itself an audit event (``org_scope`` records it), and so
are an export and an access review.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ringwell.errors import Invalid
from ringwell.features.audit.cli import verify_message
from ringwell.features.audit.review import access_review
from ringwell.features.audit.schemas import AccessReviewOut, AuditEventOut, AuditPage, StaffAccessOut, VerifyOut
from ringwell.features.audit.service import AuditLog
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


async def _jsonl(audit: AuditLog, since: datetime | None) -> AsyncIterator[str]:
    async for item in audit.export(since):
        yield json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n"


@router.get("/operator/audit-events/export", response_class=StreamingResponse, operation_id="export_audit_events",
            summary="Every audit event with its hashes, as JSON Lines, in chain order (operator.audit.read)",
            tags=["operator"],
            responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                             "description": "One JSON object per line: every field, seq, prev_hash and hash"}})
async def export_audit_events(
    request: Request,
    scope: Annotated[Scope, Depends(operator_scope("operator.audit.read"))],
    since: Annotated[datetime | None, Query(description="only events at or after this time")] = None,
) -> StreamingResponse:
    audit = services(request).audit
    await audit.record("audit.export", scope.actor, org_id=None, target_type="audit_events",
                       reason=request.headers.get("x-access-reason"),
                       details={"since": since.isoformat() if since else None})
    return StreamingResponse(_jsonl(audit, since), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit-events.jsonl"'})


@router.get("/operator/audit-events/verify", response_model=VerifyOut, operation_id="verify_audit_events",
            summary="Check the hash chain: the first edited, removed or moved event (operator.audit.read)",
            tags=["operator"])
async def verify_audit_events(
    request: Request,
    _scope: Annotated[Scope, Depends(operator_scope("operator.audit.read"))],
) -> VerifyOut:
    result = await services(request).audit.verify()
    broken = result.broken
    return VerifyOut(intact=result.intact, count=result.count, head_seq=result.head.seq, head_hash=result.head.hash,
                     anchor_seq=result.head.anchor_seq, message=verify_message(result),
                     problem=broken.problem.value if broken else None, event_id=broken.event_id if broken else None,
                     seq=broken.seq if broken else None)


@router.get("/operator/access-review", response_model=AccessReviewOut, operation_id="access_review",
            summary="Every staff user, their role, MFA and last sign-in; recorded as a review (operator.audit.read)",
            tags=["operator"])
async def get_access_review(
    request: Request,
    scope: Annotated[Scope, Depends(operator_scope("operator.audit.read"))],
) -> AccessReviewOut:
    staff = await access_review(services(request).audit, scope.actor)
    return AccessReviewOut(items=[StaffAccessOut(
        user_id=s.user_id, email=s.email, name=s.name, org=s.org_name, role=s.role, mfa=s.mfa, disabled=s.disabled,
        last_sign_in=s.last_sign_in, created_at=s.created_at) for s in staff])
