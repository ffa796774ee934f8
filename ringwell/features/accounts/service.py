"""Accounts: organizations, users and SIP credentials (validate → persist).

SIP passwords are never stored: only HA1 hashes for MD5 and SHA-256 in the server's realm.
A password the operator does not choose is generated (128 bits) and returned once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.accounts import repository as repo
from ringwell.features.accounts.errors import (
    CannotRemoveSelf,
    DuplicateName,
    InvalidAccountData,
    LastOwner,
    OrganizationClosed,
    OrganizationNotFound,
    RoleNotAllowed,
    SipUsernameTaken,
    UserNotFound,
)
from ringwell.features.accounts.models import CredentialKind, Organization, OrgKind, SipCredential, User
from ringwell.features.accounts.repository import CredentialRecord
from ringwell.features.auth.permissions import Role, is_staff
from ringwell.sip.digest import compute_ha1

__all__ = [
    "UNSET",
    "AccountsService",
    "AuditHook",
    "NewUser",
    "OrgSummary",
    "UserSpec",
    "UserView",
    "check_grant",
    "generate_sip_password",
]

AuditHook = Callable[[AsyncSession, str, dict[str, Any]], Awaitable[None]]
"""Records the audit event of a change inside the change's own transaction:
``hook(session, target_id, details)``. The caller (the HTTP side) knows who acts and names the
action; the service knows what changed."""


class _Unset(Enum):
    UNSET = "unset"


UNSET: Literal[_Unset.UNSET] = _Unset.UNSET
"""A keyword left out (as opposed to set to None)."""

# How far up a role reaches: nobody grants (or takes away) a role above their own. Staff roles
# sit beside admin; only the operator org's owners hold ``users.roles`` there anyway.
_RANK: dict[str, int] = {
    Role.MEMBER: 1, Role.ADMIN: 2, Role.SUPPORT: 2, Role.BILLING: 2, Role.PRIVACY: 2, Role.AUDITOR: 2, Role.OWNER: 3,
}

_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")  # never stored: PostgreSQL refuses NUL in text
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
    name: str | None = None
    role: str = Role.MEMBER.value


@dataclass(frozen=True, slots=True)
class UserView:
    """A user with their SIP username ("" when they have no SIP credential)."""

    user: User
    sip_username: str


@dataclass(frozen=True, slots=True)
class OrgSummary:
    """An organization as the operator console lists it."""

    org: Organization
    user_count: int


def check_grant(org_kind: str, granter_role: str, role: str, current: str | None = None) -> None:
    """Whether someone with ``granter_role`` may give ``role`` to a user of an org of ``org_kind``
    (whose role is ``current``, when changing it). ``RoleNotAllowed`` for a role above the
    granter's own, or taking a role above theirs away; ``InvalidAccountData`` for an unknown role
    or a staff role in a customer organization."""
    if role not in _RANK:
        raise InvalidAccountData(f"unknown role {role!r}", {"field": "role"})
    if is_staff(role) and org_kind != OrgKind.OPERATOR.value:
        raise InvalidAccountData(f"{role} is a role of the operator's staff, not of a customer organization",
                                 {"field": "role"})
    rank = _RANK.get(granter_role, 0)
    if _RANK[role] > rank:
        raise RoleNotAllowed(f"you cannot grant a role above your own ({role})", {"role": role})
    if current is not None and _RANK.get(current, 0) > rank:
        raise RoleNotAllowed(f"you cannot change the role of a user above your own ({current})", {"role": current})


class AccountsService:
    def __init__(self, sessions: async_sessionmaker[Any], realm: str) -> None:
        self._sessions = sessions
        self._realm = realm
        # Told (credential id, SIP username) after a SIP password changed or a credential was
        # deleted, once committed: the SIP side drops its cached HA1 and the registrations.
        self.credentials_changed: Callable[[str, str], None] | None = None
        # A user's encrypted files (voicemail, transcripts, their greeting), listed in the delete's
        # transaction (their rows go by cascade) and removed once it committed: nothing of a
        # deleted user stays readable. Set by the composition root.
        self.user_files: Callable[[AsyncSession, str, str], Awaitable[list[str]]] | None = None
        self.delete_file: Callable[[str, str], Awaitable[bool]] | None = None
        # The privacy center's erasure (``ErasureService.erase_person``): when set, deleting a user
        # is erasing the person — one way to delete someone (rows, files, keys, anonymised records).
        self.erase: Callable[[str, str, AuditHook | None], Awaitable[object]] | None = None

    def _changed(self, credentials: Iterable[tuple[str, str]]) -> None:
        if self.credentials_changed is not None:
            for credential_id, username in credentials:
                self.credentials_changed(credential_id, username)

    def notify_changed(self, credentials: Iterable[tuple[str, str]]) -> None:
        """Tell the SIP side that these (credential id, username) were deleted or re-keyed, once
        committed: it forgets their HA1 and drops their registrations."""
        self._changed(credentials)

    @property
    def realm(self) -> str:
        return self._realm

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
        if len(org_id) > 36 or _CONTROL_RE.search(org_id):
            return None  # not an id we hand out (and PostgreSQL refuses NUL in a query)
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
        # Read under the org's row lock: a closure committing meanwhile disables every user it finds
        # under the same lock, so it cannot miss this one.
        closed_at = (await session.execute(select(Organization.closed_at).where(Organization.id == org.id)
                                           .with_for_update())).scalar()
        if closed_at is not None:
            raise OrganizationClosed(f"{org.name} is closed: no user can be added", {"org_id": org.id})
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
        name = spec.name.strip() if spec.name else None
        if name is not None and (len(name) > 200 or _CONTROL_RE.search(name)):
            raise InvalidAccountData("name must be at most 200 characters, without control characters",
                                     {"field": "name"})
        user = User(org_id=org.id, email=email, extension=extension, name=name or None, role=spec.role)
        session.add(user)
        await session.flush()
        session.add(self._credential(org.id, user.id, username, password))
        return NewUser(user, username, password if generated else None)

    def _credential(self, org_id: str, user_id: str, username: str, password: str) -> SipCredential:
        return self.make_credential(org_id, user_id, username, password)

    def make_credential(self, org_id: str, user_id: str, username: str, password: str, *,
                        kind: CredentialKind = CredentialKind.DEVICE,
                        expires_at: datetime | None = None) -> SipCredential:
        """A new credential row holding only the HA1 hashes (MD5 and SHA-256) of ``password``."""
        return SipCredential(
            org_id=org_id,
            user_id=user_id,
            username=username,
            realm=self._realm,
            ha1_md5=compute_ha1(username, self._realm, password, "MD5"),
            ha1_sha256=compute_ha1(username, self._realm, password, "SHA-256"),
            kind=kind.value,
            expires_at=expires_at,
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
            if cred is None or cred.kind == CredentialKind.WEBPHONE.value:
                raise UserNotFound(f"no SIP username {username!r}")
            fresh = self._credential(cred.org_id, cred.user_id, username, password)
            cred.realm, cred.ha1_md5, cred.ha1_sha256 = fresh.realm, fresh.ha1_md5, fresh.ha1_sha256
            changed = [(cred.id, username)]
        self._changed(changed)
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

    # -- by organization id (the API and the portal) ---------------------------------------------
    # Every look-up names the org: another org's user id is simply not found.

    async def org_summaries(self, *, after: str | None = None, limit: int = 50) -> list[OrgSummary]:
        """Organizations by name after ``after``, with their user counts (server-wide: operator console)."""
        async with self._sessions() as session:
            orgs = await repo.orgs_page(session, after, limit)
            counts = await repo.user_counts(session, [org.id for org in orgs])
        return [OrgSummary(org, counts.get(org.id, 0)) for org in orgs]

    async def update_org(self, org_id: str, *, name: str | None = None,
                         low_balance_minor: int | Literal[_Unset.UNSET] | None = UNSET,
                         voicemail_attach_audio: bool | None = None,
                         voicemail_retention_days: int | Literal[_Unset.UNSET] | None = UNSET,
                         recording_retention_days: int | Literal[_Unset.UNSET] | None = UNSET,
                         call_record_retention_days: int | Literal[_Unset.UNSET] | None = UNSET,
                         audit: AuditHook | None = None) -> Organization:
        """Rename the org and/or set the credit below which ``balance.low`` fires (None: never).

        A new threshold clears the "already alerted" mark so it is judged afresh. ``audit`` gets
        ``{"changes": {field: [old, new]}}`` when something changed.
        """
        if name is not None:
            name = name.strip()
            if not name or len(name) > 200 or _CONTROL_RE.search(name):
                raise InvalidAccountData("organization name must be 1 to 200 characters, without control characters",
                                         {"field": "name"})
        if isinstance(low_balance_minor, int) and (isinstance(low_balance_minor, bool) or low_balance_minor < 0):
            raise InvalidAccountData("low_balance_minor must be a whole number of at least 0",
                                     {"field": "low_balance_minor"})
        for field, days in (("voicemail_retention_days", voicemail_retention_days),
                            ("recording_retention_days", recording_retention_days)):
            if days is not UNSET and days is not None and (isinstance(days, bool) or not 1 <= days <= 3650):
                raise InvalidAccountData(f"{field} must be 1-3650 days (null: the server's default)", {"field": field})
        # The bound of call_record_retention_days depends on the org's country: checked by the caller
        # (ringwell.features.privacy.retention.RetentionPolicy.check_call_record_days); here only its type.
        if call_record_retention_days is not UNSET and call_record_retention_days is not None and (
                isinstance(call_record_retention_days, bool) or call_record_retention_days < 1):
            raise InvalidAccountData("call_record_retention_days must be at least 1 day (null: the server's default)",
                                     {"field": "call_record_retention_days"})
        async with self._sessions() as session, session.begin():
            org: Organization | None = await session.get(Organization, org_id, with_for_update=True)
            if org is None:
                raise OrganizationNotFound("no such organization", {"org_id": org_id})
            changes: dict[str, Any] = {}
            if name is not None and name != org.name:
                if await repo.org_by_name(session, name) is not None:
                    raise DuplicateName(f"an organization named {name!r} exists", {"field": "name"})
                changes["name"] = [org.name, name]
                org.name = name
            if low_balance_minor is not UNSET and low_balance_minor != org.low_balance_minor:
                changes["low_balance_minor"] = [org.low_balance_minor, low_balance_minor]
                org.low_balance_minor = low_balance_minor
                org.low_balance_alerted_at = None
            if voicemail_attach_audio is not None and voicemail_attach_audio != org.voicemail_attach_audio:
                changes["voicemail_attach_audio"] = [org.voicemail_attach_audio, voicemail_attach_audio]
                org.voicemail_attach_audio = voicemail_attach_audio
            if voicemail_retention_days is not UNSET and voicemail_retention_days != org.voicemail_retention_days:
                changes["voicemail_retention_days"] = [org.voicemail_retention_days, voicemail_retention_days]
                org.voicemail_retention_days = voicemail_retention_days
            if recording_retention_days is not UNSET and recording_retention_days != org.recording_retention_days:
                changes["recording_retention_days"] = [org.recording_retention_days, recording_retention_days]
                org.recording_retention_days = recording_retention_days
            if (call_record_retention_days is not UNSET
                    and call_record_retention_days != org.call_record_retention_days):
                changes["call_record_retention_days"] = [org.call_record_retention_days, call_record_retention_days]
                org.call_record_retention_days = call_record_retention_days
            try:
                await session.flush()
            except IntegrityError as exc:  # a concurrent rename took the name
                raise DuplicateName(f"an organization named {name!r} exists", {"field": "name"}) from exc
            if changes and audit is not None:
                await audit(session, org.id, {"changes": changes})
        return org

    async def users_page(self, org_id: str, *, after: tuple[int, str] | None = None,
                         limit: int = 50) -> list[UserView]:
        """The org's users in extension order ("99" before "100"); ``after``: the (length,
        extension) of the last user of the previous page."""
        async with self._sessions() as session:
            users = await repo.users_page(session, org_id, after, limit)
            names = await repo.usernames_of(session, [user.id for user in users])
        return [UserView(user, names.get(user.id, "")) for user in users]

    async def user(self, org_id: str, user_id: str) -> UserView:
        """One user of the org; ``UserNotFound`` for a missing id and for another org's alike."""
        async with self._sessions() as session:
            user = await repo.user_in_org(session, org_id, user_id)
            if user is None:
                raise UserNotFound("no such user", {"user_id": user_id})
            names = await repo.usernames_of(session, [user.id])
        return UserView(user, names.get(user.id, ""))

    async def add_user(self, org_id: str, spec: UserSpec, *, granter_role: str,
                       audit: AuditHook | None = None) -> NewUser:
        """Create a user of the org with ``spec.role`` (checked with ``check_grant``) and a SIP
        credential; the generated SIP password is in the result, once. ``audit`` gets the user's
        extension and role only (the audit trail outlives the person: no email, name or username)."""
        async with self._sessions() as session, session.begin():
            org = await session.get(Organization, org_id)
            if org is None:
                raise OrganizationNotFound("no such organization", {"org_id": org_id})
            check_grant(org.kind, granter_role, spec.role)
            created = await self._add_user(session, org, spec)
            try:
                await session.flush()
            except IntegrityError as exc:  # a concurrent request took the extension, email or username
                raise DuplicateName("a user with this extension, email or SIP username already exists") from exc
            if audit is not None:
                user = created.user
                await audit(session, user.id, {"extension": user.extension, "role": user.role})
        return created

    async def update_user(self, org_id: str, user_id: str, *, granter_role: str,
                          name: str | Literal[_Unset.UNSET] | None = UNSET, ring_timeout: int | None = None,
                          role: str | None = None, voicemail_email: bool | None = None,
                          voicemail_enabled: bool | None = None, dnd: bool | None = None,
                          audit: AuditHook | None = None) -> UserView:
        """Change a user's name, ring timeout, role, mailbox switch and/or do-not-disturb.

        A role change is checked with ``check_grant``, and refused with ``LastOwner`` when it
        would leave the org without an owner. ``audit`` gets ``{"changes": {field: [old, new]}}``.
        """
        if ring_timeout is not None and not MIN_RING_TIMEOUT <= ring_timeout <= MAX_RING_TIMEOUT:
            raise InvalidAccountData(
                f"ring timeout must be {MIN_RING_TIMEOUT} to {MAX_RING_TIMEOUT} seconds", {"field": "ring_timeout"})
        if isinstance(name, str):
            name = name.strip() or None
            if name is not None and (len(name) > 200 or _CONTROL_RE.search(name)):
                raise InvalidAccountData("name must be at most 200 characters, without control characters",
                                         {"field": "name"})
        async with self._sessions() as session, session.begin():
            org = await session.get(Organization, org_id)
            user = await repo.user_in_org(session, org_id, user_id, lock=True)
            if org is None or user is None:
                raise UserNotFound("no such user", {"user_id": user_id})
            changes: dict[str, Any] = {}
            if name is not UNSET and name != user.name:
                changes["name"] = [user.name, name]
                user.name = name
            if ring_timeout is not None and ring_timeout != user.ring_timeout:
                changes["ring_timeout"] = [user.ring_timeout, ring_timeout]
                user.ring_timeout = ring_timeout
            if voicemail_email is not None and voicemail_email != user.voicemail_email:
                changes["voicemail_email"] = [user.voicemail_email, voicemail_email]
                user.voicemail_email = voicemail_email
            if voicemail_enabled is not None and voicemail_enabled != user.voicemail_enabled:
                changes["voicemail_enabled"] = [user.voicemail_enabled, voicemail_enabled]
                user.voicemail_enabled = voicemail_enabled
            if dnd is not None and dnd != user.dnd:
                changes["dnd"] = [user.dnd, dnd]
                user.dnd = dnd
            if role is not None and role != user.role:
                check_grant(org.kind, granter_role, role, user.role)
                if user.role == Role.OWNER.value:
                    await self._keep_an_owner(session, org_id, user.id, "take the owner role away from")
                changes["role"] = [user.role, role]
                user.role = role
            if changes and audit is not None:
                await audit(session, user.id, {"extension": user.extension, "changes": changes})
            names = await repo.usernames_of(session, [user.id])
        return UserView(user, names.get(user.id, ""))

    async def delete_user(self, org_id: str, user_id: str, *, granter_role: str, acting_user_id: str | None,
                          audit: AuditHook | None = None) -> None:
        """Delete a user with their SIP credentials, sessions and verifications (cascade).

        Refused for the acting user themselves (``CannotRemoveSelf``), a user whose role is above
        the granter's (``RoleNotAllowed``) and the org's last owner (``LastOwner``). With ``erase``
        set (the server sets it), the person is erased instead (``ringwell.features.privacy.erasure``).
        """
        if self.erase is not None:
            async with self._sessions() as session:
                await self._may_delete(session, org_id, user_id, granter_role, acting_user_id)
            await self.erase(org_id, user_id, audit)
            return
        async with self._sessions() as session, session.begin():
            user = await repo.user_in_org(session, org_id, user_id, lock=True)
            if user is None:
                raise UserNotFound("no such user", {"user_id": user_id})
            if user.id == acting_user_id:
                raise CannotRemoveSelf("you cannot delete your own user; ask another owner or admin",
                                       {"user_id": user_id})
            if _RANK.get(user.role, 0) > _RANK.get(granter_role, 0):
                raise RoleNotAllowed(f"you cannot delete a user whose role is above your own ({user.role})",
                                     {"role": user.role})
            if user.role == Role.OWNER.value:
                await self._keep_an_owner(session, org_id, user.id, "delete")
            details = {"extension": user.extension, "role": user.role}  # no email: the trail outlives the person
            gone = [(c.credential_id, c.username)
                    for c in await repo.credential_records(session, org_id, user.id, webphone=True)]
            files = await self.user_files(session, org_id, user.id) if self.user_files is not None else []
            await session.delete(user)
            await session.flush()
            if audit is not None:
                await audit(session, user_id, {**details, "files_deleted": len(files)})
        self._changed(gone)
        if self.delete_file is not None:
            for blob_id in files:
                await self.delete_file(org_id, blob_id)

    async def _may_delete(self, session: AsyncSession, org_id: str, user_id: str, granter_role: str,
                          acting_user_id: str | None) -> None:
        user = await repo.user_in_org(session, org_id, user_id)
        if user is None:
            raise UserNotFound("no such user", {"user_id": user_id})
        if user.id == acting_user_id:
            raise CannotRemoveSelf("you cannot delete your own user; ask another owner or admin", {"user_id": user_id})
        if _RANK.get(user.role, 0) > _RANK.get(granter_role, 0):
            raise RoleNotAllowed(f"you cannot delete a user whose role is above your own ({user.role})",
                                 {"role": user.role})
        if user.role == Role.OWNER.value:
            await self._keep_an_owner(session, org_id, user.id, "delete")

    async def _keep_an_owner(self, session: AsyncSession, org_id: str, user_id: str, doing: str) -> None:
        owners = await repo.owner_ids(session, org_id, Role.OWNER.value)
        if [owner for owner in owners if owner != user_id] == []:
            raise LastOwner(f"you cannot {doing} the organization's only owner: make someone else owner first",
                            {"user_id": user_id})

    async def rotate_sip_password(self, org_id: str, user_id: str,
                                  audit: AuditHook | None = None) -> tuple[str, str]:
        """A new generated password for the user's SIP credential: (username, password), shown
        once. The old password stops working for new registrations (registrar caches: within
        their TTL). ``audit`` gets the username, never the password."""
        password = generate_sip_password()
        async with self._sessions() as session, session.begin():
            user = await repo.user_in_org(session, org_id, user_id)
            if user is None:
                raise UserNotFound("no such user", {"user_id": user_id})
            names = await repo.usernames_of(session, [user.id])
            username = names.get(user.id)
            if username is None:
                raise UserNotFound("the user has no SIP credential", {"user_id": user_id})
            cred = await repo.credential_row(session, username)
            assert cred is not None
            fresh = self._credential(cred.org_id, cred.user_id, username, password)
            cred.realm, cred.ha1_md5, cred.ha1_sha256 = fresh.realm, fresh.ha1_md5, fresh.ha1_sha256
            if audit is not None:
                await audit(session, user.id, {"sip_username": username, "extension": user.extension})
            changed = [(cred.id, username)]
        self._changed(changed)
        return username, password

    async def sip_credentials(self, org_id: str, user_id: str | None = None, *,
                              webphone: bool = False) -> list[CredentialRecord]:
        """The org's SIP credentials (one user's when given), in extension order; the web phone's
        short-lived ones only when ``webphone`` (to find devices registered with them)."""
        async with self._sessions() as session:
            return await repo.credential_records(session, org_id, user_id, webphone=webphone)
