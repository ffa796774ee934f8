"""API routes of the webhooks slice (`/api/v1`): thin — parse, call the service, serialise.

Every route needs ``webhooks.manage`` in the org of the path; ids of another org's endpoints
and deliveries are not found (404).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ringwell.features.webhooks.schemas import (
    DeliveryDetailOut,
    DeliveryOut,
    DeliveryPage,
    EndpointCreate,
    EndpointCreatedOut,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
)
from ringwell.features.webhooks.service import ID_PATTERN, MAX_PAGE, WebhooksService
from ringwell.web.deps import Scope, org_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])

Manage = Annotated[Scope, Depends(org_scope("webhooks.manage"))]
EndpointId = Annotated[str, Path(pattern=ID_PATTERN, description="A webhook endpoint's id")]
DeliveryId = Annotated[str, Path(pattern=ID_PATTERN, description="A webhook delivery's id")]

_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody, "description": "Too many endpoints"}}
_DISABLED: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody, "description": "The endpoint is disabled"}}


def _webhooks(request: Request) -> WebhooksService:
    return services(request).webhooks


@router.get("/orgs/{org_id}/webhooks", response_model=EndpointList, operation_id="list_webhook_endpoints",
            summary="The organization's webhook endpoints")
async def list_webhook_endpoints(request: Request, scope: Manage) -> EndpointList:
    endpoints = await _webhooks(request).endpoints(scope.org.id)
    return EndpointList(items=[EndpointOut.of(e) for e in endpoints])


@router.post("/orgs/{org_id}/webhooks", response_model=EndpointCreatedOut, status_code=201,
             operation_id="create_webhook_endpoint", responses=_CONFLICT,
             summary="Add a webhook endpoint; the response holds its signing secret, shown only once")
async def create_webhook_endpoint(request: Request, scope: Manage, body: EndpointCreate) -> EndpointCreatedOut:
    created = await _webhooks(request).create_endpoint(scope.org.id, url=body.url, events=body.events,
                                                       description=body.description, enabled=body.enabled,
                                                       actor=scope.actor)
    return EndpointCreatedOut.created(created)


@router.get("/orgs/{org_id}/webhooks/{endpoint_id}", response_model=EndpointOut, operation_id="get_webhook_endpoint",
            summary="One webhook endpoint")
async def get_webhook_endpoint(request: Request, scope: Manage, endpoint_id: EndpointId) -> EndpointOut:
    return EndpointOut.of(await _webhooks(request).endpoint(scope.org.id, endpoint_id))


@router.patch("/orgs/{org_id}/webhooks/{endpoint_id}", response_model=EndpointOut,
              operation_id="update_webhook_endpoint",
              summary="Change an endpoint's URL, events, description, or enable/disable it")
async def update_webhook_endpoint(request: Request, scope: Manage, endpoint_id: EndpointId,
                                  body: EndpointUpdate) -> EndpointOut:
    view = await _webhooks(request).update_endpoint(scope.org.id, endpoint_id, actor=scope.actor, url=body.url,
                                                    events=body.events, description=body.description,
                                                    enabled=body.enabled)
    return EndpointOut.of(view)


@router.delete("/orgs/{org_id}/webhooks/{endpoint_id}", status_code=204, response_class=Response,
               operation_id="delete_webhook_endpoint", summary="Delete an endpoint with its delivery log")
async def delete_webhook_endpoint(request: Request, scope: Manage, endpoint_id: EndpointId) -> Response:
    await _webhooks(request).delete_endpoint(scope.org.id, endpoint_id, actor=scope.actor)
    return Response(status_code=204)


@router.post("/orgs/{org_id}/webhooks/{endpoint_id}/rotate-secret", response_model=EndpointCreatedOut,
             operation_id="rotate_webhook_secret",
             summary="Replace the signing secret (the old one stops at once); the new one is shown only here")
async def rotate_webhook_secret(request: Request, scope: Manage, endpoint_id: EndpointId) -> EndpointCreatedOut:
    return EndpointCreatedOut.created(await _webhooks(request).rotate_secret(scope.org.id, endpoint_id,
                                                                             actor=scope.actor))


@router.post("/orgs/{org_id}/webhooks/{endpoint_id}/test", response_model=DeliveryDetailOut,
             operation_id="send_webhook_test", responses=_DISABLED,
             summary="Send a webhook.test event to the endpoint now; returns the delivery and its first attempt")
async def send_webhook_test(request: Request, scope: Manage, endpoint_id: EndpointId) -> DeliveryDetailOut:
    return DeliveryDetailOut.detail(await _webhooks(request).send_test(scope.org.id, endpoint_id, actor=scope.actor))


@router.get("/orgs/{org_id}/webhooks/{endpoint_id}/deliveries", response_model=DeliveryPage,
            operation_id="list_webhook_deliveries", summary="An endpoint's deliveries, newest first")
async def list_webhook_deliveries(
    request: Request,
    scope: Manage,
    endpoint_id: EndpointId,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeliveryPage:
    page = await _webhooks(request).deliveries(scope.org.id, endpoint_id, limit=limit, cursor=cursor)
    return DeliveryPage(items=[DeliveryOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/orgs/{org_id}/webhook-deliveries/{delivery_id}", response_model=DeliveryDetailOut,
            operation_id="get_webhook_delivery", summary="One delivery with its payload and attempt log")
async def get_webhook_delivery(request: Request, scope: Manage, delivery_id: DeliveryId) -> DeliveryDetailOut:
    return DeliveryDetailOut.detail(await _webhooks(request).delivery(scope.org.id, delivery_id))


@router.post("/orgs/{org_id}/webhook-deliveries/{delivery_id}/replay", response_model=DeliveryDetailOut,
             operation_id="replay_webhook_delivery",
             summary="Send a delivery again now (same event id and body, fresh signature), whatever its status")
async def replay_webhook_delivery(request: Request, scope: Manage, delivery_id: DeliveryId) -> DeliveryDetailOut:
    return DeliveryDetailOut.detail(await _webhooks(request).replay(scope.org.id, delivery_id, actor=scope.actor))
