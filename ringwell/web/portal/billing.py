"""Portal pages: billing — balance, top-up, the ledger, and a printable receipt per credit.

Permissions as in the API: ``billing.read`` shows the balance, ledger and receipts;
``billing.topup`` starts a card payment (only when a payment provider is configured — otherwise
the page says plainly that credit is added by the operator).

A top-up is paid on Stripe's hosted Checkout page: the form's POST creates a Checkout Session and
answers 303 to its URL (so the portal runs no Stripe.js; the CSP's ``form-action`` names
Checkout's origin on the billing pages). Stripe sends the customer back to ``/billing/top-up/done``
— which only *shows* the payment's status (ours, or Stripe's while ours is pending): the credit
is added by Stripe's signed webhook alone — or to ``/billing/top-up/cancelled``. A receipt exists for every entry
that added credit (top-up, refund, operator credit); it is addressed by the entry's sequence
number in the org's ledger, so another org's receipt is simply not found.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringwell.errors import DomainError, NotFound
from ringwell.features.auth.tokens import Identity
from ringwell.features.billing.errors import InvalidBillingData
from ringwell.features.billing.money import exponent, format_minor, parse_amount
from ringwell.features.billing.payments import MAX_TOP_UP_MINOR
from ringwell.features.billing.routes import checkout_return_urls
from ringwell.features.billing.service import EntryView
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.pages import need, org_of, show

__all__ = ["router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
PAGE = 50
_KIND_LABELS = {
    "top_up": "Top-up", "call_charge": "Call", "number_setup": "Number setup", "number_rental": "Number rental",
    "refund": "Refund", "adjustment": "Adjustment",
}


class ReceiptNotFound(NotFound):
    error_id = "receipt_not_found"


class TopUpNotFound(NotFound):
    error_id = "top_up_not_found"


def _suggested(currency: str) -> list[str]:
    """Amounts offered as examples in the top-up form (major units)."""
    places = exponent(currency)
    return [format_minor(amount * 10**places, currency) for amount in (10, 25, 50, 100)]


@router.get("/billing", response_class=HTMLResponse)
async def billing_page(request: Request, identity: PageIdentity,
                       before: Annotated[int | None, Query(ge=1)] = None) -> HTMLResponse:
    need(identity, "billing.read")
    org = await org_of(request, identity)
    web = services(request)
    balance = await web.ledger.balance(org.id)
    entries = await web.ledger.entries(org.id, PAGE + 1, before_seq=before)
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    return show(request, "billing/index.html", {
        "balance": balance, "entries": entries, "kinds": _KIND_LABELS,
        "next_before": entries[-1].seq if more and entries else None, "first_page": before is None,
        "can_topup": can(identity, "billing.topup"), "payments": web.payments is not None,
        "suggested": _suggested(balance.currency), "amount": "", "low_balance_minor": org.low_balance_minor,
    })


@router.post("/billing/top-up", response_class=HTMLResponse)
async def top_up(request: Request, identity: PageIdentity,
                 amount: Annotated[str, Form(max_length=32)] = "") -> Response:
    """Start a Checkout top-up and send the browser to Stripe's page (303); the form again on an error."""
    need(identity, "billing.topup")
    org = await org_of(request, identity)
    web = services(request)
    balance = await web.ledger.balance(org.id)
    if web.payments is None:
        return show(request, "billing/topup.html", {"balance": balance, "intent": None,
                                                   "error": "online payment is not configured on this server"},
                    status_code=422)
    try:
        amount_minor = parse_amount(amount, balance.currency)
        if amount_minor <= 0 or amount_minor > MAX_TOP_UP_MINOR:
            raise InvalidBillingData("enter an amount above zero", {"field": "amount"})
        success_url, cancel_url = checkout_return_urls(request, web)
        checkout = await web.payments.create_checkout(org.id, amount_minor, None, success_url, cancel_url,
                                                      identity.email)
    except DomainError as exc:
        entries = await web.ledger.entries(org.id, PAGE)
        return show(request, "billing/index.html", {
            "balance": balance, "entries": entries, "kinds": _KIND_LABELS, "next_before": None, "first_page": True,
            "can_topup": True, "payments": True, "suggested": _suggested(balance.currency), "amount": amount,
            "error": exc.message, "low_balance_minor": org.low_balance_minor,
        }, status_code=422 if exc.status < 500 else exc.status)
    await web.audit.record("billing.topup", actor_of(request, identity), org_id=org.id, target_type="payment",
                           target_id=checkout.id, details={"amount_minor": amount_minor, "currency": balance.currency,
                                                           "provider": web.payments.name, "mode": "checkout"})
    return RedirectResponse(checkout.url, status_code=303)


@router.get("/billing/top-up/done", response_class=HTMLResponse)
async def top_up_done(request: Request, identity: PageIdentity,
                      session_id: Annotated[str, Query(max_length=255)] = "") -> HTMLResponse:
    """Where Stripe sends the customer after paying: the payment's status. Credits nothing."""
    need(identity, "billing.read")
    web = services(request)
    found = await web.payments.checkout_status(identity.org_id, session_id) if web.payments is not None else None
    if found is None:  # unknown, malformed, or another org's session: all the same
        raise TopUpNotFound("no such top-up", {"session_id": session_id[:80]})
    return show(request, "billing/topup_done.html", {"top_up": found})


@router.get("/billing/top-up/cancelled", response_class=HTMLResponse)
async def top_up_cancelled(request: Request, identity: PageIdentity) -> HTMLResponse:
    """Where Stripe sends a customer who went back from its page: nothing was charged."""
    need(identity, "billing.read")
    return show(request, "billing/topup_cancelled.html", {"can_topup": can(identity, "billing.topup")})


async def _entry(request: Request, org_id: str, seq: int) -> EntryView:
    """The org's ledger entry number ``seq`` (sequence numbers are per org, without gaps)."""
    found = await services(request).ledger.entries(org_id, 1, before_seq=seq + 1)
    if not found or found[0].seq != seq:
        raise ReceiptNotFound("no such receipt", {"seq": seq})
    return found[0]


@router.get("/billing/receipts/{seq}", response_class=HTMLResponse)
async def receipt(request: Request, identity: PageIdentity,
                  seq: Annotated[int, Path(ge=1, le=2**62)]) -> HTMLResponse:
    need(identity, "billing.read")
    org = await org_of(request, identity)
    entry = await _entry(request, org.id, seq)
    if entry.amount_minor <= 0:
        raise ReceiptNotFound("receipts are for credits (top-ups, refunds, credits by the operator)", {"seq": seq})
    return show(request, "billing/receipt.html", {"org": org, "entry": entry, "kind": _KIND_LABELS.get(entry.kind,
                                                                                                       entry.kind)})
