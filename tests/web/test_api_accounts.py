"""The organization API: the org itself, users with their SIP extensions, role rules, devices
registered now, the operator's list of organizations — on SQLite and PostgreSQL, through the
real app; registrations through a real REGISTER over UDP on loopback."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select, text

from ringwell.features.accounts.errors import InvalidAccountData, RoleNotAllowed
from ringwell.features.accounts.models import OrgKind, SipCredential, User
from ringwell.features.accounts.service import check_grant
from ringwell.features.audit.models import AuditEvent
from ringwell.sip.digest import compute_ha1
from ringwell.transport.udp import open_udp
from tests.peers.http_receiver import Receiver
from tests.sipclient import Client

API = "/api/v1"


async def _audit(web, org_id, action):
    async with web.services.sessions() as session:
        rows = await session.execute(select(AuditEvent).where(AuditEvent.org_id == org_id,
                                                              AuditEvent.action == action))
        return list(rows.scalars().all())


async def _ha1(web, username):
    async with web.services.sessions() as session:
        cred = (await session.execute(select(SipCredential).where(SipCredential.username == username))).scalar_one()
        return cred.ha1_md5, cred.ha1_sha256, cred.realm


async def _create(client, org_id, **fields):
    body = {"email": f"u-{uuid.uuid4().hex[:6]}@example.com", "extension": "201", **fields}
    return await client.post(f"{API}/orgs/{org_id}/users", json=body)


@pytest.fixture
def web_settings():
    return {"webhook_allow_private": True, "webhook_first_retry": 0.2, "webhook_timeout": 3.0}


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


async def test_org_can_be_read_and_updated_by_its_owner_only(web):
    a = await web.tenant("Alpha")
    member = await web.logged_in(await web.member(a.org, "member"))
    url = f"{API}/orgs/{a.org.id}"
    org = (await a.client.get(url)).json()
    assert org == {"id": a.org.id, "name": "Alpha", "country": "US", "currency": "USD", "kind": "customer",
                   "created_at": org["created_at"], "low_balance_minor": None, "voicemail_attach_audio": False,
                   "voicemail_retention_days": None, "recording_retention_days": None,
                   "call_record_retention_days": None}

    changed = await a.client.patch(url, json={"name": "Alpha Inc", "low_balance_minor": 500})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["low_balance_minor"]) == ("Alpha Inc", 500)
    assert (await a.api.get(url)).json()["name"] == "Alpha Inc"
    [event] = await _audit(web, a.org.id, "org.update")
    assert event.actor_user_id == a.owner.user.id
    assert event.details == {"changes": {"name": ["Alpha", "Alpha Inc"], "low_balance_minor": [None, 500]}}

    # Only the fields sent change; null switches the alert off.
    off = await a.client.patch(url, json={"low_balance_minor": None})
    assert (off.json()["name"], off.json()["low_balance_minor"]) == ("Alpha Inc", None)

    await web.tenant("Beta")
    taken = await a.client.patch(url, json={"name": "Beta"})
    assert taken.status_code == 409 and taken.json()["error_id"] == "duplicate"
    for bad in ({"low_balance_minor": -1}, {"name": None}, {"name": ""}, {"name": "x" * 201}, {"kind": "operator"}):
        refused = await a.client.patch(url, json=bad)
        assert refused.status_code == 422, bad
        assert refused.json()["error_id"] == "invalid_request"
    assert (await member.get(url)).status_code == 200
    denied = await member.patch(url, json={"name": "Mine"})
    assert denied.status_code == 403 and denied.json()["error_id"] == "permission_denied"
    assert (await a.client.get(url)).json()["name"] == "Alpha Inc"


async def test_created_user_is_listed_and_its_sip_password_is_shown_once(web):
    a = await web.tenant("Alpha")
    created = await _create(a.api, a.org.id, email="Dana@Example.com", extension="205", name="Dana",
                            sip_username="dana-alpha")
    assert created.status_code == 201
    user = created.json()
    password = user["sip_password"]
    assert user["sip_username"] == "dana-alpha" and user["email"] == "dana@example.com"
    assert (user["extension"], user["name"], user["role"], user["portal_access"]) == ("205", "Dana", "member", False)
    md5, sha256, realm = await _ha1(web, "dana-alpha")
    assert compute_ha1("dana-alpha", realm, password, "MD5") == md5
    assert compute_ha1("dana-alpha", realm, password, "SHA-256") == sha256

    # Listed in extension order, and the password is in no later response.
    listed = await a.client.get(f"{API}/orgs/{a.org.id}/users")
    assert listed.status_code == 200
    by_id = {u["id"]: u for u in listed.json()["items"]}
    assert by_id[user["id"]]["sip_username"] == "dana-alpha"
    assert [u["extension"] for u in listed.json()["items"]] == sorted(
        [u["extension"] for u in listed.json()["items"]], key=lambda e: (len(e), e))
    one = await a.client.get(f"{API}/orgs/{a.org.id}/users/{user['id']}")
    assert one.json()["extension"] == "205"
    for response in (listed, one):
        assert password not in response.text and "sip_password" not in response.text
    [event] = await _audit(web, a.org.id, "users.create")
    assert event.target_id == user["id"] and event.api_key_id is not None
    assert password not in str(event.details)
    # the audit trail outlives the person: ids, extension and role, not their email or SIP username
    assert event.details == {"extension": "205", "role": "member"}

    # A generated username when none is asked for; duplicates are 409.
    generated = await _create(a.client, a.org.id, extension="206")
    assert generated.status_code == 201 and generated.json()["sip_username"].startswith("206-")
    for duplicate in ({"extension": "205"}, {"email": "dana@example.com", "extension": "207"},
                      {"sip_username": "dana-alpha", "extension": "208"}):
        refused = await _create(a.client, a.org.id, **duplicate)
        assert refused.status_code == 409, duplicate
    for invalid in ({"extension": "1"}, {"extension": "12a"}, {"email": "not-an-email"}, {"role": "root"},
                    {"sip_username": "-x"}, {"sip_password": "chosen-by-me"}):
        refused = await _create(a.client, a.org.id, **{"extension": "209", **invalid})
        assert refused.status_code == 422, invalid
    assert len((await a.client.get(f"{API}/orgs/{a.org.id}/users")).json()["items"]) == 3


async def test_users_are_paged_in_extension_order(web):
    a = await web.tenant("Alpha")
    for extension in ("99", "1000", "100", "20"):
        assert (await _create(a.api, a.org.id, extension=extension)).status_code == 201
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await a.client.get(f"{API}/orgs/{a.org.id}/users", params=params)).json()
        seen += [u["extension"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = sorted(["99", "1000", "100", "20", a.owner.extension], key=lambda e: (len(e), e))
    assert seen == expected
    bad = await a.client.get(f"{API}/orgs/{a.org.id}/users", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error_id"] == "invalid_cursor"


async def test_a_member_can_list_users_but_not_create_change_or_delete_them(web):
    a = await web.tenant("Alpha")
    member = await web.member(a.org, "member")
    client = await web.logged_in(member)
    listed = await client.get(f"{API}/orgs/{a.org.id}/users")
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2
    for response in (await _create(client, a.org.id),
                     await client.patch(f"{API}/orgs/{a.org.id}/users/{member.user.id}", json={"name": "Me"}),
                     await client.delete(f"{API}/orgs/{a.org.id}/users/{a.owner.user.id}"),
                     await client.post(f"{API}/orgs/{a.org.id}/users/{member.user.id}/sip-password"),
                     await client.get(f"{API}/orgs/{a.org.id}/registrations")):
        assert response.status_code == 403 and response.json()["error_id"] == "permission_denied"
    assert len((await a.client.get(f"{API}/orgs/{a.org.id}/users")).json()["items"]) == 2


async def test_user_changes_are_saved_and_audited(web):
    a = await web.tenant("Alpha")
    user = (await _create(a.client, a.org.id, name="Eve")).json()
    url = f"{API}/orgs/{a.org.id}/users/{user['id']}"
    changed = await a.client.patch(url, json={"name": "Eve Adams", "ring_timeout": 45})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["ring_timeout"], changed.json()["role"]) == ("Eve Adams", 45,
                                                                                                 "member")
    assert (await a.client.get(url)).json()["ring_timeout"] == 45
    [event] = await _audit(web, a.org.id, "users.update")
    assert event.details["changes"] == {"name": ["Eve", "Eve Adams"], "ring_timeout": [30, 45]}
    for bad in ({"ring_timeout": 0}, {"ring_timeout": 601}, {"extension": "300"}, {"name": "x" * 201}):
        assert (await a.client.patch(url, json=bad)).status_code == 422, bad

    deleted = await a.client.delete(url)
    assert deleted.status_code == 204
    gone = await a.client.get(url)
    assert gone.status_code == 404 and gone.json()["error_id"] == "user_not_found"
    assert user["id"] not in {u["id"] for u in (await a.client.get(f"{API}/orgs/{a.org.id}/users")).json()["items"]}
    [event] = await _audit(web, a.org.id, "users.delete")
    assert event.target_id == user["id"] and event.details["extension"] == "201"
    assert "@" not in str(event.details)
    async with web.services.sessions() as session:
        assert (await session.execute(select(SipCredential).where(SipCredential.user_id == user["id"]))).first() \
            is None


async def test_role_rules_owner_admin_and_the_last_owner(web):
    a = await web.tenant("Alpha")
    admin = await web.member(a.org, "admin")
    admin_client = await web.logged_in(admin)
    member = (await _create(a.client, a.org.id)).json()
    member_url = f"{API}/orgs/{a.org.id}/users/{member['id']}"
    owner_url = f"{API}/orgs/{a.org.id}/users/{a.owner.user.id}"

    # An admin manages users but cannot give roles: not to others, not to themselves.
    assert (await admin_client.patch(member_url, json={"name": "Renamed"})).status_code == 200
    for response in (await admin_client.patch(member_url, json={"role": "admin"}),
                     await admin_client.patch(f"{API}/orgs/{a.org.id}/users/{admin.user.id}", json={"role": "owner"}),
                     await _create(admin_client, a.org.id, extension="202", role="owner")):
        assert response.status_code == 403 and response.json()["error_id"] == "permission_denied"
    # ... nor delete someone above them.
    above = await admin_client.delete(owner_url)
    assert above.status_code == 403 and above.json()["error_id"] == "role_not_allowed"

    # The owner promotes; the role takes effect at the next request of that user.
    promoted = await a.client.patch(member_url, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    [event] = await _audit(web, a.org.id, "users.role_change")
    assert event.details["changes"] == {"role": ["member", "admin"]}
    staff = await a.client.patch(member_url, json={"role": "support"})
    assert staff.status_code == 422 and staff.json()["error_id"] == "invalid_account_data"

    # The only owner can neither step down nor be deleted; yourself never.
    last = await a.client.patch(owner_url, json={"role": "admin"})
    assert last.status_code == 409 and last.json()["error_id"] == "last_owner"
    self_delete = await a.client.delete(owner_url)
    assert self_delete.status_code == 409 and self_delete.json()["error_id"] == "cannot_remove_self"
    key_delete = await a.api.delete(owner_url)  # an API key acts as no user: the last-owner rule still holds
    assert key_delete.status_code == 409 and key_delete.json()["error_id"] == "last_owner"
    assert (await a.client.get(owner_url)).json()["role"] == "owner"

    # With a second owner the first may step down (and then lose users.roles).
    assert (await a.client.patch(member_url, json={"role": "owner"})).status_code == 200
    assert (await a.client.patch(owner_url, json={"role": "admin"})).json()["role"] == "admin"
    again = await a.client.patch(owner_url, json={"role": "owner"})
    assert again.status_code == 403
    async with web.services.sessions() as session:
        roles = dict((await session.execute(select(User.id, User.role).where(User.org_id == a.org.id))).all())
    assert roles[a.owner.user.id] == "admin" and roles[member["id"]] == "owner"


def test_nobody_grants_a_role_above_their_own():
    check_grant("customer", "owner", "owner")
    check_grant("operator", "owner", "support")
    with pytest.raises(RoleNotAllowed):
        check_grant("customer", "admin", "owner")
    with pytest.raises(RoleNotAllowed):
        check_grant("customer", "admin", "member", current="owner")
    with pytest.raises(InvalidAccountData):
        check_grant("customer", "owner", "auditor")


async def test_portal_access_sends_an_invitation(web):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    outbox = web.services.settings.data_dir / "outbox"
    created = await _create(a.client, a.org.id, email="Frank@Example.com", portal_access=True)
    assert created.status_code == 201 and created.json()["portal_access"] is True
    mails = [p.read_text() for p in outbox.glob("*.eml")] if outbox.exists() else []
    assert len(mails) == 1 and "frank@example.com" in mails[0] and "/password/reset" in mails[0]
    [event] = await _audit(web, a.org.id, "users.invite")
    assert event.target_id == created.json()["id"]
    # Without portal access no mail and no login.
    phone_only = await _create(a.client, a.org.id, extension="202")
    assert phone_only.json()["portal_access"] is False and len(list(outbox.glob("*.eml"))) == 1

    # Beta's owner already logs in with that address: refused, and nothing is left behind.
    clash = await _create(a.client, a.org.id, email=b.owner.email, extension="203", portal_access=True)
    assert clash.status_code == 409 and clash.json()["error_id"] == "login_exists"
    extensions = [u["extension"] for u in (await a.client.get(f"{API}/orgs/{a.org.id}/users")).json()["items"]]
    assert "203" not in extensions
    assert (await _create(a.client, a.org.id, email=b.owner.email, extension="203")).status_code == 201


async def test_another_orgs_user_ids_are_not_found(web):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    victim = b.owner.user.id
    before = await _ha1(web, b.owner.sip_username)
    missing = str(uuid.uuid4())
    for method, suffix, body in (("GET", "", None), ("PATCH", "", {"name": "Pwned"}), ("DELETE", "", None),
                                 ("POST", "/sip-password", None), ("GET", "/registrations", None)):
        answers = []
        for user_id in (victim, missing):
            response = await a.client.request(method, f"{API}/orgs/{a.org.id}/users/{user_id}{suffix}", json=body)
            assert response.status_code == 404, (method, suffix)
            answers.append(response.json())
        foreign, absent = answers
        assert foreign == {**absent, "details": {"user_id": victim}}, (method, suffix)
        assert foreign["error_id"] == "user_not_found"
    # Nothing of Beta's changed.
    assert await _ha1(web, b.owner.sip_username) == before
    assert (await b.client.get(f"{API}/orgs/{b.org.id}/users/{victim}")).json()["name"] is None
    # Beta's org itself: the same 404 as an org that does not exist.
    foreign_org = await a.client.get(f"{API}/orgs/{b.org.id}/users")
    assert foreign_org.status_code == 404 and foreign_org.json()["error_id"] == "organization_not_found"


async def test_registrations_list_devices_registered_with_the_returned_password(web, sip_port):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    dana = (await _create(a.client, a.org.id, extension="210", sip_username="dana")).json()
    erin = (await _create(a.client, a.org.id, extension="211", sip_username="erin")).json()
    carl = (await _create(b.client, b.org.id, extension="210", sip_username="carl")).json()
    phone = await Client("udp", "127.0.0.1", sip_port).open()
    try:
        assert (await phone.register("dana", dana["sip_password"], expires=600, algorithm="MD5")).status == 200
        assert (await phone.register("carl", carl["sip_password"], expires=600, algorithm="MD5")).status == 200

        # Erin's password is rotated before any phone used it: the old one is refused, the new one works.
        rotated = await a.client.post(f"{API}/orgs/{a.org.id}/users/{erin['id']}/sip-password")
        assert rotated.status_code == 200
        new_password = rotated.json()["sip_password"]
        assert rotated.json()["sip_username"] == "erin" and new_password != erin["sip_password"]
        md5, _, realm = await _ha1(web, "erin")
        assert md5 == compute_ha1("erin", realm, new_password) != compute_ha1("erin", realm, erin["sip_password"])
        assert (await phone.register("erin", erin["sip_password"], algorithm="MD5")).status != 200
        assert (await phone.register("erin", new_password, expires=300, algorithm="MD5")).status == 200
    finally:
        await phone.close()
    [event] = await _audit(web, a.org.id, "extensions.rotate_password")
    assert event.target_id == erin["id"] and new_password not in str(event.details)
    assert new_password not in (await a.client.get(f"{API}/orgs/{a.org.id}/users/{erin['id']}")).text

    listed = await a.api.get(f"{API}/orgs/{a.org.id}/registrations")
    assert listed.status_code == 200
    items = sorted(listed.json()["items"], key=lambda r: r["extension"])
    assert [(r["user_id"], r["extension"], r["sip_username"]) for r in items] == [
        (dana["id"], "210", "dana"), (erin["id"], "211", "erin")]
    first = items[0]
    assert (first["transport"], first["source_host"], first["user_agent"]) == ("udp", "127.0.0.1", "ringwell-tests")
    assert first["contact"].startswith("sip:dana@127.0.0.1:")
    from datetime import datetime

    remaining = datetime.fromisoformat(first["expires_at"]).timestamp() - time.time()
    assert 590 < remaining <= 600
    one = (await a.client.get(f"{API}/orgs/{a.org.id}/users/{dana['id']}/registrations")).json()["items"]
    assert [r["sip_username"] for r in one] == ["dana"]
    theirs = (await b.client.get(f"{API}/orgs/{b.org.id}/registrations")).json()["items"]
    assert [r["sip_username"] for r in theirs] == ["carl"]


async def test_operator_lists_every_org_with_users_and_balance(web):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    await web.member(b.org, "member")
    await web.services.ledger.adjust(b.org.id, 1234, "welcome credit", "tests")
    operator = await web.org("Operator", kind=OrgKind.OPERATOR)
    staff = await web.logged_in(await web.member(operator, "support"))
    listed = await staff.get(f"{API}/operator/orgs")
    assert listed.status_code == 200
    orgs = {o["name"]: o for o in listed.json()["items"]}
    assert set(orgs) == {"Alpha", "Beta", "Operator"}
    assert (orgs["Beta"]["user_count"], orgs["Beta"]["balance_minor"], orgs["Beta"]["currency"]) == (2, 1234, "USD")
    assert (orgs["Alpha"]["user_count"], orgs["Alpha"]["balance_minor"]) == (1, 0)
    assert orgs["Operator"]["kind"] == "operator" and orgs["Alpha"]["kind"] == "customer"

    page = (await staff.get(f"{API}/operator/orgs", params={"limit": 2})).json()
    rest = (await staff.get(f"{API}/operator/orgs", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [o["name"] for o in page["items"] + rest["items"]] == ["Alpha", "Beta", "Operator"]
    assert rest["next_cursor"] is None

    for outsider in (a.client, a.api):
        denied = await outsider.get(f"{API}/operator/orgs")
        assert denied.status_code == 403 and denied.json()["error_id"] == "permission_denied"
    # Staff read another org through the org routes too, and that read is audited in that org.
    assert (await staff.get(f"{API}/orgs/{a.org.id}/users")).status_code == 200
    assert len(await _audit(web, a.org.id, "staff.access")) == 1


async def test_garbage_is_refused_with_422_not_a_server_error(web):
    a = await web.tenant("Alpha")
    base = f"{API}/orgs/{a.org.id}"
    nul_cursor = "WzEsICJcdTAwMDAiXQ"  # [1, "\u0000"] as JSON in base64
    for method, path, body in (
        ("POST", f"{base}/users", {"email": "a@b.co", "extension": "12", "name": "x\x00y"}),
        ("POST", f"{base}/users", {"email": "a\x00@b.co", "extension": "13"}),
        ("POST", f"{base}/users", {"email": "a@b.co", "extension": "14", "role": None}),
        ("PATCH", base, {"name": "Alpha\x00"}),
        ("PATCH", base, {"low_balance_minor": 10**20}),
        ("PATCH", f"{base}/users/{a.owner.user.id}", {"name": "\x07"}),
        ("GET", f"{base}/users/{'a' * 40}", None),
        ("GET", f"{base}/users?cursor={nul_cursor}", None),
        ("GET", f"{base}/users?cursor=%C3%A9", None),
    ):
        response = await a.client.request(method, path, json=body)
        assert response.status_code == 422, (method, path, body, response.text)
    staff = await web.logged_in(await web.member(await web.org("Operator", kind=OrgKind.OPERATOR), "support"))
    assert (await staff.get(f"{API}/orgs/%00/users")).status_code == 404
    assert (await staff.get(f"{API}/operator/orgs", params={"limit": 0})).status_code == 422
    assert (await staff.get(f"{API}/operator/orgs", params={"cursor": "IkFcdTAwMDAi"})).status_code == 422  # "A\0"
    assert (await a.client.get(base)).json()["name"] == "Alpha"


async def test_a_created_user_is_announced_by_webhook(web):
    a = await web.tenant("Alpha")
    web.services.webhooks.start(ledger=web.services.ledger)
    try:
        with Receiver() as receiver:
            endpoint = await a.api.post(f"{API}/orgs/{a.org.id}/webhooks", json={
                "url": receiver.url, "events": ["user.created"], "description": "users"})
            assert endpoint.status_code == 201, endpoint.text
            created = (await _create(a.api, a.org.id, email="gus@example.com", name="Gus")).json()
            (request,) = await receiver.arrived(1)
    finally:
        await web.services.webhooks.stop()
    body = request.json()
    assert (body["type"], body["org_id"]) == ("user.created", a.org.id)
    assert body["data"] == {"user_id": created["id"], "email": "gus@example.com", "extension": "201", "name": "Gus",
                            "role": "member"}
    assert created["sip_password"] not in request.body.decode()


async def test_rotating_or_deleting_drops_the_devices_and_the_old_password_at_once(web, sip_port):
    """A phone registered with a password that was rotated (or of a user who was deleted) is
    dropped immediately, the old password is refused on this node without waiting for the
    credential cache, and the registrations written to the database do not include it."""
    a = await web.tenant("Alpha")
    fay = (await _create(a.client, a.org.id, extension="220", sip_username="fay")).json()
    gus = (await _create(a.client, a.org.id, extension="221", sip_username="gus")).json()
    store = web.server.store
    phone = await Client("udp", "127.0.0.1", sip_port).open()
    try:
        assert (await phone.register("fay", fay["sip_password"], expires=600, algorithm="MD5")).status == 200
        assert (await phone.register("gus", gus["sip_password"], expires=600, algorithm="MD5")).status == 200
        await store.flush()
        listed = (await a.api.get(f"{API}/orgs/{a.org.id}/registrations")).json()["items"]
        assert sorted(r["sip_username"] for r in listed) == ["fay", "gus"]

        rotated = (await a.client.post(f"{API}/orgs/{a.org.id}/users/{fay['id']}/sip-password")).json()
        listed = (await a.api.get(f"{API}/orgs/{a.org.id}/registrations")).json()["items"]
        assert [r["sip_username"] for r in listed] == ["gus"]
        # The cached HA1 was dropped with the devices: the old password fails right away.
        assert (await phone.register("fay", fay["sip_password"], algorithm="MD5")).status != 200
        assert (await phone.register("fay", rotated["sip_password"], expires=600, algorithm="MD5")).status == 200

        # gus registers again (a refresh the store has not written yet), then is deleted.
        assert (await phone.register("gus", gus["sip_password"], expires=900, algorithm="MD5")).status == 200
        assert (await a.client.delete(f"{API}/orgs/{a.org.id}/users/{gus['id']}")).status_code == 204
        assert (await phone.register("gus", gus["sip_password"], algorithm="MD5")).status != 200
        assert await store.flush() > 0  # writes fay's new binding and gus's removal without failing
    finally:
        await phone.close()
    listed = (await a.api.get(f"{API}/orgs/{a.org.id}/registrations")).json()["items"]
    assert [r["sip_username"] for r in listed] == ["fay"]
    async with web.services.sessions() as session:
        rows = (await session.execute(text("SELECT count(*) FROM bindings"))).scalar_one()
    assert rows == 1


async def test_json_true_is_not_a_number(web):
    """Request bodies are strict: a boolean or a numeric string never becomes an amount or a timeout."""
    a = await web.tenant("Alpha")
    for body in ({"low_balance_minor": True}, {"low_balance_minor": "500"}):
        response = await a.api.patch(f"{API}/orgs/{a.org.id}", json=body)
        assert response.status_code == 422, response.text
    assert (await a.api.get(f"{API}/orgs/{a.org.id}")).json()["low_balance_minor"] is None
    assert (await a.api.patch(f"{API}/orgs/{a.org.id}", json={"low_balance_minor": 500})).status_code == 200
