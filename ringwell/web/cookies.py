"""The portal's side of the cookie rules (``features.privacy.cookies``): the banner's state for the layout,
and the middleware that honours Global Privacy Control on every request.

``ConsentSignals`` (a plain ASGI middleware):

* removes ``rw_analytics`` from any browser that holds it without a current "accept" — after a
  decline, or when the request carries ``Sec-GPC: 1``;
* for a page (``GET``, HTML, 200) served to a logged-in person with ``Sec-GPC: 1``, records the
  opt-out as a ``ConsentRecord`` with source ``gpc`` — once: ``ConsentService.honour_gpc`` writes
  only when the person's current analytics record is not already that. The person is the identity
  the page resolved (``request.state.identity``), so no extra lookup of the session is made.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.consent import ConsentService, Subject
from ringwell.features.privacy.cookies import (
    ANALYTICS_COOKIE,
    CONSENT_COOKIE,
    Banner,
    CookieChoice,
    banner,
    gpc_requested,
)

__all__ = ["ConsentSignals", "cookie_banner", "expire_cookie"]

log = logging.getLogger(__name__)


def cookie_banner(request: Request) -> Banner:
    """For the layout (a Jinja global): whether to ask about analytics cookies on this page."""
    return banner(CookieChoice.parse(request.cookies.get(CONSENT_COOKIE)),
                  gpc_requested(request.headers.get("sec-gpc")))


def expire_cookie(name: str, secure: bool) -> bytes:
    """A ``Set-Cookie`` header value that removes ``name`` (as ``Response.delete_cookie`` writes it)."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = ""
    cookie[name]["path"] = "/"
    cookie[name]["max-age"] = 0
    cookie[name]["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
    cookie[name]["samesite"] = "lax"
    cookie[name]["httponly"] = True
    if secure:
        cookie[name]["secure"] = True
    return cookie.output(header="").strip().encode("latin-1")


class ConsentSignals:
    """See the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        gpc = gpc_requested(request.headers.get("sec-gpc"))
        choice = CookieChoice.parse(request.cookies.get(CONSENT_COOKIE))
        stray = ANALYTICS_COOKIE in request.cookies and (gpc or choice is None or not choice.analytics)
        if not gpc and not stray:
            await self.app(scope, receive, send)
            return
        state: dict[str, object] = scope.setdefault("state", {})
        page = {"status": 0, "html": False}

        async def send_with_signals(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                page["status"] = message["status"]
                page["html"] = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                # A response that already sets the cookie (the choice itself) decides on its own.
                sets = any(k.lower() == b"set-cookie" and v.startswith(ANALYTICS_COOKIE.encode() + b"=")
                           for k, v in headers)
                if stray and not sets:
                    headers.append((b"set-cookie", expire_cookie(ANALYTICS_COOKIE, scope.get("scheme") == "https")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_signals)
        identity = state.get("identity")
        if (gpc and request.method == "GET" and page["status"] == 200 and page["html"]
                and isinstance(identity, Identity) and identity.user_id is not None and not identity.mfa_pending):
            services = getattr(scope["app"].state, "services", None)
            if services is not None:
                subject = Subject.person(identity.org_id, identity.user_id, choice.visitor_id if choice else None)
                if await ConsentService(services.sessions).honour_gpc(subject):
                    log.info("Global Privacy Control recorded as an analytics opt-out")
