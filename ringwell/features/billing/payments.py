"""Top-ups through a payment provider: the ``PaymentProvider`` seam and its Stripe adapter.

Flow (Stripe PaymentIntents): ``create_top_up`` creates a PaymentIntent for the org's amount
and currency and stores a *pending* payment; the customer's browser confirms it with the
client secret (Stripe.js); Stripe then sends ``payment_intent.succeeded`` to
``POST /webhooks/stripe``, and ``handle_webhook`` credits the org.

Webhooks are delivered at least once and Stripe may send different events for the same
PaymentIntent, so crediting is idempotent twice over: the event id is recorded
(``payment_events``) and the ledger credits a PaymentIntent id once (``LedgerService.top_up``
is idempotent per provider and reference) — a crash between the two is repaired by the retry.

About the card, only what Stripe returns in the charge's ``payment_method_details.card`` is
kept: brand, last 4 digits, expiry month and year. Never a card number, never the payload.
Secrets (API key, webhook signing secret) are never logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import stripe
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.billing import repository as repo
from ringwell.features.billing.errors import InvalidBillingData, InvalidWebhook, PaymentProviderError
from ringwell.features.billing.models import Payment, PaymentEvent, PaymentStatus
from ringwell.features.billing.money import from_stripe_amount, to_stripe_amount
from ringwell.features.billing.service import LedgerService
from ringwell.settings import Settings
from ringwell.storage.base import new_id, utcnow

__all__ = [
    "PaymentProvider",
    "StripeProvider",
    "TopUpIntent",
    "WebhookAction",
    "WebhookOutcome",
    "stripe_provider",
]

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 300  # seconds a signed webhook stays valid (Stripe's default; replay protection)
MAX_TOP_UP_MINOR = 99_999_999  # Stripe's maximum amount (8 digits)


@dataclass(frozen=True, slots=True)
class TopUpIntent:
    """What the customer's browser needs to pay: the provider's id and the client secret."""

    id: str
    client_secret: str
    status: str


class WebhookAction(StrEnum):
    CREDITED = "credited"  # the org's credit went up by the payment
    DUPLICATE = "duplicate"  # already handled (same event, or another event for the same payment)
    FAILED = "failed"  # the payment was marked failed
    IGNORED = "ignored"  # an event we do not act on, or about a payment we did not create


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    event_id: str
    type: str
    action: WebhookAction
    payment_id: str | None = None
    transaction_id: str | None = None


class PaymentProvider(Protocol):
    """A payment provider the ledger takes top-ups from."""

    name: str

    async def create_top_up(self, org_id: str, amount_minor: int, currency: str | None = None) -> TopUpIntent:
        """Start a payment of ``amount_minor`` (the org's currency); stores a pending payment."""
        ...

    async def handle_webhook(self, payload: bytes, signature_header: str) -> WebhookOutcome:
        """Verify and act on a provider notification; ``InvalidWebhook`` if it is not authentic."""
        ...


@dataclass(frozen=True, slots=True)
class _Card:
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


def _card_of(intent: dict[str, Any]) -> _Card | None:
    """brand/last4/expiry from an intent whose ``latest_charge`` is expanded (None if it is not)."""
    charge = intent.get("latest_charge")
    if not isinstance(charge, dict):
        return None
    details = charge.get("payment_method_details") or {}
    card = details.get("card") if isinstance(details, dict) else None
    if not isinstance(card, dict):
        return _Card(None, None, None, None)  # paid by something else than a card
    last4 = card.get("last4")
    exp_month, exp_year = card.get("exp_month"), card.get("exp_year")
    return _Card(
        str(card["brand"])[:32] if card.get("brand") else None,
        last4 if isinstance(last4, str) and len(last4) == 4 and last4.isdigit() else None,
        exp_month if isinstance(exp_month, int) and 1 <= exp_month <= 12 else None,
        exp_year if isinstance(exp_year, int) and 2000 <= exp_year <= 9999 else None,
    )


class StripeProvider:
    """Stripe PaymentIntents through the official ``stripe`` library (its blocking calls run in threads)."""

    name = "stripe"

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        ledger: LedgerService,
        *,
        api_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        tolerance: int = DEFAULT_TOLERANCE,
        max_network_retries: int = 2,
    ) -> None:
        if not api_key:
            raise InvalidBillingData("a Stripe secret key is required", {"field": "stripe_secret_key"})
        self._sessions = sessions
        self._ledger = ledger
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance
        self._api_base = api_base or None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=max_network_retries,
        )

    def __repr__(self) -> str:
        return f"StripeProvider(api_base={self._api_base or stripe.DEFAULT_API_BASE!r})"

    async def create_top_up(self, org_id: str, amount_minor: int, currency: str | None = None) -> TopUpIntent:
        """Create a PaymentIntent for ``amount_minor`` of the org's currency and store it pending."""
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
            raise InvalidBillingData("amount must be a positive whole number of minor units", {"field": "amount"})
        balance = await self._ledger.balance(org_id)  # the org exists and has its ledger account
        org_currency = balance.currency
        if currency is not None and currency.strip().upper() != org_currency:
            raise InvalidBillingData(f"the organization pays in {org_currency}, not {currency}",
                                     {"field": "currency"})
        stripe_amount = to_stripe_amount(amount_minor, org_currency)
        if stripe_amount > MAX_TOP_UP_MINOR:
            raise InvalidBillingData("amount is above what Stripe accepts in one payment", {"field": "amount"})
        payment_id = new_id()
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": stripe_amount,
            "currency": org_currency.lower(),
            "automatic_payment_methods": {"enabled": True},
            "description": "Ringwell credit top-up",
            "metadata": {"ringwell_org_id": org_id, "ringwell_payment_id": payment_id},
        }
        options: stripe.RequestOptions = {"idempotency_key": f"ringwell-top-up-{payment_id}"}
        try:
            intent = await asyncio.to_thread(self._client.v1.payment_intents.create, params, options)
        except stripe.StripeError as exc:
            raise PaymentProviderError(f"Stripe refused the top-up: {exc.user_message or exc}",
                                       {"provider": self.name}) from exc
        async with self._sessions() as session, session.begin():
            session.add(Payment(id=payment_id, org_id=org_id, provider=self.name, provider_id=intent.id,
                                amount_minor=amount_minor, currency=org_currency,
                                status=PaymentStatus.PENDING.value))
        log.info("top-up %s of org %s: PaymentIntent %s for %d %s minor units", payment_id, org_id, intent.id,
                 amount_minor, org_currency)
        return TopUpIntent(intent.id, intent.client_secret or "", intent.status)

    async def handle_webhook(self, payload: bytes, signature_header: str) -> WebhookOutcome:
        """Verify the ``Stripe-Signature`` (HMAC-SHA256, timestamp within ``tolerance``) and act on the event.

        ``payment_intent.succeeded`` credits the org once; ``payment_intent.payment_failed``
        marks the payment failed; anything else is acknowledged and ignored.
        """
        try:
            event = self._client.construct_event(payload, signature_header, self._webhook_secret,
                                                 tolerance=self._tolerance)
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook("Stripe signature verification failed",
                                 {"reason": exc.user_message or "signature"}) from exc
        except ValueError as exc:  # not UTF-8, not JSON, or not a snapshot event
            raise InvalidWebhook("the body is not a Stripe event", {"reason": "payload"}) from exc
        body = event.to_dict()
        event_id, kind = str(body.get("id", "")), str(body.get("type", ""))
        obj = (body.get("data") or {}).get("object")
        if not event_id or not isinstance(obj, dict):
            raise InvalidWebhook("the body is not a Stripe event", {"reason": "payload"})
        if kind == "payment_intent.succeeded":
            return await self._succeeded(event_id, kind, obj)
        if kind == "payment_intent.payment_failed":
            return await self._failed(event_id, kind, obj)
        log.debug("Stripe event %s (%s) ignored", event_id, kind)
        return WebhookOutcome(event_id, kind, WebhookAction.IGNORED)

    async def _payment_for(self, event_id: str, intent_id: str) -> tuple[bool, Payment | None]:
        async with self._sessions() as session:
            seen = await repo.event_seen(session, self.name, event_id)
            payment = None if seen else await repo.payment_by_provider_id(session, self.name, intent_id)
        return seen, payment

    async def _retrieve(self, intent_id: str) -> dict[str, Any]:
        params: stripe.params.PaymentIntentRetrieveParams = {"expand": ["latest_charge"]}
        try:
            intent = await asyncio.to_thread(self._client.v1.payment_intents.retrieve, intent_id, params)
        except stripe.StripeError as exc:
            # Answered with a 5xx by the route: Stripe delivers the event again later.
            raise PaymentProviderError(f"could not retrieve PaymentIntent {intent_id} from Stripe",
                                       {"provider": self.name}) from exc
        return intent.to_dict()

    async def _succeeded(self, event_id: str, kind: str, obj: dict[str, Any]) -> WebhookOutcome:
        intent_id = str(obj.get("id", ""))
        seen, payment = await self._payment_for(event_id, intent_id)
        if seen:
            return WebhookOutcome(event_id, kind, WebhookAction.DUPLICATE)
        if payment is None:
            log.warning("Stripe event %s is about PaymentIntent %s, which Ringwell did not create: ignored",
                        event_id, intent_id)
            return WebhookOutcome(event_id, kind, WebhookAction.IGNORED)
        if payment.status == PaymentStatus.SUCCEEDED.value:
            await self._record(event_id, kind, payment.id)
            return WebhookOutcome(event_id, kind, WebhookAction.DUPLICATE, payment.id, payment.transaction_id)
        # The event's copy of the intent does not expand latest_charge; ask Stripe for it (and for the truth).
        intent = obj if _card_of(obj) is not None else await self._retrieve(intent_id)
        if intent.get("status") != "succeeded":
            log.warning("Stripe event %s says PaymentIntent %s succeeded but it is %r: ignored", event_id,
                        intent_id, intent.get("status"))
            return WebhookOutcome(event_id, kind, WebhookAction.IGNORED, payment.id)
        currency = str(intent.get("currency", "")).upper()
        if currency != payment.currency:
            log.error("PaymentIntent %s was paid in %s, the payment was for %s: not credited", intent_id, currency,
                      payment.currency)
            return WebhookOutcome(event_id, kind, WebhookAction.IGNORED, payment.id)
        received = intent.get("amount_received")
        amount = from_stripe_amount(received if isinstance(received, int) else int(intent["amount"]), currency)
        txn_id = await self._ledger.top_up(payment.org_id, amount, provider=self.name, reference=intent_id)
        card = _card_of(intent) or _Card(None, None, None, None)
        async with self._sessions() as session, session.begin():
            row = await session.get(Payment, payment.id, populate_existing=True)
            assert row is not None
            first = row.status != PaymentStatus.SUCCEEDED.value
            if first:
                row.status, row.succeeded_at, row.transaction_id = PaymentStatus.SUCCEEDED.value, utcnow(), txn_id
                row.amount_minor = amount
                row.card_brand, row.card_last4 = card.brand, card.last4
                row.card_exp_month, row.card_exp_year = card.exp_month, card.exp_year
        await self._record(event_id, kind, payment.id)
        if first:
            log.info("top-up %s succeeded: org %s credited %d %s minor units (transaction %s)", payment.id,
                     payment.org_id, amount, currency, txn_id)
        action = WebhookAction.CREDITED if first else WebhookAction.DUPLICATE
        return WebhookOutcome(event_id, kind, action, payment.id, txn_id)

    async def _failed(self, event_id: str, kind: str, obj: dict[str, Any]) -> WebhookOutcome:
        intent_id = str(obj.get("id", ""))
        seen, payment = await self._payment_for(event_id, intent_id)
        if seen:
            return WebhookOutcome(event_id, kind, WebhookAction.DUPLICATE)
        if payment is None:
            return WebhookOutcome(event_id, kind, WebhookAction.IGNORED)
        async with self._sessions() as session, session.begin():
            row = await session.get(Payment, payment.id, populate_existing=True)
            assert row is not None
            # A later success wins over an earlier failure (the customer retried with another card).
            changed = row.status == PaymentStatus.PENDING.value
            if changed:
                row.status = PaymentStatus.FAILED.value
        await self._record(event_id, kind, payment.id)
        return WebhookOutcome(event_id, kind, WebhookAction.FAILED if changed else WebhookAction.DUPLICATE,
                              payment.id)

    async def _record(self, event_id: str, kind: str, payment_id: str | None) -> None:
        try:
            async with self._sessions() as session, session.begin():
                session.add(PaymentEvent(provider=self.name, event_id=event_id, type=kind[:64],
                                         payment_id=payment_id))
        except IntegrityError:
            log.debug("Stripe event %s recorded concurrently", event_id)


def stripe_provider(settings: Settings, sessions: async_sessionmaker[Any],
                    ledger: LedgerService) -> StripeProvider | None:
    """The Stripe adapter if ``stripe_secret_key`` is set, else None (top-ups disabled)."""
    if not settings.stripe_secret_key:
        return None
    return StripeProvider(sessions, ledger, api_key=settings.stripe_secret_key,
                          webhook_secret=settings.stripe_webhook_secret, api_base=settings.stripe_api_base or None)
