"""Operator console API for closing an organization (and reopening it before its data goes).

Staff holding ``operator.orgs.close`` (billing staff, the operator's owners and admins). A reason
is required and goes to the audit trail with the change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from ringwell.blobs import blob_store
from ringwell.features.privacy.closure import Closure, ClosureService
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, operator_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["operator"])

Web = Annotated[WebServices, Depends(services)]
Close = Annotated[Scope, Depends(operator_scope("operator.orgs.close"))]
OrgId = Annotated[str, Path(max_length=36)]


class ClosureIn(BaseModel):
    reason: str = Field(min_length=3, max_length=500, description="why (goes to the audit trail)")


class ClosureOut(BaseModel):
    org_id: str
    closed_at: datetime | None = Field(description="when it was closed (empty: it is open)")
    purge_after: datetime | None = Field(description="when its data is deleted, unless a legal hold keeps it")
    users_disabled: int
    users_enabled: int
    sessions_ended: int
    credentials_deleted: int
    api_keys_revoked: int
    numbers_released: list[str]

    @classmethod
    def of(cls, closure: Closure) -> ClosureOut:
        data: dict[str, Any] = closure.as_dict()
        return cls.model_validate(data)


def closure_service(web: WebServices) -> ClosureService:
    """The server's ClosureService, or one composed on first use (an app without the SIP side)."""
    if web.closure is None:
        web.closure = ClosureService.from_settings(web.settings, web.sessions, blob_store(web.settings, web.sessions),
                                                   web.erasure, web.audit)
        web.closure.api_keys_changed = web.api_keys.forget
    return web.closure


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "organization_not_found"},
    409: {"model": ErrorBody, "description": "organization_not_closed, organization_purged"},
    422: {"model": ErrorBody, "description": "invalid_closure"},
}


@router.post("/operator/orgs/{org_id}/close", response_model=ClosureOut, operation_id="close_org",
             summary="Close an organization: users disabled, numbers released, API keys revoked; its data is "
                     "deleted closed_account_retention_days later (permission operator.orgs.close)",
             responses=_ERRORS)
async def close_org(scope: Close, web: Web, org_id: OrgId, body: ClosureIn) -> ClosureOut:
    return ClosureOut.of(await closure_service(web).close(org_id, actor=scope.actor, reason=body.reason))


@router.post("/operator/orgs/{org_id}/reopen", response_model=ClosureOut, operation_id="reopen_org",
             summary="Reopen a closed organization before its data is deleted (permission operator.orgs.close)",
             responses=_ERRORS)
async def reopen_org(scope: Close, web: Web, org_id: OrgId, body: ClosureIn) -> ClosureOut:
    return ClosureOut.of(await closure_service(web).reopen(org_id, actor=scope.actor, reason=body.reason))
