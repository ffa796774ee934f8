"""Portal pages: users and their extensions — list, create, details, devices registered now, SIP password.

Permissions as in the API: ``users.read`` lists, ``users.write`` creates (a role other than
member also needs ``users.roles``), ``registrations.read`` shows devices, ``extensions.credentials``
rotates a SIP password. A SIP password is shown exactly once: in the answer to the POST that
created or rotated it (``Cache-Control: no-store``), never after a redirect that could be
replayed, never in a list, log or audit event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.errors import DomainError
from ringwell.features.accounts.models import Organization, OrgKind, User
from ringwell.features.accounts.service import AuditHook, UserSpec, check_grant
from ringwell.features.auth.permissions import Role
from ringwell.features.auth.tokens import Identity
from ringwell.pbx.registrar import Binding
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.pages import need, org_of, show

__all__ = ["router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
UserId = Annotated[str, Path(min_length=1, max_length=36)]
PAGE = 100
_CUSTOMER_ROLES = (Role.MEMBER, Role.ADMIN, Role.OWNER)
_STAFF_ROLES = (Role.SUPPORT, Role.BILLING, Role.PRIVACY, Role.AUDITOR)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device as the page shows it."""

    user_agent: str
    contact: str
    address: str
    transport: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class UserRow:
    user: User
    sip_username: str
    devices: list[Device]

    @property
    def portal(self) -> str:
        if self.user.disabled_at is not None:
            return "disabled"
        if self.user.password_hash:
            return "yes"
        return "invited" if self.user.login_email else "no"


def _device(binding: Binding, now: float) -> Device:
    source = binding.source
    host = f"[{source.host}]" if ":" in source.host else source.host
    return Device(binding.user_agent or "unknown device", binding.contact, f"{host}:{source.port}",
                  source.transport.upper(), binding.remaining(now))


async def _devices(request: Request, org_id: str, user_id: str | None = None) -> dict[str, list[Device]]:
    """Devices registered now, per user id (from the registrar's memory: as live as it gets)."""
    web = services(request)
    now = time.time()
    found: dict[str, list[Device]] = {}
    for cred in await web.accounts.sip_credentials(org_id, user_id, webphone=True):  # a browser is a device too
        found.setdefault(cred.user_id, []).extend(_device(b, now) for b in web.registrar.lookup(cred.credential_id,
                                                                                                 now))
    return found


def _roles(identity: Identity, org: Organization) -> list[str]:
    """The roles this identity may give in the create form (member only without ``users.roles``)."""
    if not can(identity, "users.roles"):
        return [Role.MEMBER.value]
    candidates = _CUSTOMER_ROLES + (_STAFF_ROLES if org.kind == OrgKind.OPERATOR.value else ())
    allowed = []
    for role in candidates:
        try:
            check_grant(org.kind, identity.role, role.value)
        except DomainError:
            continue
        allowed.append(role.value)
    return allowed


def _audit(request: Request, identity: Identity, org: Organization, action: str) -> AuditHook:
    """Records ``action`` inside the service's transaction (the change and its event commit together)."""
    audit = services(request).audit
    actor = actor_of(request, identity)

    async def record(session: AsyncSession, target_id: str, details: dict[str, Any]) -> None:
        await audit.record(action, actor, org_id=org.id, target_type="user", target_id=target_id, details=details,
                           session=session)

    return record


def _sip_server(request: Request) -> dict[str, Any]:
    settings = services(request).settings
    return {"domain": settings.advertised_host, "port": settings.sip_port, "tls_port": settings.tls_port}


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, identity: PageIdentity,
                     after: Annotated[str | None, Query(max_length=32)] = None) -> HTMLResponse:
    need(identity, "users.read")
    org = await org_of(request, identity)
    web = services(request)
    position = (len(after), after) if after else None
    views = await web.accounts.users_page(org.id, after=position, limit=PAGE + 1)
    more = len(views) > PAGE
    views = views[:PAGE]
    devices = await _devices(request, org.id) if can(identity, "registrations.read") else {}
    rows = [UserRow(v.user, v.sip_username, devices.get(v.user.id, [])) for v in views]
    return show(request, "users/list.html", {
        "rows": rows, "writable": can(identity, "users.write"), "show_devices": can(identity, "registrations.read"),
        "next_after": rows[-1].user.extension if more and rows else None, "first_page": after is None,
    })


@router.get("/users/new", response_class=HTMLResponse)
async def new_user_page(request: Request, identity: PageIdentity) -> HTMLResponse:
    need(identity, "users.write")
    org = await org_of(request, identity)
    return show(request, "users/new.html", {"roles": _roles(identity, org), "form": {"portal_access": True}})


@router.post("/users", response_class=HTMLResponse)
async def create_user(request: Request, identity: PageIdentity,
                      email: Annotated[str, Form(max_length=320)] = "",
                      extension: Annotated[str, Form(max_length=32)] = "",
                      name: Annotated[str, Form(max_length=200)] = "",
                      role: Annotated[str, Form(max_length=16)] = Role.MEMBER.value,
                      portal_access: Annotated[str | None, Form(max_length=8)] = None) -> HTMLResponse:
    need(identity, "users.write")
    org = await org_of(request, identity)
    web = services(request)
    form = {"email": email, "extension": extension, "name": name, "role": role, "portal_access": bool(portal_access)}
    try:
        if role != Role.MEMBER.value:
            need(identity, "users.roles")
        created = await web.accounts.add_user(
            org.id, UserSpec(email=email, extension=extension, name=name or None, role=role),
            granter_role=identity.role, audit=_audit(request, identity, org, "users.create"))
    except DomainError as exc:
        return show(request, "users/new.html", {"roles": _roles(identity, org), "form": form, "error": exc.message},
                    status_code=exc.status)
    user = created.user
    await web.webhooks.publish(org.id, "user.created", {"user_id": user.id, "extension": user.extension,
                                                        "email": user.email, "name": user.name, "role": user.role})
    invited, invite_error = False, None
    if portal_access:
        # The user exists now: an invitation that fails must not cost the one showing of the password.
        try:
            await web.auth.invite(created.user.id, actor_of(request, identity))
            invited = True
        except DomainError as exc:
            invite_error = exc.message
    assert created.sip_password is not None  # generated by the service: the portal never takes a chosen one
    response = show(request, "users/secret.html", {
        "user": created.user, "sip_username": created.sip_username, "sip_password": created.sip_password,
        "created": True, "invited": invited, "invite_error": invite_error, **_sip_server(request),
    }, status_code=201)
    response.headers.update(_NO_STORE)
    return response


@router.get("/users/{user_id}", response_class=HTMLResponse)
async def user_page(request: Request, identity: PageIdentity, user_id: UserId) -> HTMLResponse:
    need(identity, "users.read")
    org = await org_of(request, identity)
    view = await services(request).accounts.user(org.id, user_id)
    show_devices = can(identity, "registrations.read")
    devices = (await _devices(request, org.id, user_id)).get(user_id, []) if show_devices else []
    return show(request, "users/detail.html", {
        "row": UserRow(view.user, view.sip_username, devices), "show_devices": show_devices,
        "can_rotate": can(identity, "extensions.credentials") and bool(view.sip_username), **_sip_server(request),
    })


@router.post("/users/{user_id}/sip-password", response_class=HTMLResponse)
async def rotate_sip_password(request: Request, identity: PageIdentity, user_id: UserId) -> HTMLResponse:
    need(identity, "extensions.credentials")
    org = await org_of(request, identity)
    web = services(request)
    username, password = await web.accounts.rotate_sip_password(
        org.id, user_id, audit=_audit(request, identity, org, "extensions.rotate_password"))
    view = await web.accounts.user(org.id, user_id)
    response = show(request, "users/secret.html", {
        "user": view.user, "sip_username": username, "sip_password": password, "created": False,
        "invited": False, **_sip_server(request),
    })
    response.headers.update(_NO_STORE)
    return response
