"""Queries of the accounts slice. Everything but the SIP-username look-up is org-scoped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import CredentialKind, Organization, SipCredential, User

__all__ = [
    "CredentialRecord",
    "Reachable",
    "credential_by_username",
    "credential_records",
    "expired_webphone_credentials",
    "org_by_name",
    "orgs_page",
    "owner_ids",
    "reachable",
    "user_counts",
    "user_in_org",
    "usernames_of",
    "users_of_org",
    "users_page",
    "webphone_credentials",
]

_DEVICE_ONLY = SipCredential.kind != CredentialKind.WEBPHONE.value


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """What the registrar needs to authenticate a SIP username."""

    credential_id: str
    org_id: str
    user_id: str
    username: str
    realm: str
    ha1_md5: str
    ha1_sha256: str
    extension: str
    kind: str = CredentialKind.DEVICE.value
    expires_at: float | None = None  # wall clock (seconds since the epoch, UTC); None: never

    def expired(self, now: float) -> bool:
        """Whether the credential no longer authenticates (a web phone's, after its lifetime)."""
        return self.expires_at is not None and self.expires_at <= now


def _record(cred: SipCredential, extension: str) -> CredentialRecord:
    return CredentialRecord(
        cred.id, cred.org_id, cred.user_id, cred.username, cred.realm, cred.ha1_md5, cred.ha1_sha256, extension,
        cred.kind, cred.expires_at.timestamp() if cred.expires_at is not None else None,
    )


async def org_by_name(session: AsyncSession, name: str) -> Organization | None:
    result = await session.execute(select(Organization).where(Organization.name == name))
    return result.scalar_one_or_none()


async def orgs(session: AsyncSession) -> Sequence[Organization]:
    result = await session.execute(select(Organization).order_by(Organization.name))
    return result.scalars().all()


async def users_of_org(session: AsyncSession, org_id: str) -> Sequence[User]:
    result = await session.execute(select(User).where(User.org_id == org_id).order_by(User.extension))
    return result.scalars().all()


async def orgs_page(session: AsyncSession, after: str | None, limit: int) -> Sequence[Organization]:
    """Organizations by name (server-wide: the operator console), after the name ``after``."""
    query = select(Organization).order_by(Organization.name).limit(limit)
    if after is not None:
        query = query.where(Organization.name > after)
    return (await session.execute(query)).scalars().all()


async def user_counts(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, int]:
    if not org_ids:
        return {}
    result = await session.execute(
        select(User.org_id, func.count()).where(User.org_id.in_(org_ids)).group_by(User.org_id)
    )
    return {org_id: int(count) for org_id, count in result.all()}


async def users_page(session: AsyncSession, org_id: str, after: tuple[int, str] | None,
                     limit: int) -> Sequence[User]:
    """The org's users in extension order ("99" before "100"), after the (length, extension) ``after``."""
    length = func.length(User.extension)
    query = select(User).where(User.org_id == org_id).order_by(length, User.extension).limit(limit)
    if after is not None:
        size, extension = after
        query = query.where(or_(length > size, and_(length == size, User.extension > extension)))
    return (await session.execute(query)).scalars().all()


async def user_in_org(session: AsyncSession, org_id: str, user_id: str, *, lock: bool = False) -> User | None:
    query = select(User).where(User.org_id == org_id, User.id == user_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def owner_ids(session: AsyncSession, org_id: str, owner_role: str) -> list[str]:
    """The org's owners, locked (PostgreSQL) so two concurrent demotions cannot both see a second owner."""
    result = await session.execute(
        select(User.id).where(User.org_id == org_id, User.role == owner_role).order_by(User.id).with_for_update()
    )
    return list(result.scalars().all())


async def usernames_of(session: AsyncSession, user_ids: Sequence[str]) -> dict[str, str]:
    """User id → SIP username (the oldest credential when a user has several; never a web phone's)."""
    if not user_ids:
        return {}
    result = await session.execute(
        select(SipCredential.user_id, SipCredential.username)
        .where(SipCredential.user_id.in_(user_ids), _DEVICE_ONLY)
        .order_by(SipCredential.created_at.desc(), SipCredential.id.desc())
    )
    return dict(result.all())


async def credential_records(session: AsyncSession, org_id: str, user_id: str | None = None, *,
                             webphone: bool = False) -> list[CredentialRecord]:
    """The org's SIP credentials (of one user when given) with their users' extensions; the web
    phone's short-lived ones only when ``webphone``."""
    query = (
        select(SipCredential, User.extension)
        .join(User, User.id == SipCredential.user_id)
        .where(SipCredential.org_id == org_id, User.org_id == org_id)
        .order_by(func.length(User.extension), User.extension, SipCredential.username)
    )
    if user_id is not None:
        query = query.where(SipCredential.user_id == user_id)
    if not webphone:
        query = query.where(_DEVICE_ONLY)
    return [_record(c, extension) for c, extension in (await session.execute(query)).all()]


async def user_by_extension(session: AsyncSession, org_id: str, extension: str) -> User | None:
    result = await session.execute(select(User).where(User.org_id == org_id, User.extension == extension))
    return result.scalar_one_or_none()


async def user_by_email(session: AsyncSession, org_id: str, email: str) -> User | None:
    result = await session.execute(select(User).where(User.org_id == org_id, User.email == email))
    return result.scalar_one_or_none()


async def credential_row(session: AsyncSession, username: str) -> SipCredential | None:
    result = await session.execute(select(SipCredential).where(SipCredential.username == username))
    return result.scalar_one_or_none()


async def credential_by_username(session: AsyncSession, username: str) -> CredentialRecord | None:
    """SIP usernames are unique on the server, so this look-up is the one not scoped by org."""
    result = await session.execute(
        select(SipCredential, User.extension)
        .join(User, User.id == SipCredential.user_id)
        .where(SipCredential.username == username)
    )
    row = result.one_or_none()
    if row is None:
        return None
    cred, extension = row
    return _record(cred, extension)


async def credentials_of_org(session: AsyncSession, org_id: str) -> Sequence[SipCredential]:
    """The org's SIP credentials set up for devices (not the web phone's)."""
    result = await session.execute(select(SipCredential).where(SipCredential.org_id == org_id, _DEVICE_ONLY))
    return result.scalars().all()


async def webphone_credentials(session: AsyncSession, user_id: str) -> Sequence[SipCredential]:
    """A user's web phone credentials, oldest first (expired ones included)."""
    result = await session.execute(
        select(SipCredential)
        .where(SipCredential.user_id == user_id, SipCredential.kind == CredentialKind.WEBPHONE.value)
        .order_by(SipCredential.created_at, SipCredential.id)
    )
    return result.scalars().all()


async def expired_webphone_credentials(session: AsyncSession, now: datetime, limit: int) -> Sequence[SipCredential]:
    """Web phone credentials expired at ``now`` (server-wide: the purge), at most ``limit``."""
    result = await session.execute(
        select(SipCredential)
        .where(SipCredential.kind == CredentialKind.WEBPHONE.value, SipCredential.expires_at <= now)
        .order_by(SipCredential.expires_at, SipCredential.id)
        .limit(limit)
    )
    return result.scalars().all()


@dataclass(frozen=True, slots=True)
class Reachable:
    """A user a call can ring: where the dial plan leads."""

    user_id: str
    extension: str
    credential_ids: tuple[str, ...]
    ring_timeout: int
    voicemail: bool = True  # unanswered calls go to the user's mailbox (when the server has voicemail)
    dnd: bool = False  # do-not-disturb: no device rings; the mailbox answers, or the call is busy (486)


async def reachable(session: AsyncSession, org_id: str, dialled: str) -> Reachable | None:
    """The user of ``org_id`` whose extension or SIP username is ``dialled`` (never another org's)."""
    user = await user_by_extension(session, org_id, dialled)
    if user is None:
        result = await session.execute(
            select(SipCredential.user_id).where(SipCredential.org_id == org_id, SipCredential.username == dialled)
        )
        user_id = result.scalar_one_or_none()
        if user_id is None:
            return None
        user = await session.get(User, user_id)
        if user is None or user.org_id != org_id:
            return None
    creds = await session.execute(select(SipCredential.id).where(SipCredential.user_id == user.id))
    return Reachable(user.id, user.extension, tuple(creds.scalars().all()), user.ring_timeout,
                     voicemail=user.voicemail_enabled, dnd=user.dnd)
