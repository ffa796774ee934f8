"""SIP over WebSocket (RFC 7118) at ``/ws``, against the running server on loopback (in this
process), with a real WebSocket client (the ``websockets`` library) speaking SIP the way JsSIP
does, and baresip as a UDP phone calling the browser's user.

The web phone's credential comes from ``POST /api/v1/webphone/session`` over real HTTP with a
logged-in session; the REGISTER is answered with digest computed from it. A closed WebSocket
takes its registrations with it; wrong subprotocols, oversized messages, idle and non-reading
peers are cut off; an expired credential is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ringwell.features.accounts.models import User
from ringwell.features.accounts.service import UserSpec
from ringwell.features.audit.service import Actor
from ringwell.server import RingwellServer
from ringwell.settings import ensure_config, load_settings
from ringwell.sip import digest
from ringwell.sip.message import Request, Response, parse_message
from ringwell.web.deps import CSRF_HEADER, SESSION_COOKIE
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.ports import LOOPBACK, free_port

pytestmark = pytest.mark.peers

ORG = "Acme"


class Browser:
    """The logged-in user of the portal: an HTTP client holding a session cookie and its CSRF token."""

    def __init__(self, base: str, token: str, csrf: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, headers={"Cookie": f"{SESSION_COOKIE}={token}",
                                                              CSRF_HEADER: csrf}, verify=False, trust_env=False)

    async def webphone(self) -> dict:
        response = await self.http.post("/api/v1/webphone/session")
        assert response.status_code == 201, response.text
        return response.json()


class WsPhone:
    """A SIP user agent over one WebSocket, writing what JsSIP 3 writes (a ``.invalid`` Via and
    Contact host: the browser has no address of its own to give)."""

    def __init__(self, ws: ClientConnection, username: str, password: str, transport: str = "ws") -> None:
        self.ws = ws
        self.username = username
        self.password = password
        self.transport = transport
        self.host = secrets.token_hex(6) + ".invalid"
        self.contact_user = secrets.token_hex(4)
        self.contact = f"sip:{self.contact_user}@{self.host};transport=ws"
        self.call_id = secrets.token_hex(10)
        self.cseq = 0
        self.tag = secrets.token_hex(5)

    def _request(self, method: str, extra: str = "", *, auth: str = "") -> str:
        self.cseq += 1
        aor = f"sip:{self.username}@{LOOPBACK}"
        return (f"{method} sip:{LOOPBACK} SIP/2.0\r\n"
                f"Via: SIP/2.0/{self.transport.upper()} {self.host};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
                f"Max-Forwards: 69\r\nTo: <{aor}>\r\nFrom: <{aor}>;tag={self.tag}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} {method}\r\n{extra}{auth}"
                "Supported: path,gruu,outbound\r\nUser-Agent: JsSIP 3.10.1\r\nContent-Length: 0\r\n\r\n")

    async def recv(self, timeout: float = 5.0) -> Request | Response:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, str)  # SIP is sent as text frames
        return parse_message(data.encode())

    async def final(self, timeout: float = 5.0) -> Response:
        while True:
            message = await self.recv(timeout)
            if isinstance(message, Response) and message.status >= 200:
                return message

    async def register(self, expires: int = 600) -> Response:
        extra = (f'Contact: <{self.contact}>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:{secrets.token_hex(8)}>"'
                 f";expires={expires}\r\nExpires: {expires}\r\n"
                 "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n")
        await self.ws.send(self._request("REGISTER", extra))
        first = await self.final()
        if first.status != 401:
            return first
        answer = digest.answer_challenge(first, "REGISTER", f"sip:{LOOPBACK}", self.username, self.password)
        assert answer is not None
        header, value, _ = answer
        await self.ws.send(self._request("REGISTER", extra, auth=f"{header}: {value}\r\n"))
        return await self.final()

    async def options(self) -> Response:
        await self.ws.send(self._request("OPTIONS", "Accept: application/sdp\r\n"))
        return await self.final()


def reply(request: Request, status: int, reason: str, to_tag: str) -> str:
    vias = "".join(f"Via: {v}\r\n" for v in request.headers.get_all("via"))
    return (f"SIP/2.0 {status} {reason}\r\n{vias}From: {request.headers.get('from')}\r\n"
            f"To: {request.headers.get('to')};tag={to_tag}\r\nCall-ID: {request.call_id}\r\n"
            f"CSeq: {request.cseq}\r\nContent-Length: 0\r\n\r\n")


async def _start(tmp_path, **env: str) -> tuple[RingwellServer, Browser, dict[str, str]]:
    ensure_config(tmp_path)
    rtp = free_port(40)
    settings = load_settings(tmp_path, {
        "RINGWELL_BIND": LOOPBACK, "RINGWELL_SIP_PORT": str(free_port()), "RINGWELL_TLS_PORT": str(free_port()),
        "RINGWELL_HTTP_PORT": str(free_port()), "RINGWELL_RTP_PORTS": f"{rtp}-{rtp + 39}",
        "RINGWELL_MAX_MESSAGE_SIZE": "8000", **env,
    })
    server = RingwellServer(settings)
    await server.start()
    accounts = server.accounts
    await accounts.create_org(ORG)
    web = await accounts.create_user(ORG, UserSpec("web@example.com", "101", "webuser", "web-user-secret"))
    await accounts.create_user(ORG, UserSpec("desk@example.com", "102", "desk", "desk-secret-1"))
    async with server.sessions() as session, session.begin():
        user = await session.get(User, web.user.id)
        assert user is not None
        user.login_email = user.email
        user.role = "owner"
        user.email_verified_at = datetime.now(UTC)
        token = await server.web.web_sessions.create(session, user, mfa_pending=False, ip=LOOPBACK,
                                                     user_agent="pytest")
    identity = await server.web.web_sessions.resolve(token)
    assert identity is not None and identity.csrf_token
    scheme = "https" if settings.http_tls else "http"
    browser = Browser(f"{scheme}://{LOOPBACK}:{settings.http_port}", token, identity.csrf_token)
    return server, browser, {"user_id": web.user.id, "org_id": web.user.org_id}


@pytest.fixture
async def ringwell(tmp_path):
    server, browser, ids = await _start(tmp_path)
    try:
        yield server, browser, ids
    finally:
        await browser.http.aclose()
        await server.stop()


def ws_url(server: RingwellServer, scheme: str = "ws") -> str:
    return f"{scheme}://{LOOPBACK}:{server.settings.http_port}/ws"


async def wait_for(check, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_a_browser_registers_over_websocket_and_closing_it_unregisters(ringwell):
    server, browser, ids = ringwell
    account = await browser.webphone()
    assert account["ws_url"] == ws_url(server)
    record = await server.accounts.credential(account["username"])
    assert record is not None
    async with connect(account["ws_url"], subprotocols=["sip"]) as ws:
        assert ws.subprotocol == "sip"
        phone = WsPhone(ws, account["username"], account["password"])
        ok = await phone.register()
        assert ok.status == 200, ok.reason
        (contact,) = ok.headers.get_all("contact")
        assert contact.startswith(f"<{phone.contact}>") and "expires=600" in contact
        (binding,) = server.registrar.lookup(record.credential_id, time.time())
        assert binding.source.transport == "ws" and binding.source.port == ws.local_address[1]
        assert server.status()["websockets"] == 1

        assert (await phone.options()).status == 200
        await ws.send("\r\n\r\n")  # a CRLF keep-alive ping is answered with a pong
        assert await asyncio.wait_for(ws.recv(), 5) == "\r\n"
        # registrations listed for people show the browser as a device (over WS)
        await server.store.flush()
        listed = await browser.http.get(f"/api/v1/orgs/{ids['org_id']}/users/{ids['user_id']}/registrations")
        assert [(r["sip_username"], r["transport"]) for r in listed.json()["items"]] == [(account["username"], "ws")]

    # The page went away: its registration is gone at once, and from the database too.
    assert await wait_for(lambda: not server.registrar.lookup(record.credential_id, time.time()))
    assert await wait_for(lambda: server.status()["websockets"] == 0)
    await server.store.flush()
    listed = await browser.http.get(f"/api/v1/orgs/{ids['org_id']}/registrations")
    assert listed.json()["items"] == []


async def test_a_udp_phone_calling_the_user_rings_the_browser_over_its_websocket(ringwell, tmp_path):
    server, browser, ids = ringwell
    # The user's mailbox is off: the browser's 486 reaches the caller (else the box would answer).
    await server.accounts.update_user(ids["org_id"], ids["user_id"], granter_role="owner", voicemail_enabled=False)
    account = await browser.webphone()
    desk = Baresip(tmp_path / "desk", BaresipAccount("desk", "desk-secret-1", server.settings.sip_port))
    async with connect(account["ws_url"], subprotocols=["sip"]) as ws:
        phone = WsPhone(ws, account["username"], account["password"])
        assert (await phone.register()).status == 200
        await asyncio.to_thread(desk.start)
        try:
            await asyncio.to_thread(desk.wait_registered)
            await asyncio.to_thread(desk.dial, f"sip:101@{LOOPBACK}:{server.settings.sip_port}")
            # The INVITE comes over the same WebSocket, to the Contact as registered (its
            # .invalid host is never looked up), from the server's WS address.
            invite = await phone.recv(10)
            assert isinstance(invite, Request) and invite.method == "INVITE"
            assert invite.uri_text == phone.contact
            assert invite.top_via.transport.upper() == "WS"
            assert f"{LOOPBACK}:{server.settings.http_port};transport=ws" in (invite.headers.get("contact") or "")
            assert invite.body.startswith(b"v=0")
            await ws.send(reply(invite, 486, "Busy Here", "browser"))
            ack = await phone.recv(5)
            assert isinstance(ack, Request) and ack.method == "ACK" and ack.call_id == invite.call_id

            def caller_got_486() -> bool:
                return any(e.status == 486 for e in desk.sip_trace())

            assert await wait_for(caller_got_486, 10), desk.sip_trace()
        finally:
            await asyncio.to_thread(desk.stop)


async def test_an_expired_credential_is_refused(ringwell):
    server, _, ids = ringwell
    assert server.web.webphone is not None
    ago = datetime.now(UTC) - timedelta(hours=12) + timedelta(seconds=2)
    short = await server.web.webphone.open_session(ids["org_id"], ids["user_id"], Actor(),
                                                   request_base="http://x", now=ago)
    async with connect(ws_url(server), subprotocols=["sip"]) as ws:
        phone = WsPhone(ws, short.username, short.password)
        assert (await phone.register()).status == 200
        await asyncio.sleep(2.2)
        assert (await phone.register()).status == 401


async def test_only_sip_clients_within_the_limits_are_served(ringwell):
    server, _, _ = ringwell
    url = ws_url(server)
    for subprotocols in (["chat"], None):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, subprotocols=subprotocols):
                pass
        assert refused.value.response.status_code == 403

    # A message larger than max_message_size closes the connection (1009).
    async with connect(url, subprotocols=["sip"]) as ws:
        await ws.send("OPTIONS sip:x SIP/2.0\r\n" + "X-Pad: " + "a" * 9000 + "\r\n\r\n")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009

    # Idle connections are closed; connections beyond the limit are refused.
    server.ws.idle_timeout = 0.3
    async with connect(url, subprotocols=["sip"]) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001
    server.ws.idle_timeout = 60.0
    server.ws.max_connections = 1
    async with connect(url, subprotocols=["sip"]):
        with pytest.raises(InvalidStatus):
            async with connect(url, subprotocols=["sip"]):
                pass


async def test_a_peer_that_does_not_read_is_cut_off(ringwell, caplog):
    server, browser, _ = ringwell
    account = await browser.webphone()
    server.ws.max_write_buffer = 4096
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((LOOPBACK, server.settings.http_port))
    sock.setblocking(False)
    async with connect(ws_url(server), subprotocols=["sip"], sock=sock, max_queue=1) as ws:
        phone = WsPhone(ws, account["username"], account["password"])
        closed = False
        for _ in range(5000):  # OPTIONS whose answers are never read
            try:
                await ws.send(phone._request("OPTIONS", "X-Pad: " + "p" * 2000 + "\r\n"))
            except ConnectionClosed:
                closed = True
                break
            if not server.ws.connections:
                closed = True
                break
            await asyncio.sleep(0)
        assert closed, "the server kept buffering for a peer that does not read"
        assert await wait_for(lambda: not server.ws.connections)
    assert "does not read" in caplog.text  # cut off by the write bound, not by anything else


async def test_https_makes_the_websocket_secure(tmp_path):
    server, browser, _ = await _start(tmp_path, RINGWELL_HTTP_TLS="true")
    try:
        account = await browser.webphone()
        assert account["ws_url"] == ws_url(server, "wss")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the generated self-signed certificate
        async with connect(account["ws_url"], subprotocols=["sip"], ssl=context) as ws:
            phone = WsPhone(ws, account["username"], account["password"], transport="wss")
            assert (await phone.register()).status == 200
            record = await server.accounts.credential(account["username"])
            assert record is not None
            (binding,) = server.registrar.lookup(record.credential_id, time.time())
            assert binding.source.transport == "wss"
        async with httpx.AsyncClient(trust_env=False) as plain:
            with contextlib.suppress(httpx.HTTPError):  # plain HTTP is not served on the HTTPS port
                answer = await plain.get(f"http://{LOOPBACK}:{server.settings.http_port}/healthz")
                assert answer.status_code >= 400
    finally:
        await browser.http.aclose()
        await server.stop()
