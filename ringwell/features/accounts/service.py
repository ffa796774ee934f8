"""Accounts: organizations, users and SIP credentials (validate → persist).

SIP passwords are never stored: only HA1 hashes for MD5 and SHA-256 in the server's realm.
A password the operator does not choose is generated (128 bits) and returned once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.accounts import repository as repo
from ringwell.features.accounts.errors import (
    DuplicateName,
    InvalidAccountData,
    OrganizationNotFound,
    SipUsernameTaken,
    UserNotFound,
)
from ringwell.features.accounts.models import Organization, SipCredential, User
from ringwell.sip.digest import compute_ha1

__all__ = ["AccountsService", "NewUser", "generate_sip_password"]

_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_EXTENSION_RE = re.compile(r"[0-9]{2,8}")
_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{1,63}")
MIN_PASSWORD_LENGTH = 8
MIN_RING_TIMEOUT = 1
MAX_RING_TIMEOUT = 600


def generate_sip_password() -> str:
    """A strong SIP password (22 URL-safe characters, about 128 bits)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class NewUser:
    user: User
    sip_username: str
    sip_password: str | None  # set only when it was generated: show it once


@dataclass(frozen=True, slots=True)
class UserSpec:
    email: str
    extension: str
    sip_username: str | None = None
    sip_password: str | None = None


class AccountsService:
    def __init__(self, sessions: async_sessionmaker[Any], realm: str) -> None:
        self._sessions = sessions
        self._realm = realm

    async def create_org(self, name: str, country: str = "US", currency: str = "USD") -> Organization:
        """A new organization in ``country`` (ISO 3166 alpha-2) paying in ``currency`` (ISO 4217)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidAccountData("organization name must be 1 to 200 characters", {"field": "name"})
        country, currency = country.strip().upper(), currency.strip().upper()
        if country not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidAccountData(f"unknown country code {country!r} (ISO 3166 alpha-2, e.g. US)",
                                     {"field": "country"})
        if not _CURRENCY_RE.fullmatch(currency):
            raise InvalidAccountData(f"currency {currency!r} is not an ISO 4217 code (e.g. USD)", {"field": "currency"})
        async with self._sessions() as session, session.begin():
            if await repo.org_by_name(session, name) is not None:
                raise DuplicateName(f"an organization named {name!r} exists", {"field": "name"})
            org = Organization(name=name, country=country, currency=currency)
            session.add(org)
        return org

    @property
    def sessions(self) -> async_sessionmaker[Any]:
        return self._sessions

    async def org_by_id(self, org_id: str) -> Organization | None:
        async with self._sessions() as session:
            org: Organization | None = await session.get(Organization, org_id)
            return org

    async def reachable(self, org_id: str, dialled: str) -> repo.Reachable | None:
        """Who a call from ``org_id`` to ``dialled`` (an extension or SIP username) rings."""
        async with self._sessions() as session:
            return await repo.reachable(session, org_id, dialled)

    async def org(self, name: str) -> Organization:
        async with self._sessions() as session:
            org = await repo.org_by_name(session, name)
        if org is None:
            raise OrganizationNotFound(f"no organization named {name!r}", {"org": name})
        return org

    async def orgs(self) -> list[Organization]:
        async with self._sessions() as session:
            return list(await repo.orgs(session))

    async def users(self, org_name: str) -> list[tuple[User, str]]:
        """The org's users with their SIP usernames."""
        org = await self.org(org_name)
        async with self._sessions() as session:
            users = await repo.users_of_org(session, org.id)
            creds = {c.user_id: c.username for c in await repo.credentials_of_org(session, org.id)}
        return [(user, creds.get(user.id, "")) for user in users]

    async def create_user(self, org_name: str, spec: UserSpec) -> NewUser:
        return (await self.create_users(org_name, [spec]))[0]

    async def create_users(self, org_name: str, specs: Iterable[UserSpec]) -> list[NewUser]:
        """Create users atomically: one bad row and none is created."""
        org = await self.org(org_name)
        created: list[NewUser] = []
        async with self._sessions() as session, session.begin():
            for number, spec in enumerate(specs, start=1):
                try:
                    created.append(await self._add_user(session, org, spec))
                except (InvalidAccountData, DuplicateName, SipUsernameTaken) as exc:
                    if number > 1 or len(created) > 0:
                        exc.details["row"] = number
                    raise
            try:
                await session.flush()
            except IntegrityError as exc:
                raise DuplicateName("a user or SIP username already exists") from exc
        return created

    async def _add_user(self, session: AsyncSession, org: Organization, spec: UserSpec) -> NewUser:
        email = spec.email.strip().lower()
        extension = spec.extension.strip()
        if not _EMAIL_RE.fullmatch(email):
            raise InvalidAccountData(f"invalid email address {spec.email!r}", {"field": "email"})
        if not _EXTENSION_RE.fullmatch(extension):
            raise InvalidAccountData("extension must be 2 to 8 digits", {"field": "extension"})
        if await repo.user_by_extension(session, org.id, extension) is not None:
            raise DuplicateName(f"extension {extension} exists in {org.name}", {"field": "extension"})
        if await repo.user_by_email(session, org.id, email) is not None:
            raise DuplicateName(f"{email} already has a user in {org.name}", {"field": "email"})
        username = spec.sip_username or await self._free_username(session, extension)
        if not _USERNAME_RE.fullmatch(username):
            raise InvalidAccountData(
                "SIP username must be 2 to 64 letters, digits, '.', '_' or '-'", {"field": "sip_username"}
            )
        if await repo.credential_row(session, username) is not None:
            raise SipUsernameTaken(f"SIP username {username!r} is taken", {"field": "sip_username"})
        password = spec.sip_password
        generated = password is None
        if password is None:
            password = generate_sip_password()
        elif len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidAccountData(
                f"SIP password must have at least {MIN_PASSWORD_LENGTH} characters", {"field": "sip_password"}
            )
        user = User(org_id=org.id, email=email, extension=extension)
        session.add(user)
        await session.flush()
        session.add(self._credential(org.id, user.id, username, password))
        return NewUser(user, username, password if generated else None)

    def _credential(self, org_id: str, user_id: str, username: str, password: str) -> SipCredential:
        return SipCredential(
            org_id=org_id,
            user_id=user_id,
            username=username,
            realm=self._realm,
            ha1_md5=compute_ha1(username, self._realm, password, "MD5"),
            ha1_sha256=compute_ha1(username, self._realm, password, "SHA-256"),
        )

    async def _free_username(self, session: AsyncSession, extension: str) -> str:
        while True:
            candidate = f"{extension}-{secrets.token_hex(3)}"
            if await repo.credential_row(session, candidate) is None:
                return candidate

    async def set_sip_password(self, username: str, password: str | None = None) -> str | None:
        """Replace a SIP password; returns the new one when it was generated."""
        generated = password is None
        if password is None:
            password = generate_sip_password()
        elif len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidAccountData(f"SIP password must have at least {MIN_PASSWORD_LENGTH} characters")
        async with self._sessions() as session, session.begin():
            cred = await repo.credential_row(session, username)
            if cred is None:
                raise UserNotFound(f"no SIP username {username!r}")
            fresh = self._credential(cred.org_id, cred.user_id, username, password)
            cred.realm, cred.ha1_md5, cred.ha1_sha256 = fresh.realm, fresh.ha1_md5, fresh.ha1_sha256
        return password if generated else None

    async def set_ring_timeout(self, org_name: str, extension: str, seconds: int) -> None:
        """How long a call rings this user's devices before it counts as not answered (480)."""
        if not MIN_RING_TIMEOUT <= seconds <= MAX_RING_TIMEOUT:
            raise InvalidAccountData(
                f"ring timeout must be {MIN_RING_TIMEOUT} to {MAX_RING_TIMEOUT} seconds", {"field": "seconds"})
        async with self._sessions() as session, session.begin():
            org = await repo.org_by_name(session, org_name)
            if org is None:
                raise OrganizationNotFound(f"no organization named {org_name!r}", {"org": org_name})
            user = await repo.user_by_extension(session, org.id, extension)
            if user is None:
                raise UserNotFound(f"no extension {extension!r} in {org_name!r}", {"extension": extension})
            user.ring_timeout = seconds

    async def credential(self, username: str) -> repo.CredentialRecord | None:
        async with self._sessions() as session:
            return await repo.credential_by_username(session, username)
