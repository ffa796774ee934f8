"""Portal pages of accounts: sign-up, email verification, login (password, then TOTP), logout,
forgotten and reset passwords.

The session cookie is ``__Host-rw_session``: ``Secure; HttpOnly; SameSite=Lax; Path=/``, no
``Domain``, lasting the session's lifetime; a new token is set at every login and again after
the TOTP code. Forms posted before login (sign-up, login, forgotten password, reset, resend)
are protected by a double-submit token: a random value in the ``__Host-rw_csrf`` cookie
(``SameSite=Strict``, ``HttpOnly``) must come back in the form's ``csrf_token`` field, else the
post is refused (403) before anything is read from it. Forms of a session (TOTP code, logout)
carry the session's own CSRF token. ``next`` only ever redirects to a path on this site.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

import phonenumbers
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringwell.errors import DomainError, RateLimited
from ringwell.features.auth.errors import EmailNotVerified, LoginRequired, PermissionDenied
from ringwell.features.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ringwell.web.deps import CSRF_FIELD, SESSION_COOKIE, actor_of, check_csrf, current_identity, services
from ringwell.web.portal.common import render

__all__ = ["CSRF_COOKIE", "clear_session_cookie", "router", "safe_next", "set_session_cookie"]

router = APIRouter()

CSRF_COOKIE = "__Host-rw_csrf"
_FIELD_LIMIT = 1000  # characters kept of any form field (passwords are checked against their own bound)
_FLASHES = {
    "verified": "Your email address is confirmed. Log in to start.",
    "reset": "Your password was set. Log in with it.",
    "resent": "If that address is waiting to be confirmed, a new link is on its way.",
    "logged_out": "You are logged out.",
}


# -- cookies, CSRF and redirects ------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site (``/...``), else ``/`` — never another host."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def set_session_cookie(response: Response, token: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", secure=True, httponly=True,
                        samesite="lax")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def _csrf_token(request: Request) -> tuple[str, bool]:
    """The anonymous CSRF token of this browser, and whether it is new (to be set as a cookie)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if 32 <= len(existing) <= 128 and existing.isascii() and existing.isprintable():
        return existing, False
    return secrets.token_urlsafe(32), True


def _page(request: Request, template: str, context: dict[str, Any], *, status_code: int = 200,
          headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render an anonymous form page, with the double-submit token in the page and the cookie."""
    token, new = _csrf_token(request)
    response = render(request, template, {**context, "csrf_token": token}, status_code=status_code)
    if new:
        response.set_cookie(CSRF_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


async def _form(request: Request) -> dict[str, str]:
    """The posted fields of an anonymous form, after its CSRF token matched the cookie (else 403)."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(sent, str) or not sent or not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise PermissionDenied("the form has expired or did not come from this site: reload the page and try again",
                               {"reason": "csrf"})
    return {key: value[:_FIELD_LIMIT] if key not in ("password", "password2") else value[:MAX_PASSWORD_LENGTH + 1]
            for key, value in form.items() if isinstance(value, str)}


def _client(request: Request) -> tuple[str | None, str | None]:
    return (request.client.host if request.client else None), request.headers.get("user-agent")


def _error_headers(exc: DomainError) -> dict[str, str] | None:
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _max_age(request: Request) -> int:
    return services(request).settings.session_hours * 3600


# -- sign-up and email verification ---------------------------------------------------------------
def _countries() -> list[tuple[str, str]]:
    return [(code, f"{code} (+{phonenumbers.country_code_for_region(code)})")
            for code in sorted(phonenumbers.SUPPORTED_REGIONS)]


def _signup_page(request: Request, values: dict[str, str], *, error: str | None = None, status_code: int = 200,
                 headers: dict[str, str] | None = None) -> HTMLResponse:
    return _page(request, "auth/signup.html", {
        "signup_open": services(request).settings.signup_open, "countries": _countries(), "values": values,
        "error": error, "min_password": MIN_PASSWORD_LENGTH, "max_password": MAX_PASSWORD_LENGTH,
    }, status_code=status_code, headers=headers)


@router.get("/signup", response_class=HTMLResponse)
async def signup_form(request: Request) -> HTMLResponse:
    return _signup_page(request, {"country": "US", "currency": "USD"},
                        status_code=200 if services(request).settings.signup_open else 403)


@router.post("/signup", response_class=HTMLResponse)
async def signup(request: Request) -> Response:
    form = await _form(request)
    ip, agent = _client(request)
    try:
        await services(request).auth.signup(
            form.get("org_name", ""), form.get("country", ""), form.get("currency", ""), form.get("name", ""),
            form.get("email", ""), form.get("password", ""), ip, agent)
    except DomainError as exc:
        values = {key: form.get(key, "") for key in ("org_name", "name", "email", "country", "currency")}
        return _signup_page(request, values, error=exc.message, status_code=exc.status, headers=_error_headers(exc))
    return _redirect("/signup/done")


@router.get("/signup/done", response_class=HTMLResponse)
async def signup_done(request: Request) -> HTMLResponse:
    return _page(request, "auth/signup_done.html", {})


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email(request: Request, token: str = "") -> HTMLResponse:
    try:
        purpose = await services(request).auth.verify_email(token[:200])
    except DomainError as exc:
        return _page(request, "auth/verified.html", {"error": exc.message}, status_code=exc.status)
    return _page(request, "auth/verified.html", {"purpose": purpose})


@router.post("/verify-email/resend", response_class=HTMLResponse)
async def resend_verification(request: Request) -> Response:
    form = await _form(request)
    ip, agent = _client(request)
    await services(request).auth.resend_verification(form.get("email", ""), ip, agent)
    return _redirect("/login?flash=resent")


# -- login, second factor, logout ------------------------------------------------------------------
def _login_page(request: Request, next_path: str, *, email: str = "", error: str | None = None,
                unverified: str | None = None, status_code: int = 200,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    notice = _FLASHES.get(request.query_params.get("flash", ""))
    return _page(request, "auth/login.html", {
        "next": next_path, "email": email, "error": error, "unverified": unverified, "notice": notice,
        "signup_open": services(request).settings.signup_open,
    }, status_code=status_code, headers=headers)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> Response:
    target = safe_next(next)
    identity = await current_identity(request)
    if identity is not None and identity.session_id is not None:
        return _redirect(f"/login/mfa?next={quote(target)}" if identity.mfa_pending else target)
    return _login_page(request, target)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await _form(request)
    target = safe_next(form.get("next"))
    email = form.get("email", "")
    ip, agent = _client(request)
    try:
        result = await services(request).auth.login(email, form.get("password", ""), ip, agent)
    except EmailNotVerified as exc:
        return _login_page(request, target, email=email, error=exc.message, unverified=email,
                           status_code=exc.status)
    except DomainError as exc:
        return _login_page(request, target, email=email, error=exc.message, status_code=exc.status,
                           headers=_error_headers(exc))
    response = _redirect(f"/login/mfa?next={quote(target)}" if result.mfa_pending else target)
    set_session_cookie(response, result.token, _max_age(request))
    return response


@router.get("/login/mfa", response_class=HTMLResponse)
async def mfa_form(request: Request, next: str = "/") -> Response:
    target = safe_next(next)
    identity = await current_identity(request)
    if identity is None or identity.session_id is None:
        return _redirect(f"/login?next={quote(target)}")
    if not identity.mfa_pending:
        return _redirect(target)
    return render(request, "auth/login_mfa.html", {"next": target, "csrf_token": identity.csrf_token,
                                                   "identity": None})


@router.post("/login/mfa", response_class=HTMLResponse)
async def mfa(request: Request) -> Response:
    identity = await current_identity(request)
    if identity is None or identity.session_id is None:
        return _redirect("/login")
    await check_csrf(request, identity)
    form = await request.form()
    target = safe_next(str(form.get("next") or "/"))
    if not identity.mfa_pending:
        return _redirect(target)
    code = str(form.get("code") or "")[:64]
    ip, agent = _client(request)
    try:
        token = await services(request).auth.complete_mfa(identity.session_id, code, ip, agent)
    except LoginRequired:
        response = _redirect(f"/login?next={quote(target)}")
        clear_session_cookie(response)
        return response
    except DomainError as exc:
        return render(request, "auth/login_mfa.html", {"next": target, "csrf_token": identity.csrf_token,
                                                       "identity": None, "error": exc.message},
                      status_code=exc.status)
    response = _redirect(target)
    set_session_cookie(response, token, _max_age(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    identity = await current_identity(request)
    if identity is not None and identity.session_id is not None:
        await check_csrf(request, identity)
        await services(request).auth.logout(identity.session_id, actor_of(request, identity))
    response = _redirect("/login?flash=logged_out")
    clear_session_cookie(response)
    return response


# -- forgotten and reset passwords -----------------------------------------------------------------
@router.get("/password/forgot", response_class=HTMLResponse)
async def forgot_form(request: Request, sent: str = "") -> HTMLResponse:
    return _page(request, "auth/forgot.html", {"sent": bool(sent)})


@router.post("/password/forgot", response_class=HTMLResponse)
async def forgot(request: Request) -> Response:
    form = await _form(request)
    ip, agent = _client(request)
    await services(request).auth.request_reset(form.get("email", ""), ip, agent)
    return _redirect("/password/forgot?sent=1")


def _reset_page(request: Request, token: str, *, valid: bool, error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    return _page(request, "auth/reset.html", {
        "token": token if valid else "", "valid": valid, "error": error,
        "min_password": MIN_PASSWORD_LENGTH, "max_password": MAX_PASSWORD_LENGTH,
    }, status_code=status_code)


@router.get("/password/reset", response_class=HTMLResponse)
async def reset_form(request: Request, token: str = "") -> HTMLResponse:
    valid = await services(request).auth.reset_token_ok(token[:200])
    return _reset_page(request, token, valid=valid, status_code=200 if valid else 422)


@router.post("/password/reset", response_class=HTMLResponse)
async def reset(request: Request) -> Response:
    form = await _form(request)
    token = form.get("token", "")
    password = form.get("password", "")
    if password != form.get("password2", ""):
        return _reset_page(request, token, valid=True, error="the two passwords differ", status_code=422)
    ip, agent = _client(request)
    try:
        await services(request).auth.reset_password(token, password, ip, agent)
    except DomainError as exc:
        valid = await services(request).auth.reset_token_ok(token)
        return _reset_page(request, token, valid=valid, error=exc.message, status_code=exc.status)
    response = _redirect("/login?flash=reset")
    clear_session_cookie(response)
    return response
