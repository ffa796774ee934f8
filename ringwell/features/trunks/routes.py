"""API routes of the trunks slice (operator console, ``/api/v1/operator/trunks``): thin — parse,
call the service, serialise. Every change is audited; the password is never in a response or an
audit event."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.trunks.schemas import TrunkIn, TrunkList, TrunkOut, TrunkPatch, trunk_out
from ringwell.features.trunks.service import InTransaction, TrunkChanges, TrunkSpec
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, operator_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["operator"])

Web = Annotated[WebServices, Depends(services)]
Manage = Annotated[Scope, Depends(operator_scope("operator.trunks.manage"))]
TrunkId = Annotated[str, Path(max_length=36)]


def _audited(web: WebServices, scope: Scope, action: str, details: dict[str, Any]) -> InTransaction:
    """Records ``action`` on the trunk inside the change's own transaction (both commit or neither)."""

    async def record(session: AsyncSession, trunk_id: str) -> None:
        await web.audit.record(action, scope.actor, org_id=scope.org.id, target_type="trunk", target_id=trunk_id,
                               details=details, session=session)

    return record


def _audit_details(values: dict[str, Any]) -> dict[str, Any]:
    """What changed, for the audit log: every value but the password (only whether it was set)."""
    details = {name: value for name, value in values.items() if name != "password"}
    if "password" in values:
        details["password"] = "set" if values["password"] else "removed"
    return details


@router.get("/operator/trunks", response_model=TrunkList, operation_id="list_trunks", summary="Every carrier trunk")
async def list_trunks(_scope: Manage, web: Web) -> TrunkList:
    return TrunkList(items=[trunk_out(trunk) for trunk in await web.trunks.all()], next_cursor=None)


@router.post("/operator/trunks", response_model=TrunkOut, status_code=201, operation_id="create_trunk",
             summary="Add a carrier trunk", responses={409: {"model": ErrorBody, "description": "duplicate_trunk"}})
async def create_trunk(scope: Manage, web: Web, body: TrunkIn) -> TrunkOut:
    spec = TrunkSpec(
        name=body.name, host=body.host, port=body.port, transport=body.transport, username=body.username,
        password=body.password, register=body.register_, register_expires=body.register_expires,
        inbound=tuple(body.inbound), number_format=body.number_format, tech_prefix=body.tech_prefix,
        priority=body.priority, buy_deck=body.buy_deck, max_channels=body.max_channels,
    )
    details = _audit_details(body.model_dump(by_alias=True))
    trunk = await web.trunks.add(spec, in_transaction=_audited(web, scope, "trunks.create", details))
    return trunk_out(trunk)


@router.get("/operator/trunks/{trunk_id}", response_model=TrunkOut, operation_id="get_trunk", summary="One trunk",
            responses={404: {"model": ErrorBody, "description": "trunk_not_found"}})
async def get_trunk(_scope: Manage, web: Web, trunk_id: TrunkId) -> TrunkOut:
    return trunk_out(await web.trunks.by_id(trunk_id))


@router.patch("/operator/trunks/{trunk_id}", response_model=TrunkOut, operation_id="update_trunk",
              summary="Change a trunk (enable/disable, priority, channels, address, credentials...)",
              responses={404: {"model": ErrorBody, "description": "trunk_not_found"}})
async def update_trunk(scope: Manage, web: Web, trunk_id: TrunkId, body: TrunkPatch) -> TrunkOut:
    values = {name.rstrip("_"): getattr(body, name) for name in body.model_fields_set}
    if "inbound" in values:
        values["inbound"] = tuple(values["inbound"])
    name = (await web.trunks.by_id(trunk_id)).name  # the name never changes
    details = {"name": name, **_audit_details(values)}
    trunk = await web.trunks.update(trunk_id, TrunkChanges(**values),
                                    in_transaction=_audited(web, scope, "trunks.update", details))
    return trunk_out(trunk)


@router.delete("/operator/trunks/{trunk_id}", status_code=204, response_class=Response, operation_id="delete_trunk",
               summary="Remove a trunk", responses={404: {"model": ErrorBody, "description": "trunk_not_found"}})
async def delete_trunk(scope: Manage, web: Web, trunk_id: TrunkId) -> Response:
    trunk = await web.trunks.by_id(trunk_id)
    details = {"name": trunk.name, "host": trunk.host, "port": trunk.port}
    await web.trunks.delete(trunk_id, in_transaction=_audited(web, scope, "trunks.delete", details))
    return Response(status_code=204)
