"""Portal pages: the operator console — organizations and their credit, trunks, rate decks, number inventory.

Only the operator's staff (users of the ``operator`` organization, logged in) may open it, each
page with the operator permission the API's equivalent route needs: ``operator.orgs.read``
(organizations), ``operator.billing.adjust`` (credit or debit an organization),
``operator.trunks.manage``, ``operator.ratedecks.manage``, ``operator.numbers.manage``. Anyone
else gets a 403 page. Every change is an audit event with the same action name as the API's;
opening an organization's page is recorded as ``staff.access`` (its ledger is that org's data).
"""

from __future__ import annotations

import io
from collections.abc import Awaitable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.errors import DomainError
from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.models import Organization
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.billing.errors import InvalidBillingData
from ringwell.features.billing.money import parse_amount
from ringwell.features.numbers.models import NumberState
from ringwell.features.privacy.closure_routes import closure_service
from ringwell.features.trunks.service import TrunkChanges
from ringwell.storage.base import utcnow
from ringwell.web.context import WebServices
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.pages import show

__all__ = ["TABS", "router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
OrgId = Annotated[str, Path(min_length=1, max_length=36)]
PAGE = 50
MAX_UPLOAD = 32 * 1024 * 1024  # a rate deck of a few hundred thousand lines
# (path, label, permission)
TABS: list[tuple[str, str, str]] = [
    ("/operator", "Organizations", "operator.orgs.read"),
    ("/operator/trunks", "Trunks", "operator.trunks.manage"),
    ("/operator/rates", "Rate decks", "operator.ratedecks.manage"),
    ("/operator/numbers", "Number inventory", "operator.numbers.manage"),
    ("/operator/incidents", "Incidents", "operator.privacy.incidents.read"),
    ("/operator/privacy/requests", "Privacy requests", "operator.privacy.requests"),
    ("/operator/retention", "Retention", "operator.privacy.manage"),
]
_DONE = {
    "credited": ("ok", "The organization's credit was changed."),
    "closed": ("ok", "The organization is closed: its users are signed out, its phones and API keys stopped, "
                     "its numbers released."),
    "reopened": ("ok", "The organization is open again. Its numbers, API keys and SIP passwords were not restored."),
    "trunk": ("ok", "The trunk was updated. Calls use the change within a few seconds."),
    "rates": ("ok", "The rate deck was imported."),
    "numbers": ("ok", "The numbers were added to the inventory."),
}


def _staff(identity: Identity, permission: str) -> None:
    """Staff holding ``permission``, else 403 (a customer's owner included)."""
    if not identity.staff or not can(identity, permission):
        raise PermissionDenied("this is the operator's console: staff only", {"permission": permission})


def _tabs(identity: Identity) -> list[tuple[str, str]]:
    return [(path, label) for path, label, permission in TABS if can(identity, permission)]


def _flash(request: Request) -> tuple[str, str] | None:
    done = request.query_params.get("done")
    if done not in _DONE:
        return None
    kind, text = _DONE[done]
    count = request.query_params.get("count")
    return kind, f"{text} ({count} imported)" if count and count.isdigit() else text


def _page(request: Request, identity: Identity, template: str, context: dict[str, Any], *,
          status_code: int = 200) -> HTMLResponse:
    return show(request, template, {"tabs": _tabs(identity), **context}, status_code=status_code,
                flash=_flash(request))


async def _read_csv(upload: UploadFile | None, text: str) -> str:
    """The CSV from the uploaded file if one was chosen, else from the text area."""
    if upload is not None and upload.filename:
        raw = await upload.read(MAX_UPLOAD + 1)
        if len(raw) > MAX_UPLOAD:
            raise InvalidBillingData(f"the file is larger than {MAX_UPLOAD // (1024 * 1024)} MB", {"field": "file"})
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidBillingData("the file is not UTF-8 text (save it as CSV UTF-8)", {"field": "file"}) from None
    return text


# -- organizations -------------------------------------------------------------------------------
@router.get("/operator", response_class=HTMLResponse)
async def orgs_page(request: Request, identity: PageIdentity,
                    after: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
    _staff(identity, "operator.orgs.read")
    web = services(request)
    summaries = await web.accounts.org_summaries(after=after, limit=PAGE + 1)
    more = len(summaries) > PAGE
    summaries = summaries[:PAGE]
    rows = [(s, await web.ledger.balance(s.org.id)) for s in summaries]
    return _page(request, identity, "operator/orgs.html", {
        "rows": rows, "first_page": after is None,
        "next_url": f"/operator?{urlencode({'after': summaries[-1].org.name})}" if more and summaries else None,
    })


@router.get("/operator/orgs/{org_id}", response_class=HTMLResponse)
async def org_page(request: Request, identity: PageIdentity, org_id: OrgId) -> HTMLResponse:
    _staff(identity, "operator.orgs.read")
    return await _org_page(request, identity, org_id)


async def _org_page(request: Request, identity: Identity, org_id: str, *, error: str | None = None,
                    form: dict[str, str] | None = None, status_code: int = 200,
                    error_in: str = "credit") -> HTMLResponse:
    web = services(request)
    org = await _org(web, org_id)
    can_read_billing = can(identity, "billing.read") or can(identity, "operator.billing.adjust")
    balance = await web.ledger.balance(org.id)
    entries = await web.ledger.entries(org.id, 20) if can_read_billing else []
    if org.id != identity.org_id and can_read_billing:
        await web.audit.record("staff.access", actor_of(request, identity), org_id=org.id, target_type="route",
                               target_id=f"GET /operator/orgs/{org.id}"[:64],
                               details={"permission": "operator.orgs.read", "path": request.url.path,
                                        "method": "GET"})
    purge_after = (org.closed_at + timedelta(days=web.settings.closed_account_retention_days)
                   if org.closed_at is not None and org.purged_at is None else None)
    due = purge_after is not None and purge_after <= utcnow()  # reopening is refused from then on
    return _page(request, identity, "operator/org.html", {
        "org": org, "balance": balance, "entries": entries, "can_adjust": can(identity, "operator.billing.adjust"),
        "deck": await web.rating.deck_of_org(org.id), "error": error, "form": form or {},
        "can_close": can(identity, "operator.orgs.close") and org.kind != "operator", "purge_after": purge_after,
        "due": due,
        "error_in": error_in,
    }, status_code=status_code)


async def _org(web: WebServices, org_id: str) -> Organization:
    org = await web.accounts.org_by_id(org_id)
    if org is None:
        raise OrganizationNotFound("no such organization", {"org_id": org_id})
    return org


def _closure_error(request: Request, identity: Identity, org_id: str, message: str, form: dict[str, str],
                   status_code: int = 422) -> Awaitable[HTMLResponse]:
    return _org_page(request, identity, org_id, error=message, form=form, status_code=status_code,
                     error_in="closure")


@router.post("/operator/orgs/{org_id}/close", response_model=None)
async def close_org(request: Request, identity: PageIdentity, org_id: OrgId,
                    reason: Annotated[str, Form(max_length=500)] = "",
                    confirm: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Close the org: the name typed again, and a reason (audited)."""
    _staff(identity, "operator.orgs.close")
    web = services(request)
    org = await _org(web, org_id)
    form = {"reason": reason, "confirm": confirm}
    if confirm.strip() != org.name:
        return await _closure_error(request, identity, org.id, "type the organization's name exactly to close it",
                                    form)
    try:
        await closure_service(web).close(org.id, actor=actor_of(request, identity), reason=reason)
    except DomainError as exc:
        return await _closure_error(request, identity, org.id, exc.message, form, exc.status)
    return RedirectResponse(f"/operator/orgs/{org.id}?done=closed", status_code=303)


@router.post("/operator/orgs/{org_id}/reopen", response_model=None)
async def reopen_org(request: Request, identity: PageIdentity, org_id: OrgId,
                     reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    _staff(identity, "operator.orgs.close")
    web = services(request)
    try:
        await closure_service(web).reopen(org_id, actor=actor_of(request, identity), reason=reason)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _closure_error(request, identity, org_id, exc.message, {"reason": reason}, exc.status)
    return RedirectResponse(f"/operator/orgs/{org_id}?done=reopened", status_code=303)


@router.post("/operator/orgs/{org_id}/credit", response_model=None)
async def adjust_credit(request: Request, identity: PageIdentity, org_id: OrgId,
                        amount: Annotated[str, Form(max_length=32)] = "",
                        direction: Annotated[str, Form(max_length=8)] = "credit",
                        reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    _staff(identity, "operator.billing.adjust")
    web = services(request)
    org = await _org(web, org_id)
    try:
        amount_minor = parse_amount(amount, org.currency)
        if amount_minor <= 0:
            raise InvalidBillingData("enter an amount above zero; choose debit to take credit away",
                                     {"field": "amount"})
        signed = -amount_minor if direction == "debit" else amount_minor
        operator = identity.email or identity.user_id or identity.role
        txn = await web.ledger.adjust(org.id, signed, reason, operator)
    except DomainError as exc:
        return await _org_page(request, identity, org.id, error=exc.message,
                               form={"amount": amount, "direction": direction, "reason": reason},
                               status_code=exc.status)
    await web.audit.record("billing.adjust", actor_of(request, identity), org_id=org.id,
                           target_type="ledger_transaction", target_id=txn, reason=reason.strip(),
                           details={"amount_minor": signed, "currency": org.currency})
    return RedirectResponse(f"/operator/orgs/{org.id}?done=credited", status_code=303)


# -- trunks --------------------------------------------------------------------------------------
@router.get("/operator/trunks", response_class=HTMLResponse)
async def trunks_page(request: Request, identity: PageIdentity) -> HTMLResponse:
    _staff(identity, "operator.trunks.manage")
    trunks = sorted(await services(request).trunks.all(), key=lambda t: (t.priority, t.name))
    return _page(request, identity, "operator/trunks.html", {"trunks": trunks})


@router.post("/operator/trunks/{trunk_id}/enabled", response_model=None)
async def set_trunk_enabled(request: Request, identity: PageIdentity,
                            trunk_id: Annotated[str, Path(min_length=1, max_length=36)],
                            enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    _staff(identity, "operator.trunks.manage")
    web = services(request)
    on = enabled in ("1", "true", "on")
    trunk = await web.trunks.update(trunk_id, TrunkChanges(enabled=on))
    await web.audit.record("trunks.update", actor_of(request, identity), org_id=identity.org_id, target_type="trunk",
                           target_id=trunk.id, details={"name": trunk.name, "enabled": on})
    return RedirectResponse("/operator/trunks?done=trunk", status_code=303)


# -- rate decks ----------------------------------------------------------------------------------
@router.get("/operator/rates", response_class=HTMLResponse)
async def rates_page(request: Request, identity: PageIdentity) -> HTMLResponse:
    _staff(identity, "operator.ratedecks.manage")
    return await _rates_page(request, identity)


async def _rates_page(request: Request, identity: Identity, *, error: str | None = None,
                      form: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    decks = await services(request).rating.decks()
    return _page(request, identity, "operator/rates.html", {"decks": decks, "error": error,
                                                            "form": form or {"currency": "USD"}},
                 status_code=status_code)


@router.post("/operator/rates", response_model=None)
async def import_rates(request: Request, identity: PageIdentity,
                       name: Annotated[str, Form(max_length=100)] = "",
                       currency: Annotated[str, Form(max_length=3)] = "USD",
                       csv: Annotated[str, Form(max_length=MAX_UPLOAD)] = "",
                       file: Annotated[UploadFile | None, File()] = None) -> Response:
    _staff(identity, "operator.ratedecks.manage")
    web = services(request)
    deck, code = name.strip(), currency.strip().upper()
    try:
        text = await _read_csv(file, csv)
        count = await web.rating.import_deck(deck, io.StringIO(text, newline=""), code)
    except DomainError as exc:
        return await _rates_page(request, identity, error=exc.message,
                                 form={"name": name, "currency": currency, "csv": csv}, status_code=exc.status)
    await web.audit.record("ratedecks.import", actor_of(request, identity), org_id=identity.org_id,
                           target_type="rate_deck", target_id=deck[:64],
                           details={"name": deck, "currency": code, "rates": count})
    return RedirectResponse(f"/operator/rates?done=rates&count={count}", status_code=303)


# -- number inventory ----------------------------------------------------------------------------
@router.get("/operator/numbers", response_class=HTMLResponse)
async def inventory_page(request: Request, identity: PageIdentity,
                         state: Annotated[str | None, Query(max_length=16)] = None,
                         after: Annotated[str | None, Query(max_length=32)] = None) -> HTMLResponse:
    _staff(identity, "operator.numbers.manage")
    return await _inventory_page(request, identity, state, after)


async def _inventory_page(request: Request, identity: Identity, state: str | None, after: str | None, *,
                          error: str | None = None, csv: str = "", status_code: int = 200) -> HTMLResponse:
    chosen = state if state in {s.value for s in NumberState} else None
    items = await services(request).numbers.inventory(state=chosen, after=after or None, limit=PAGE + 1)
    more = len(items) > PAGE
    items = items[:PAGE]
    query = {"state": chosen} if chosen else {}
    return _page(request, identity, "operator/numbers.html", {
        "items": items, "state": chosen or "", "states": [s.value for s in NumberState], "error": error,
        "csv": csv, "first_page": not after,
        "first_url": f"/operator/numbers?{urlencode(query)}" if query else "/operator/numbers",
        "next_url": f"/operator/numbers?{urlencode({**query, 'after': items[-1].number.e164})}"
        if more and items else None,
    }, status_code=status_code)


@router.post("/operator/numbers", response_model=None)
async def import_numbers(request: Request, identity: PageIdentity,
                         csv: Annotated[str, Form(max_length=MAX_UPLOAD)] = "",
                         file: Annotated[UploadFile | None, File()] = None) -> Response:
    _staff(identity, "operator.numbers.manage")
    web = services(request)
    audit, actor = web.audit, actor_of(request, identity)

    async def record(session: AsyncSession, target_id: str, details: dict[str, Any]) -> None:
        await audit.record("numbers.import", actor, org_id=identity.org_id, target_type="inventory",
                           target_id=target_id, details=details, session=session)

    try:
        text = await _read_csv(file, csv)
        count = await web.numbers.import_numbers(io.StringIO(text, newline=""), audit=record)
    except DomainError as exc:
        return await _inventory_page(request, identity, None, None, error=exc.message, csv=csv,
                                     status_code=exc.status)
    return RedirectResponse(f"/operator/numbers?done=numbers&count={count}", status_code=303)
