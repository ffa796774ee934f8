"""Top-ups through a payment provider: the ``PaymentProvider`` seam and its Stripe adapter.

Two ways to pay, both credited only by Stripe's signed webhooks at ``POST /webhooks/stripe``:

- **Checkout** (the portal; ``create_checkout``): a Stripe Checkout Session (``mode=payment``,
  one line item of the org's amount and currency) is created and a *pending* payment stored
  under the session's id; the browser is redirected to the session's ``url`` — Stripe's hosted
  payment page, so the portal runs no Stripe.js and needs no publishable key. Checkout creates
  the PaymentIntent when the customer pays (API 2022-08-01 and later) and gives it the
  ``payment_intent_data[metadata]`` sent here: our org id and payment id. Then
  ``checkout.session.completed`` (``payment_status`` "paid"; for delayed methods
  ``checkout.session.async_payment_succeeded``) and ``payment_intent.succeeded`` both credit
  the org — once. ``checkout.session.expired`` and ``checkout.session.async_payment_failed``
  mark the payment failed. The success page only *shows* the status.
- **PaymentIntent** (the API's default; ``create_top_up``): a PaymentIntent is created and stored
  pending; the caller's own front end confirms it with the client secret (Stripe.js); then
  ``payment_intent.succeeded`` credits the org.

Webhooks are delivered at least once and Stripe sends several events for one payment, so
crediting is idempotent twice over: the event id is recorded (``payment_events``) and the
ledger credits a PaymentIntent id once (``LedgerService.top_up`` is idempotent per provider
and reference); a payment already marked succeeded is not credited again. A crash between the
two is repaired by the retry.

About the card, only what Stripe returns in the charge's ``payment_method_details.card`` is
kept: brand, last 4 digits, expiry month and year. Never a card number, never the payload.
Secrets (API key, webhook signing secret) are never logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

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
    "CHECKOUT_ORIGIN",
    "CHECKOUT_SESSION_RE",
    "CheckoutStatus",
    "CheckoutTopUp",
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
CHECKOUT_ORIGIN = "https://checkout.stripe.com"  # where Stripe's hosted Checkout pages are served
CHECKOUT_SESSION_RE = re.compile(r"cs_(test|live)_[A-Za-z0-9]{1,240}")  # a Checkout Session id
MAX_RETURN_URL = 2000  # Stripe's limit on success_url/cancel_url is higher; ours is the portal's
PRODUCT_NAME = "Ringwell prepaid credit"
DESCRIPTION = "Ringwell credit top-up"
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
# Checkout events that mean the session's payment went through, and those that mean it never will.
_CHECKOUT_PAID = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
_CHECKOUT_FAILED = ("checkout.session.async_payment_failed", "checkout.session.expired")


@dataclass(frozen=True, slots=True)
class TopUpIntent:
    """What the customer's browser needs to pay: the provider's id and the client secret."""

    id: str
    client_secret: str
    status: str


@dataclass(frozen=True, slots=True)
class CheckoutTopUp:
    """A Stripe Checkout Session to send the customer to (``url``); ``id`` is "cs_...".

    ``status`` is the session's ("open"), ``payment_status`` its payment's ("unpaid");
    ``payment_id`` is Ringwell's pending payment, ``expires_at`` when Stripe closes the session.
    """

    id: str
    url: str
    status: str
    payment_status: str
    payment_id: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class CheckoutStatus:
    """What the success page shows about a Checkout top-up: our payment row, and Stripe's view of
    the session while the payment is still pending (None when Stripe was not asked or not reachable)."""

    session_id: str
    amount_minor: int
    currency: str
    status: PaymentStatus
    card_brand: str | None
    card_last4: str | None
    stripe_status: str | None  # open | complete | expired
    stripe_payment_status: str | None  # unpaid | paid | no_payment_required


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

    async def create_checkout(self, org_id: str, amount_minor: int, currency: str | None, success_url: str,
                              cancel_url: str, customer_email: str | None = None) -> CheckoutTopUp:
        """Start a payment on the provider's hosted page; stores a pending payment."""
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


def _id_of(value: Any) -> str | None:
    """The id of an expandable field: the string itself, or the expanded object's ``id``."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _return_url(field: str, url: str) -> str:
    if not isinstance(url, str) or len(url) > MAX_RETURN_URL or not url.startswith(("https://", "http://")):
        raise InvalidBillingData(f"{field} must be an http(s) URL of at most {MAX_RETURN_URL} characters",
                                 {"field": field})
    return url


class StripeProvider:
    """Stripe Checkout Sessions and PaymentIntents through the official ``stripe`` library (its
    blocking calls run in threads)."""

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

    @property
    def checkout_origin(self) -> str:
        """The origin of the Checkout pages the portal redirects to (for its CSP ``form-action``).

        Stripe's own ``https://checkout.stripe.com``; with another ``api_base`` (a test double
        of Stripe), that host, which then serves the Checkout pages too.
        """
        if self._api_base is None:
            return CHECKOUT_ORIGIN
        parts = urlsplit(self._api_base)
        origin = f"{parts.scheme}://{parts.netloc}"
        return origin if _ORIGIN_RE.fullmatch(origin) else CHECKOUT_ORIGIN

    async def _amount(self, org_id: str, amount_minor: int, currency: str | None) -> tuple[str, int]:
        """The org's currency and ``amount_minor`` in Stripe's units, checked against Stripe's bounds."""
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
        return org_currency, stripe_amount

    async def _store_pending(self, payment_id: str, org_id: str, provider_id: str, amount_minor: int,
                             currency: str) -> None:
        async with self._sessions() as session, session.begin():
            session.add(Payment(id=payment_id, org_id=org_id, provider=self.name, provider_id=provider_id,
                                amount_minor=amount_minor, currency=currency, status=PaymentStatus.PENDING.value))

    async def create_top_up(self, org_id: str, amount_minor: int, currency: str | None = None) -> TopUpIntent:
        """Create a PaymentIntent for ``amount_minor`` of the org's currency and store it pending."""
        org_currency, stripe_amount = await self._amount(org_id, amount_minor, currency)
        payment_id = new_id()
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": stripe_amount,
            "currency": org_currency.lower(),
            "automatic_payment_methods": {"enabled": True},
            "description": DESCRIPTION,
            "metadata": {"ringwell_org_id": org_id, "ringwell_payment_id": payment_id},
        }
        options: stripe.RequestOptions = {"idempotency_key": f"ringwell-top-up-{payment_id}"}
        try:
            intent = await asyncio.to_thread(self._client.v1.payment_intents.create, params, options)
        except stripe.StripeError as exc:
            raise PaymentProviderError(f"Stripe refused the top-up: {exc.user_message or exc}",
                                       {"provider": self.name}) from exc
        await self._store_pending(payment_id, org_id, intent.id, amount_minor, org_currency)
        log.info("top-up %s of org %s: PaymentIntent %s for %d %s minor units", payment_id, org_id, intent.id,
                 amount_minor, org_currency)
        return TopUpIntent(intent.id, intent.client_secret or "", intent.status)

    async def create_checkout(self, org_id: str, amount_minor: int, currency: str | None, success_url: str,
                              cancel_url: str, customer_email: str | None = None) -> CheckoutTopUp:
        """Create a Checkout Session (``mode=payment``) for ``amount_minor`` of the org's currency and
        store the payment pending under the session's id.

        ``success_url`` should carry ``{CHECKOUT_SESSION_ID}``, which Stripe replaces with the
        session's id when it sends the customer back. Both the session and the PaymentIntent
        Checkout creates carry ``ringwell_org_id`` and ``ringwell_payment_id`` in their metadata
        (the session's ``client_reference_id`` is the payment id too).
        """
        _return_url("success_url", success_url)
        _return_url("cancel_url", cancel_url)
        org_currency, stripe_amount = await self._amount(org_id, amount_minor, currency)
        payment_id = new_id()
        metadata = {"ringwell_org_id": org_id, "ringwell_payment_id": payment_id}
        params: stripe.params.checkout.SessionCreateParams = {
            "mode": "payment",
            "line_items": [{
                "price_data": {"currency": org_currency.lower(), "unit_amount": stripe_amount,
                               "product_data": {"name": PRODUCT_NAME}},
                "quantity": 1,
            }],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": payment_id,
            "metadata": metadata,
            "payment_intent_data": {"description": DESCRIPTION, "metadata": metadata},
        }
        if customer_email:
            params["customer_email"] = customer_email
        options: stripe.RequestOptions = {"idempotency_key": f"ringwell-checkout-{payment_id}"}
        try:
            created = await asyncio.to_thread(self._client.v1.checkout.sessions.create, params, options)
        except stripe.StripeError as exc:
            raise PaymentProviderError(f"Stripe refused the top-up: {exc.user_message or exc}",
                                       {"provider": self.name}) from exc
        if not created.url or not CHECKOUT_SESSION_RE.fullmatch(created.id):
            raise PaymentProviderError("Stripe returned a Checkout Session without a payment page",
                                       {"provider": self.name})
        await self._store_pending(payment_id, org_id, created.id, amount_minor, org_currency)
        log.info("top-up %s of org %s: Checkout Session %s for %d %s minor units", payment_id, org_id, created.id,
                 amount_minor, org_currency)
        expires = datetime.fromtimestamp(created.expires_at, UTC) if created.expires_at else None
        return CheckoutTopUp(created.id, created.url, str(created.status or "open"), str(created.payment_status),
                             payment_id, expires)

    async def checkout_status(self, org_id: str, session_id: str, *, ask_stripe: bool = True) -> CheckoutStatus | None:
        """The org's Checkout top-up ``session_id`` (None if it is not the org's, or no such session).

        While the payment is pending Stripe is asked about the session (errors only logged).
        This never credits anything: only the signed webhook does.
        """
        if not CHECKOUT_SESSION_RE.fullmatch(session_id):
            return None
        async with self._sessions() as session:
            row = await repo.payment_by_provider_id(session, self.name, session_id)
        if row is None or row.org_id != org_id:
            return None
        stripe_status = stripe_payment_status = None
        if ask_stripe and row.status == PaymentStatus.PENDING.value:
            try:
                found = await asyncio.to_thread(self._client.v1.checkout.sessions.retrieve, session_id)
            except stripe.StripeError as exc:
                log.warning("could not retrieve Checkout Session %s from Stripe: %s", session_id, exc)
            else:
                stripe_status, stripe_payment_status = found.status, found.payment_status
        return CheckoutStatus(session_id, row.amount_minor, row.currency, PaymentStatus(row.status), row.card_brand,
                              row.card_last4, stripe_status, stripe_payment_status)

    async def handle_webhook(self, payload: bytes, signature_header: str) -> WebhookOutcome:
        """Verify the ``Stripe-Signature`` (HMAC-SHA256, timestamp within ``tolerance``) and act on the event.

        ``payment_intent.succeeded``, ``checkout.session.completed`` (when paid) and
        ``checkout.session.async_payment_succeeded`` credit the org once per payment;
        ``payment_intent.payment_failed`` marks a PaymentIntent top-up failed, and
        ``checkout.session.expired`` / ``async_payment_failed`` a Checkout one; anything else is
        acknowledged and ignored.
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
        if kind in _CHECKOUT_PAID:
            return await self._checkout_paid(event_id, kind, obj)
        if kind in _CHECKOUT_FAILED:
            return await self._checkout_failed(event_id, kind, obj)
        log.debug("Stripe event %s (%s) ignored", event_id, kind)
        return WebhookOutcome(event_id, kind, WebhookAction.IGNORED)

    async def _seen(self, event_id: str) -> bool:
        async with self._sessions() as session:
            return await repo.event_seen(session, self.name, event_id)

    async def _by_provider_id(self, provider_id: str) -> Payment | None:
        async with self._sessions() as session:
            return await repo.payment_by_provider_id(session, self.name, provider_id)

    async def _payment_of_intent(self, intent_id: str, metadata: Any) -> Payment | None:
        """The payment a PaymentIntent pays: ours by its id, or — created by Checkout — the Checkout
        payment its metadata names (same org, and a payment stored under a session id)."""
        payment = await self._by_provider_id(intent_id)
        if payment is not None or not isinstance(metadata, dict):
            return payment
        payment_id, org_id = metadata.get("ringwell_payment_id"), metadata.get("ringwell_org_id")
        if not isinstance(payment_id, str) or not 0 < len(payment_id) <= 36:
            return None
        async with self._sessions() as session:
            candidate: Payment | None = await session.get(Payment, payment_id)
        if (candidate is None or candidate.provider != self.name or candidate.org_id != org_id
                or not CHECKOUT_SESSION_RE.fullmatch(candidate.provider_id)):
            return None
        return candidate

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
        if await self._seen(event_id):
            return WebhookOutcome(event_id, kind, WebhookAction.DUPLICATE)
        payment = await self._payment_of_intent(intent_id, obj.get("metadata"))
        if payment is None:
            log.warning("Stripe event %s is about PaymentIntent %s, which Ringwell did not create: ignored",
                        event_id, intent_id)
            return WebhookOutcome(event_id, kind, WebhookAction.IGNORED)
        # The event's copy of the intent does not expand latest_charge; then Stripe is asked (for the truth too).
        return await self._credit(event_id, kind, payment, intent_id, obj if _card_of(obj) is not None else None)

    async def _checkout_paid(self, event_id: str, kind: str, obj: dict[str, Any]) -> WebhookOutcome:
        session_id = str(obj.get("id", ""))
        if await self._seen(event_id):
            return WebhookOutcome(event_id, kind, WebhookAction.DUPLICATE)
        payment = await self._by_provider_id(session_id)
        if payment is None:
            log.warning("Stripe event %s is about Checkout Session %s, which Ringwell did not create: ignored",
                        event_id, session_id)
            return WebhookOutcome(event_id, kind, WebhookAction.IGNORED)
        intent_id = _id_of(obj.get("payment_intent"))
        if obj.get("payment_status") != "paid" or intent_id is None:
            # A delayed payment method: checkout.session.async_payment_succeeded follows when it is paid.
            log.info("Checkout Session %s completed but is %r: waiting for the payment", session_id,
                     obj.get("payment_status"))
            return WebhookOutcome(event_id, kind, WebhookAction.IGNORED, payment.id)
        return await self._credit(event_id, kind, payment, intent_id, None)

    async def _credit(self, event_id: str, kind: str, payment: Payment, intent_id: str,
                      intent: dict[str, Any] | None) -> WebhookOutcome:
        """Credit ``payment`` by the PaymentIntent ``intent_id`` once (retrieved from Stripe unless
        ``intent`` is given with its charge expanded)."""
        if payment.status == PaymentStatus.SUCCEEDED.value:
            await self._record(event_id, kind, payment.id)
            return WebhookOutcome(event_id, kind, WebhookAction.DUPLICATE, payment.id, payment.transaction_id)
        if intent is None:
            intent = await self._retrieve(intent_id)
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
        # Idempotent per PaymentIntent: two events about one payment handled at once still credit once.
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
        # Only a PaymentIntent top-up is failed by its intent: on a Checkout page the customer may
        # still try another card, and the session's own events say when it is over.
        return await self._mark_failed(event_id, kind, str(obj.get("id", "")))

    async def _checkout_failed(self, event_id: str, kind: str, obj: dict[str, Any]) -> WebhookOutcome:
        return await self._mark_failed(event_id, kind, str(obj.get("id", "")))

    async def _mark_failed(self, event_id: str, kind: str, provider_id: str) -> WebhookOutcome:
        if await self._seen(event_id):
            return WebhookOutcome(event_id, kind, WebhookAction.DUPLICATE)
        payment = await self._by_provider_id(provider_id)
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
