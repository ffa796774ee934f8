"""Portal pages of the logged-in user's settings: profile (name, calls, phone, email, password), security
(TOTP two-step verification, recovery codes) and the organization's API keys.

Every form posts the session's CSRF token (checked by ``page_identity``) and redirects after
success; a secret (recovery codes, an API key) is shown only in the response to the form that
made it. Changes of phone, email and password need the current password; their notices go to
the current address (see ``AuthService``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.errors import DomainError, RateLimited
from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ringwell.features.auth.tokens import Identity
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, render, services

__all__ = ["router", "settings_nav"]

router = APIRouter()
PageIdentity = Annotated[Identity, Depends(page_identity)]

_DONE = {
    "profile": "Your name was saved.",
    "calls": "Your call settings were saved.",
    "phone": "Your phone number was saved. A notice went to your email address.",
    "email": "We sent a link to the new address: the change takes effect when you follow it. "
             "Your current address was told about the request.",
    "password": "Your password was changed; your other sessions were logged out.",
    "mfa_disabled": "Two-step verification is off.",
    "revoked": "The API key was revoked: it no longer works.",
}


def settings_nav(identity: Identity) -> list[tuple[str, str]]:
    """The settings sub-navigation: what this user may open."""
    items = [("/settings", "Profile"), ("/settings/security", "Security"), ("/settings/privacy", "Privacy choices"),
             ("/privacy/me", "Your data")]
    if can(identity, "apikeys.manage"):
        items.append(("/settings/api-keys", "API keys"))
    if can(identity, "webhooks.manage"):
        items.append(("/settings/webhooks", "Webhooks"))
    return items


def _user_id(identity: Identity) -> str:
    if identity.user_id is None:
        raise PermissionDenied("these pages are for logged-in users")
    return identity.user_id


def _form_value(form: Any, key: str, limit: int = 1000) -> str:
    value = form.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _done(request: Request) -> str | None:
    return _DONE.get(request.query_params.get("done", ""))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _with_retry(response: HTMLResponse, exc: DomainError) -> HTMLResponse:
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


# -- profile ----------------------------------------------------------------------------------------
async def _profile(request: Request, identity: Identity, *, form: str | None = None, error: str | None = None,
                   status_code: int = 200) -> HTMLResponse:
    account = await services(request).auth.account(_user_id(identity))
    calls = (await services(request).accounts.user(identity.org_id, _user_id(identity))).user
    return render(request, "settings/profile.html", {
        "account": account, "calls": calls, "sub_nav": settings_nav(identity), "done": _done(request),
        "error_form": form,
        "error": error, "min_password": MIN_PASSWORD_LENGTH, "max_password": MAX_PASSWORD_LENGTH,
    }, status_code=status_code)


@router.get("/settings", response_class=HTMLResponse)
async def profile(request: Request, identity: PageIdentity) -> HTMLResponse:
    return await _profile(request, identity)


@router.post("/settings/profile", response_class=HTMLResponse)
async def update_profile(request: Request, identity: PageIdentity) -> Response:
    form = await request.form()
    try:
        await services(request).auth.update_profile(_user_id(identity), _form_value(form, "name"),
                                                    actor_of(request, identity))
    except DomainError as exc:
        return _with_retry(await _profile(request, identity, form="profile", error=exc.message,
                                          status_code=exc.status), exc)
    return _redirect("/settings?done=profile")


@router.post("/settings/calls", response_class=HTMLResponse)
async def update_calls(request: Request, identity: PageIdentity) -> Response:
    """The user's own mailbox switch and do-not-disturb (checkboxes: absent is off), audited."""
    form = await request.form()
    web = services(request)
    actor = actor_of(request, identity)

    async def audit(session: AsyncSession, target_id: str, details: dict[str, Any]) -> None:
        await web.audit.record("users.update", actor, org_id=identity.org_id, target_type="user",
                               target_id=target_id, details=details, session=session)

    try:
        await web.accounts.update_user(identity.org_id, _user_id(identity), granter_role=identity.role,
                                       voicemail_enabled=form.get("voicemail_enabled") == "on",
                                       dnd=form.get("dnd") == "on", audit=audit)
    except DomainError as exc:
        return _with_retry(await _profile(request, identity, form="calls", error=exc.message,
                                          status_code=exc.status), exc)
    return _redirect("/settings?done=calls")


@router.post("/settings/phone", response_class=HTMLResponse)
async def change_phone(request: Request, identity: PageIdentity) -> Response:
    form = await request.form()
    try:
        await services(request).auth.change_phone(
            _user_id(identity), _form_value(form, "password", MAX_PASSWORD_LENGTH + 1), _form_value(form, "phone"),
            actor_of(request, identity))
    except DomainError as exc:
        return _with_retry(await _profile(request, identity, form="phone", error=exc.message,
                                          status_code=exc.status), exc)
    return _redirect("/settings?done=phone")


@router.post("/settings/email", response_class=HTMLResponse)
async def change_email(request: Request, identity: PageIdentity) -> Response:
    form = await request.form()
    try:
        await services(request).auth.change_email(
            _user_id(identity), _form_value(form, "password", MAX_PASSWORD_LENGTH + 1), _form_value(form, "email"),
            actor_of(request, identity))
    except DomainError as exc:
        return _with_retry(await _profile(request, identity, form="email", error=exc.message,
                                          status_code=exc.status), exc)
    return _redirect("/settings?done=email")


@router.post("/settings/password", response_class=HTMLResponse)
async def change_password(request: Request, identity: PageIdentity) -> Response:
    form = await request.form()
    new = _form_value(form, "new_password", MAX_PASSWORD_LENGTH + 1)
    if new != _form_value(form, "new_password2", MAX_PASSWORD_LENGTH + 1):
        return await _profile(request, identity, form="password", error="the two new passwords differ",
                              status_code=422)
    try:
        await services(request).auth.change_password(
            _user_id(identity), identity.session_id, _form_value(form, "current_password", MAX_PASSWORD_LENGTH + 1),
            new, actor_of(request, identity))
    except DomainError as exc:
        return _with_retry(await _profile(request, identity, form="password", error=exc.message,
                                          status_code=exc.status), exc)
    return _redirect("/settings?done=password")


# -- security: two-step verification ----------------------------------------------------------------
async def _security(request: Request, identity: Identity, *, form: str | None = None, error: str | None = None,
                    codes: list[str] | None = None, status_code: int = 200) -> HTMLResponse:
    auth = services(request).auth
    user_id = _user_id(identity)
    account = await auth.account(user_id)
    setup = await auth.pending_mfa(user_id) if account.mfa_setup_pending else None
    return render(request, "settings/security.html", {
        "account": account, "setup": setup, "codes": codes, "sub_nav": settings_nav(identity),
        "done": _done(request), "error_form": form, "error": error,
    }, status_code=status_code)


@router.get("/settings/security", response_class=HTMLResponse)
async def security(request: Request, identity: PageIdentity) -> HTMLResponse:
    return await _security(request, identity)


@router.post("/settings/security/mfa/begin", response_class=HTMLResponse)
async def begin_mfa(request: Request, identity: PageIdentity) -> Response:
    try:
        await services(request).auth.begin_mfa(_user_id(identity), actor_of(request, identity))
    except DomainError as exc:
        return await _security(request, identity, form="begin", error=exc.message, status_code=exc.status)
    return _redirect("/settings/security")


@router.post("/settings/security/mfa/confirm", response_class=HTMLResponse)
async def confirm_mfa(request: Request, identity: PageIdentity) -> HTMLResponse:
    form = await request.form()
    try:
        codes = await services(request).auth.confirm_mfa(_user_id(identity), _form_value(form, "code", 64),
                                                         actor_of(request, identity))
    except DomainError as exc:
        return await _security(request, identity, form="confirm", error=exc.message, status_code=exc.status)
    return await _security(request, identity, codes=codes)


@router.post("/settings/security/mfa/disable", response_class=HTMLResponse)
async def disable_mfa(request: Request, identity: PageIdentity) -> Response:
    form = await request.form()
    try:
        await services(request).auth.disable_mfa(
            _user_id(identity), _form_value(form, "password", MAX_PASSWORD_LENGTH + 1),
            _form_value(form, "code", 64), actor_of(request, identity))
    except DomainError as exc:
        return _with_retry(await _security(request, identity, form="disable", error=exc.message,
                                           status_code=exc.status), exc)
    return _redirect("/settings/security?done=mfa_disabled")


@router.post("/settings/security/recovery-codes", response_class=HTMLResponse)
async def regenerate_codes(request: Request, identity: PageIdentity) -> HTMLResponse:
    form = await request.form()
    try:
        codes = await services(request).auth.regenerate_recovery_codes(
            _user_id(identity), _form_value(form, "password", MAX_PASSWORD_LENGTH + 1), actor_of(request, identity))
    except DomainError as exc:
        return _with_retry(await _security(request, identity, form="codes", error=exc.message,
                                           status_code=exc.status), exc)
    return await _security(request, identity, codes=codes)


# -- API keys ---------------------------------------------------------------------------------------
def _require_keys(identity: Identity) -> None:
    if not can(identity, "apikeys.manage"):
        raise PermissionDenied("your role does not allow managing API keys (apikeys.manage)",
                               {"permission": "apikeys.manage"})


async def _api_keys(request: Request, identity: Identity, *, error: str | None = None, created: Any = None,
                    status_code: int = 200) -> HTMLResponse:
    web = services(request)
    org = await web.accounts.org_by_id(identity.org_id)
    if org is None:
        raise OrganizationNotFound("your organization no longer exists")
    keys = await web.auth.api_keys(org.id, limit=200)
    return render(request, "settings/api_keys.html", {
        "keys": keys, "scopes": web.auth.grantable_scopes(identity, org.kind), "created": created,
        "sub_nav": settings_nav(identity), "done": _done(request), "error": error,
    }, status_code=status_code)


@router.get("/settings/api-keys", response_class=HTMLResponse)
async def api_keys(request: Request, identity: PageIdentity) -> HTMLResponse:
    _require_keys(identity)
    return await _api_keys(request, identity)


@router.post("/settings/api-keys", response_class=HTMLResponse)
async def create_api_key(request: Request, identity: PageIdentity) -> HTMLResponse:
    _require_keys(identity)
    form = await request.form()
    scopes = [s[:64] for s in form.getlist("scopes") if isinstance(s, str)][:64]
    web = services(request)
    org = await web.accounts.org_by_id(identity.org_id)
    if org is None:
        raise OrganizationNotFound("your organization no longer exists")
    try:
        issued = await web.auth.create_api_key(org, identity, actor_of(request, identity),
                                               _form_value(form, "name", 200), scopes)
    except DomainError as exc:
        return await _api_keys(request, identity, error=exc.message, status_code=exc.status)
    return await _api_keys(request, identity, created=issued)


@router.post("/settings/api-keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_api_key(request: Request, key_id: str, identity: PageIdentity) -> Response:
    _require_keys(identity)
    try:
        await services(request).auth.revoke_api_key(identity.org_id, key_id[:64], actor_of(request, identity))
    except DomainError as exc:
        return await _api_keys(request, identity, error=exc.message, status_code=exc.status)
    return _redirect("/settings/api-keys?done=revoked")
