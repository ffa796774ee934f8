"""Queries of the accounts slice. Everything but the SIP-username look-up is org-scoped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization, SipCredential, User

__all__ = ["CredentialRecord", "Reachable", "credential_by_username", "org_by_name", "reachable", "users_of_org"]


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


async def org_by_name(session: AsyncSession, name: str) -> Organization | None:
    result = await session.execute(select(Organization).where(Organization.name == name))
    return result.scalar_one_or_none()


async def orgs(session: AsyncSession) -> Sequence[Organization]:
    result = await session.execute(select(Organization).order_by(Organization.name))
    return result.scalars().all()


async def users_of_org(session: AsyncSession, org_id: str) -> Sequence[User]:
    result = await session.execute(select(User).where(User.org_id == org_id).order_by(User.extension))
    return result.scalars().all()


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
    return CredentialRecord(
        cred.id, cred.org_id, cred.user_id, cred.username, cred.realm, cred.ha1_md5, cred.ha1_sha256, extension
    )


async def credentials_of_org(session: AsyncSession, org_id: str) -> Sequence[SipCredential]:
    result = await session.execute(select(SipCredential).where(SipCredential.org_id == org_id))
    return result.scalars().all()


@dataclass(frozen=True, slots=True)
class Reachable:
    """A user a call can ring: where the dial plan leads."""

    user_id: str
    extension: str
    credential_ids: tuple[str, ...]
    ring_timeout: int


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
    return Reachable(user.id, user.extension, tuple(creds.scalars().all()), user.ring_timeout)
