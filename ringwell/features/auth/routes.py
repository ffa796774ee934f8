"""API routes of the auth slice (`/api/v1`): who am I, and an organization's API keys.

Logging in is the portal's business (forms, cookies); the API authenticates with API keys.
A key is shown in the response that creates it and never again; it can hold only scopes its
creator holds (a key creating keys holds its own scopes).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.auth.errors import InvalidCursor
from ringwell.features.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyPage,
    Me,
    MeApiKey,
    MeOrg,
    MeUser,
)
from ringwell.storage.cursor import decode_position, encode_position
from ringwell.web.deps import Scope, org_scope, require_identity, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["auth"])


def _cursor_error() -> InvalidCursor:
    return InvalidCursor("the cursor is not one this API returned", {"field": "cursor"})


@router.get("/me", response_model=Me, operation_id="get_me", summary="Who is calling: user or API key, org, "
            "role and permissions")
async def get_me(request: Request) -> Me:
    identity = await require_identity(request)
    web = services(request)
    org = await web.accounts.org_by_id(identity.org_id)
    if org is None:
        raise OrganizationNotFound("your organization no longer exists", {"org_id": identity.org_id})
    me = Me(kind="api_key" if identity.api_key_id else "user", org=MeOrg(id=org.id, name=org.name, kind=org.kind),
            role=identity.role, permissions=sorted(identity.permissions), staff=identity.staff)
    if identity.api_key_id is not None:
        me.api_key = MeApiKey(id=identity.api_key_id)
    elif identity.user_id is not None:
        account = await web.auth.account(identity.user_id)
        me.user = MeUser(id=account.user_id, email=account.email, name=account.name, role=account.role,
                         mfa_enabled=account.mfa_enabled)
    return me


_MANAGE = Depends(org_scope("apikeys.manage"))


@router.get("/orgs/{org_id}/api-keys", response_model=ApiKeyPage, operation_id="list_api_keys",
            summary="The organization's API keys that work, newest first (permission apikeys.manage)")
async def list_api_keys(
    request: Request,
    scope: Annotated[Scope, _MANAGE],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ApiKeyPage:
    before = decode_position(cursor, _cursor_error()) if cursor else None
    keys = await services(request).auth.api_keys(scope.org.id, limit=limit + 1, before=before)
    more = len(keys) > limit
    keys = keys[:limit]
    return ApiKeyPage(items=[ApiKeyOut.of(k) for k in keys],
                      next_cursor=encode_position(keys[-1].created_at, keys[-1].id) if more and keys else None)


@router.post("/orgs/{org_id}/api-keys", response_model=ApiKeyCreated, status_code=201,
             operation_id="create_api_key",
             summary="Create an API key; the key is in this response only (permission apikeys.manage)")
async def create_api_key(request: Request, body: ApiKeyCreate, scope: Annotated[Scope, _MANAGE]) -> ApiKeyCreated:
    issued = await services(request).auth.create_api_key(scope.org, scope.identity, scope.actor, body.name,
                                                          list(body.scopes))
    return ApiKeyCreated(**ApiKeyOut.of(issued.row).model_dump(), key=issued.key)


@router.delete("/orgs/{org_id}/api-keys/{key_id}", status_code=204, response_class=Response,
               operation_id="revoke_api_key", summary="Revoke an API key: it stops working at once "
               "(permission apikeys.manage)",
               responses={404: {"model": ErrorBody, "description": "No such API key in this organization"}})
async def revoke_api_key(request: Request, key_id: Annotated[str, Path(max_length=64)],
                         scope: Annotated[Scope, _MANAGE]) -> Response:
    await services(request).auth.revoke_api_key(scope.org.id, key_id, scope.actor)
    return Response(status_code=204)
