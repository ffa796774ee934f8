"""Portal pages: webhooks (``/settings/webhooks``), for members holding ``webhooks.manage``.

The list of endpoints with a form to add one (its signing secret is shown once, on the page
that answers the form); an endpoint's page (change it, enable or disable, rotate the secret,
send a test event, delete; its recent deliveries); a delivery's page (payload, every attempt,
replay). Everything goes through ``WebhooksService``, as the API does.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringwell.errors import DomainError
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.webhooks.events import ALL, EVENT_TYPES, SUBSCRIBABLE
from ringwell.features.webhooks.service import ID_PATTERN, CreatedEndpoint, WebhooksService
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, render, services

__all__ = ["router"]

router = APIRouter()

_PERMISSION = "webhooks.manage"
_BASE = "/settings/webhooks"
EndpointId = Annotated[str, Path(pattern=ID_PATTERN)]
DeliveryId = Annotated[str, Path(pattern=ID_PATTERN)]
_CHOICES = [(ALL, "Every event")] + [(name, f"{name} — {EVENT_TYPES[name]}") for name in SUBSCRIBABLE]


async def manager(identity: Annotated[Identity, Depends(page_identity)]) -> Identity:
    """The logged-in member, who must hold ``webhooks.manage``."""
    if not can(identity, _PERMISSION):
        raise PermissionDenied("your role cannot manage webhooks (webhooks.manage)", {"permission": _PERMISSION})
    return identity


Manager = Annotated[Identity, Depends(manager)]


def _webhooks(request: Request) -> WebhooksService:
    return services(request).webhooks


async def _form(request: Request) -> tuple[str, list[str], str]:
    form = await request.form()
    url = form.get("url")
    description = form.get("description")
    events = [e for e in form.getlist("events") if isinstance(e, str)]
    return (url if isinstance(url, str) else "", events, description if isinstance(description, str) else "")


async def _list_page(request: Request, identity: Identity, *, status_code: int = 200,
                     created: CreatedEndpoint | None = None, error: str | None = None,
                     form: dict[str, Any] | None = None) -> HTMLResponse:
    endpoints = await _webhooks(request).endpoints(identity.org_id)
    return render(request, "webhooks/list.html", {
        "endpoints": endpoints, "choices": _CHOICES, "created": created, "error": error,
        "form": form or {"url": "", "description": "", "events": [ALL]},
    }, status_code=status_code)


@router.get(_BASE, response_class=HTMLResponse)
async def webhooks_page(request: Request, identity: Manager) -> HTMLResponse:
    return await _list_page(request, identity)


@router.post(_BASE, response_class=HTMLResponse)
async def create_webhook(request: Request, identity: Manager) -> HTMLResponse:
    url, events, description = await _form(request)
    try:
        created = await _webhooks(request).create_endpoint(identity.org_id, url=url, events=events,
                                                           description=description,
                                                           actor=actor_of(request, identity))
    except DomainError as exc:
        form = {"url": url, "description": description, "events": events}
        return await _list_page(request, identity, status_code=exc.status, error=exc.message, form=form)
    # Answered here rather than redirected: the secret is shown on this page and never again.
    return await _list_page(request, identity, status_code=201, created=created)


async def _endpoint_page(request: Request, identity: Identity, endpoint_id: str, *, cursor: str | None = None,
                         status_code: int = 200, secret: str | None = None, error: str | None = None,
                         notice: str | None = None) -> HTMLResponse:
    webhooks = _webhooks(request)
    endpoint = await webhooks.endpoint(identity.org_id, endpoint_id)
    page = await webhooks.deliveries(identity.org_id, endpoint_id, limit=50, cursor=cursor)
    return render(request, "webhooks/endpoint.html", {
        "endpoint": endpoint, "deliveries": page.items, "next_cursor": page.next_cursor, "choices": _CHOICES,
        "secret": secret, "error": error, "notice": notice,
    }, status_code=status_code)


_NOTICES = {"saved": "Saved.", "enabled": "The endpoint is enabled.", "disabled": "The endpoint is disabled.",
            "replayed": "Sent again: see the newest attempt below."}


@router.get(_BASE + "/{endpoint_id}", response_class=HTMLResponse)
async def webhook_page(request: Request, identity: Manager, endpoint_id: EndpointId,
                       cursor: Annotated[str | None, Query(max_length=200)] = None,
                       done: Annotated[str | None, Query(max_length=20)] = None) -> HTMLResponse:
    return await _endpoint_page(request, identity, endpoint_id, cursor=cursor, notice=_NOTICES.get(done or ""))


@router.post(_BASE + "/{endpoint_id}", response_class=HTMLResponse)
async def update_webhook(request: Request, identity: Manager, endpoint_id: EndpointId) -> Response:
    url, events, description = await _form(request)
    try:
        await _webhooks(request).update_endpoint(identity.org_id, endpoint_id, url=url, events=events,
                                                 description=description, actor=actor_of(request, identity))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _endpoint_page(request, identity, endpoint_id, status_code=exc.status, error=exc.message)
    return RedirectResponse(f"{_BASE}/{endpoint_id}?done=saved", status_code=303)


@router.post(_BASE + "/{endpoint_id}/enable")
async def enable_webhook(request: Request, identity: Manager, endpoint_id: EndpointId) -> Response:
    await _webhooks(request).update_endpoint(identity.org_id, endpoint_id, enabled=True,
                                             actor=actor_of(request, identity))
    return RedirectResponse(f"{_BASE}/{endpoint_id}?done=enabled", status_code=303)


@router.post(_BASE + "/{endpoint_id}/disable")
async def disable_webhook(request: Request, identity: Manager, endpoint_id: EndpointId) -> Response:
    await _webhooks(request).update_endpoint(identity.org_id, endpoint_id, enabled=False,
                                             actor=actor_of(request, identity))
    return RedirectResponse(f"{_BASE}/{endpoint_id}?done=disabled", status_code=303)


@router.post(_BASE + "/{endpoint_id}/rotate", response_class=HTMLResponse)
async def rotate_webhook_secret(request: Request, identity: Manager, endpoint_id: EndpointId) -> HTMLResponse:
    rotated = await _webhooks(request).rotate_secret(identity.org_id, endpoint_id, actor=actor_of(request, identity))
    return await _endpoint_page(request, identity, endpoint_id, secret=rotated.secret)


@router.post(_BASE + "/{endpoint_id}/test", response_class=HTMLResponse)
async def test_webhook(request: Request, identity: Manager, endpoint_id: EndpointId) -> Response:
    try:
        detail = await _webhooks(request).send_test(identity.org_id, endpoint_id, actor=actor_of(request, identity))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _endpoint_page(request, identity, endpoint_id, status_code=exc.status, error=exc.message)
    return RedirectResponse(f"/settings/webhook-deliveries/{detail.delivery.id}", status_code=303)


@router.post(_BASE + "/{endpoint_id}/delete")
async def delete_webhook(request: Request, identity: Manager, endpoint_id: EndpointId) -> Response:
    await _webhooks(request).delete_endpoint(identity.org_id, endpoint_id, actor=actor_of(request, identity))
    return RedirectResponse(_BASE, status_code=303)


@router.get("/settings/webhook-deliveries/{delivery_id}", response_class=HTMLResponse)
async def delivery_page(request: Request, identity: Manager, delivery_id: DeliveryId,
                        done: Annotated[str | None, Query(max_length=20)] = None) -> HTMLResponse:
    webhooks = _webhooks(request)
    detail = await webhooks.delivery(identity.org_id, delivery_id)
    endpoint = await webhooks.endpoint(identity.org_id, detail.delivery.endpoint_id)
    try:
        pretty = json.dumps(json.loads(detail.payload), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = detail.payload
    return render(request, "webhooks/delivery.html", {
        "detail": detail, "delivery": detail.delivery, "endpoint": endpoint, "payload": pretty,
        "notice": _NOTICES.get(done or ""),
    })


@router.post("/settings/webhook-deliveries/{delivery_id}/replay")
async def replay_delivery(request: Request, identity: Manager, delivery_id: DeliveryId) -> Response:
    await _webhooks(request).replay(identity.org_id, delivery_id, actor=actor_of(request, identity))
    return RedirectResponse(f"/settings/webhook-deliveries/{delivery_id}?done=replayed", status_code=303)
