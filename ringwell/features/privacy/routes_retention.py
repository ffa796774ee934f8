"""Operator console API of the retention engine: legal holds and the reports of retention runs.

Staff holding ``operator.privacy.manage`` only; placing and releasing a hold are audited (in the
same transaction as the change).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from ringwell.features.privacy.holds import LegalHolds
from ringwell.features.privacy.retention_service import recent_runs
from ringwell.features.privacy.schemas_retention import (
    LegalHoldIn,
    LegalHoldList,
    LegalHoldOut,
    RetentionRunList,
    RetentionRunOut,
)
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, operator_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["operator"])

Web = Annotated[WebServices, Depends(services)]
Manage = Annotated[Scope, Depends(operator_scope("operator.privacy.manage"))]
HoldId = Annotated[str, Path(max_length=36)]


def _holds(web: WebServices) -> LegalHolds:
    return LegalHolds(web.sessions, web.audit)


@router.get("/operator/legal-holds", response_model=LegalHoldList, operation_id="list_legal_holds",
            summary="Legal holds, newest first (permission operator.privacy.manage)")
async def list_legal_holds(_scope: Manage, web: Web, active: Annotated[bool, Query()] = False) -> LegalHoldList:
    return LegalHoldList(items=[LegalHoldOut.of(h) for h in await _holds(web).all(active_only=active)])


@router.post("/operator/legal-holds", response_model=LegalHoldOut, status_code=201, operation_id="place_legal_hold",
             summary="Pause deletion of a person's or an organization's data",
             responses={422: {"model": ErrorBody, "description": "invalid_legal_hold"}})
async def place_legal_hold(scope: Manage, web: Web, body: LegalHoldIn) -> LegalHoldOut:
    return LegalHoldOut.of(await _holds(web).place(body.org_id, body.user_id, body.reason, actor=scope.actor))


@router.post("/operator/legal-holds/{hold_id}/release", response_model=LegalHoldOut,
             operation_id="release_legal_hold", summary="End a legal hold",
             responses={404: {"model": ErrorBody, "description": "legal_hold_not_found"},
                        409: {"model": ErrorBody, "description": "legal_hold_released"}})
async def release_legal_hold(scope: Manage, web: Web, hold_id: HoldId) -> LegalHoldOut:
    return LegalHoldOut.of(await _holds(web).release(hold_id, actor=scope.actor))


@router.get("/operator/retention/runs", response_model=RetentionRunList, operation_id="list_retention_runs",
            summary="Reports of the latest retention runs, newest first (permission operator.privacy.manage)")
async def list_retention_runs(_scope: Manage, web: Web,
                              limit: Annotated[int, Query(ge=1, le=200)] = 30) -> RetentionRunList:
    return RetentionRunList(items=[RetentionRunOut.of(run) for run in await recent_runs(web.sessions, limit)])
