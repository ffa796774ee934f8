"""Fixtures of the API and portal tests: the real composition root (``RingwellServer``, not
started: no SIP sockets) on a migrated database (SQLite and PostgreSQL), its HTTP app served
in-process through httpx, and factories for orgs, logged-in members and API keys.

Clients talk to ``https://ringwell.test`` so the session cookie (``Secure``, ``__Host-``) is
kept by httpx's cookie jar exactly as a browser would keep it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import update

from ringwell.features.accounts.models import Organization, OrgKind, User
from ringwell.features.accounts.service import UserSpec
from ringwell.features.auth.passwords import hash_password
from ringwell.features.auth.permissions import ORG_PERMISSIONS
from ringwell.features.auth.tokens import token_hash
from ringwell.server import RingwellServer
from ringwell.settings import Settings
from ringwell.web.app import build_app
from ringwell.web.context import WebServices
from ringwell.web.deps import CSRF_HEADER, SESSION_COOKIE

BASE_URL = "https://ringwell.test"


@dataclass
class Member:
    """A user who can log in, with the password in clear (tests only)."""

    org: Organization
    user: User
    email: str
    password: str
    extension: str
    sip_username: str
    sip_password: str | None


@dataclass
class Tenant:
    """An org with an owner, and (filled by ``WebEnv.tenant``) a logged-in client and an API key."""

    org: Organization
    owner: Member
    client: httpx.AsyncClient
    api: httpx.AsyncClient
    api_key: str
    members: list[Member] = field(default_factory=list)


class WebEnv:
    def __init__(self, server: RingwellServer) -> None:
        self.server = server
        self.services: WebServices = server.web
        self.app = build_app(lambda: {}, (), self.services)
        self._clients: list[httpx.AsyncClient] = []

    def client(self, **headers: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000)),
                                   base_url=BASE_URL, headers=headers, follow_redirects=False)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def org(self, name: str | None = None, *, kind: OrgKind = OrgKind.CUSTOMER, country: str = "US",
                  currency: str = "USD") -> Organization:
        org = await self.services.accounts.create_org(name or f"Org {secrets.token_hex(3)}", country, currency)
        if kind is not OrgKind.CUSTOMER:
            async with self.services.sessions() as session, session.begin():
                await session.execute(update(Organization).where(Organization.id == org.id).values(kind=kind.value))
            org.kind = kind.value
        return org

    async def member(self, org: Organization, role: str = "owner", *, extension: str | None = None,
                     verified: bool = True) -> Member:
        """A user of ``org`` with a portal login (email verified unless told otherwise)."""
        extension = extension or str(100 + secrets.randbelow(8900))
        email = f"{role}-{secrets.token_hex(3)}@example.com"
        password = secrets.token_urlsafe(12)
        created = await self.services.accounts.create_user(org.name, UserSpec(email=email, extension=extension))
        async with self.services.sessions() as session, session.begin():
            user = await session.get(User, created.user.id)
            assert user is not None
            user.role = role
            user.login_email = email
            user.password_hash = hash_password(password)
            if verified:
                from datetime import UTC, datetime

                user.email_verified_at = datetime.now(UTC)
        return Member(org, user, email, password, extension, created.sip_username, created.sip_password)

    async def logged_in(self, member: Member) -> httpx.AsyncClient:
        """A client holding a fresh session of ``member`` (as after password and MFA), CSRF header set."""
        async with self.services.sessions() as session, session.begin():
            token = await self.services.web_sessions.create(session, member.user, mfa_pending=False, ip="127.0.0.1",
                                                            user_agent="pytest")
        client = self.client()
        client.cookies.set(SESSION_COOKIE, token, domain="ringwell.test", path="/")
        identity = await self.services.web_sessions.resolve(token)
        assert identity is not None and identity.csrf_token
        client.headers[CSRF_HEADER] = identity.csrf_token
        assert token_hash(token)
        return client

    async def api_client(self, org: Organization, scopes: list[str] | None = None,
                         member: Member | None = None) -> tuple[httpx.AsyncClient, str]:
        """A client authenticating with a new API key of ``org`` (every org scope unless told)."""
        from ringwell.features.auth.permissions import OPERATOR_PERMISSIONS

        everything = ORG_PERMISSIONS | (OPERATOR_PERMISSIONS if org.kind == OrgKind.OPERATOR.value else frozenset())
        async with self.services.sessions() as session, session.begin():
            issued = await self.services.api_keys.create(
                session, org_id=org.id, org_kind=org.kind, created_by=member.user.id if member else None,
                name="test key", scopes=sorted(scopes if scopes is not None else everything), creator=everything)
        return self.client(authorization=f"Bearer {issued.key}"), issued.key

    async def staff(self, role: str) -> tuple[Member, httpx.AsyncClient]:
        """A logged-in member of a new operator org holding the staff ``role`` (support, billing, privacy...)."""
        operator = await self.org(f"Operator {secrets.token_hex(2)}", kind=OrgKind.OPERATOR)
        member = await self.member(operator, role)
        return member, await self.logged_in(member)

    async def tenant(self, name: str | None = None) -> Tenant:
        org = await self.org(name)
        owner = await self.member(org, "owner")
        client = await self.logged_in(owner)
        api, key = await self.api_client(org, member=owner)
        return Tenant(org, owner, client, api, key)


@pytest.fixture
def web_settings() -> dict[str, object]:
    """Settings for the ``web`` fixture's server; override in a test module (e.g. SMTP to aiosmtpd)."""
    return {}


@pytest.fixture
async def web(db_url, tmp_path, web_settings) -> AsyncIterator[WebEnv]:
    values: dict[str, object] = {"bind": "127.0.0.1", "http_port": 8080, **web_settings}
    settings = Settings(data_dir=tmp_path / "data", secret_key=secrets.token_urlsafe(32), database_url=db_url,
                        **values)  # type: ignore[arg-type]
    settings.data_dir.mkdir()
    server = RingwellServer(settings)
    env = WebEnv(server)
    try:
        yield env
    finally:
        await env.close()
        await server.engine.dispose()
