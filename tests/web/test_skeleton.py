"""The HTTP skeleton: errors, tenant scope, CSRF and security headers (routes of the slices have their own tests)."""

from __future__ import annotations

from ringwell.web.deps import org_scope


async def test_health_and_openapi_are_served(web):
    client = web.client()
    assert (await client.get("/healthz")).json()["status"] == "ok"
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")


async def test_unknown_api_path_is_a_json_error(web):
    response = await web.client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error_id"] == "not_found"
    assert set(response.json()) == {"error_id", "message", "details"}


async def test_security_headers_on_every_response(web):
    response = await web.client().get("/healthz")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_org_scope_hides_other_orgs_and_checks_permissions(web):
    from fastapi import Depends

    from ringwell.web.deps import Scope

    async def probe(scope: Scope = Depends(org_scope("users.write"))) -> dict[str, str]:
        return {"org": scope.org.id}

    web.app.add_api_route("/api/v1/orgs/{org_id}/probe", probe, methods=["POST"])
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    assert (await a.client.post(f"/api/v1/orgs/{a.org.id}/probe")).json() == {"org": a.org.id}
    # Another org's id: the same 404 as an id that does not exist.
    other = await a.client.post(f"/api/v1/orgs/{b.org.id}/probe")
    missing = await a.client.post("/api/v1/orgs/00000000-0000-0000-0000-000000000000/probe")
    assert other.status_code == missing.status_code == 404
    assert other.json()["error_id"] == missing.json()["error_id"] == "organization_not_found"
    # A member lacks users.write: 403 in their own org.
    member = await web.member(a.org, "member")
    denied = await (await web.logged_in(member)).post(f"/api/v1/orgs/{a.org.id}/probe")
    assert denied.status_code == 403 and denied.json()["error_id"] == "permission_denied"
    # No credentials: 401; a session without the CSRF header: 403 csrf.
    assert (await web.client().post(f"/api/v1/orgs/{a.org.id}/probe")).status_code == 401
    del a.client.headers["X-CSRF-Token"]
    refused = await a.client.post(f"/api/v1/orgs/{a.org.id}/probe")
    assert refused.status_code == 403 and refused.json()["details"] == {"reason": "csrf"}
    # An API key needs no CSRF token; a key without the scope is refused.
    assert (await a.api.post(f"/api/v1/orgs/{a.org.id}/probe")).status_code == 200
    reader, _ = await web.api_client(a.org, ["users.read"])
    assert (await reader.post(f"/api/v1/orgs/{a.org.id}/probe")).status_code == 403


async def test_an_error_page_keeps_the_portal_navigation(web):
    a = await web.tenant("Alpha")
    response = await a.client.get("/users/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert 'href="/calls"' in response.text and "Not found" in response.text
    anonymous = await web.client().get("/no-such-page")
    assert anonymous.status_code == 404 and 'href="/calls"' not in anonymous.text


async def test_health_shows_the_webhook_queue(web):
    status = web.server.status()
    assert status["webhooks"] == {"queued": 0, "dropped": 0}
