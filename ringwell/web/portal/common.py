"""What every portal page shares: the logged-in identity, rendering with the layout's context.

Pages depend on :func:`page_identity` (a missing login becomes a redirect to ``/login``; an
unsafe request must carry the session's CSRF token in the ``csrf_token`` form field), look the
org up through the same services as the API, and render with :func:`render`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from ringwell.features.auth.permissions import grants
from ringwell.features.auth.tokens import Identity
from ringwell.web.deps import require_identity, services

__all__ = ["NAV", "page_identity", "render"]

# (path, label, permission needed to see it)
NAV: list[tuple[str, str, str]] = [
    ("/", "Dashboard", "org.read"),
    ("/phone", "Phone", "calls.read"),
    ("/calls", "Calls", "calls.read"),
    ("/voicemail", "Voicemail", "voicemail.read"),
    ("/numbers", "Numbers", "numbers.read"),
    ("/users", "Users", "users.read"),
    ("/billing", "Billing", "billing.read"),
    ("/settings", "Settings", "org.read"),
    ("/operator", "Operator", "operator.orgs.read"),
]


async def page_identity(request: Request) -> Identity:
    """The logged-in user of a page (CSRF checked on unsafe requests); their org's name for the layout."""
    identity = await require_identity(request)
    org = identity.org or await services(request).accounts.org_by_id(identity.org_id)
    request.state.org_name = org.name if org is not None else None
    return identity


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> HTMLResponse:
    """Render ``template`` with the layout's context: identity, CSRF token, navigation, org name."""
    identity: Identity | None = getattr(request.state, "identity", None)
    nav = [(path, label) for path, label, permission in NAV
           if identity is not None and grants(identity.permissions, permission)]
    values: dict[str, Any] = {
        "identity": identity,
        "csrf_token": identity.csrf_token if identity is not None else None,
        "nav": nav,
        "path": request.url.path,
        "org_name": getattr(request.state, "org_name", None),
        **(context or {}),
    }
    templates = request.app.state.templates
    response: HTMLResponse = templates.TemplateResponse(request, template, values, status_code=status_code)
    return response


def can(identity: Identity, permission: str) -> bool:
    return grants(identity.permissions, permission)


__all__ += ["can", "services"]
