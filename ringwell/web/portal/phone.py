"""Portal page: the web phone at ``/phone`` — call and take calls in the browser, installable as a PWA.

The page is a shell; ``static/phone/phone.js`` (bundled from ``frontend/`` with JsSIP) does the
work: it asks ``POST /api/v1/webphone/session`` for a short-lived SIP credential of the logged-in
user, registers over SIP-over-WebSocket, and reports call quality to ``/api/v1/webphone/quality``.
Every org role holds ``calls.read``, the permission the page (and its recent calls) needs.

For the PWA: the manifest at ``/phone/manifest.webmanifest``, the service worker at
``/phone/sw.js`` (scope ``/phone``: the page itself is ``/phone``, outside the ``/phone/``
directory a script there may control by default, hence ``Service-Worker-Allowed``), and an
offline page at ``/phone/offline`` that the worker shows when the network is gone. The worker's
cache name carries a hash of the files it caches, so a new release replaces the old cache.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from ringwell.features.auth.tokens import Identity
from ringwell.web.portal.common import page_identity, render
from ringwell.web.portal.pages import need, org_of, show

__all__ = ["MANIFEST", "SHELL", "router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]

THEME_COLOR = "#1f6feb"
_STATIC = Path(__file__).resolve().parent.parent / "static"

# What the service worker keeps for an offline launch (never anything under /api or /ws).
SHELL: tuple[str, ...] = (
    "/phone/offline", "/phone/manifest.webmanifest", "/static/app.css", "/static/phone/phone.css",
    "/static/phone/phone.js", "/static/phone/icon.svg", "/static/phone/icon-192.png", "/static/phone/icon-512.png",
)

MANIFEST: dict[str, Any] = {
    "id": "/phone",
    "name": "Ringwell Phone",
    "short_name": "Phone",
    "description": "Call and take calls in the browser with your Ringwell extension.",
    "start_url": "/phone",
    "scope": "/phone",
    "display": "standalone",
    "background_color": "#f4f6f9",
    "theme_color": THEME_COLOR,
    "icons": [
        {"src": "/static/phone/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
        {"src": "/static/phone/icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
        {"src": "/static/phone/icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any"},
    ],
}


@cache
def _shell_version() -> str:
    """A hash of the static files the worker caches (the offline page and manifest come from code)."""
    digest = hashlib.sha256()
    for path in SHELL:
        if path.startswith("/static/"):
            digest.update((_STATIC / path.removeprefix("/static/")).read_bytes())
    digest.update(json.dumps(MANIFEST, sort_keys=True).encode())
    return digest.hexdigest()[:12]


@router.get("/phone", response_class=HTMLResponse)
async def phone_page(request: Request, identity: PageIdentity) -> HTMLResponse:
    need(identity, "calls.read")
    org = await org_of(request, identity)
    query: dict[str, str | int] = {"limit": 10}
    if identity.user_id is not None:
        query["user_id"] = identity.user_id
    return show(request, "phone/index.html", {
        "session_url": "/api/v1/webphone/session", "quality_url": "/api/v1/webphone/quality",
        "calls_url": f"/api/v1/orgs/{org.id}/calls?{urlencode(query)}", "theme_color": THEME_COLOR,
    })


@router.get("/phone/offline", response_class=HTMLResponse)
async def offline_page(request: Request) -> HTMLResponse:
    """What the installed phone shows without a network: nothing about the user (it is cached)."""
    return render(request, "phone/offline.html", {"theme_color": THEME_COLOR})


@router.get("/phone/manifest.webmanifest")
async def manifest() -> Response:
    return Response(json.dumps(MANIFEST, indent=2), media_type="application/manifest+json")


@router.get("/phone/sw.js")
async def service_worker(request: Request) -> Response:
    script = request.app.state.templates.get_template("phone/sw.js").render(
        cache_name=f"ringwell-phone-{_shell_version()}", shell=json.dumps(list(SHELL)))
    return Response(script, media_type="text/javascript; charset=utf-8",
                    headers={"Service-Worker-Allowed": "/phone"})
