"""Portal pages: the org's phone numbers — list, search, rent, route, release.

Permissions as in the API: ``numbers.read`` to see them, ``numbers.write`` to search, rent,
route and release. Renting and releasing ask first on a page of their own (what it costs,
what happens), then POST; each change is an audit event and a webhook event.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.errors import DomainError
from ringwell.features.accounts.models import Organization
from ringwell.features.accounts.service import AuditHook
from ringwell.features.auth.tokens import Identity
from ringwell.features.billing.errors import InsufficientCredit
from ringwell.features.numbers.e164 import NUMBER_TYPES, national_number, normalize, region_of
from ringwell.features.numbers.errors import InvalidNumber, NumberNotFound
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.pages import need, org_of, show

__all__ = ["router"]

router = APIRouter()

_E164_RE = re.compile(r"\+[0-9]{4,16}")  # what a flash message may echo back from its link
E164 = Annotated[str, Path(min_length=2, max_length=32)]
PageIdentity = Annotated[Identity, Depends(page_identity)]

_DONE = {
    "rented": "is yours now. Route it to a user so that calls to it ring someone.",
    "routed": "is routed.",
    "unrouted": "no longer rings anyone.",
    "released": "was released. It is no longer yours and nothing more is charged for it.",
}


def _flash(request: Request) -> tuple[str, str] | None:
    done, number = request.query_params.get("done"), request.query_params.get("number", "")
    if done not in _DONE or not _E164_RE.fullmatch(number):
        return None
    return "ok", f"{number} {_DONE[done]}"


def _back(done: str, number: str) -> RedirectResponse:
    return RedirectResponse(f"/numbers?{urlencode({'done': done, 'number': number})}", status_code=303)


def _audit(request: Request, identity: Identity, org: Organization, action: str) -> AuditHook:
    """Records ``action`` inside the service's transaction (the change and its event commit together)."""
    audit = services(request).audit
    actor = actor_of(request, identity)

    async def record(session: AsyncSession, target_id: str, details: dict[str, Any]) -> None:
        await audit.record(action, actor, org_id=org.id, target_type="number", target_id=target_id, details=details,
                           session=session)

    return record


async def _users(request: Request, org: Organization) -> list[dict[str, str]]:
    views = await services(request).accounts.users_page(org.id, limit=1000)
    return [{"extension": v.user.extension, "label": f"{v.user.extension} · {v.user.name or v.user.email}"}
            for v in views]


@router.get("/numbers", response_class=HTMLResponse)
async def numbers_page(request: Request, identity: PageIdentity) -> HTMLResponse:
    need(identity, "numbers.read")
    org = await org_of(request, identity)
    writable = can(identity, "numbers.write")
    rows = await services(request).numbers.numbers(org.id)
    return show(request, "numbers/list.html", {
        "numbers": rows, "writable": writable, "users": await _users(request, org) if writable else [],
        "quote": quote,
    }, flash=_flash(request))


@router.get("/numbers/search", response_class=HTMLResponse)
async def search_page(request: Request, identity: PageIdentity,
                      country: Annotated[str | None, Query(max_length=2)] = None,
                      area: Annotated[str | None, Query(max_length=8)] = None,
                      type: Annotated[str | None, Query(max_length=16)] = None) -> HTMLResponse:
    need(identity, "numbers.write")
    org = await org_of(request, identity)
    country = (country or org.country).strip().upper()
    area = (area or "").strip() or None
    kind = type if type in NUMBER_TYPES else None
    error = None
    found: list[Any] = []
    try:
        found = await services(request).numbers.search(country=country, area=area, type=kind, limit=50,
                                                       currency=org.currency)
    except InvalidNumber as exc:
        error = exc.message
    balance = await services(request).ledger.balance(org.id)
    return show(request, "numbers/search.html", {
        "country": country, "area": area or "", "type": kind or "", "types": sorted(NUMBER_TYPES),
        "found": found,
        "error": error, "balance": balance, "quote": quote,
    }, status_code=422 if error else 200)


async def _rent_context(request: Request, org: Organization, e164: str) -> dict[str, Any]:
    """The number as offered (None when nobody can rent it now), its price and the org's credit."""
    web = services(request)
    normalized = normalize(e164, org.country)
    region = region_of(normalized)
    number = None
    if region is not None:
        offered = await web.numbers.search(country=region, area=national_number(normalized)[:8] or None,
                                           limit=100, currency=org.currency)
        number = next((n for n in offered if n.e164 == normalized), None)
    balance = await web.ledger.balance(org.id)
    total = (number.setup_price_minor + number.monthly_price_minor) if number is not None else 0
    return {"e164": normalized, "number": number, "balance": balance, "total": total,
            "enough": number is not None and balance.available_minor >= total, "quote": quote}


@router.get("/numbers/{e164}/rent", response_class=HTMLResponse)
async def rent_page(request: Request, identity: PageIdentity, e164: E164) -> HTMLResponse:
    need(identity, "numbers.write")
    org = await org_of(request, identity)
    context = await _rent_context(request, org, e164)
    if context["number"] is None:
        raise NumberNotFound(f"{context['e164']} is not available to rent", {"number": context["e164"]})
    return show(request, "numbers/rent.html", context)


@router.post("/numbers/{e164}/rent", response_model=None)
async def rent(request: Request, identity: PageIdentity, e164: E164) -> Response:
    need(identity, "numbers.write")
    org = await org_of(request, identity)
    web = services(request)
    try:
        number = await web.numbers.rent(org.id, e164, datetime.now(UTC), audit=_audit(request, identity, org,
                                                                                      "numbers.rent"))
    except DomainError as exc:
        context = await _rent_context(request, org, e164)
        context["error"] = exc.message
        context["short"] = isinstance(exc, InsufficientCredit)
        return show(request, "numbers/rent.html", context, status_code=exc.status)
    # The same event data as the API's.
    await web.webhooks.publish(org.id, "number.rented", {
        "e164": number.e164, "monthly_price_minor": number.monthly_price_minor,
        "setup_price_minor": number.setup_price_minor, "currency": number.currency,
        "paid_until": number.paid_until.isoformat() if number.paid_until else None})
    return _back("rented", number.e164)


@router.post("/numbers/{e164}/route", response_model=None)
async def route(request: Request, identity: PageIdentity, e164: E164,
                extension: Annotated[str, Form(max_length=32)] = "") -> Response:
    need(identity, "numbers.write")
    org = await org_of(request, identity)
    web = services(request)
    target = extension.strip() or None
    number = await web.numbers.route(e164, target, org_id=org.id, audit=_audit(request, identity, org,
                                                                                "numbers.route"))
    return _back("routed" if target else "unrouted", number.e164)


@router.get("/numbers/{e164}/release", response_class=HTMLResponse)
async def release_page(request: Request, identity: PageIdentity, e164: E164) -> HTMLResponse:
    need(identity, "numbers.write")
    org = await org_of(request, identity)
    normalized = normalize(e164, org.country)
    mine = [n for n in await services(request).numbers.numbers(org.id) if n.e164 == normalized]
    if not mine:
        raise NumberNotFound(f"{normalized} is not rented by this organization", {"number": normalized})
    return show(request, "numbers/release.html", {"number": mine[0], "quote": quote})


@router.post("/numbers/{e164}/release", response_model=None)
async def release(request: Request, identity: PageIdentity, e164: E164) -> Response:
    need(identity, "numbers.write")
    org = await org_of(request, identity)
    web = services(request)
    number = await web.numbers.release(org.id, e164, datetime.now(UTC), audit=_audit(request, identity, org,
                                                                                      "numbers.release"))
    await web.webhooks.publish(org.id, "number.released", {"e164": number.e164})
    return _back("released", number.e164)
