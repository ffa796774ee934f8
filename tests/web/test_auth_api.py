"""The auth slice's API: who am I, and API keys (scoped, shown once, revocable, never beyond the creator)."""

from __future__ import annotations

import re

from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.auth.models import ApiKey


async def test_me_for_a_user_and_for_an_api_key(web):
    tenant = await web.tenant("Me Org")
    me = (await tenant.client.get("/api/v1/me")).json()
    assert me["kind"] == "user" and me["role"] == "owner" and me["staff"] is False
    assert me["org"] == {"id": tenant.org.id, "name": "Me Org", "kind": "customer"}
    assert me["user"]["email"] == tenant.owner.email and me["user"]["mfa_enabled"] is False
    assert "apikeys.manage" in me["permissions"] and me["api_key"] is None
    reader, _ = await web.api_client(tenant.org, ["calls.read"])
    keyed = (await reader.get("/api/v1/me")).json()
    assert keyed["kind"] == "api_key" and keyed["permissions"] == ["calls.read"] and keyed["user"] is None
    assert (await web.client().get("/api/v1/me")).status_code == 401


async def test_api_key_is_shown_once_works_and_stops_when_revoked(web):
    tenant = await web.tenant("Keys Org")
    base = f"/api/v1/orgs/{tenant.org.id}/api-keys"
    created = await tenant.client.post(base, json={"name": "CRM", "scopes": ["calls.read", "numbers.read"]})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert re.fullmatch(r"rwk_[0-9a-f]{12}_[A-Za-z0-9_\-]{43}", key)
    assert body["scopes"] == ["calls.read", "numbers.read"] and body["prefix"] in key
    # Works, with exactly its scopes.
    client = web.client(authorization=f"Bearer {key}")
    me = (await client.get("/api/v1/me")).json()
    assert me["permissions"] == ["calls.read", "numbers.read"] and me["api_key"]["id"] == body["id"]
    assert (await client.get(base)).status_code == 403  # no apikeys.manage
    # Listed without the secret; stored only as a hash.
    listing = (await tenant.client.get(base)).text
    assert key.split("_", 2)[2] not in listing and '"key"' not in listing
    assert body["id"] in listing
    async with web.services.sessions() as session:
        row = await session.get(ApiKey, body["id"])
        assert row is not None and key.split("_", 2)[2] not in row.secret_hash
    # Revoked: 401 at once; revoking again or from another org: not found.
    other = await web.tenant("Other Keys Org")
    assert (await other.client.delete(f"/api/v1/orgs/{other.org.id}/api-keys/{body['id']}")).status_code == 404
    assert (await tenant.client.delete(f"{base}/{body['id']}")).status_code == 204
    revoked = await client.get("/api/v1/me")
    assert revoked.status_code == 401 and revoked.headers["www-authenticate"] == "Bearer"
    again = await tenant.client.delete(f"{base}/{body['id']}")
    assert again.status_code == 404 and again.json()["error_id"] == "api_key_not_found"
    assert body["id"] not in (await tenant.client.get(base)).text
    # Audited, without the key.
    async with web.services.sessions() as session:
        events = (await session.execute(select(AuditEvent).where(AuditEvent.action.like("apikeys.%"))
                                        .order_by(AuditEvent.at))).scalars().all()
    assert [(e.action, e.org_id, e.target_id, e.actor_user_id) for e in events] == [
        ("apikeys.create", tenant.org.id, body["id"], tenant.owner.user.id),
        ("apikeys.revoke", tenant.org.id, body["id"], tenant.owner.user.id)]
    assert all(key not in str(e.details) and key.split("_", 2)[2] not in str(e.details) for e in events)


async def test_no_key_beyond_what_its_creator_holds(web):
    tenant = await web.tenant("Scopes Org")
    base = f"/api/v1/orgs/{tenant.org.id}/api-keys"
    admin = await web.logged_in(await web.member(tenant.org, "admin"))
    beyond = await admin.post(base, json={"name": "too much", "scopes": ["users.roles"]})
    assert beyond.status_code == 422 and beyond.json()["error_id"] == "invalid_scopes"
    assert beyond.json()["details"]["scopes"] == ["users.roles"]
    unknown = await admin.post(base, json={"name": "bogus", "scopes": ["operator.trunks.manage"]})
    assert unknown.status_code == 422
    member = await web.logged_in(await web.member(tenant.org, "member"))
    assert (await member.post(base, json={"name": "x", "scopes": ["calls.read"]})).status_code == 403
    # A key creating keys holds its own scopes.
    maker, _ = await web.api_client(tenant.org, ["apikeys.manage", "calls.read"])
    assert (await maker.post(base, json={"name": "more", "scopes": ["users.read"]})).status_code == 422
    made = await maker.post(base, json={"name": "ok", "scopes": ["calls.read"]})
    assert made.status_code == 201 and made.json()["created_by"] is None
    # Garbage in: 422, never 500.
    for bad in ({"name": "", "scopes": ["calls.read"]}, {"name": "x", "scopes": []},
                {"name": "   ", "scopes": ["calls.read"]}, {"name": "x", "scopes": ["NOT A SCOPE"]},
                {"name": "x" * 101, "scopes": ["calls.read"]}):
        assert (await tenant.client.post(base, json=bad)).status_code == 422, bad
    # Another org's keys: the org is not found.
    other = await web.tenant("Not Yours")
    hidden = await tenant.client.get(f"/api/v1/orgs/{other.org.id}/api-keys")
    assert hidden.status_code == 404 and hidden.json()["error_id"] == "organization_not_found"


async def test_api_keys_page_through(web):
    tenant = await web.tenant("Paging Org")  # has one key already (the fixture's)
    base = f"/api/v1/orgs/{tenant.org.id}/api-keys"
    for n in range(3):
        assert (await tenant.client.post(base, json={"name": f"k{n}", "scopes": ["calls.read"]})).status_code == 201
    seen, cursor = [], None
    while True:
        page = (await tenant.client.get(base, params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["k2", "k1", "k0", "test key"]
    bad = await tenant.client.get(base, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error_id"] == "invalid_cursor"
    assert (await tenant.client.get(base, params={"limit": 0})).status_code == 422


async def test_api_keys_in_the_portal(web):
    tenant = await web.tenant("Portal Keys")
    page = await tenant.client.get("/settings/api-keys")
    assert page.status_code == 200 and 'data-testid="scope-calls.read"' in page.text
    assert 'href="/settings/webhooks"' in page.text
    created = await tenant.client.post("/settings/api-keys", data={"name": "Zapier", "scopes": ["calls.read",
                                                                                               "numbers.read"]})
    assert created.status_code == 200
    key = re.search(r'data-testid="api-key">([^<]+)<', created.text).group(1)
    client = web.client(authorization=f"Bearer {key}")
    assert (await client.get("/api/v1/me")).json()["permissions"] == ["calls.read", "numbers.read"]
    listing = (await tenant.client.get("/settings/api-keys")).text
    assert "Zapier" in listing and key not in listing and key.split("_", 2)[2] not in listing
    too_much = await (await web.logged_in(await web.member(tenant.org, "admin"))).post(
        "/settings/api-keys", data={"name": "x", "scopes": ["users.roles"]})
    assert too_much.status_code == 422 and "cannot grant" in too_much.text
    key_id = (await client.get("/api/v1/me")).json()["api_key"]["id"]
    revoked = await tenant.client.post(f"/settings/api-keys/{key_id}/revoke")
    assert revoked.status_code == 303
    assert (await client.get("/api/v1/me")).status_code == 401
    member = await web.logged_in(await web.member(tenant.org, "member"))
    assert (await member.get("/settings/api-keys")).status_code == 403
    assert 'href="/settings/api-keys"' not in (await member.get("/settings")).text
