"""Who is asking: browser sessions and API keys resolved to an :class:`Identity`.

Session tokens and API keys are 256-bit random strings handed out once; only their SHA-256 is
stored. A session lasts at most ``lifetime`` and ends after ``idle`` without a request. A new
token is issued whenever a session gains privilege (password → MFA), so a token seen before
login is worthless after it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.accounts.models import Organization, OrgKind, User
from ringwell.features.auth.errors import InvalidScopes
from ringwell.features.auth.models import ApiKey, WebSession
from ringwell.features.auth.permissions import OPERATOR_PERMISSIONS, ORG_PERMISSIONS, permissions_of

__all__ = ["API_KEY_PREFIX", "ApiKeys", "Identity", "IssuedKey", "SessionStore", "token_hash"]

API_KEY_PREFIX = "rwk_"
_TOUCH_EVERY = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Identity:
    """A resolved credential: a logged-in user (session) or an org's API key."""

    org_id: str
    org_kind: str
    role: str
    permissions: frozenset[str]
    user_id: str | None = None
    email: str | None = None
    session_id: str | None = None
    csrf_token: str | None = None
    mfa_pending: bool = False
    authenticated_at: datetime | None = None
    api_key_id: str | None = None
    org: Organization | None = field(default=None, compare=False, repr=False)  # as read with the credential

    @property
    def staff(self) -> bool:
        """A user of the operator's organization: may act in other orgs as far as permissions go."""
        return self.org_kind == OrgKind.OPERATOR.value and self.api_key_id is None


def _now() -> datetime:
    return datetime.now(UTC)


class SessionStore:
    def __init__(self, sessions: async_sessionmaker[Any], *, lifetime: timedelta = timedelta(hours=12),
                 idle: timedelta = timedelta(hours=2)) -> None:
        self._sessions = sessions
        self.lifetime = lifetime
        self.idle = idle

    async def create(self, session: AsyncSession, user: User, *, mfa_pending: bool, ip: str | None,
                     user_agent: str | None) -> str:
        """A new session for ``user`` (inside the caller's transaction); returns its token, once."""
        token = secrets.token_urlsafe(32)
        now = _now()
        session.add(WebSession(
            token_hash=token_hash(token), user_id=user.id, org_id=user.org_id, csrf_token=secrets.token_urlsafe(32),
            mfa_pending=mfa_pending, created_at=now, last_seen_at=now, authenticated_at=now,
            expires_at=now + self.lifetime, ip=(ip or "")[:64] or None, user_agent=(user_agent or "")[:255] or None,
        ))
        return token

    async def resolve(self, token: str) -> Identity | None:
        if not token or len(token) > 128:
            return None
        now = _now()
        async with self._sessions() as session:
            row = (await session.execute(
                select(WebSession, User, Organization)
                .join(User, User.id == WebSession.user_id)
                .join(Organization, Organization.id == WebSession.org_id)
                .where(WebSession.token_hash == token_hash(token))
            )).one_or_none()
            if row is None:
                return None
            web, user, org = row
            if web.expires_at <= now or web.last_seen_at + self.idle <= now or user.disabled_at is not None:
                await session.execute(delete(WebSession).where(WebSession.id == web.id))
                await session.commit()
                return None
            if now - web.last_seen_at >= _TOUCH_EVERY:
                await session.execute(update(WebSession).where(WebSession.id == web.id).values(last_seen_at=now))
                await session.commit()
        operator = org.kind == OrgKind.OPERATOR.value
        return Identity(
            org_id=org.id, org_kind=org.kind, role=user.role,
            permissions=frozenset() if web.mfa_pending else permissions_of(user.role, operator_org=operator),
            user_id=user.id, email=user.login_email or user.email, session_id=web.id, csrf_token=web.csrf_token,
            mfa_pending=web.mfa_pending, authenticated_at=web.authenticated_at, org=org,
        )

    async def revoke(self, session_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(WebSession).where(WebSession.id == session_id))

    async def revoke_user(self, session: AsyncSession, user_id: str, *, keep: str | None = None) -> None:
        """End every session of ``user_id`` but ``keep`` (after a password change or reset)."""
        query = delete(WebSession).where(WebSession.user_id == user_id)
        if keep is not None:
            query = query.where(WebSession.id != keep)
        await session.execute(query)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str  # the whole key: shown once, never stored
    row: ApiKey


class ApiKeys:
    """Issues and resolves API keys. A resolved key (or a refused one) is remembered for ``ttl``
    seconds (2 s for a refusal): an API client's every request would otherwise cost a database
    read. A key revoked here is forgotten at once; other nodes stop accepting it within ``ttl``."""

    def __init__(self, sessions: async_sessionmaker[Any], ttl: float = 10.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Identity | None]] = {}

    def forget(self) -> None:
        """Drop every remembered key (after a revocation)."""
        self._cache.clear()

    @staticmethod
    def allowed_scopes(org_kind: str) -> frozenset[str]:
        if org_kind == OrgKind.OPERATOR.value:
            return ORG_PERMISSIONS | OPERATOR_PERMISSIONS
        return ORG_PERMISSIONS

    async def create(self, session: AsyncSession, *, org_id: str, org_kind: str, created_by: str | None, name: str,
                     scopes: list[str], creator: frozenset[str]) -> IssuedKey:
        """A key holding ``scopes``: each must exist and be held by its creator (no escalation)."""
        unknown = sorted(set(scopes) - self.allowed_scopes(org_kind))
        if unknown:
            raise InvalidScopes(f"unknown scopes: {', '.join(unknown)}", {"scopes": unknown})
        beyond = sorted(set(scopes) - creator)
        if beyond:
            raise InvalidScopes(f"you cannot grant scopes you do not hold: {', '.join(beyond)}", {"scopes": beyond})
        if not scopes:
            raise InvalidScopes("an API key needs at least one scope", {"scopes": []})
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiKey(org_id=org_id, created_by=created_by, name=name, prefix=prefix, secret_hash=token_hash(secret),
                     scopes=sorted(set(scopes)))
        session.add(row)
        await session.flush()
        return IssuedKey(f"{API_KEY_PREFIX}{prefix}_{secret}", row)

    async def resolve(self, key: str) -> Identity | None:
        if not key.startswith(API_KEY_PREFIX) or len(key) > 128:
            return None
        digest = token_hash(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        identity = await self._lookup(key)
        if len(self._cache) >= 10_000:
            self._cache.clear()
        self._cache[digest] = (now + (self._ttl if identity is not None else min(self._ttl, 2.0)), identity)
        return identity

    async def _lookup(self, key: str) -> Identity | None:
        prefix, _, secret = key[len(API_KEY_PREFIX):].partition("_")
        if not prefix or not secret:
            return None
        now = _now()
        async with self._sessions() as session:
            row = (await session.execute(
                select(ApiKey, Organization).join(Organization, Organization.id == ApiKey.org_id)
                .where(ApiKey.prefix == prefix)
            )).one_or_none()
            if row is None:
                return None
            api_key, org = row
            if api_key.revoked_at is not None or not hmac.compare_digest(api_key.secret_hash, token_hash(secret)):
                return None
            if api_key.last_used_at is None or now - api_key.last_used_at >= _TOUCH_EVERY:
                await session.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))
                await session.commit()
        scopes = frozenset(str(s) for s in api_key.scopes) & self.allowed_scopes(org.kind)
        return Identity(org_id=org.id, org_kind=org.kind, role="api_key", permissions=scopes, api_key_id=api_key.id,
                        org=org)
