"""Request dependencies: who is asking, CSRF, and the tenant scope every org route runs in.

Tenant isolation is decided here and only here. An org route names its org in the path
(``/api/v1/orgs/{org_id}/...``) and depends on :func:`org_scope` with the permission it needs:

- the caller's own org: the permission is checked (403 ``permission_denied`` without it);
- another org: 404 ``organization_not_found`` — the same answer as for an org that does not
  exist, so ids cannot be probed — unless the caller is operator staff holding the permission,
  in which case the access is allowed and recorded as a ``staff.access`` audit event.

Resources inside the org are then looked up with ``scope.org.id`` in the query, so an id of
another org's user, number or call is simply not found (404), never forbidden.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.models import Organization
from ringwell.features.audit.service import Actor
from ringwell.features.auth.errors import LoginRequired, MfaRequired, PermissionDenied
from ringwell.features.auth.permissions import grants
from ringwell.features.auth.tokens import Identity
from ringwell.web.context import WebServices

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Scope",
    "actor_of",
    "check_csrf",
    "current_identity",
    "operator_scope",
    "org_scope",
    "require_identity",
    "services",
]

SESSION_COOKIE = "__Host-rw_session"  # __Host-: Secure, Path=/, no Domain (set by the login pages)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_UNSET = object()


def services(request: Request) -> WebServices:
    web: WebServices = request.app.state.services
    return web


async def current_identity(request: Request) -> Identity | None:
    """The caller: an API key (``Authorization: Bearer rwk_...``) or a session cookie; None if neither."""
    cached = getattr(request.state, "identity", _UNSET)
    if cached is not _UNSET:
        return cached if isinstance(cached, Identity) else None
    web = services(request)
    identity: Identity | None = None
    auth = request.headers.get("authorization", "")
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        identity = await web.api_keys.resolve(credentials.strip())
    elif not auth:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            identity = await web.web_sessions.resolve(token)
    request.state.identity = identity
    return identity


async def require_identity(request: Request) -> Identity:
    """A fully logged-in caller (password and, when enabled, TOTP), with CSRF checked for cookies."""
    identity = await current_identity(request)
    if identity is None:
        raise LoginRequired("log in or send an API key (Authorization: Bearer rwk_...)")
    if identity.mfa_pending:
        raise MfaRequired("enter the code from your authenticator app to finish logging in")
    await check_csrf(request, identity)
    return identity


async def check_csrf(request: Request, identity: Identity) -> None:
    """A cookie-authenticated unsafe request must echo the session's CSRF token (header or form field).

    API keys are not sent by browsers on their own, so bearer requests need no token.
    """
    if request.method not in _UNSAFE or identity.session_id is None:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = identity.csrf_token or ""
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise PermissionDenied("the form has expired or did not come from this site: reload the page and try again",
                               {"reason": "csrf"})


def actor_of(request: Request, identity: Identity | None) -> Actor:
    client = request.client
    return Actor(
        user_id=identity.user_id if identity else None,
        org_id=identity.org_id if identity else None,
        role=identity.role if identity else None,
        api_key_id=identity.api_key_id if identity else None,
        ip=client.host if client else None,
        user_agent=request.headers.get("user-agent"),
        reason=request.headers.get("x-access-reason"),  # why staff access data: on every event they cause
    )


@dataclass(frozen=True, slots=True)
class Scope:
    """An org route's context: the org (checked), who acts and how to audit it."""

    org: Organization
    identity: Identity
    actor: Actor
    staff_access: bool  # an operator's staff member acting on another org


def org_scope(permission: str) -> Callable[[Request, str], Awaitable[Scope]]:
    """Dependency for ``/orgs/{org_id}/...`` routes needing ``permission`` (see the module docstring)."""
    grants(frozenset(), permission)  # unknown names fail at import time, not at request time

    async def dependency(request: Request, org_id: str) -> Scope:
        identity = await require_identity(request)
        web = services(request)
        own = identity.org_id == org_id
        if not own and not (identity.staff and grants(identity.permissions, permission)):
            raise OrganizationNotFound("no such organization", {"org_id": org_id})
        org = identity.org if own and identity.org is not None else await web.accounts.org_by_id(org_id)
        if org is None:
            raise OrganizationNotFound("no such organization", {"org_id": org_id})
        if own and not grants(identity.permissions, permission):
            raise PermissionDenied(f"your role does not allow this ({permission})", {"permission": permission})
        actor = actor_of(request, identity)
        if not own:
            await web.audit.record(
                "staff.access", actor, org_id=org.id, target_type="route",
                target_id=f"{request.method} {request.url.path}"[:64],
                reason=request.headers.get("x-access-reason"),
                details={"permission": permission, "path": request.url.path, "method": request.method},
            )
        return Scope(org, identity, actor, staff_access=not own)

    return dependency


def operator_scope(permission: str) -> Callable[[Request], Awaitable[Scope]]:
    """Dependency for operator-console routes (``/api/v1/operator/...``): staff with ``permission``."""
    grants(frozenset(), permission)

    async def dependency(request: Request) -> Scope:
        identity = await require_identity(request)
        if not identity.staff or not grants(identity.permissions, permission):
            raise PermissionDenied(f"operator staff only ({permission})", {"permission": permission})
        web = services(request)
        org = identity.org or await web.accounts.org_by_id(identity.org_id)
        if org is None:
            raise LoginRequired("your organization no longer exists")
        return Scope(org, identity, actor_of(request, identity), staff_access=False)

    return dependency
