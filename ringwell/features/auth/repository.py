"""Queries of the auth slice: logins, one-time email tokens, recovery codes, API keys.

Everything that changes a one-time secret (an email token, a recovery code, the TOTP state)
is a conditional UPDATE whose row count says whether *this* request won: two requests racing
with the same link or code cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization, User
from ringwell.features.auth.models import ApiKey, EmailToken, RecoveryCode, WebSession

__all__ = [
    "api_keys_page",
    "claim_recovery_code",
    "claim_token",
    "login_user",
    "org_of_kind",
    "recovery_codes_left",
    "replace_mfa_secret",
    "replace_recovery_codes",
    "revoke_api_key",
    "rowcount",
    "token_by_hash",
    "void_tokens",
    "web_session",
]


def rowcount(result: object) -> int:
    count = getattr(result, "rowcount", None)
    return int(count) if count is not None else 0


async def login_user(session: AsyncSession, login_email: str) -> tuple[User, Organization] | None:
    row = (await session.execute(
        select(User, Organization).join(Organization, Organization.id == User.org_id)
        .where(User.login_email == login_email)
    )).one_or_none()
    return (row[0], row[1]) if row is not None else None


async def org_of_kind(session: AsyncSession, kind: str) -> Organization | None:
    result = await session.execute(select(Organization).where(Organization.kind == kind)
                                   .order_by(Organization.created_at).limit(1))
    return result.scalar_one_or_none()


async def web_session(session: AsyncSession, session_id: str) -> WebSession | None:
    found: WebSession | None = await session.get(WebSession, session_id)
    return found


async def token_by_hash(session: AsyncSession, digest: str) -> EmailToken | None:
    result = await session.execute(select(EmailToken).where(EmailToken.token_hash == digest))
    return result.scalar_one_or_none()


async def claim_token(session: AsyncSession, token_id: str, now: datetime) -> bool:
    """Mark a token used; False if another request used it first."""
    result = await session.execute(update(EmailToken).where(EmailToken.id == token_id, EmailToken.used_at.is_(None))
                                   .values(used_at=now))
    return rowcount(result) == 1


async def void_tokens(session: AsyncSession, user_id: str, purposes: Sequence[str], now: datetime) -> None:
    """Every unused token of ``user_id`` for ``purposes`` stops working (a newer one replaces them)."""
    await session.execute(update(EmailToken).where(EmailToken.user_id == user_id, EmailToken.used_at.is_(None),
                                                   EmailToken.purpose.in_(list(purposes))).values(used_at=now))


async def replace_mfa_secret(session: AsyncSession, user_id: str, old: str | None, new: str | None, *,
                             enabled_at: datetime | None = None) -> bool:
    """Swap ``users.mfa_secret`` from ``old`` to ``new`` if it is still ``old`` (optimistic lock);
    with ``enabled_at``, MFA is in force from then on."""
    query = update(User).where(User.id == user_id)
    query = query.where(User.mfa_secret.is_(None) if old is None else User.mfa_secret == old)
    values: dict[str, object] = {"mfa_secret": new}
    if enabled_at is not None:
        values["mfa_enabled_at"] = enabled_at
    result = await session.execute(query.values(**values))
    return rowcount(result) == 1


async def replace_recovery_codes(session: AsyncSession, user_id: str, hashes: Sequence[str]) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all([RecoveryCode(user_id=user_id, code_hash=digest) for digest in hashes])


async def claim_recovery_code(session: AsyncSession, user_id: str, digest: str, now: datetime) -> bool:
    result = await session.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.code_hash == digest, RecoveryCode.used_at.is_(None),
    ).values(used_at=now))
    return rowcount(result) >= 1


async def recovery_codes_left(session: AsyncSession, user_id: str) -> int:
    result = await session.execute(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)))
    return int(result.scalar_one())


async def api_keys_page(session: AsyncSession, org_id: str, *, before: tuple[datetime, str] | None,
                        limit: int) -> Sequence[ApiKey]:
    """The org's keys that work (not revoked), newest first, older than ``before`` (created_at, id)."""
    query = (select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
             .order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit))
    if before is not None:
        at, key_id = before
        query = query.where((ApiKey.created_at < at) | ((ApiKey.created_at == at) & (ApiKey.id < key_id)))
    return (await session.execute(query)).scalars().all()


async def revoke_api_key(session: AsyncSession, org_id: str, key_id: str, now: datetime) -> ApiKey | None:
    """Revoke the org's key ``key_id``; None if the org has no such working key."""
    key = (await session.execute(select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id,
                                                      ApiKey.revoked_at.is_(None)))).scalar_one_or_none()
    if key is None:
        return None
    key.revoked_at = now
    return key
