"""Portal accounts: sign-up, email verification, login, TOTP MFA, password reset, changes, API keys.

Every operation validates, persists (with its audit event in the same transaction), then mails.
The rules that protect accounts live here, not in the pages:

- An answer never tells whether an email address has an account: sign-up with a taken address,
  a password-reset request and a resent verification answer exactly as for a free one (the
  owner of a taken address is told by email instead), and a login with an unknown address
  costs the same Argon2 verification as a wrong password.
- Failed logins are counted per account and per client address (``login_failures_per_*``
  within ``login_failure_window``); past the limit every attempt is refused with
  :class:`RateLimited` and a retry time, even with the right password. Failed second-factor
  codes and wrong passwords typed into the settings pages count against the account too.
- A session that passed the password but owes a TOTP code (``mfa_pending``) is replaced by a
  new token once the code is given; a code is never accepted twice (see :mod:`.mfa`).
- A change of email, password or phone number is announced to the address the account had
  *before* the change, in a message that does not contain the new value. A new email address
  becomes the login only after a link sent to it is followed.
- Links sent by email carry a 256-bit token, stored as its SHA-256, used at most once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.errors import DomainError, RateLimited
from ringwell.features.accounts.errors import DuplicateName, OrganizationNotFound, UserNotFound
from ringwell.features.accounts.models import Organization, OrgKind, User
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.audit.service import SYSTEM, Actor, AuditLog
from ringwell.features.auth import mfa
from ringwell.features.auth import repository as repo
from ringwell.features.auth.errors import (
    AccountDisabled,
    ApiKeyNotFound,
    BadCredentials,
    EmailNotVerified,
    InvalidAuthData,
    InvalidToken,
    LoginExists,
    LoginRequired,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    SignupClosed,
)
from ringwell.features.auth.models import ApiKey, EmailToken, RecoveryCode, WebSession
from ringwell.features.auth.notices import Notice
from ringwell.features.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    verify_password,
)
from ringwell.features.auth.permissions import Role
from ringwell.features.auth.ratelimit import FailureLimiter
from ringwell.features.auth.tokens import ApiKeys, Identity, IssuedKey, SessionStore, token_hash
from ringwell.features.trunks.sealing import Sealer
from ringwell.mail import Mailer, MailError
from ringwell.settings import Settings

__all__ = [
    "CHANGE_TTL",
    "INVITE_TTL",
    "RESET_TTL",
    "STAFF_ROLES",
    "VERIFY_TTL",
    "AccountView",
    "AuthService",
    "LoginResult",
    "MfaSetup",
    "StaffLogin",
    "check_password",
    "normalize_email",
]

log = logging.getLogger(__name__)

VERIFY_TTL = timedelta(hours=48)
CHANGE_TTL = timedelta(hours=48)
RESET_TTL = timedelta(hours=1)
INVITE_TTL = timedelta(hours=72)
MFA_PENDING_TTL = timedelta(minutes=10)  # from password to TOTP code
LINK_MAILS_PER_WINDOW = 5  # emails with links to one address per login_failure_window (no mail bombing)
OWNER_EXTENSION = "100"
STAFF_ROLES = (Role.OWNER, Role.ADMIN, Role.SUPPORT, Role.BILLING, Role.PRIVACY, Role.AUDITOR)
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]{20,128}")


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A new session: put ``token`` in the session cookie; ``mfa_pending``: ask for the TOTP code next."""

    token: str
    mfa_pending: bool
    user_id: str


@dataclass(frozen=True, slots=True)
class MfaSetup:
    """A TOTP secret being enrolled: typed by hand (``secret``) or scanned (``qr``, an SVG data URI)."""

    secret: str
    uri: str
    qr: str


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the settings pages show of the logged-in user."""

    user_id: str
    org_id: str
    org_name: str
    org_kind: str
    email: str
    name: str | None
    phone: str | None
    role: str
    extension: str
    mfa_enabled: bool
    mfa_setup_pending: bool
    recovery_codes_left: int
    email_change_pending: bool


@dataclass(frozen=True, slots=True)
class StaffLogin:
    org_id: str
    user_id: str
    email: str
    role: str
    link: str  # set-password link, valid INVITE_TTL, shown once


def _now() -> datetime:
    return datetime.now(UTC)


def _hours(ttl: timedelta) -> int:
    return int(ttl.total_seconds() // 3600)


def _anonymous(ip: str | None, user_agent: str | None) -> Actor:
    return Actor(ip=ip, user_agent=user_agent)


def _as_user(user: User, ip: str | None, user_agent: str | None) -> Actor:
    return Actor(user_id=user.id, org_id=user.org_id, role=user.role, ip=ip, user_agent=user_agent)


def normalize_email(email: str) -> str:
    """The lower-cased address, or :class:`InvalidAuthData` when it is not one."""
    cleaned = email.strip().lower()
    if len(cleaned) > MAX_EMAIL_LENGTH or not _EMAIL_RE.fullmatch(cleaned):
        raise InvalidAuthData("enter a valid email address", {"field": "email"})
    return cleaned


def check_password(password: str, email: str | None) -> None:
    """The password policy: MIN..MAX characters, and not the email address."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidAuthData(f"the password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
                              {"field": "password"})
    if email is not None and password.strip().lower() == email.lower():
        raise InvalidAuthData("the password must not be your email address", {"field": "password"})


def _clean_name(name: str, *, required: bool) -> str | None:
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in cleaned):
        raise InvalidAuthData(f"the name must have at most {MAX_NAME_LENGTH} characters", {"field": "name"})
    if not cleaned:
        if required:
            raise InvalidAuthData("enter your name", {"field": "name"})
        return None
    return cleaned


class AuthService:
    def __init__(self, sessions: async_sessionmaker[Any], *, accounts: AccountsService, web_sessions: SessionStore,
                 audit: AuditLog, mailer: Mailer, settings: Settings, api_keys: ApiKeys | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        """``clock`` (monotonic) times the rate limits; ``wall`` (Unix time) the TOTP steps;
        ``api_keys``: the resolver requests use (a revocation makes it forget at once)."""
        self._sessions = sessions
        self._accounts = accounts
        self._web_sessions = web_sessions
        self._audit = audit
        self._mailer = mailer
        self._settings = settings
        self._clock = clock
        self._wall = wall
        self._sealer = Sealer(settings.secret_key, label=b"ringwell totp v1")
        self._api_keys = api_keys or ApiKeys(sessions)
        window = max(1, settings.login_failure_window)
        self._per_account = FailureLimiter(max(1, settings.login_failures_per_account), window)
        self._per_source = FailureLimiter(max(1, settings.login_failures_per_source), window)
        self._signups = FailureLimiter(max(1, settings.login_failures_per_source), window)
        self._link_mails = FailureLimiter(LINK_MAILS_PER_WINDOW, window)

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def _portal(self) -> str:
        return self._settings.portal_url

    def _link(self, path: str, token: str) -> str:
        return f"{self._portal}{path}?token={token}"

    async def _send(self, to: str, notice: Notice) -> bool:
        """Send, logging (not raising) a failure: the change it reports has been made already."""
        try:
            await self._mailer.send(to, notice.subject, notice.body)
        except MailError as exc:
            log.error("could not send %r: %s", notice.subject, exc)
            return False
        return True

    def _may_mail(self, purpose: str, address: str) -> bool:
        """Whether another link email to ``address`` is allowed now (counts it)."""
        key = f"{purpose}:{address}"
        now = self._clock()
        if self._link_mails.retry_after(key, now) is not None:
            log.warning("not sending another %s email to the same address within the window", purpose)
            return False
        self._link_mails.failed(key, now)
        return True

    @staticmethod
    def _new_token(session: AsyncSession, user_id: str, purpose: str, email: str, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(32)
        now = _now()
        session.add(EmailToken(token_hash=token_hash(token), user_id=user_id, purpose=purpose, email=email,
                               created_at=now, expires_at=now + ttl))
        return token

    @staticmethod
    async def _usable_token(session: AsyncSession, token: str, purposes: tuple[str, ...]) -> EmailToken:
        if not _TOKEN_RE.fullmatch(token or ""):
            raise InvalidToken("this link is not valid: copy the whole link from the email", {"field": "token"})
        row = await repo.token_by_hash(session, token_hash(token))
        if row is None or row.purpose not in purposes or row.used_at is not None or row.expires_at <= _now():
            raise InvalidToken("this link has expired or was used already", {"field": "token"})
        return row

    async def _user(self, session: AsyncSession, user_id: str) -> User:
        user: User | None = await session.get(User, user_id)
        if user is None:
            raise UserNotFound("no such user", {"user_id": user_id})
        return user

    def _limiter(self, key: str) -> FailureLimiter:
        return self._per_source if key.startswith("ip:") else self._per_account

    def _limited(self, *keys: str) -> int | None:
        """Seconds to wait before any of ``keys`` may try again; None when all may."""
        now = self._clock()
        waits = [wait for key in keys if (wait := self._limiter(key).retry_after(key, now)) is not None]
        return max(waits) if waits else None

    def _count_failure(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            self._limiter(key).failed(key, now)

    async def _own_password(self, user: User, password: str, actor: Actor) -> None:
        """Check the logged-in user's password (for a sensitive change); failures count as failed logins."""
        key = f"acct:{user.login_email or user.id}"
        wait = self._limited(key)
        if wait is not None:
            raise RateLimited("too many wrong passwords: try again later", wait)
        if len(password) > MAX_PASSWORD_LENGTH or not await asyncio.to_thread(verify_password, user.password_hash,
                                                                                password):
            self._count_failure(key)
            await self._audit.record("auth.password_check", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, outcome="failed", reason="bad_password")
            raise BadCredentials("the current password is not right", {"field": "password"})

    async def _load(self, user_id: str) -> User:
        async with self._sessions() as session:
            return await self._user(session, user_id)

    # -- sign-up and verification ----------------------------------------------------------------
    async def signup(self, org_name: str, country: str, currency: str, name: str, email: str, password: str,
                     ip: str | None, user_agent: str | None) -> None:
        """Create an organization and its owner, and email a verification link.

        If ``email`` already logs in, nothing is created and the answer is the same; the
        address's owner gets a notice instead.
        """
        actor = _anonymous(ip, user_agent)
        if not self._settings.signup_open:
            raise SignupClosed("sign-up is closed on this server: ask its operator for an account")
        source = f"signup:{ip}"
        wait = self._signups.retry_after(source, self._clock())
        if wait is not None:
            raise RateLimited("too many sign-ups from your address: try again later", wait)
        email = normalize_email(email)
        person = _clean_name(name, required=True)
        org_name = " ".join(org_name.split())
        if not org_name or len(org_name) > 200:
            raise InvalidAuthData("the organization name must have 1 to 200 characters", {"field": "org_name"})
        country, currency = country.strip().upper(), currency.strip().upper()
        if country not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidAuthData("choose your organization's country", {"field": "country"})
        if not _CURRENCY_RE.fullmatch(currency):
            raise InvalidAuthData("the currency must be an ISO 4217 code such as USD", {"field": "currency"})
        check_password(password, email)
        self._signups.failed(source, self._clock())
        # Hashed on both paths, so a taken address does not answer faster.
        password_hash = await asyncio.to_thread(hash_password, password)
        async with self._sessions() as session:
            existing = await repo.login_user(session, email)
        if existing is not None:
            await self._signup_taken(existing[0], email, actor)
            return
        org = await self._accounts.create_org(org_name, country, currency)
        try:
            created = await self._accounts.create_user(org.name, UserSpec(email=email, extension=OWNER_EXTENSION))
            async with self._sessions() as session, session.begin():
                user = await self._user(session, created.user.id)
                user.role = Role.OWNER.value
                user.name = person
                user.login_email = email
                user.password_hash = password_hash
                token = self._new_token(session, user.id, "verify", email, VERIFY_TTL)
                await self._audit.record("auth.signup", _as_user(user, ip, user_agent), org_id=org.id,
                                         target_type="user", target_id=user.id,
                                         details={"org_name": org.name, "country": country, "currency": currency},
                                         session=session)
        except IntegrityError:
            # The address got a login meanwhile (two sign-ups at once): undo, answer as for a taken one.
            await self._drop_org(org.id)
            async with self._sessions() as session:
                existing = await repo.login_user(session, email)
            if existing is not None:
                await self._signup_taken(existing[0], email, actor)
            return
        except DomainError:
            await self._drop_org(org.id)
            raise
        self._may_mail("verify", email)  # counts it: resending is limited from the first mail on
        await self._send(email, Notice.verify(self._link("/verify-email", token), _hours(VERIFY_TTL)))

    async def _signup_taken(self, user: User, email: str, actor: Actor) -> None:
        await self._audit.record("auth.signup", actor, org_id=user.org_id, target_type="user", target_id=user.id,
                                 outcome="denied", reason="email_has_login")
        if self._may_mail("signup", email):
            await self._send(email, Notice.signup_existing(self._portal))

    async def _drop_org(self, org_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(Organization).where(Organization.id == org_id))

    async def verify_email(self, token: str) -> str:
        """Follow an email link: ``"verify"`` (a new account's address is confirmed) or ``"change"``
        (the login moves to the new address; the old one is told). :class:`InvalidToken` otherwise."""
        now = _now()
        old_email: str | None = None
        try:
            async with self._sessions() as session, session.begin():
                row = await self._usable_token(session, token, ("verify", "change"))
                user = await session.get(User, row.user_id)
                if user is None or user.disabled_at is not None:
                    raise InvalidToken("this link has expired or was used already", {"field": "token"})
                if row.purpose == "verify" and user.login_email != row.email:
                    raise InvalidToken("this link is for an address the account no longer uses", {"field": "token"})
                if not await repo.claim_token(session, row.id, now):
                    raise InvalidToken("this link has expired or was used already", {"field": "token"})
                actor = _as_user(user, None, None)
                if row.purpose == "verify":
                    if user.email_verified_at is None:
                        user.email_verified_at = now
                    await self._audit.record("auth.email_verify", actor, org_id=user.org_id, target_type="user",
                                             target_id=user.id, session=session)
                    return "verify"
                other = await repo.login_user(session, row.email)
                if other is not None and other[0].id != user.id:
                    raise LoginExists("that address already has a login on this server", {"field": "email"})
                clash = (await session.execute(select(User.id).where(
                    User.org_id == user.org_id, User.email == row.email, User.id != user.id))).first()
                if clash is not None:
                    raise DuplicateName("another user of your organization has that email address",
                                        {"field": "email"})
                old_email = user.login_email
                user.email = row.email
                user.login_email = row.email
                user.email_verified_at = now
                await repo.void_tokens(session, user.id, ("change", "verify", "reset"), now)
                await self._audit.record("account.email_change", actor, org_id=user.org_id, target_type="user",
                                         target_id=user.id, session=session)
        except IntegrityError as exc:
            raise LoginExists("that address already has a login on this server", {"field": "email"}) from exc
        if old_email:
            await self._send(old_email, Notice.email_changed(self._portal))
        return "change"

    async def resend_verification(self, email: str, ip: str | None, user_agent: str | None) -> None:
        """A new verification link, if ``email`` is an unverified login (the answer is the same either way)."""
        try:
            address = normalize_email(email)
        except InvalidAuthData:
            return
        async with self._sessions() as session, session.begin():
            found = await repo.login_user(session, address)
            if found is None or found[0].email_verified_at is not None or found[0].disabled_at is not None:
                return
            if not self._may_mail("verify", address):
                return
            user = found[0]
            await repo.void_tokens(session, user.id, ("verify",), _now())
            token = self._new_token(session, user.id, "verify", address, VERIFY_TTL)
        await self._send(address, Notice.verify(self._link("/verify-email", token), _hours(VERIFY_TTL)))

    # -- login -----------------------------------------------------------------------------------
    async def login(self, email: str, password: str, ip: str | None, user_agent: str | None) -> LoginResult:
        """Check the password; a session (owing a TOTP code when MFA is on). See the module docstring."""
        actor = _anonymous(ip, user_agent)
        address = email.strip().lower()[:MAX_EMAIL_LENGTH]
        keys = (f"acct:{address}", f"ip:{ip or '-'}")
        wait = self._limited(*keys)
        if wait is not None:
            await self._audit.record("auth.login", actor, org_id=None, target_type="login", target_id=address[:64],
                                     outcome="denied", reason="rate_limited")
            raise RateLimited("too many failed logins: wait a few minutes and try again", wait)
        async with self._sessions() as session:
            found = await repo.login_user(session, address) if address else None
        user = found[0] if found is not None else None
        stored = user.password_hash if user is not None else None
        ok = len(password) <= MAX_PASSWORD_LENGTH and await asyncio.to_thread(verify_password, stored, password)
        if not ok or user is None:
            self._count_failure(*keys)
            await self._audit.record("auth.login", actor, org_id=user.org_id if user else None,
                                     target_type="user" if user else "login",
                                     target_id=user.id if user else address[:64], outcome="failed",
                                     reason="bad_credentials")
            raise BadCredentials("wrong email or password")
        actor = _as_user(user, ip, user_agent)
        if user.disabled_at is not None:
            await self._audit.record("auth.login", actor, org_id=user.org_id, target_type="user", target_id=user.id,
                                     outcome="denied", reason="disabled")
            raise AccountDisabled("this account is disabled: ask the owner of your organization")
        if user.email_verified_at is None:
            await self._audit.record("auth.login", actor, org_id=user.org_id, target_type="user", target_id=user.id,
                                     outcome="denied", reason="email_not_verified")
            raise EmailNotVerified("confirm your email address first: follow the link we sent you",
                                   {"email": address})
        self._per_account.clear(keys[0])
        mfa_pending = user.mfa_enabled_at is not None
        rehash = needs_rehash(stored) if stored else False
        new_hash = await asyncio.to_thread(hash_password, password) if rehash else None
        async with self._sessions() as session, session.begin():
            if new_hash is not None:
                await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
            token = await self._web_sessions.create(session, user, mfa_pending=mfa_pending, ip=ip,
                                                    user_agent=user_agent)
            await self._audit.record("auth.login", actor, org_id=user.org_id, target_type="user", target_id=user.id,
                                     details={"mfa_pending": mfa_pending}, session=session)
        return LoginResult(token, mfa_pending, user.id)

    async def complete_mfa(self, session_id: str, code: str, ip: str | None, user_agent: str | None) -> str:
        """Second step of a login: a TOTP code or one recovery code → a new session token (the old one ends)."""
        now = _now()
        async with self._sessions() as session:
            web = await repo.web_session(session, session_id)
            if (web is None or not web.mfa_pending or web.created_at + MFA_PENDING_TTL <= now
                    or web.expires_at <= now):
                raise LoginRequired("the login took too long: enter your email and password again")
            user = await self._user(session, web.user_id)
        actor = _as_user(user, ip, user_agent)
        key = f"mfa:{user.id}"
        wait = self._limited(key)
        if wait is not None:
            await self._audit.record("auth.mfa", actor, org_id=user.org_id, target_type="user", target_id=user.id,
                                     outcome="denied", reason="rate_limited")
            raise RateLimited("too many wrong codes: wait a few minutes and try again", wait)
        token: str | None = None
        left = 0
        async with self._sessions() as session, session.begin():
            method = await self._second_factor(session, user, code, now)
            if method is not None:
                await session.execute(delete(WebSession).where(WebSession.id == session_id,
                                                               WebSession.mfa_pending.is_(True)))
                token = await self._web_sessions.create(session, user, mfa_pending=False, ip=ip,
                                                        user_agent=user_agent)
                await self._audit.record("auth.mfa", actor, org_id=user.org_id, target_type="user",
                                         target_id=user.id, details={"method": method}, session=session)
                if method == "recovery":
                    left = await repo.recovery_codes_left(session, user.id)
        if token is None:
            self._count_failure(key)
            await self._audit.record("auth.mfa", actor, org_id=user.org_id, target_type="user", target_id=user.id,
                                     outcome="failed", reason="bad_code")
            raise BadCredentials("that code is not right", {"field": "code"})
        self._per_account.clear(key)
        if method == "recovery" and user.login_email:
            await self._send(user.login_email, Notice.recovery_code_used(self._portal, left))
        return token

    async def _second_factor(self, session: AsyncSession, user: User, code: str, now: datetime) -> str | None:
        """``"totp"`` or ``"recovery"`` when ``code`` is right (and now used up), else None."""
        if user.mfa_enabled_at is None or user.mfa_secret is None or len(code) > 64:
            return None
        if mfa.code_kind(code) == "totp":
            try:
                state = mfa.TotpState.open(self._sealer, user.id, user.mfa_secret)
            except ValueError:
                log.error("the TOTP secret of user %s cannot be opened (was secret_key changed?)", user.id)
                return None
            step = mfa.matching_step(state.secret, code, self._wall(), state.last_step)
            if step is None:
                return None
            sealed = mfa.TotpState(state.secret, step).seal(self._sealer, user.id)
            return "totp" if await repo.replace_mfa_secret(session, user.id, user.mfa_secret, sealed) else None
        if mfa.normalize_recovery_code(code) is None:
            return None
        return "recovery" if await repo.claim_recovery_code(session, user.id, mfa.recovery_hash(code), now) else None

    async def logout(self, session_id: str, actor: Actor) -> None:
        await self._web_sessions.revoke(session_id)
        await self._audit.record("auth.logout", actor, org_id=actor.org_id, target_type="user",
                                 target_id=actor.user_id)

    # -- MFA enrolment ---------------------------------------------------------------------------
    @staticmethod
    def _setup(secret: str, user: User) -> MfaSetup:
        uri = mfa.provisioning_uri(secret, user.login_email or user.email)
        return MfaSetup(secret, uri, mfa.qr_data_uri(uri))

    async def begin_mfa(self, user_id: str, actor: Actor) -> MfaSetup:
        """A new TOTP secret (sealed in ``users.mfa_secret``, not yet in force until :meth:`confirm_mfa`)."""
        secret = mfa.new_secret()
        async with self._sessions() as session, session.begin():
            user = await self._user(session, user_id)
            if user.mfa_enabled_at is not None:
                raise MfaAlreadyEnabled("two-step verification is on already")
            user.mfa_secret = mfa.TotpState(secret).seal(self._sealer, user.id)
            await self._audit.record("account.mfa_setup", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, session=session)
        return self._setup(secret, user)

    async def pending_mfa(self, user_id: str) -> MfaSetup | None:
        """The set-up begun and not yet confirmed, if any (to show its QR code again)."""
        user = await self._load(user_id)
        if user.mfa_enabled_at is not None or user.mfa_secret is None:
            return None
        try:
            state = mfa.TotpState.open(self._sealer, user.id, user.mfa_secret)
        except ValueError:
            return None
        return self._setup(state.secret, user)

    async def confirm_mfa(self, user_id: str, code: str, actor: Actor) -> list[str]:
        """Turn MFA on with a first code from the app; returns the recovery codes (shown once)."""
        codes = mfa.new_recovery_codes()
        async with self._sessions() as session, session.begin():
            user = await self._user(session, user_id)
            if user.mfa_enabled_at is not None:
                raise MfaAlreadyEnabled("two-step verification is on already")
            if user.mfa_secret is None:
                raise InvalidAuthData("start the set-up first", {"field": "code"})
            state = mfa.TotpState.open(self._sealer, user.id, user.mfa_secret)
            step = mfa.matching_step(state.secret, code.strip(), self._wall(), state.last_step)
            if step is None:
                raise InvalidAuthData("that code is not right: check that your phone's clock is correct",
                                      {"field": "code"})
            sealed = mfa.TotpState(state.secret, step).seal(self._sealer, user.id)
            if not await repo.replace_mfa_secret(session, user.id, user.mfa_secret, sealed, enabled_at=_now()):
                raise InvalidAuthData("the set-up changed meanwhile: start again", {"field": "code"})
            await repo.replace_recovery_codes(session, user.id, [mfa.recovery_hash(c) for c in codes])
            await self._audit.record("account.mfa_enable", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, session=session)
            email = user.login_email
        if email:
            await self._send(email, Notice.mfa_changed(self._portal, enabled=True))
        return codes

    async def disable_mfa(self, user_id: str, password: str, code: str, actor: Actor) -> None:
        """Turn MFA off: needs the password and a current code (or a recovery code)."""
        user = await self._load(user_id)
        await self._own_password(user, password, actor)
        async with self._sessions() as session, session.begin():
            user = await self._user(session, user_id)
            if user.mfa_enabled_at is None:
                raise MfaNotEnabled("two-step verification is off")
            if await self._second_factor(session, user, code, _now()) is None:
                raise BadCredentials("that code is not right", {"field": "code"})
            await session.execute(update(User).where(User.id == user.id).values(mfa_secret=None,
                                                                                 mfa_enabled_at=None))
            await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
            await self._audit.record("account.mfa_disable", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, session=session)
        if user.login_email:
            await self._send(user.login_email, Notice.mfa_changed(self._portal, enabled=False))

    async def regenerate_recovery_codes(self, user_id: str, password: str, actor: Actor) -> list[str]:
        """New recovery codes (the old ones stop working); needs the password."""
        user = await self._load(user_id)
        await self._own_password(user, password, actor)
        if user.mfa_enabled_at is None:
            raise MfaNotEnabled("two-step verification is off")
        codes = mfa.new_recovery_codes()
        async with self._sessions() as session, session.begin():
            await repo.replace_recovery_codes(session, user.id, [mfa.recovery_hash(c) for c in codes])
            await self._audit.record("account.recovery_codes", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, session=session)
        return codes

    # -- password reset and invitations ----------------------------------------------------------
    async def request_reset(self, email: str, ip: str | None, user_agent: str | None) -> None:
        """Email a reset link if ``email`` is a login (the answer is the same either way)."""
        try:
            address = normalize_email(email)
        except InvalidAuthData:
            return
        actor = _anonymous(ip, user_agent)
        async with self._sessions() as session, session.begin():
            found = await repo.login_user(session, address)
            if found is None or found[0].disabled_at is not None:
                await self._audit.record("auth.password_reset_request", actor, org_id=None, target_type="login",
                                         target_id=address[:64], outcome="denied", reason="no_such_login",
                                         session=session)
                return
            user = found[0]
            if not self._may_mail("reset", address):
                return
            await repo.void_tokens(session, user.id, ("reset",), _now())
            token = self._new_token(session, user.id, "reset", address, RESET_TTL)
            await self._audit.record("auth.password_reset_request", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, session=session)
        await self._send(address, Notice.reset(self._link("/password/reset", token),
                                               int(RESET_TTL.total_seconds() // 60)))

    async def reset_token_ok(self, token: str) -> bool:
        """Whether ``token`` would set a password now (the reset page shows its form only then)."""
        try:
            async with self._sessions() as session:
                await self._usable_token(session, token, ("reset",))
        except InvalidToken:
            return False
        return True

    async def reset_password(self, token: str, new_password: str, ip: str | None, user_agent: str | None) -> None:
        """Set a password from an emailed link (reset or invitation): every session of the user ends."""
        async with self._sessions() as session:
            row = await self._usable_token(session, token, ("reset",))
            user = await self._user(session, row.user_id)
        if user.disabled_at is not None:
            raise AccountDisabled("this account is disabled: ask the owner of your organization")
        check_password(new_password, user.login_email)
        password_hash = await asyncio.to_thread(hash_password, new_password)
        now = _now()
        async with self._sessions() as session, session.begin():
            if not await repo.claim_token(session, row.id, now):
                raise InvalidToken("this link has expired or was used already", {"field": "token"})
            user = await self._user(session, row.user_id)
            if user.login_email != row.email:
                raise InvalidToken("this link is for an address the account no longer uses", {"field": "token"})
            user.password_hash = password_hash
            if user.email_verified_at is None:
                user.email_verified_at = now  # the link reached the address: it is verified
            await repo.void_tokens(session, user.id, ("reset",), now)
            await self._web_sessions.revoke_user(session, user.id)
            await self._audit.record("auth.password_reset", _as_user(user, ip, user_agent), org_id=user.org_id,
                                     target_type="user", target_id=user.id, session=session)
            email = user.login_email
        self._per_account.clear(f"acct:{email}")
        if email:
            await self._send(email, Notice.password_changed(self._portal, reset=True))

    async def invite(self, user_id: str, actor: Actor) -> None:
        """Give an existing user a login: their email becomes the login and gets a set-password link.

        Again for a user who has a login: a new link (the earlier ones stop working). The caller
        has checked that ``actor`` may manage this user (tenant scope and permission).
        :class:`LoginExists` when the address already logs in as another user.
        """
        async with self._sessions() as session, session.begin():
            user = await self._user(session, user_id)
            org = await session.get(Organization, user.org_id)
            if user.disabled_at is not None:
                raise AccountDisabled("the user is disabled: enable them first", {"user_id": user.id})
            address = user.login_email or user.email.strip().lower()
            if user.login_email is None:
                other = await repo.login_user(session, address)
                if other is not None:
                    raise LoginExists(f"{address} already has a login on this server", {"field": "email"})
                user.login_email = address
            await repo.void_tokens(session, user.id, ("reset",), _now())
            token = self._new_token(session, user.id, "reset", address, INVITE_TTL)
            await self._audit.record("users.invite", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, session=session)
            org_name = org.name if org is not None else "your organization"
        await self._send(address, Notice.invite(self._link("/password/reset", token), org_name,
                                                _hours(INVITE_TTL)))

    async def create_staff(self, email: str, role: str, name: str | None = None,
                           org_name: str = "Operator") -> StaffLogin:
        """An operator staff login (``ringwell admin create-staff``); creates the operator org if none.

        Returns a set-password link valid for :data:`INVITE_TTL` (printed, not mailed).
        """
        address = normalize_email(email)
        if role not in {r.value for r in STAFF_ROLES}:
            raise InvalidAuthData(f"role must be one of {', '.join(r.value for r in STAFF_ROLES)}", {"field": "role"})
        person = _clean_name(name or "", required=False)
        async with self._sessions() as session:
            org = await repo.org_of_kind(session, OrgKind.OPERATOR.value)
            if await repo.login_user(session, address) is not None:
                raise LoginExists(f"{address} already has a login on this server", {"field": "email"})
        if org is None:
            org = await self._accounts.create_org(org_name)
            async with self._sessions() as session, session.begin():
                await session.execute(update(Organization).where(Organization.id == org.id)
                                      .values(kind=OrgKind.OPERATOR.value))
        async with self._sessions() as session:
            user_id = (await session.execute(select(User.id).where(User.org_id == org.id,
                                                                   User.email == address))).scalar_one_or_none()
            taken = set((await session.execute(select(User.extension).where(User.org_id == org.id))).scalars())
        if user_id is None:
            extension = next(str(n) for n in range(100, 100_000) if str(n) not in taken)
            user_id = (await self._accounts.create_user(org.name, UserSpec(address, extension))).user.id
        try:
            async with self._sessions() as session, session.begin():
                user = await self._user(session, user_id)
                user.role = role
                user.name = person or user.name
                user.login_email = address
                token = self._new_token(session, user.id, "reset", address, INVITE_TTL)
                await self._audit.record("staff.create", SYSTEM, org_id=org.id, target_type="user",
                                         target_id=user.id, details={"role": role}, session=session)
        except IntegrityError as exc:
            raise LoginExists(f"{address} already has a login on this server", {"field": "email"}) from exc
        return StaffLogin(org.id, user_id, address, role, self._link("/password/reset", token))

    # -- changes by the logged-in user -----------------------------------------------------------
    async def account(self, user_id: str) -> AccountView:
        now = _now()
        async with self._sessions() as session:
            user = await self._user(session, user_id)
            org = await session.get(Organization, user.org_id)
            if org is None:
                raise OrganizationNotFound("no such organization", {"org_id": user.org_id})
            left = await repo.recovery_codes_left(session, user.id)
            pending = (await session.execute(select(EmailToken.id).where(
                EmailToken.user_id == user.id, EmailToken.purpose == "change", EmailToken.used_at.is_(None),
                EmailToken.expires_at > now).limit(1))).first() is not None
        return AccountView(
            user_id=user.id, org_id=org.id, org_name=org.name, org_kind=org.kind,
            email=user.login_email or user.email, name=user.name, phone=user.phone, role=user.role,
            extension=user.extension, mfa_enabled=user.mfa_enabled_at is not None,
            mfa_setup_pending=user.mfa_enabled_at is None and user.mfa_secret is not None,
            recovery_codes_left=left, email_change_pending=pending,
        )

    async def update_profile(self, user_id: str, name: str, actor: Actor) -> None:
        person = _clean_name(name, required=False)
        async with self._sessions() as session, session.begin():
            user = await self._user(session, user_id)
            user.name = person
            await self._audit.record("account.update", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, details={"fields": ["name"]}, session=session)

    async def change_password(self, user_id: str, session_id: str | None, current: str, new: str,
                              actor: Actor) -> None:
        """New password (current one required); every other session of the user ends; notice sent."""
        user = await self._load(user_id)
        await self._own_password(user, current, actor)
        check_password(new, user.login_email)
        if new == current:
            raise InvalidAuthData("the new password must differ from the current one", {"field": "new_password"})
        password_hash = await asyncio.to_thread(hash_password, new)
        async with self._sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == user.id).values(password_hash=password_hash))
            await self._web_sessions.revoke_user(session, user.id, keep=session_id)
            await self._audit.record("account.password_change", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, session=session)
        if user.login_email:
            await self._send(user.login_email, Notice.password_changed(self._portal, reset=False))

    async def change_email(self, user_id: str, password: str, new_email: str, actor: Actor) -> None:
        """Ask to move the login to ``new_email``: a link goes there, a notice (without it) to the old address.

        If ``new_email`` already logs in, its owner is told instead and nothing else happens — the
        answer to the caller is the same.
        """
        user = await self._load(user_id)
        await self._own_password(user, password, actor)
        address = normalize_email(new_email)
        old = user.login_email
        if address == old:
            raise InvalidAuthData("that is already your email address", {"field": "email"})
        async with self._sessions() as session, session.begin():
            taken = await repo.login_user(session, address) is not None
            token = None
            if not taken:
                await repo.void_tokens(session, user.id, ("change",), _now())
                token = self._new_token(session, user.id, "change", address, CHANGE_TTL)
            await self._audit.record("account.email_change_request", actor, org_id=user.org_id,
                                     target_type="user", target_id=user.id, session=session)
        if old:
            await self._send(old, Notice.email_change_requested(self._portal))
        if not self._may_mail("change", address):
            return
        if token is None:
            await self._send(address, Notice.email_in_use(self._portal))
        else:
            await self._send(address, Notice.confirm_new_email(self._link("/verify-email", token),
                                                               _hours(CHANGE_TTL)))

    async def change_phone(self, user_id: str, password: str, new_phone: str, actor: Actor) -> str | None:
        """Set (or, empty, remove) the contact number, stored E.164; the login address is told. Returns it."""
        user = await self._load(user_id)
        await self._own_password(user, password, actor)
        phone: str | None = None
        if new_phone.strip():
            async with self._sessions() as session:
                org = await session.get(Organization, user.org_id)
            region = org.country if org is not None else "US"
            try:
                parsed = phonenumbers.parse(new_phone.strip()[:40], region)
            except phonenumbers.NumberParseException:
                parsed = None
            if parsed is None or not phonenumbers.is_valid_number(parsed):
                raise InvalidAuthData("enter a valid phone number, e.g. +1 415 555 0100", {"field": "phone"})
            phone = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if phone == user.phone:
            return phone
        async with self._sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == user.id).values(phone=phone))
            await self._audit.record("account.phone_change", actor, org_id=user.org_id, target_type="user",
                                     target_id=user.id, details={"removed": phone is None}, session=session)
        if user.login_email:
            await self._send(user.login_email, Notice.phone_changed(self._portal, removed=phone is None))
        return phone

    # -- API keys --------------------------------------------------------------------------------
    @staticmethod
    def grantable_scopes(identity: Identity, org_kind: str) -> list[str]:
        """The scopes ``identity`` may put on a new key of an org of ``org_kind``."""
        return sorted(identity.permissions & ApiKeys.allowed_scopes(org_kind))

    async def api_keys(self, org_id: str, *, limit: int = 50,
                       before: tuple[datetime, str] | None = None) -> list[ApiKey]:
        async with self._sessions() as session:
            return list(await repo.api_keys_page(session, org_id, before=before, limit=limit))

    async def create_api_key(self, org: Organization, identity: Identity, actor: Actor, name: str,
                             scopes: list[str]) -> IssuedKey:
        """A key of ``org`` with ``scopes`` (each held by ``identity``); the whole key is in the result only."""
        label = " ".join(name.split())
        if not 1 <= len(label) <= 100:
            raise InvalidAuthData("give the key a name of 1 to 100 characters", {"field": "name"})
        async with self._sessions() as session, session.begin():
            issued = await self._api_keys.create(session, org_id=org.id, org_kind=org.kind,
                                                 created_by=identity.user_id, name=label, scopes=scopes,
                                                 creator=identity.permissions)
            await self._audit.record("apikeys.create", actor, org_id=org.id, target_type="api_key",
                                     target_id=issued.row.id,
                                     details={"name": label, "prefix": issued.row.prefix,
                                              "scopes": list(issued.row.scopes)}, session=session)
        return issued

    async def revoke_api_key(self, org_id: str, key_id: str, actor: Actor) -> None:
        async with self._sessions() as session, session.begin():
            key = await repo.revoke_api_key(session, org_id, key_id, _now())
            if key is None:
                raise ApiKeyNotFound("no such API key", {"key_id": key_id})
            await self._audit.record("apikeys.revoke", actor, org_id=org_id, target_type="api_key",
                                     target_id=key.id, details={"name": key.name, "prefix": key.prefix},
                                     session=session)
        self._api_keys.forget()
