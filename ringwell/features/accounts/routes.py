"""API routes of the accounts slice (`/api/v1`): the organization, its users (with their SIP
extensions), the devices registered now, and the operator's list of organizations.

Thin: parse, call ``AccountsService``, serialise. Tenant isolation comes from ``org_scope`` plus
the service looking every user up with the org's id: another org's user id is 404
``user_not_found`` with the same body as an id that does not exist. Every change is audited in
its own transaction (``_audit``).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.errors import DomainError
from ringwell.features.accounts.errors import InvalidAccountData, InvalidCursor
from ringwell.features.accounts.schemas import (
    NewUserOut,
    OperatorOrgOut,
    OperatorOrgPage,
    OrgOut,
    OrgPatch,
    RegistrationList,
    RegistrationOut,
    SipPasswordOut,
    UserCreate,
    UserOut,
    UserPage,
    UserPatch,
    user_event_data,
)
from ringwell.features.accounts.service import UNSET, AuditHook, UserSpec, UserView
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.permissions import Role, grants
from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.retention import policy_from_settings
from ringwell.storage.cursor import decode_cursor, encode_cursor
from ringwell.web.deps import Scope, operator_scope, org_scope, require_identity, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter()

UserId = Annotated[str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$", description="a user's id")]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Duplicate, or the change would leave no owner"}}
_DIGITS = re.compile(r"[0-9]{1,32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")]


# -- helpers -----------------------------------------------------------------------------------
def _cursor_error() -> InvalidCursor:
    return InvalidCursor("the cursor is not one this API returned", {"field": "cursor"})


def _decode(cursor: str) -> Any:
    return decode_cursor(cursor, _cursor_error())


def _user_cursor(cursor: str | None) -> tuple[int, str] | None:
    if cursor is None:
        return None
    value = _decode(cursor)
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], int)
            or not isinstance(value[1], str) or not _DIGITS.fullmatch(value[1])):
        raise InvalidCursor("the cursor is not one this API returned", {"field": "cursor"})
    return value[0], value[1]


def _name_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    value = _decode(cursor)
    if not isinstance(value, str) or len(value) > 200 or _CONTROL.search(value):
        raise InvalidCursor("the cursor is not one this API returned", {"field": "cursor"})
    return value


def _audit(request: Request, scope: Scope, action: str, target_type: str) -> AuditHook:
    """Records ``action`` by the caller inside the service's transaction."""
    audit = services(request).audit

    async def record(session: AsyncSession, target_id: str, details: dict[str, Any]) -> None:
        await audit.record(action, scope.actor, org_id=scope.org.id, target_type=target_type, target_id=target_id,
                           details=details, session=session)

    return record


def _granter(identity: Identity) -> str:
    """The role a caller grants with. Only owners hold ``users.roles``, and an API key can hold
    only scopes its creator held: a key that got this far with a role change acts as an owner."""
    return identity.role if identity.api_key_id is None else Role.OWNER.value


# -- organization ------------------------------------------------------------------------------
@router.get("/orgs/{org_id}", response_model=OrgOut, operation_id="get_org", tags=["organization"],
            summary="The organization (permission org.read)")
async def get_org(scope: Annotated[Scope, Depends(org_scope("org.read"))]) -> OrgOut:
    return OrgOut.of(scope.org)


@router.patch("/orgs/{org_id}", response_model=OrgOut, operation_id="update_org", tags=["organization"],
              summary="Rename the organization or set its low-balance alert (permission org.update)",
              responses=_CONFLICT)
async def update_org(request: Request, body: OrgPatch,
                     scope: Annotated[Scope, Depends(org_scope("org.update"))]) -> OrgOut:
    sent = body.model_fields_set
    if "call_record_retention_days" in sent:  # within the operator's bound for the org's country
        problem = policy_from_settings(services(request).settings).check_call_record_days(
            body.call_record_retention_days, scope.org.country)
        if problem is not None:
            raise InvalidAccountData(problem, {"field": "call_record_retention_days"})
    org = await services(request).accounts.update_org(
        scope.org.id, name=body.name if "name" in sent else None,
        low_balance_minor=body.low_balance_minor if "low_balance_minor" in sent else UNSET,
        voicemail_attach_audio=body.voicemail_attach_audio,
        voicemail_retention_days=body.voicemail_retention_days if "voicemail_retention_days" in sent else UNSET,
        recording_retention_days=body.recording_retention_days if "recording_retention_days" in sent else UNSET,
        call_record_retention_days=body.call_record_retention_days if "call_record_retention_days" in sent else UNSET,
        audit=_audit(request, scope, "org.update", "organization"),
    )
    return OrgOut.of(org)


# -- users -------------------------------------------------------------------------------------
@router.get("/orgs/{org_id}/users", response_model=UserPage, operation_id="list_users", tags=["users"],
            summary="The organization's users in extension order (permission users.read)")
async def list_users(request: Request, scope: Annotated[Scope, Depends(org_scope("users.read"))],
                     limit: Limit = 50, cursor: Cursor = None) -> UserPage:
    views = await services(request).accounts.users_page(scope.org.id, after=_user_cursor(cursor), limit=limit + 1)
    more = len(views) > limit
    views = views[:limit]
    last = views[-1].user.extension if views else ""
    return UserPage(items=[UserOut.of(v) for v in views],
                    next_cursor=encode_cursor([len(last), last]) if more and views else None)


@router.post("/orgs/{org_id}/users", response_model=NewUserOut, status_code=201, operation_id="create_user",
             tags=["users"], responses=_CONFLICT,
             summary="Create a user with a SIP extension; the generated SIP password is in this response only "
                     "(permission users.write; a role other than member also needs users.roles)")
async def create_user(request: Request, body: UserCreate,
                      scope: Annotated[Scope, Depends(org_scope("users.write"))]) -> NewUserOut:
    web = services(request)
    if body.role != Role.MEMBER.value and not grants(scope.identity.permissions, "users.roles"):
        raise PermissionDenied("your role does not allow giving roles (users.roles)", {"permission": "users.roles"})
    spec = UserSpec(email=body.email, extension=body.extension, sip_username=body.sip_username, name=body.name,
                    role=body.role)
    created = await web.accounts.add_user(scope.org.id, spec, granter_role=_granter(scope.identity),
                                          audit=_audit(request, scope, "users.create", "user"))
    if body.portal_access:
        try:
            await web.auth.invite(created.user.id, scope.actor)
        except DomainError:
            # All or nothing for the caller: when the invitation is refused (the address already
            # logs in as someone else) the user is not kept either, so the request can be retried.
            # Undoing our own creation: no role rule applies, the deletion is audited.
            await web.accounts.delete_user(scope.org.id, created.user.id, granter_role=Role.OWNER.value,
                                           acting_user_id=None, audit=_audit(request, scope, "users.delete", "user"))
            raise
    await web.webhooks.publish(scope.org.id, "user.created", user_event_data(created.user))
    view = await web.accounts.user(scope.org.id, created.user.id)
    assert created.sip_password is not None  # generated: the API never takes a chosen one
    return NewUserOut(**UserOut.of(view).model_dump(), sip_password=created.sip_password)


@router.get("/orgs/{org_id}/users/{user_id}", response_model=UserOut, operation_id="get_user", tags=["users"],
            summary="One user (permission users.read)")
async def get_user(request: Request, scope: Annotated[Scope, Depends(org_scope("users.read"))],
                   user_id: UserId) -> UserOut:
    return UserOut.of(await services(request).accounts.user(scope.org.id, user_id))


# What a user may change on themselves without users.write (their own calls, nobody else's).
_SELF_SERVICE = frozenset({"voicemail_enabled", "dnd"})
_users_write = org_scope("users.write")
_users_read = org_scope("users.read")


async def _user_change_scope(request: Request, org_id: str, user_id: UserId) -> Scope:
    """users.write, except for a logged-in user's own record (then users.read, and the route
    allows only the ``_SELF_SERVICE`` fields): another org stays as hidden as before."""
    identity = await require_identity(request)
    if identity.org_id == org_id and identity.user_id == user_id and identity.api_key_id is None:
        return await _users_read(request, org_id)
    return await _users_write(request, org_id)


@router.patch("/orgs/{org_id}/users/{user_id}", response_model=UserOut, operation_id="update_user", tags=["users"],
              responses=_CONFLICT,
              summary="Change a user's name, ring timeout, role, mailbox or do-not-disturb (permission "
                      "users.write, or your own user for voicemail_enabled and dnd; a role change needs "
                      "users.roles, never grants a role above your own and keeps an owner)")
async def update_user(request: Request, body: UserPatch, scope: Annotated[Scope, Depends(_user_change_scope)],
                      user_id: UserId) -> UserOut:
    """Needs users.write; a logged-in user may change their own ``voicemail_enabled`` and ``dnd``
    with users.read alone."""
    sent = body.model_fields_set
    if not sent <= _SELF_SERVICE and not grants(scope.identity.permissions, "users.write"):
        raise PermissionDenied("your role does not allow this (users.write)", {"permission": "users.write"})
    if body.role is not None and not grants(scope.identity.permissions, "users.roles"):
        raise PermissionDenied("your role does not allow changing roles (users.roles)",
                               {"permission": "users.roles"})
    view: UserView = await services(request).accounts.update_user(
        scope.org.id, user_id, granter_role=_granter(scope.identity),
        name=body.name if "name" in sent else UNSET, ring_timeout=body.ring_timeout, role=body.role,
        voicemail_email=body.voicemail_email, voicemail_enabled=body.voicemail_enabled, dnd=body.dnd,
        audit=_audit(request, scope, "users.role_change" if body.role is not None else "users.update", "user"),
    )
    return UserOut.of(view)


@router.delete("/orgs/{org_id}/users/{user_id}", status_code=204, response_class=Response,
               operation_id="delete_user", tags=["users"], responses=_CONFLICT,
               summary="Delete a user with their SIP credential (permission users.write; "
                       "not yourself, not the last owner)")
async def delete_user(request: Request, scope: Annotated[Scope, Depends(org_scope("users.write"))],
                      user_id: UserId) -> Response:
    await services(request).accounts.delete_user(
        scope.org.id, user_id, granter_role=_granter(scope.identity), acting_user_id=scope.identity.user_id,
        audit=_audit(request, scope, "users.delete", "user"))
    return Response(status_code=204)


@router.post("/orgs/{org_id}/users/{user_id}/sip-password", response_model=SipPasswordOut,
             operation_id="rotate_sip_password", tags=["users"],
             summary="Replace the user's SIP password with a generated one, shown in this response only "
                     "(permission extensions.credentials)")
async def rotate_sip_password(request: Request, scope: Annotated[Scope, Depends(org_scope("extensions.credentials"))],
                              user_id: UserId) -> SipPasswordOut:
    username, password = await services(request).accounts.rotate_sip_password(
        scope.org.id, user_id, audit=_audit(request, scope, "extensions.rotate_password", "user"))
    return SipPasswordOut(user_id=user_id, sip_username=username, sip_password=password)


# -- registrations -----------------------------------------------------------------------------
async def _registrations(request: Request, org_id: str, user_id: str | None) -> RegistrationList:
    web = services(request)
    creds = await web.accounts.sip_credentials(org_id, user_id, webphone=True)  # the web phone is a device too
    now = time.time()
    return RegistrationList(items=[RegistrationOut.of(cred, binding) for cred in creds
                                   for binding in web.registrar.lookup(cred.credential_id, now)])


@router.get("/orgs/{org_id}/registrations", response_model=RegistrationList, operation_id="list_registrations",
            tags=["registrations"],
            summary="Devices registered now with the organization's SIP accounts (permission registrations.read)")
async def list_registrations(request: Request,
                             scope: Annotated[Scope, Depends(org_scope("registrations.read"))]) -> RegistrationList:
    return await _registrations(request, scope.org.id, None)


@router.get("/orgs/{org_id}/users/{user_id}/registrations", response_model=RegistrationList,
            operation_id="list_user_registrations", tags=["registrations"],
            summary="Devices registered now with one user's SIP account (permission registrations.read)")
async def list_user_registrations(request: Request,
                                  scope: Annotated[Scope, Depends(org_scope("registrations.read"))],
                                  user_id: UserId) -> RegistrationList:
    await services(request).accounts.user(scope.org.id, user_id)  # 404 for a missing or foreign user
    return await _registrations(request, scope.org.id, user_id)


# -- operator console --------------------------------------------------------------------------
@router.get("/operator/orgs", response_model=OperatorOrgPage, operation_id="operator_list_orgs", tags=["operator"],
            summary="Every organization by name, with user count and balance (operator permission "
                    "operator.orgs.read)")
async def operator_list_orgs(request: Request,
                             _scope: Annotated[Scope, Depends(operator_scope("operator.orgs.read"))],
                             limit: Limit = 50, cursor: Cursor = None) -> OperatorOrgPage:
    web = services(request)
    summaries = await web.accounts.org_summaries(after=_name_cursor(cursor), limit=limit + 1)
    more = len(summaries) > limit
    summaries = summaries[:limit]
    items = [OperatorOrgOut.of(s, await web.ledger.balance(s.org.id)) for s in summaries]
    next_cursor = encode_cursor(summaries[-1].org.name) if more and summaries else None
    return OperatorOrgPage(items=items, next_cursor=next_cursor)
