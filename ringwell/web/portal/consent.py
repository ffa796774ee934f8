"""Portal pages of consent: a person's privacy choices (``/settings/privacy``) and any visitor's cookie
choice (``/privacy/cookies``, the cookie banner's plain form POST, which works without JavaScript).

Cookies are set as ``features.privacy.cookies`` says: the choice as the essential ``rw_consent``,
``rw_analytics`` only after an accept (390 days, ``Secure`` over HTTPS, ``SameSite=Lax``), removed on a
decline; with ``Sec-GPC: 1`` an accept is taken as the opt-out the browser signalled. Every answer
is a ``ConsentRecord`` (the visitor's id, and the person when logged in); the ``rw_analytics`` id is a
separate random one that no record holds.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.consent import CHOOSABLE, GPC_TEXT, TEXTS, ConsentService, Subject
from ringwell.features.privacy.consent_routes import consents_of
from ringwell.features.privacy.cookies import (
    ANALYTICS_COOKIE,
    ANALYTICS_MAX_AGE,
    CONSENT_COOKIE,
    CONSENT_MAX_AGE,
    CookieChoice,
    gpc_requested,
    new_analytics_id,
    new_visitor_id,
)
from ringwell.features.privacy.models_consent import Purpose, Source
from ringwell.web.cookies import cookie_banner
from ringwell.web.deps import CSRF_FIELD, current_identity
from ringwell.web.portal.auth import CSRF_COOKIE, safe_next
from ringwell.web.portal.common import page_identity, render, services
from ringwell.web.portal.settings import settings_nav

__all__ = ["LABELS", "router"]

router = APIRouter()
PageIdentity = Annotated[Identity, Depends(page_identity)]

LABELS = {
    Purpose.CPNI_MARKETING.value: "Use of my call detail (CPNI) for marketing",
    Purpose.MARKETING_EMAIL.value: "Marketing email",
    Purpose.ANALYTICS_COOKIES.value: "Analytics cookies",
    Purpose.RECORDING_ANNOUNCEMENT.value: "Told a call was being recorded",
}
_SOURCES = {"portal": "in the portal", "api": "through the API", "phone": "by phone",
            "cookie_banner": "cookie banner", "gpc": "browser's Global Privacy Control",
            "announcement": "announcement played in the call"}


def _consent(request: Request) -> ConsentService:
    return ConsentService(services(request).sessions)


# -- a person's privacy choices -------------------------------------------------------------------------
@router.get("/settings/privacy", response_class=HTMLResponse)
async def privacy_choices(request: Request, identity: PageIdentity) -> HTMLResponse:
    if identity.user_id is None:
        raise PermissionDenied("these pages are for logged-in users")
    data = await consents_of(_consent(request), Subject.person(identity.org_id, identity.user_id))
    return render(request, "settings/privacy.html", {
        "sub_nav": settings_nav(identity), "choices": {c.purpose: c for c in data.choices},
        "choosable": [p.value for p in CHOOSABLE], "texts": {p.value: t for p, t in TEXTS.items()},
        "history": data.history, "labels": LABELS, "sources": _SOURCES,
        "done": request.query_params.get("done") == "1", "cookies": cookie_banner(request),
    })


@router.post("/settings/privacy", response_class=HTMLResponse)
async def save_privacy_choices(request: Request, identity: PageIdentity) -> Response:
    """Radio buttons ``yes``/``no`` per purpose; only what changed is recorded (with the words shown)."""
    if identity.user_id is None:
        raise PermissionDenied("these pages are for logged-in users")
    form = await request.form()
    consent = _consent(request)
    subject = Subject.person(identity.org_id, identity.user_id)
    for purpose in CHOOSABLE:
        answer = form.get(purpose.value)
        if answer in ("yes", "no"):
            await consent.choose(subject, purpose, answer == "yes", Source.PORTAL)
    return RedirectResponse("/settings/privacy?done=1", status_code=303)


# -- cookies ----------------------------------------------------------------------------------------------
async def _visitor(request: Request) -> Identity | None:
    """The logged-in person browsing, if any (a session still owing its second factor is not one yet)."""
    identity = await current_identity(request)
    if identity is None or identity.mfa_pending or identity.user_id is None:
        request.state.identity = None
        return None
    return identity


@router.get("/privacy/cookies", response_class=HTMLResponse)
async def cookie_choices(request: Request) -> HTMLResponse:
    identity = await _visitor(request)
    token, new = (identity.csrf_token or "", False) if identity is not None else _anonymous_token(request)
    if identity is not None:
        org = identity.org or await services(request).accounts.org_by_id(identity.org_id)
        request.state.org_name = org.name if org is not None else None
    choice = CookieChoice.parse(request.cookies.get(CONSENT_COOKIE))
    response = render(request, "privacy/cookies.html", {
        "csrf_token": token, "choice": choice, "cookies": cookie_banner(request),
        "text": TEXTS[Purpose.ANALYTICS_COOKIES].text, "gpc_text": GPC_TEXT.text,
        "done": request.query_params.get("done") == "1",
        "max_days": ANALYTICS_MAX_AGE // 86400,
    })
    if new:
        response.set_cookie(CSRF_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _anonymous_token(request: Request) -> tuple[str, bool]:
    existing = request.cookies.get(CSRF_COOKIE, "")
    if 32 <= len(existing) <= 128 and existing.isascii() and existing.isprintable():
        return existing, False
    return secrets.token_urlsafe(32), True


def _csrf_ok(sent: Any, identity: Identity | None, cookie: str) -> bool:
    """The form's token is the session's (logged in) or the anonymous double-submit cookie's."""
    if not isinstance(sent, str) or not sent:
        return False
    expected = [t for t in ((identity.csrf_token if identity else None), cookie) if t]
    return any(hmac.compare_digest(sent.encode(), t.encode()) for t in expected)


@router.post("/privacy/cookies", response_class=HTMLResponse)
async def choose_cookies(request: Request) -> Response:
    """The banner's answer (``analytics=accept|decline``): cookies and a ConsentRecord (module docstring).

    Answers ``303`` back to ``next`` (a plain form), or JSON ``{"analytics": bool}`` to a script that
    asked for it (``Accept: application/json``)."""
    identity = await _visitor(request)
    form = await request.form()
    if not _csrf_ok(form.get(CSRF_FIELD), identity, request.cookies.get(CSRF_COOKIE, "")):
        raise PermissionDenied("the form has expired or did not come from this site: reload the page and try again",
                               {"reason": "csrf"})
    gpc = gpc_requested(request.headers.get("sec-gpc"))
    previous = CookieChoice.parse(request.cookies.get(CONSENT_COOKIE))
    choice = CookieChoice(previous.visitor_id if previous else new_visitor_id(),
                          form.get("analytics") == "accept" and not gpc)
    subject = (Subject.person(identity.org_id, identity.user_id, choice.visitor_id)
               if identity is not None and identity.user_id is not None else Subject.visitor(choice.visitor_id))
    consent = _consent(request)
    if gpc:
        await consent.honour_gpc(subject)
    else:
        text = TEXTS[Purpose.ANALYTICS_COOKIES]
        await consent.record(subject, Purpose.ANALYTICS_COOKIES, choice.analytics, Source.COOKIE_BANNER, text.text,
                             text_version=text.version)
    response: Response
    if "application/json" in request.headers.get("accept", ""):
        response = JSONResponse({"analytics": choice.analytics})
    else:
        back = form.get("next")
        response = RedirectResponse(safe_next(back if isinstance(back, str) else None), status_code=303)
    secure = request.url.scheme == "https"
    # The choice itself is essential: without it the banner would ask on every page.
    response.set_cookie(CONSENT_COOKIE, choice.value(), max_age=CONSENT_MAX_AGE, path="/", secure=secure,
                        httponly=True, samesite="lax")
    if choice.analytics:
        # A fresh random id on every accept, never the visitor id: that one is in consent records, with the
        # person when logged in (and a cookie set before this rule may still hold one).
        response.set_cookie(ANALYTICS_COOKIE, new_analytics_id(), max_age=ANALYTICS_MAX_AGE, path="/", secure=secure,
                            httponly=True, samesite="lax")
    else:
        response.delete_cookie(ANALYTICS_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    return response
