"""Errors at the HTTP boundary: every API error is ``{"error_id", "message", "details"}``.

Domain errors carry their status; FastAPI's validation errors become 422 ``invalid_request``;
Starlette's own 404/405 get the same body. Portal pages (anything outside ``/api/``) turn
``login_required`` / ``mfa_required`` into a redirect to the login page and other errors into
an HTML page with the message.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ringwell.errors import DomainError, RateLimited
from ringwell.features.auth.errors import LoginRequired, MfaRequired
from ringwell.web.portal.common import render

__all__ = ["ERROR_RESPONSES", "ErrorBody", "error_response", "install_error_handlers"]

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    error_id: str
    message: str
    details: dict[str, Any]


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# Declared on every API router so the OpenAPI document tells clients (and schemathesis) the truth.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("The body could not be read (not JSON, or not UTF-8)"),
    401: _doc("Not logged in, or no valid API key"),
    403: _doc("Your role or API key lacks the permission (or the CSRF token is missing)"),
    404: _doc("Not found (also: belongs to another organization)"),
    422: _doc("Invalid request"),
}

_STATUS_IDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def error_response(error_id: str, message: str, details: dict[str, Any], status: int,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error_id": error_id, "message": message, "details": jsonable_encoder(details)}
    return JSONResponse(body, status_code=status, headers=headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.startswith("/webhooks/")


def _page_error(request: Request, status: int, message: str) -> Response:
    if getattr(request.app.state, "templates", None) is None:
        return Response(message, status_code=status, media_type="text/plain")
    return render(request, "error.html", {"status": status, "message": message}, status_code=status)


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if not _is_api(request) and isinstance(exc, LoginRequired | MfaRequired):
        target = "/login/mfa" if isinstance(exc, MfaRequired) else "/login"
        return RedirectResponse(f"{target}?next={quote(request.url.path)}", status_code=303)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if exc.status == 401 and _is_api(request):
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    if not _is_api(request):
        return _page_error(request, exc.status, exc.message)
    return error_response(exc.error_id, exc.message, exc.details, exc.status, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    if not _is_api(request):
        return _page_error(request, 422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
    return error_response("invalid_request", "the request is not valid", {"errors": errors}, 422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if not _is_api(request):
        return _page_error(request, exc.status_code, message)
    return error_response(_STATUS_IDS.get(exc.status_code, "http_error"), message, {}, exc.status_code,
                          dict(exc.headers) if exc.headers else None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
