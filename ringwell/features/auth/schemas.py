"""API shapes of the auth slice: who am I, API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from ringwell.features.auth.models import ApiKey
from ringwell.web.schemas import RequestBody

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyOut", "ApiKeyPage", "Me", "MeApiKey", "MeOrg", "MeUser"]

Scope = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)*$")]


class MeOrg(BaseModel):
    id: str
    name: str
    kind: str


class MeUser(BaseModel):
    id: str
    email: str
    name: str | None
    role: str
    mfa_enabled: bool


class MeApiKey(BaseModel):
    id: str


class Me(BaseModel):
    """The caller: a logged-in user, or an organization's API key."""

    kind: Literal["user", "api_key"]
    org: MeOrg
    role: str  # the user's role; "api_key" for a key
    permissions: list[str] = Field(description="what the caller may do: the role's permissions or the key's scopes")
    staff: bool = Field(description="a user of the operator's organization (may act in other organizations)")
    user: MeUser | None = None
    api_key: MeApiKey | None = None


class ApiKeyOut(BaseModel):
    """An API key as listed: its prefix identifies it; the secret part is never shown again."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(id=key.id, name=key.name, prefix=key.prefix, scopes=[str(s) for s in key.scopes],
                   created_at=key.created_at, created_by=key.created_by, last_used_at=key.last_used_at)


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the whole key (rwk_...): shown in this response only; store it now")


class ApiKeyCreate(RequestBody):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    scopes: list[Scope] = Field(min_length=1, max_length=64,
                                description="permission names; each must be held by the caller")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None
