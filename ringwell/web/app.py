"""Builds the HTTP application: health, the REST API under ``/api/v1`` and the portal at ``/``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringwell import __version__
from ringwell.features.accounts import routes as accounts_routes
from ringwell.features.audit import routes as audit_routes
from ringwell.features.auth import routes as auth_routes
from ringwell.features.billing import routes as billing_routes
from ringwell.features.cdr import routes as cdr_routes
from ringwell.features.numbers import routes as numbers_routes
from ringwell.features.privacy import closure_routes as privacy_closure_routes
from ringwell.features.privacy import consent_routes as privacy_consent_routes
from ringwell.features.privacy import incidents_routes as privacy_incidents_routes
from ringwell.features.privacy import register_routes as privacy_register_routes
from ringwell.features.privacy import requests_routes as privacy_requests_routes
from ringwell.features.privacy import routes_retention as privacy_retention_routes
from ringwell.features.rating import routes as rating_routes
from ringwell.features.recordings import routes as recordings_routes
from ringwell.features.trunks import routes as trunks_routes
from ringwell.features.voicemail import mailbox_routes
from ringwell.features.voicemail import routes as voicemail_routes
from ringwell.features.webhooks import routes as webhooks_routes
from ringwell.features.webphone import routes as webphone_routes
from ringwell.web import docs as api_docs
from ringwell.web.context import WebServices
from ringwell.web.cookies import ConsentSignals, cookie_banner
from ringwell.web.errors import ERROR_RESPONSES, install_error_handlers
from ringwell.web.portal import auth as portal_auth
from ringwell.web.portal import billing as portal_billing
from ringwell.web.portal import calls as portal_calls
from ringwell.web.portal import consent as portal_consent
from ringwell.web.portal import dashboard as portal_dashboard
from ringwell.web.portal import incidents as portal_incidents
from ringwell.web.portal import mailbox as portal_mailbox
from ringwell.web.portal import numbers as portal_numbers
from ringwell.web.portal import operator as portal_operator
from ringwell.web.portal import phone as portal_phone
from ringwell.web.portal import privacy_notice as portal_privacy_notice
from ringwell.web.portal import privacy_requests as portal_privacy_requests
from ringwell.web.portal import retention as portal_retention
from ringwell.web.portal import settings as portal_settings
from ringwell.web.portal import users as portal_users
from ringwell.web.portal import voicemail as portal_voicemail
from ringwell.web.portal import webhooks as portal_webhooks

__all__ = ["API_PREFIX", "build_app"]

API_PREFIX = "/api/v1"
_HERE = Path(__file__).parent
_API = [accounts_routes, auth_routes, numbers_routes, billing_routes, rating_routes, cdr_routes, trunks_routes,
        webhooks_routes, audit_routes, webphone_routes, voicemail_routes, mailbox_routes,
        recordings_routes, privacy_consent_routes, privacy_register_routes, privacy_retention_routes,
        privacy_incidents_routes, privacy_requests_routes, privacy_closure_routes]
_PORTAL = [portal_auth, portal_settings, portal_dashboard, portal_calls, portal_numbers, portal_users,
           portal_billing, portal_operator, portal_webhooks, portal_phone,
           portal_voicemail, portal_mailbox, portal_consent, portal_privacy_notice,
           portal_incidents, portal_privacy_requests, portal_retention]

# The portal loads nothing from elsewhere and runs no inline script; nobody may frame it.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), geolocation=(), microphone=(self)",
}


class SecurityHeaders:
    """Adds the security headers to every response (a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` costs a task and a stream per request).

    ``checkout_origin``: the billing pages' top-up form answers 303 to Stripe Checkout, and
    browsers apply ``form-action`` to that redirect, so those pages allow that one origin.
    """

    def __init__(self, app: ASGIApp, checkout_origin: str | None = None) -> None:
        self.app = app
        policy = _SECURITY_HEADERS["Content-Security-Policy"]
        self._headers = [(k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
        self._billing = [(k, v) for k, v in self._headers if k != b"content-security-policy"]
        if checkout_origin:
            billing_policy = policy.replace("form-action 'self'", f"form-action 'self' {checkout_origin}")
            self._billing.append((b"content-security-policy", billing_policy.encode()))
        else:
            self._billing = self._headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self._billing if path.startswith("/billing") else self._headers
        no_store = not path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                if no_store and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(status: Callable[[], dict[str, Any]], routes: Sequence[BaseRoute] = (),
              services: WebServices | None = None, *, warm: bool = False) -> FastAPI:
    """``/healthz`` and ``routes`` always; with ``services`` the API, its OpenAPI 3.1 document at
    ``/api/v1/openapi.json`` (browsable at ``/api/v1/docs``) and the portal."""
    app = FastAPI(
        title="Ringwell API", version=__version__, openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None,
        redoc_url=None,
        description="The REST API of a Ringwell phone system. Authenticate with an org's API key "
                    "(`Authorization: Bearer rwk_...`). Errors are `{error_id, message, details}`. "
                    f"Browsable reference: [{api_docs.DOCS_PATH}]({api_docs.DOCS_PATH}).",
    )
    app.state.services = services
    install_error_handlers(app)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **status()})

    app.add_api_route("/healthz", healthz, include_in_schema=False)
    app.router.routes.extend(routes)
    if services is not None:
        for module in _API:
            app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
        app.state.templates = Jinja2Templates(directory=str(_HERE / "templates"))
        app.state.templates.env.globals["cookie_banner"] = cookie_banner  # the layout asks once, honours GPC
        app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
        app.include_router(api_docs.router)
        for module in _PORTAL:
            app.include_router(module.router, include_in_schema=False)
        if warm:
            # Compile every template and the OpenAPI document now: done on the first request
            # they stalled the event loop (and with it SIP) for a few hundred milliseconds.
            env = app.state.templates.env
            for name in env.list_templates(extensions=["html"]):
                env.get_template(name)
            app.openapi()

    checkout = services.payments.checkout_origin if services is not None and services.payments else None
    app.add_middleware(ConsentSignals)  # Global Privacy Control; no analytics cookie without consent
    app.add_middleware(SecurityHeaders, checkout_origin=checkout)
    return app
