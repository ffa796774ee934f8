"""Short-lived SIP credentials for the portal's web phone (validate → persist → audit).

The browser never sees a user's own SIP password. A logged-in user's page asks for a session:
a new SIP credential of kind ``webphone`` tied to that user — a random username ``wp-…`` and a
random password returned once (only its HA1 hashes are stored, as for any credential) — that
stops authenticating after ``webphone_credential_hours``. Calls to the user's extension ring its
registrations like any device's. A user holds at most ``MAX_LIVE`` of them (each open tab asks
for one): the oldest make room. Expired ones are purged (``purge_expired``), and with them
their registrations.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.accounts import repository as accounts_repo
from ringwell.features.accounts.errors import UserNotFound
from ringwell.features.accounts.models import CredentialKind, SipCredential
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.settings import Settings

__all__ = ["MAX_LIVE", "IceServer", "WebphoneService", "WebphoneSession", "ice_servers", "ws_url"]

MAX_LIVE = 5  # web phone credentials a user holds at once (one per open tab or device)
USERNAME_PREFIX = "wp-"
PURGE_BATCH = 500


@dataclass(frozen=True, slots=True)
class IceServer:
    """One ``RTCIceServer`` for the browser (W3C WebRTC §4.2.2)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class WebphoneSession:
    """What the page needs to register (the password is here once, never stored)."""

    username: str
    password: str
    realm: str
    sip_uri: str
    ws_url: str
    extension: str
    display_name: str
    expires_at: datetime
    ice_servers: tuple[IceServer, ...]


def ws_url(settings: Settings, request_base: str) -> str:
    """Where the page opens its SIP WebSocket: ``public_url`` when set (how browsers reach the
    server, e.g. through a proxy), else the address the request came to; ``wss`` over HTTPS."""
    parts = urlsplit(settings.public_url or request_base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/ws"


def ice_servers(settings: Settings) -> tuple[IceServer, ...]:
    """The STUN and TURN servers of the settings (none: host candidates only, enough on a LAN)."""
    servers: list[IceServer] = []
    if settings.webrtc_stun_servers:
        servers.append(IceServer(settings.webrtc_stun_servers))
    if settings.webrtc_turn_servers:
        servers.append(IceServer(settings.webrtc_turn_servers, settings.webrtc_turn_username,
                                 settings.webrtc_turn_password))
    return tuple(servers)


def _sip_host(settings: Settings) -> str:
    host = settings.advertised_host
    return f"[{host}]" if ":" in host else host


class WebphoneService:
    def __init__(self, sessions: async_sessionmaker[Any], accounts: AccountsService, audit: AuditLog,
                 settings: Settings) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self._audit = audit
        self._settings = settings

    async def open_session(self, org_id: str, user_id: str, actor: Actor, *, request_base: str,
                           now: datetime | None = None) -> WebphoneSession:
        """A new web phone credential for the user (``UserNotFound`` if gone or disabled); the
        user's expired ones and the oldest beyond ``MAX_LIVE`` are deleted in the same step.
        Audited as ``webphone.session`` (username and expiry, never the password)."""
        now = now or datetime.now(UTC)
        settings = self._settings
        expires_at = now + timedelta(hours=settings.webphone_credential_hours)
        password = secrets.token_urlsafe(32)  # 43 characters, 256 bits
        async with self._sessions() as session, session.begin():
            # Locked: two tabs opening at once cannot both leave MAX_LIVE + 1 behind (PostgreSQL).
            user = await accounts_repo.user_in_org(session, org_id, user_id, lock=True)
            if user is None or user.disabled_at is not None:
                raise UserNotFound("no such user", {"user_id": user_id})
            existing = await accounts_repo.webphone_credentials(session, user.id)
            live = [c for c in existing if c.expires_at is None or c.expires_at > now]
            gone = [c for c in existing if c not in live] + live[:max(0, len(live) - (MAX_LIVE - 1))]
            await self._delete(session, gone)
            username = await self._free_username(session)
            cred = self._accounts.make_credential(org_id, user.id, username, password, kind=CredentialKind.WEBPHONE,
                                                  expires_at=expires_at)
            session.add(cred)
            await session.flush()
            await self._audit.record(
                "webphone.session", actor, org_id=org_id, target_type="user", target_id=user.id,
                details={"sip_username": username, "expires_at": expires_at.isoformat(),
                         "replaced": [c.username for c in gone]},
                session=session,
            )
            extension, display_name = user.extension, user.name or user.extension
        self._accounts.notify_changed((c.id, c.username) for c in gone)
        return WebphoneSession(
            username=username, password=password, realm=self._accounts.realm,
            sip_uri=f"sip:{username}@{_sip_host(settings)}", ws_url=ws_url(settings, request_base),
            extension=extension, display_name=display_name, expires_at=expires_at,
            ice_servers=ice_servers(settings),
        )

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete every expired web phone credential (their registrations go with them: the
        SIP side is told). Returns how many."""
        now = now or datetime.now(UTC)
        total = 0
        while True:
            async with self._sessions() as session, session.begin():
                expired = list(await accounts_repo.expired_webphone_credentials(session, now, PURGE_BATCH))
                await self._delete(session, expired)
            self._accounts.notify_changed((c.id, c.username) for c in expired)
            total += len(expired)
            if len(expired) < PURGE_BATCH:
                return total

    @staticmethod
    async def _delete(session: AsyncSession, credentials: Sequence[SipCredential]) -> None:
        if credentials:
            await session.execute(delete(SipCredential).where(SipCredential.id.in_([c.id for c in credentials])))

    @staticmethod
    async def _free_username(session: AsyncSession) -> str:
        while True:
            candidate = USERNAME_PREFIX + secrets.token_hex(8)
            if await accounts_repo.credential_row(session, candidate) is None:
                return candidate
