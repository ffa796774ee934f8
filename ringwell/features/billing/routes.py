"""HTTP for billing (thin: parse → service → serialise): the org's balance, ledger and top-ups under
``/api/v1`` (``router``), and the Stripe webhook endpoint (``stripe_routes``)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ringwell.errors import DomainError
from ringwell.features.billing.errors import (
    InvalidBillingData,
    InvalidWebhook,
    PaymentProviderError,
    PaymentsNotConfigured,
)
from ringwell.features.billing.payments import PaymentProvider
from ringwell.features.billing.schemas import (
    BalanceOut,
    CheckoutTopUpOut,
    CreditIn,
    CreditOut,
    LedgerEntryOut,
    LedgerPage,
    TopUpIn,
    TopUpOut,
    TopUpResult,
    money,
)
from ringwell.features.billing.service import Balance, EntryView
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, operator_scope, org_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["CANCEL_PATH", "DONE_PATH", "MAX_WEBHOOK_BYTES", "balance_out", "checkout_return_urls", "router",
           "stripe_routes"]

router = APIRouter()

MAX_LEDGER_PAGE = 200
DONE_PATH = "/billing/top-up/done"  # the portal's pages Stripe Checkout sends the customer back to
CANCEL_PATH = "/billing/top-up/cancelled"
_MAX_CURSOR = 64

Web = Annotated[WebServices, Depends(services)]


def balance_out(balance: Balance) -> BalanceOut:
    return BalanceOut(currency=balance.currency, balance=money(balance.balance_minor, balance.currency),
                      reserved=money(balance.reserved_minor, balance.currency),
                      available=money(balance.available_minor, balance.currency))


def _entry_out(entry: EntryView) -> LedgerEntryOut:
    return LedgerEntryOut(id=entry.id, seq=entry.seq, time=entry.time, kind=entry.kind,
                          amount=money(entry.amount_minor, entry.currency),
                          balance_after=money(entry.balance_after_minor, entry.currency),
                          description=entry.description, reference=entry.reference, reason=entry.reason)


def checkout_return_urls(request: Request, web: WebServices) -> tuple[str, str]:
    """The portal's Checkout success and cancel URLs: on ``public_url`` if set, else on the address
    this request came to (the one the customer's browser uses)."""
    base = web.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return f"{base}{DONE_PATH}?session_id={{CHECKOUT_SESSION_ID}}", f"{base}{CANCEL_PATH}"


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": seq}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    bad = InvalidBillingData("the cursor is not valid: start again from the first page", {"field": "cursor"})
    try:
        value: Any = json.loads(base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError) as exc:
        raise bad from exc
    seq = value.get("s") if isinstance(value, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise bad
    return seq


@router.get("/orgs/{org_id}/balance", response_model=BalanceOut, operation_id="get_balance", tags=["billing"],
            summary="The organization's prepaid credit")
async def get_balance(scope: Annotated[Scope, Depends(org_scope("billing.read"))], web: Web) -> BalanceOut:
    return balance_out(await web.ledger.balance(scope.org.id))


@router.get("/orgs/{org_id}/ledger", response_model=LedgerPage, operation_id="list_ledger_entries", tags=["billing"],
            summary="Ledger entries, newest first (cursor pagination)")
async def list_ledger(
    scope: Annotated[Scope, Depends(org_scope("billing.read"))], web: Web,
    limit: Annotated[int, Query(ge=1, le=MAX_LEDGER_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=_MAX_CURSOR, description="next_cursor of the last page")] = None,
) -> LedgerPage:
    before = _decode_cursor(cursor) if cursor is not None else None
    entries = await web.ledger.entries(scope.org.id, limit + 1, before_seq=before)
    page = entries[:limit]
    next_cursor = _encode_cursor(page[-1].seq) if len(entries) > limit else None
    return LedgerPage(items=[_entry_out(entry) for entry in page], next_cursor=next_cursor)


@router.post("/orgs/{org_id}/top-ups", response_model=TopUpResult, status_code=201, operation_id="create_top_up",
             tags=["billing"],
             summary="Start a card top-up (Stripe); the credit arrives when Stripe confirms the payment",
             description="mode `payment_intent` (default) returns a PaymentIntent's client secret for Stripe.js; "
                         "mode `checkout` returns the URL of a Stripe Checkout page to send the customer to. "
                         "Either way the organization is credited only when Stripe's signed webhook confirms "
                         "the payment.",
             responses={502: {"model": ErrorBody, "description": "The payment provider refused or is unreachable"}})
async def create_top_up(request: Request, scope: Annotated[Scope, Depends(org_scope("billing.topup"))], web: Web,
                        body: TopUpIn) -> TopUpOut | CheckoutTopUpOut:
    if web.payments is None:
        raise PaymentsNotConfigured("top-ups are not available: this server has no payment provider configured",
                                    {"provider": None})
    currency = (await web.ledger.balance(scope.org.id)).currency
    if body.mode == "checkout":
        success_url, cancel_url = checkout_return_urls(request, web)
        checkout = await web.payments.create_checkout(scope.org.id, body.amount_minor, None,
                                                      body.success_url or success_url, body.cancel_url or cancel_url,
                                                      scope.identity.email)
        await web.audit.record("billing.topup", scope.actor, org_id=scope.org.id, target_type="payment",
                               target_id=checkout.id, details={"amount_minor": body.amount_minor, "currency": currency,
                                                               "provider": web.payments.name, "mode": "checkout"})
        return CheckoutTopUpOut(provider=web.payments.name, checkout_session_id=checkout.id,
                                checkout_url=checkout.url, status=checkout.status,
                                payment_status=checkout.payment_status, expires_at=checkout.expires_at,
                                amount=money(body.amount_minor, currency))
    if body.success_url is not None or body.cancel_url is not None:
        raise InvalidBillingData("success_url and cancel_url are for mode checkout", {"field": "mode"})
    intent = await web.payments.create_top_up(scope.org.id, body.amount_minor)
    await web.audit.record("billing.topup", scope.actor, org_id=scope.org.id, target_type="payment",
                           target_id=intent.id, details={"amount_minor": body.amount_minor, "currency": currency,
                                                         "provider": web.payments.name})
    return TopUpOut(provider=web.payments.name, payment_intent_id=intent.id, client_secret=intent.client_secret,
                    status=intent.status, amount=money(body.amount_minor, currency))


@router.post("/operator/orgs/{org_id}/credit", response_model=CreditOut, tags=["operator"],
             operation_id="adjust_org_credit", summary="Credit (+) or debit (-) an organization by hand, with a reason")
async def adjust_credit(scope: Annotated[Scope, Depends(operator_scope("operator.billing.adjust"))], web: Web,
                        org_id: Annotated[str, Path(max_length=36)], body: CreditIn) -> CreditOut:
    if body.amount_minor == 0:
        raise InvalidBillingData("amount_minor must not be 0", {"field": "amount_minor"})
    operator = scope.identity.email or scope.identity.user_id or scope.identity.role

    async def audited(session: AsyncSession, txn_id: str) -> None:  # in the adjustment's own transaction
        await web.audit.record("billing.adjust", scope.actor, org_id=org_id, target_type="ledger_transaction",
                               target_id=txn_id, reason=body.reason, details={"amount_minor": body.amount_minor},
                               session=session)

    txn = await web.ledger.adjust(org_id, body.amount_minor, body.reason, operator, in_transaction=audited)
    return CreditOut(transaction_id=txn, balance=balance_out(await web.ledger.balance(org_id)))

MAX_WEBHOOK_BYTES = 512 * 1024  # Stripe events are a few kB; refuse to buffer more than this


def _error(exc: DomainError, status: int) -> JSONResponse:
    return JSONResponse({"error_id": exc.error_id, "message": exc.message, "details": exc.details}, status_code=status)


def stripe_routes(provider: PaymentProvider) -> list[Route]:
    """``POST /webhooks/stripe``: 200 ``{"received": true}`` once handled (also for events
    ignored or already handled); 400 for a bad signature or body; 502 when Stripe could not be
    asked about the payment (Stripe delivers the event again later)."""

    async def webhook(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
            return _error(InvalidWebhook("the body is too large", {"max_bytes": MAX_WEBHOOK_BYTES}), 413)
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return _error(InvalidWebhook("the body is too large", {"max_bytes": MAX_WEBHOOK_BYTES}), 413)
        try:
            await provider.handle_webhook(body, request.headers.get("stripe-signature", ""))
        except InvalidWebhook as exc:
            return _error(exc, 400)
        except PaymentProviderError as exc:
            return _error(exc, 502)
        return JSONResponse({"received": True})

    return [Route("/webhooks/stripe", webhook, methods=["POST"])]
