"""The /phone page as the server serves it (SQLite and PostgreSQL): login, navigation, what the
script needs from the page, the PWA manifest and service worker, and the security policy.

What the page does in a browser is tested with Chromium in ``tests/interop/test_phone_page.py``.
"""

from __future__ import annotations

import html
import json
import re
import struct
from pathlib import Path

from ringwell.web.portal.phone import SHELL

REPO = Path(__file__).resolve().parents[2]
PHONE_JS_SOURCE = REPO / "frontend" / "src" / "phone.js"


def csp_directives(response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_phone_page_needs_a_login(web):
    response = await web.client().get("/phone")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/phone"


async def test_every_org_role_finds_the_phone_in_the_navigation(web):
    acme = await web.tenant("Acme")
    for role in ("member", "admin", "owner"):
        client = await web.logged_in(await web.member(acme.org, role))
        for path in ("/", "/phone"):
            page = await client.get(path)
            assert page.status_code == 200, (role, path, page.text[:300])
            assert '<a href="/phone"' in page.text and ">Phone</a>" in page.text, (role, path)
        assert '<a href="/phone" aria-current="page">Phone</a>' in (await client.get("/phone")).text


async def test_the_page_carries_what_its_script_needs(web):
    acme = await web.tenant("Acme")
    member = await web.member(acme.org, "member")
    client = await web.logged_in(member)
    response = await client.get("/phone")
    page = response.text
    root = re.search(r'<section id="phone"[^>]*>', page, re.S)
    assert root, "no page root #phone"
    attributes = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', root.group(0)))
    assert attributes["data-state"] == "idle"
    assert attributes["data-csrf"] == client.headers["X-CSRF-Token"]
    assert attributes["data-session-url"] == "/api/v1/webphone/session"
    assert attributes["data-quality-url"] == "/api/v1/webphone/quality"
    assert attributes["data-user-id"] == member.user.id
    # Recent calls: the member's own, through the call history API (the cookie authenticates it).
    calls_url = html.unescape(attributes["data-calls-url"])
    assert calls_url == f"/api/v1/orgs/{acme.org.id}/calls?limit=10&user_id={member.user.id}"
    listed = await client.get(calls_url)
    assert listed.status_code == 200 and listed.json()["items"] == []
    # Every element the script looks up by id is on the page (it stops at the first one missing).
    needed = set(re.findall(r'element\("([a-z0-9-]+)"\)', PHONE_JS_SOURCE.read_text()))
    assert len(needed) > 30
    present = set(re.findall(r'\bid="([^"]+)"', page))
    assert needed <= present, needed - present
    # The dial pad: 0-9, * and #.
    keys = re.findall(r'data-key="([^"]+)"', page)
    assert sorted(keys) == sorted("0123456789*#")
    assert sorted(re.findall(r'data-tone="([^"]+)"', page)) == sorted("0123456789*#")
    # Scripts and styles come from /static only; the manifest is linked.
    assert '<script src="/static/phone/phone.js" defer></script>' in page
    assert '<link rel="manifest" href="/phone/manifest.webmanifest">' in page
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    for asset in ("/static/phone/phone.js", "/static/phone/phone.css"):
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset


async def test_the_policy_of_the_phone_page_allows_what_it_needs_and_nothing_more(web):
    acme = await web.tenant("Acme")
    response = await acme.client.get("/phone")
    csp = csp_directives(response)
    # Scripts, styles, the SIP WebSocket (CSP 3: 'self' covers ws:/wss: to the same host), the
    # service worker and the manifest: all same-origin. No inline code, no other origin, no eval.
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    for name in ("connect-src", "media-src", "worker-src", "manifest-src", "child-src"):
        assert name not in csp, f"{name} needs nothing beyond default-src 'self'"
    everything = " ".join(value for values in csp.values() for value in values)
    assert "unsafe" not in everything and "*" not in everything and "http" not in everything
    assert "ws:" not in everything and "wss:" not in everything
    assert "microphone=(self)" in response.headers["permissions-policy"]
    # The same policy as every other portal page.
    assert response.headers["content-security-policy"] == (await acme.client.get("/calls")).headers[
        "content-security-policy"]


async def test_the_manifest_makes_the_phone_installable(web):
    client = web.client()  # browsers fetch the manifest without credentials
    response = await client.get("/phone/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = json.loads(response.text)
    assert manifest["name"] == "Ringwell Phone" and manifest["short_name"] == "Phone"
    assert manifest["start_url"] == "/phone" and manifest["scope"] == "/phone"
    assert manifest["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    sizes = set()
    for icon in manifest["icons"]:
        served = await client.get(icon["src"])
        assert served.status_code == 200, icon["src"]
        assert served.headers["content-type"].startswith(icon["type"])
        if icon["type"] == "image/png":
            width, height = png_size(served.content)
            assert f"{width}x{height}" == icon["sizes"], icon
            sizes.add(icon["sizes"])
        else:
            assert icon["sizes"] == "any" and served.text.lstrip().startswith("<svg")
    assert {"192x192", "512x512"} <= sizes


async def test_the_service_worker_is_served_for_the_phone_scope(web):
    client = web.client()
    response = await client.get("/phone/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    # The page is /phone, above the /phone/ directory a worker script there may control by default.
    assert response.headers["service-worker-allowed"] == "/phone"
    script = response.text
    cache_name = re.search(r'const CACHE = "(ringwell-phone-[0-9a-f]{12})";', script)
    assert cache_name, script[:400]
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", script).group(1))
    assert shell == list(SHELL)
    # Everything it keeps for an offline launch exists; nothing personal or dynamic is kept.
    for path in shell:
        served = await client.get(path)
        assert served.status_code == 200, path
        assert not path.startswith(("/api/", "/ws")) and path != "/phone"
    assert 'url.pathname.startsWith("/api/") || url.pathname === "/ws"' in script
    # The same files give the same cache name; the page registers the worker with that scope.
    assert (await client.get("/phone/sw.js")).text == script
    acme = await web.tenant("Acme")
    page = (await acme.client.get("/phone")).text
    assert 'data-sw-url="/phone/sw.js"' in page and 'data-sw-scope="/phone"' in page


async def test_the_offline_page_tells_nothing_about_the_user(web):
    acme = await web.tenant("Acme Offline")
    response = await acme.client.get("/phone/offline")
    assert response.status_code == 200
    assert "You are offline" in response.text
    assert "Acme Offline" not in response.text and acme.owner.email not in response.text
    assert "csrf" not in response.text.lower()
    anonymous = await web.client().get("/phone/offline")
    assert anonymous.status_code == 200 and "You are offline" in anonymous.text
