"""Builds the HTTP application: health, the REST API under ``/api/v1`` and the portal at ``/``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import BaseRoute

from ringwell import __version__
from ringwell.features.accounts import routes as accounts_routes
from ringwell.features.audit import routes as audit_routes
from ringwell.features.auth import routes as auth_routes
from ringwell.features.billing import routes as billing_routes
from ringwell.features.cdr import routes as cdr_routes
from ringwell.features.numbers import routes as numbers_routes
from ringwell.features.rating import routes as rating_routes
from ringwell.features.trunks import routes as trunks_routes
from ringwell.features.webhooks import routes as webhooks_routes
from ringwell.web import docs as api_docs
from ringwell.web.context import WebServices
from ringwell.web.errors import ERROR_RESPONSES, install_error_handlers
from ringwell.web.portal import auth as portal_auth
from ringwell.web.portal import billing as portal_billing
from ringwell.web.portal import calls as portal_calls
from ringwell.web.portal import dashboard as portal_dashboard
from ringwell.web.portal import numbers as portal_numbers
from ringwell.web.portal import operator as portal_operator
from ringwell.web.portal import settings as portal_settings
from ringwell.web.portal import users as portal_users
from ringwell.web.portal import webhooks as portal_webhooks

__all__ = ["API_PREFIX", "build_app"]

API_PREFIX = "/api/v1"
_HERE = Path(__file__).parent
_API = [accounts_routes, auth_routes, numbers_routes, billing_routes, rating_routes, cdr_routes, trunks_routes,
        webhooks_routes, audit_routes]
_PORTAL = [portal_auth, portal_settings, portal_dashboard, portal_calls, portal_numbers, portal_users,
           portal_billing, portal_operator, portal_webhooks]

# The portal loads nothing from elsewhere and runs no inline script; nobody may frame it.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), geolocation=(), microphone=(self)",
}


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

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        payments = services.payments if services is not None else None
        if payments is not None and request.url.path.startswith("/billing"):
            # The top-up form's POST answers 303 to Stripe Checkout; browsers apply form-action to that redirect.
            response.headers.setdefault("Content-Security-Policy", _SECURITY_HEADERS["Content-Security-Policy"].replace(
                "form-action 'self'", f"form-action 'self' {payments.checkout_origin}"))
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(API_PREFIX) or not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
