"""The web phone's short-lived SIP credentials (``POST /api/v1/webphone/session``), on SQLite and
PostgreSQL through the real app: only a logged-in session with its CSRF token gets one (never an
API key), only HA1 hashes are stored, the credential registers and then expires (refused at use,
purged with its registrations), a user keeps at most a few, and listings for people ignore them
while calls to the user's extension reach them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ringwell.features.accounts.models import SipCredential
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor
from ringwell.features.registrations import repository as bindings_repo
from ringwell.features.webphone.service import MAX_LIVE
from ringwell.pbx.registrar import BindingStore, Registrar, RegistrarLimits
from ringwell.sip.digest import compute_ha1
from ringwell.transport.source import Source
from ringwell.transport.udp import open_udp
from ringwell.web.deps import CSRF_HEADER
from tests.factories import parsed_request
from tests.sipclient import Client

API = "/api/v1"
SESSION = f"{API}/webphone/session"


@pytest.fixture
def web_settings():
    return {"webrtc_stun_servers": ("stun:stun.example.net:3478",),
            "webrtc_turn_servers": ("turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:5349"),
            "webrtc_turn_username": "ringwell", "webrtc_turn_password": "turn-secret"}


@pytest.fixture
async def sip_port(web):
    """The server's SIP endpoint on a UDP port of loopback (the rest of the server stays down)."""
    server = web.server
    server.udp = await open_udp("127.0.0.1", 0, server._datagram)
    await server.endpoint.start()
    try:
        yield server.udp.port
    finally:
        server.udp.close()
        server.udp = None
        await server.endpoint.stop()


async def _rows(web, user_id):
    async with web.services.sessions() as session:
        result = await session.execute(select(SipCredential).where(SipCredential.user_id == user_id))
        return list(result.scalars().all())


async def test_a_logged_in_user_gets_a_sip_account_for_the_browser(web):
    a = await web.tenant("Alpha")
    response = await a.client.post(SESSION)
    assert response.status_code == 201, response.text
    body = response.json()
    username, password = body["username"], body["password"]
    assert username.startswith("wp-") and len(password) >= 32
    assert body["sip_uri"] == f"sip:{username}@127.0.0.1"
    assert body["ws_url"] == "wss://ringwell.test/ws"  # the portal is reached over https here
    assert (body["realm"], body["extension"]) == ("ringwell", a.owner.extension)
    assert body["display_name"] == a.owner.extension  # no name set: the extension
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=11, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=12)
    assert body["ice_servers"] == [
        {"urls": ["stun:stun.example.net:3478"]},
        {"urls": ["turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:5349"],
         "username": "ringwell", "credential": "turn-secret"},
    ]

    # Stored: HA1 hashes only, of kind webphone, expiring — the password in no column.
    (row,) = [r for r in await _rows(web, a.owner.user.id) if r.username == username]
    assert (row.kind, row.org_id) == ("webphone", a.org.id)
    assert row.ha1_md5 == compute_ha1(username, "ringwell", password, "MD5")
    assert row.ha1_sha256 == compute_ha1(username, "ringwell", password, "SHA-256")
    assert abs((row.expires_at - expires).total_seconds()) < 1
    assert not any(password in str(getattr(row, column.key)) for column in SipCredential.__table__.columns)
    assert response.headers["cache-control"] == "no-store"

    # Audited, without the secret.
    async with web.services.sessions() as session:
        (event,) = (await session.execute(select(AuditEvent).where(AuditEvent.action == "webphone.session"))).scalars()
    assert (event.org_id, event.actor_user_id, event.target_id) == (a.org.id, a.owner.user.id, a.owner.user.id)
    assert event.details["sip_username"] == username and password not in str(event.details)


async def test_only_a_session_with_its_csrf_token_gets_one(web):
    a = await web.tenant("Alpha")
    anonymous = await web.client().post(SESSION)
    assert anonymous.status_code == 401 and anonymous.json()["error_id"] == "login_required"
    forged = web.client()
    forged.cookies = a.client.cookies  # the session cookie, as a cross-site form would send it
    no_csrf = await forged.post(SESSION)
    assert no_csrf.status_code == 403 and no_csrf.json()["details"] == {"reason": "csrf"}
    wrong = await forged.post(SESSION, headers={CSRF_HEADER: "not-the-token"})
    assert wrong.status_code == 403
    by_key = await a.api.post(SESSION)
    assert by_key.status_code == 403 and by_key.json()["error_id"] == "session_required"
    assert [r.username for r in await _rows(web, a.owner.user.id)] == [a.owner.sip_username]


async def test_the_credential_registers_then_expires_and_is_purged(web, sip_port):
    a = await web.tenant("Alpha")
    server = web.server
    service = web.services.webphone
    assert service is not None
    # Minted as if 12 hours minus 2 seconds ago: it works for 2 more seconds.
    ago = datetime.now(UTC) - timedelta(hours=12) + timedelta(seconds=2)
    short = await service.open_session(a.org.id, a.owner.user.id, Actor(), request_base="http://x", now=ago)
    phone = await Client("udp", "127.0.0.1", sip_port).open()
    try:
        ok = await phone.register(short.username, short.password, expires=600, algorithm="MD5")
        assert ok.status == 200
        (contact,) = ok.headers.get_all("contact")
        assert int(contact.rsplit("expires=", 1)[1]) <= 2  # the binding ends with the credential
        assert server.endpoint.credentials.get(short.username, time.time()) is not None  # cached
        await asyncio.sleep(2.2)
        # Still cached (30 s), but expired at use: answered like an unknown user.
        refused = await phone.register(short.username, short.password, expires=600, algorithm="MD5")
        assert refused.status == 401
    finally:
        await phone.close()

    assert await service.purge_expired() == 1
    assert await service.purge_expired() == 0
    fresh = (await a.client.post(SESSION)).json()
    assert [r.username for r in await _rows(web, a.owner.user.id) if r.kind == "webphone"] == [fresh["username"]]
    assert await web.services.accounts.credential(short.username) is None
    assert await service.purge_expired(datetime.now(UTC) + timedelta(hours=13)) == 1
    assert [r.username for r in await _rows(web, a.owner.user.id)] == [a.owner.sip_username]


async def test_purging_drops_the_registrations_at_once(web, sip_port):
    a = await web.tenant("Alpha")
    body = (await a.client.post(SESSION)).json()
    phone = await Client("udp", "127.0.0.1", sip_port).open()
    try:
        assert (await phone.register(body["username"], body["password"], algorithm="MD5")).status == 200
        await web.server.store.flush()
        listed = (await a.api.get(f"{API}/orgs/{a.org.id}/registrations")).json()["items"]
        assert [(r["sip_username"], r["extension"]) for r in listed] == [(body["username"], a.owner.extension)]
        assert await web.services.webphone.purge_expired(datetime.now(UTC) + timedelta(hours=12, seconds=1)) == 1
        assert (await a.api.get(f"{API}/orgs/{a.org.id}/registrations")).json()["items"] == []
        assert (await phone.register(body["username"], body["password"], algorithm="MD5")).status == 401
        assert await web.server.store.flush() >= 0
    finally:
        await phone.close()


async def test_a_user_holds_a_few_at_most_the_oldest_make_room(web):
    a = await web.tenant("Alpha")
    minted = [(await a.client.post(SESSION)).json()["username"] for _ in range(MAX_LIVE + 2)]
    live = sorted(r.username for r in await _rows(web, a.owner.user.id) if r.kind == "webphone")
    assert live == sorted(minted[-MAX_LIVE:])
    assert await web.services.accounts.credential(minted[0]) is None


async def test_listings_for_people_ignore_them_but_calls_reach_them(web):
    a = await web.tenant("Alpha")
    accounts = web.services.accounts
    body = (await a.client.post(SESSION)).json()
    wp = body["username"]
    device = a.owner.sip_username

    users = (await a.api.get(f"{API}/orgs/{a.org.id}/users")).json()["items"]
    assert [u["sip_username"] for u in users] == [device]
    one = (await a.api.get(f"{API}/orgs/{a.org.id}/users/{a.owner.user.id}")).json()
    assert one["sip_username"] == device
    for page in ("/users", f"/users/{a.owner.user.id}", "/"):
        html = (await a.client.get(page)).text
        assert device in html and wp not in html, page
    assert [name for _, name in await accounts.users(a.org.name)] == [device]  # ringwell admin users
    assert [c.username for c in await accounts.sip_credentials(a.org.id)] == [device]

    # Rotating the user's SIP password rotates the device's, never the web phone's.
    rotated = (await a.api.post(f"{API}/orgs/{a.org.id}/users/{a.owner.user.id}/sip-password")).json()
    assert rotated["sip_username"] == device
    assert (await accounts.credential(wp)) is not None

    # A call to the extension rings every credential of the user, the web phone's too.
    reachable = await accounts.reachable(a.org.id, a.owner.extension)
    assert reachable is not None
    ids = {r.id: r.username for r in await _rows(web, a.owner.user.id)}
    assert sorted(ids[i] for i in reachable.credential_ids) == sorted([device, wp])

    # Deleting the user deletes the web phone's credential with the device's.
    member = await web.member(a.org, "member")
    member_client = await web.logged_in(member)
    member_wp = (await member_client.post(SESSION)).json()["username"]
    assert (await a.api.delete(f"{API}/orgs/{a.org.id}/users/{member.user.id}")).status_code == 204
    assert await accounts.credential(member_wp) is None


async def test_websocket_registrations_do_not_survive_a_restart(web):
    """Their connections did not: loaded bindings over WS are deleted, the others kept."""
    a = await web.tenant("Alpha")
    body = (await a.client.post(SESSION)).json()
    accounts = web.services.accounts
    registrar = web.server.registrar
    now = time.time()
    for username, source in ((body["username"], Source("ws", "127.0.0.1", 50000)),
                             (a.owner.sip_username, Source("udp", "127.0.0.1", 5070))):
        record = await accounts.credential(username)
        request = parsed_request("REGISTER", user=username, extra=f"Contact: <sip:{username}@h.invalid>\r\n")
        assert registrar.register(request, record, source, now).status == 200
    assert await web.server.store.flush() == 2

    restarted = Registrar(RegistrarLimits())
    store = BindingStore(restarted, web.services.sessions)
    assert await store.load(time.time()) == 1
    assert [b.username for b in restarted.all(time.time())] == [a.owner.sip_username]
    assert await store.flush() == 1  # the WebSocket binding's row is deleted
    async with web.services.sessions() as session:
        rows = await bindings_repo.listing(session, datetime.now(UTC))
    assert [(row.transport, username) for row, username, _ in rows] == [("udp", a.owner.sip_username)]
