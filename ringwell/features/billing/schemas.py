"""API shapes of the billing slice (money is integer minor units, with the currency and a display form)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ringwell.features.billing.money import format_minor
from ringwell.features.billing.payments import MAX_RETURN_URL, MAX_TOP_UP_MINOR
from ringwell.web.schemas import RequestBody

__all__ = [
    "BalanceOut",
    "CheckoutTopUpOut",
    "CreditIn",
    "CreditOut",
    "LedgerEntryOut",
    "LedgerPage",
    "Money",
    "TopUpIn",
    "TopUpOut",
    "TopUpResult",
    "money",
]

MAX_ADJUST_MINOR = 10**12  # a sanity bound on one manual adjustment (far above any real one)


class Money(BaseModel):
    """An amount: ``minor`` units of ``currency`` (cents for USD) and the same as a decimal."""

    minor: int = Field(description="Integer minor units (e.g. cents)")
    currency: str = Field(description="ISO 4217 code")
    formatted: str = Field(description="The amount as a decimal of the major unit, e.g. 10.50")


def money(amount_minor: int, currency: str) -> Money:
    return Money(minor=amount_minor, currency=currency, formatted=format_minor(amount_minor, currency))


class BalanceOut(BaseModel):
    currency: str
    balance: Money
    reserved: Money = Field(description="Held for calls in progress")
    available: Money = Field(description="Balance minus reserved: what new calls and charges may use")


class LedgerEntryOut(BaseModel):
    id: str
    seq: int = Field(description="1, 2, 3 ... per organization, in the order the balance moved")
    time: datetime
    kind: str = Field(description="top_up | call_charge | number_setup | number_rental | refund | adjustment")
    amount: Money = Field(description="Signed from the organization's side: + credit, - charge")
    balance_after: Money
    description: str
    reference: str | None = Field(description="Call id, payment id or number this entry is about")
    reason: str | None = Field(description="Why the operator made this entry (refunds and adjustments)")


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next_cursor: str | None


_URL = r"^https?://[^\s]+$"


class TopUpIn(RequestBody):
    amount_minor: int = Field(gt=0, le=MAX_TOP_UP_MINOR, description="Minor units of the organization's currency")
    mode: Literal["payment_intent", "checkout"] = Field(
        "payment_intent", description="payment_intent (default): a PaymentIntent your front end confirms with "
                                      "Stripe.js; checkout: a Stripe Checkout page to send the customer to")
    success_url: str | None = Field(
        None, max_length=MAX_RETURN_URL, pattern=_URL,
        description="checkout only: where Stripe sends the customer after paying ({CHECKOUT_SESSION_ID} is "
                    "replaced by the session id); default: the portal's /billing/top-up/done")
    cancel_url: str | None = Field(
        None, max_length=MAX_RETURN_URL, pattern=_URL,
        description="checkout only: where Stripe sends a customer who goes back; default: the portal's "
                    "/billing/top-up/cancelled")


class TopUpOut(BaseModel):
    """What the browser needs to pay with Stripe.js; the credit arrives when Stripe confirms the payment."""

    mode: Literal["payment_intent"] = "payment_intent"
    provider: str
    payment_intent_id: str
    client_secret: str
    status: str
    amount: Money


class CheckoutTopUpOut(BaseModel):
    """A Stripe Checkout page to send the customer to; the credit arrives when Stripe confirms the payment."""

    mode: Literal["checkout"] = "checkout"
    provider: str
    checkout_session_id: str = Field(description="Stripe's Checkout Session id (cs_...)")
    checkout_url: str = Field(description="Stripe's hosted payment page: redirect the customer's browser here")
    status: str = Field(description="The session's status: open | complete | expired")
    payment_status: str = Field(description="unpaid | paid | no_payment_required")
    expires_at: datetime | None = Field(description="When Stripe closes the page if it is not paid")
    amount: Money


TopUpResult = Annotated[TopUpOut | CheckoutTopUpOut, Field(discriminator="mode")]


class CreditIn(RequestBody):
    amount_minor: int = Field(ge=-MAX_ADJUST_MINOR, le=MAX_ADJUST_MINOR,
                              description="Non-zero: positive credits the organization, negative debits it")
    reason: str = Field(min_length=1, max_length=500, description="Why (kept in the ledger and the audit log)")


class CreditOut(BaseModel):
    transaction_id: str
    balance: BalanceOut
