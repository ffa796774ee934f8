"""A stand-in for the parts of the Stripe API that Ringwell's Stripe adapter uses.

Stripe cannot be reached from the test machines, so this HTTP server on 127.0.0.1 (an
ephemeral port) follows Stripe's documented API for exactly what the adapter calls, and the
real ``stripe`` library talks to it (``StripeClient(base_addresses={"api": fake.url})``):

- ``POST /v1/payment_intents`` — form-encoded (``metadata[k]=v``, ``automatic_payment_methods[enabled]=true``),
  secret-key auth (``Authorization: Bearer sk_...`` or HTTP Basic with the key as user name),
  ``Idempotency-Key`` honoured (same key + same parameters → the first response again, with
  ``Idempotent-Replayed: true``; same key + other parameters → 400 ``idempotency_error``).
  Returns a PaymentIntent object (``id`` "pi_...", ``object`` "payment_intent", ``status``
  "requires_payment_method", ``client_secret`` "pi_..._secret_...", ``latest_charge`` null, ...).
- ``GET /v1/payment_intents/{id}`` — with ``expand[]=latest_charge`` (the library sends
  ``expand[0]=latest_charge``) the Charge object replaces its id.
- ``POST /v1/payment_intents/{id}/confirm`` with one of Stripe's test PaymentMethods
  (``pm_card_visa``, ``pm_card_mastercard``, ``pm_card_chargeDeclined``).
- ``POST /v1/checkout/sessions`` — ``mode=payment`` with inline prices
  (``line_items[0][price_data][currency|unit_amount|product_data][name]``, ``line_items[0][quantity]``),
  ``success_url``, ``cancel_url``, ``client_reference_id``, ``customer_email``, ``metadata[k]`` and
  ``payment_intent_data[description|metadata][k]``; idempotency as above. Returns a Checkout
  Session object (``id`` "cs_test_...", ``object`` "checkout.session", ``status`` "open",
  ``payment_status`` "unpaid", ``payment_intent`` null — since API version 2022-08-01 Checkout
  creates the PaymentIntent only when the customer pays —, ``amount_total``, ``url`` of the hosted
  page, ``expires_at`` 24 h on, ...). The hosted page is served by this fake at ``/c/pay/{id}``
  (Stripe serves it at https://checkout.stripe.com/c/pay/{id}).
- ``GET /v1/checkout/sessions/{id}`` — with ``expand[]=payment_intent`` the PaymentIntent replaces its id.
- Errors in Stripe's shape: ``{"error": {"type", "code", "message", "param", "doc_url", ...}}``
  with 400/401/402/404 as Stripe answers them.

For the test itself: ``confirm(intent_id, card_number, exp_month, exp_year)`` plays Stripe.js
collecting a card in the customer's browser (the card number stays inside the fake, as it
stays inside Stripe: only brand, last4, expiry and a fingerprint come back), and
``event(type, intent_id)`` + ``sign(payload, secret)`` build a webhook delivery as Stripe
sends it (``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>``).
``complete_checkout(session_id, card_number, ...)`` plays the customer paying on the hosted
Checkout page: the PaymentIntent is created with the session's ``payment_intent_data`` (its
metadata copied), confirmed as ``confirm`` does, and the session becomes ``complete``/``paid``;
it returns the events Stripe then sends (``payment_intent.created``, ``charge.succeeded``,
``payment_intent.succeeded``, ``checkout.session.completed``); ``signed(event, secret)`` gives a
delivery's body and headers, ``return_url(session_id)`` where Stripe sends the browser back, and
``expire_checkout(session_id)`` the ``checkout.session.expired`` event of an abandoned session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["API_VERSION", "FakeStripe", "sign"]

API_VERSION = "2026-10-28.endive"
DOCS = "https://docs.stripe.com/error-codes"
# Stripe's documented test cards (docs.stripe.com/testing): number → (brand, funding, test PaymentMethod).
TEST_CARDS = {
    "4242424242424242": ("visa", "credit", "pm_card_visa"),
    "5555555555554444": ("mastercard", "credit", "pm_card_mastercard"),
    "4000000000000002": ("visa", "credit", "pm_card_chargeDeclined"),
}
DECLINED = {"4000000000000002"}
# Minimum charge amounts (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts), smallest unit.
MINIMUMS = {"usd": 50, "eur": 50, "gbp": 30, "jpy": 50, "chf": 50, "cad": 50, "aud": 50}
MAXIMUM = 99_999_999
CHECKOUT_LIFETIME = 24 * 3600  # a Checkout Session expires 24 h after creation by default


def _id(prefix: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(24))


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload`` (docs.stripe.com/webhooks#verify-manually)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class StripeHTTPError(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str | None = None, param: str | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"{DOCS}#{code.replace('_', '-')}"
        if param:
            self.body["param"] = param
        self.body.update(extra)


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form keys as Stripe reads them, at any depth: ``a[b]=1`` → {"a": {"b": "1"}}, ``a[0]=x`` or
    ``a[]=x`` → {"a": ["x"]}, ``line_items[0][price_data][currency]=usd`` →
    {"line_items": [{"price_data": {"currency": "usd"}}]}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        name, _, rest = key.partition("[")
        path = [name, *(rest[:-1].split("][") if rest.endswith("]") else [])]
        node = root
        for depth, part in enumerate(path):
            if part == "":  # a[]: the next index
                part = str(len(node))
            if depth == len(path) - 1:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    """Dicts keyed 0, 1, 2 ... (from ``a[0]``, ``a[1]``) become lists, in index order."""
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


@dataclass
class _State:
    api_key: str
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # Checkout Sessions
    intent_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # session id → its payment_intent_data
    base_url: str = ""
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeStripe:
    """``with FakeStripe("sk_test_...") as fake:`` — ``fake.url`` is the ``api_base`` to give the client."""

    def __init__(self, api_key: str) -> None:
        self.state = _State(api_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._server.daemon_threads = True
        self.state.base_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-stripe", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeStripe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request received: method, path, query, form, headers (lower-case names)."""
        with self.state.lock:
            return list(self.state.requests)

    def intent(self, intent_id: str, *, expand_charge: bool = False) -> dict[str, Any]:
        with self.state.lock:
            return _render_intent(self.state, intent_id, expand_charge)

    def confirm(self, intent_id: str, card_number: str = "4242424242424242", exp_month: int = 12,
                exp_year: int = 2034) -> dict[str, Any]:
        """Pay the intent with a test card, as Stripe.js does in the customer's browser."""
        with self.state.lock:
            return _confirm(self.state, intent_id, card_number, exp_month, exp_year)

    def session(self, session_id: str) -> dict[str, Any]:
        """The Checkout Session as ``GET /v1/checkout/sessions/{id}`` returns it."""
        with self.state.lock:
            return _render_session(self.state, session_id, expand_intent=False)

    def return_url(self, session_id: str) -> str:
        """Where Checkout sends the browser after the payment: ``success_url``, ``{CHECKOUT_SESSION_ID}`` filled in."""
        with self.state.lock:
            return str(self.state.sessions[session_id]["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)

    def complete_checkout(self, session_id: str, card_number: str = "4242424242424242", exp_month: int = 12,
                          exp_year: int = 2034) -> list[dict[str, Any]]:
        """Pay the session with a test card, as the customer does on the hosted page; the events Stripe sends.

        A declined card raises the 402 ``StripeHTTPError`` (the session stays open and keeps its
        PaymentIntent, so the customer can try another card, as on Stripe's page).
        """
        with self.state.lock:
            intent_id = _pay_session(self.state, session_id, card_number, exp_month, exp_year)
            charge_id = self.state.intents[intent_id]["latest_charge"]
        return [self.event("payment_intent.created", intent_id), self.event("charge.succeeded", charge_id),
                self.event("payment_intent.succeeded", intent_id),
                self.event("checkout.session.completed", session_id)]

    def expire_checkout(self, session_id: str) -> dict[str, Any]:
        """Expire an open session (``POST /v1/checkout/sessions/{id}/expire``, or 24 h passing); its event."""
        with self.state.lock:
            found = self.state.sessions.get(session_id)
            if found is None or found["status"] != "open":
                raise StripeHTTPError(400, "invalid_request_error", "Only Checkout Sessions with a status of open "
                                      "can be expired.", "checkout_session_unexpected_state")
            found.update(status="expired", url=None)
        return self.event("checkout.session.expired", session_id)

    @staticmethod
    def signed(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
        """A webhook delivery of ``event``: the raw JSON body and the headers Stripe sends with it."""
        body = json.dumps(event, indent=2).encode()
        return body, {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(body, secret),
                      "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}

    def event(self, type_: str, object_id: str, *, event_id: str | None = None,
              expand_charge: bool = False) -> dict[str, Any]:
        """An Event object (docs.stripe.com/api/events/object) whose ``data.object`` is the object now:
        a Checkout Session ("cs_..."), a Charge ("ch_...") or a PaymentIntent (any other id)."""
        with self.state.lock:
            if object_id.startswith("cs_"):
                obj = _render_session(self.state, object_id, expand_intent=False)
            elif object_id.startswith("ch_") and object_id in self.state.charges:
                obj = json.loads(json.dumps(self.state.charges[object_id]))
            else:
                obj = _render_intent(self.state, object_id, expand_charge)
        return {
            "id": event_id or _id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": _id("req_"), "idempotency_key": None},
            "type": type_,
        }


def _new_intent(form: dict[str, Any]) -> dict[str, Any]:
    if "amount" not in form:
        raise StripeHTTPError(400, "invalid_request_error", "Missing required param: amount.", "parameter_missing",
                              "amount")
    if "currency" not in form:
        raise StripeHTTPError(400, "invalid_request_error", "Missing required param: currency.",
                              "parameter_missing", "currency")
    try:
        amount = int(form["amount"])
    except (TypeError, ValueError):
        raise StripeHTTPError(400, "invalid_request_error", "Invalid integer: " + str(form["amount"]),
                              "parameter_invalid_integer", "amount") from None
    currency = str(form["currency"]).lower()
    if len(currency) != 3 or not currency.isalpha():
        raise StripeHTTPError(400, "invalid_request_error", f"Invalid currency: {currency}.", "parameter_invalid",
                              "currency")
    if amount < MINIMUMS.get(currency, 1):
        raise StripeHTTPError(400, "invalid_request_error", "Amount must be at least the minimum charge amount.",
                              "amount_too_small", "amount")
    if amount > MAXIMUM:
        raise StripeHTTPError(400, "invalid_request_error", "Amount must be no more than 99999999.",
                              "amount_too_large", "amount")
    apm = form.get("automatic_payment_methods") or {}
    intent_id = _id("pi_")
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": (
            {"allow_redirects": "always", "enabled": True} if apm.get("enabled") == "true" else None
        ),
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{intent_id}_secret_{_id('')}",
        "confirmation_method": "automatic",
        "created": int(time.time()),
        "currency": currency,
        "customer": None,
        "description": form.get("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": dict(form.get("metadata") or {}),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_options": {"card": {"installments": None, "mandate_options": None, "network": None,
                                            "request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def _render_intent(state: _State, intent_id: str, expand_charge: bool) -> dict[str, Any]:
    intent = state.intents.get(intent_id)
    if intent is None:
        raise StripeHTTPError(404, "invalid_request_error", f"No such payment_intent: '{intent_id}'",
                              "resource_missing", "intent")
    out = json.loads(json.dumps(intent))
    if expand_charge and out["latest_charge"]:
        out["latest_charge"] = json.loads(json.dumps(state.charges[out["latest_charge"]]))
    return out


def _confirm(state: _State, intent_id: str, card_number: str, exp_month: int, exp_year: int) -> dict[str, Any]:
    intent = state.intents.get(intent_id)
    if intent is None:
        raise StripeHTTPError(404, "invalid_request_error", f"No such payment_intent: '{intent_id}'",
                              "resource_missing", "intent")
    if intent["status"] == "succeeded":
        raise StripeHTTPError(400, "invalid_request_error",
                              "This PaymentIntent's payment_method could not be updated because it has a status of "
                              "succeeded.", "payment_intent_unexpected_state", payment_intent=intent)
    brand, funding, _pm = TEST_CARDS.get(card_number, ("visa", "credit", ""))
    charge_id, pm_id = _id("ch_"), _id("pm_")
    declined = card_number in DECLINED
    charge = {
        "id": charge_id,
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0 if declined else intent["amount"],
        "amount_refunded": 0,
        "balance_transaction": None if declined else _id("txn_"),
        "billing_details": {"address": {"city": None, "country": None, "line1": None, "line2": None,
                                        "postal_code": "94107", "state": None},
                            "email": None, "name": None, "phone": None},
        "captured": not declined,
        "created": int(time.time()),
        "currency": intent["currency"],
        "description": intent["description"],
        "failure_code": "card_declined" if declined else None,
        "failure_message": "Your card was declined." if declined else None,
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "outcome": {"network_status": "declined_by_network" if declined else "approved_by_network",
                    "reason": "generic_decline" if declined else None, "risk_level": "normal",
                    "seller_message": "The bank did not return any further details with this decline."
                    if declined else "Payment complete.",
                    "type": "issuer_declined" if declined else "authorized"},
        "paid": not declined,
        "payment_intent": intent_id,
        "payment_method": pm_id,
        "payment_method_details": {
            "card": {
                "amount_authorized": None if declined else intent["amount"],
                "brand": brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": "pass", "cvc_check": "pass"},
                "country": "US",
                "exp_month": exp_month,
                "exp_year": exp_year,
                "fingerprint": hashlib.sha256(card_number.encode()).hexdigest()[:16],
                "funding": funding,
                "installments": None,
                "last4": card_number[-4:],
                "mandate": None,
                "network": brand,
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "refunded": False,
        "status": "failed" if declined else "succeeded",
    }
    state.charges[charge_id] = charge
    intent["latest_charge"] = charge_id
    if declined:
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {"charge": charge_id, "code": "card_declined", "decline_code": "generic_decline",
                                        "message": "Your card was declined.", "type": "card_error"}
        raise StripeHTTPError(402, "card_error", "Your card was declined.", "card_declined", charge=charge_id,
                              decline_code="generic_decline", payment_intent=json.loads(json.dumps(intent)))
    intent.update(status="succeeded", amount_received=intent["amount"], payment_method=pm_id,
                  last_payment_error=None)
    return json.loads(json.dumps(intent))


def _bad(message: str, code: str, param: str) -> StripeHTTPError:
    return StripeHTTPError(400, "invalid_request_error", message, code, param)


def _integer(value: Any, param: str) -> int:
    if not isinstance(value, str) or not value.lstrip("-").isdigit():
        raise _bad(f"Invalid integer: {value}", "parameter_invalid_integer", param)
    return int(value)


def _new_session(form: dict[str, Any], base_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Checkout Session in ``payment`` mode with inline prices, and its ``payment_intent_data``."""
    mode = form.get("mode")
    if mode is None:
        raise _bad("Missing required param: mode.", "parameter_missing", "mode")
    if mode != "payment":  # what this fake implements; Stripe also has setup and subscription
        raise _bad(f"Invalid mode: must be one of payment, setup, or subscription (this fake: payment), not {mode}",
                   "parameter_invalid", "mode")
    items = form.get("line_items")
    if not isinstance(items, list) or not items:
        raise _bad("You must provide at least one line item.", "parameter_missing", "line_items")
    currency, total = None, 0
    for index, item in enumerate(items):
        where = f"line_items[{index}]"
        price = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(price, dict):
            raise _bad(f"Missing required param: {where}[price_data].", "parameter_missing", f"{where}[price_data]")
        for name in ("currency", "unit_amount"):
            if name not in price:
                raise _bad(f"Missing required param: {where}[price_data][{name}].", "parameter_missing",
                           f"{where}[price_data][{name}]")
        product = price.get("product_data")
        if not isinstance(product, dict) or not product.get("name"):
            raise _bad(f"Missing required param: {where}[price_data][product_data][name].", "parameter_missing",
                       f"{where}[price_data][product_data][name]")
        if "quantity" not in item:
            raise _bad(f"Missing required param: {where}[quantity].", "parameter_missing", f"{where}[quantity]")
        item_currency = str(price["currency"]).lower()
        if len(item_currency) != 3 or not item_currency.isalpha():
            raise _bad(f"Invalid currency: {item_currency}.", "parameter_invalid", f"{where}[price_data][currency]")
        if currency is not None and item_currency != currency:
            raise _bad("All line items must use the same currency.", "parameter_invalid", "line_items")
        currency = item_currency
        quantity = _integer(item["quantity"], f"{where}[quantity]")
        if quantity < 1:
            raise _bad("Quantity must be at least 1.", "parameter_invalid", f"{where}[quantity]")
        total += _integer(price["unit_amount"], f"{where}[price_data][unit_amount]") * quantity
    assert currency is not None
    if total < MINIMUMS.get(currency, 1):
        raise _bad("The Checkout Session's total amount due must add up to at least the minimum charge amount.",
                   "amount_too_small", "line_items")
    if total > MAXIMUM:
        raise _bad("The Checkout Session's total amount due must be no more than 99999999.", "amount_too_large",
                   "line_items")
    for name in ("success_url", "cancel_url"):
        url = form.get(name)
        if name == "success_url" and url is None:
            raise _bad("Missing required param: success_url.", "parameter_missing", name)
        if url is not None and not str(url).startswith(("https://", "http://")):
            raise _bad("Not a valid URL", "url_invalid", name)
    session_id = "cs_test_" + _id("") + _id("")[:34]
    created = int(time.time())
    session = {
        "id": session_id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": form.get("cancel_url"),
        "client_reference_id": form.get("client_reference_id"),
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": form.get("customer_email"),
        "expires_at": created + CHECKOUT_LIFETIME,
        "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": {}},
        "livemode": False,
        "locale": None,
        "metadata": dict(form.get("metadata") or {}),
        "mode": "payment",
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": form.get("submit_type"),
        "subscription": None,
        "success_url": form.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": f"{base_url}/c/pay/{session_id}#fid{_id('')}",
    }
    intent_data = form.get("payment_intent_data")
    return session, dict(intent_data) if isinstance(intent_data, dict) else {}


def _render_session(state: _State, session_id: str, expand_intent: bool) -> dict[str, Any]:
    found = state.sessions.get(session_id)
    if found is None:
        raise StripeHTTPError(404, "invalid_request_error", f"No such checkout.session: '{session_id}'",
                              "resource_missing", "session")
    out = json.loads(json.dumps(found))
    if expand_intent and out["payment_intent"]:
        out["payment_intent"] = _render_intent(state, out["payment_intent"], False)
    return out


def _pay_session(state: _State, session_id: str, card_number: str, exp_month: int, exp_year: int) -> str:
    """The customer pays on the hosted page: Checkout creates the PaymentIntent (once) and confirms it."""
    session = state.sessions.get(session_id)
    if session is None:
        raise StripeHTTPError(404, "invalid_request_error", f"No such checkout.session: '{session_id}'",
                              "resource_missing", "session")
    if session["status"] != "open":
        raise StripeHTTPError(400, "invalid_request_error", f"This Checkout Session is {session['status']}.",
                              "checkout_session_unexpected_state")
    if session["payment_intent"] is None:
        data = state.intent_data.get(session_id, {})
        intent = _new_intent({"amount": str(session["amount_total"]), "currency": session["currency"],
                              "description": data.get("description"), "metadata": data.get("metadata") or {}})
        intent["automatic_payment_methods"] = None
        state.intents[intent["id"]] = intent
        session["payment_intent"] = intent["id"]
    intent_id = str(session["payment_intent"])
    _confirm(state, intent_id, card_number, exp_month, exp_year)  # a decline raises; the session stays open
    session.update(status="complete", payment_status="paid", url=None,
                   customer_details={"address": {"city": None, "country": "US", "line1": None, "line2": None,
                                                 "postal_code": "94107", "state": None},
                                     "email": session["customer_email"] or "customer@example.com", "name": None,
                                     "phone": None, "tax_exempt": "none", "tax_ids": []})
    return intent_id


CHECKOUT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Checkout (fake Stripe)</title></head><body><h1>Pay {amount} {currency}</h1><p>{status}</p></body></html>"""


def _authorized(state: _State, header: str | None) -> None:
    if not header:
        raise StripeHTTPError(401, "invalid_request_error",
                              "You did not provide an API key. You need to provide your API key in the Authorization "
                              "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
    scheme, _, value = header.partition(" ")
    key = value.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key).decode().partition(":")[0]
        except ValueError:
            key = ""
    elif scheme.lower() != "bearer":
        key = ""
    if key != state.api_key:
        shown = f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"
        raise StripeHTTPError(401, "invalid_request_error", f"Invalid API Key provided: {shown}",
                              "api_key_invalid" if key else None)


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: pytest shows failures, not every request

        def _reply(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", _id("req_"))
            self.send_header("Stripe-Version", self.headers.get("Stripe-Version") or API_VERSION)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _page(self, session_id: str) -> None:
            """The hosted Checkout page (no API key: the customer's browser opens it)."""
            with state.lock:
                found = state.sessions.get(session_id)
            if found is None:
                status, data = 404, b"Something went wrong"
            else:
                status = 200
                data = CHECKOUT_PAGE.format(amount=found["amount_total"], currency=found["currency"],
                                            status=found["status"]).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            if method == "GET" and parts.path.startswith("/c/pay/"):
                self._page(parts.path.removeprefix("/c/pay/"))
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            query = _nest(parse_qsl(parts.query, keep_blank_values=True))
            form = _nest(parse_qsl(raw, keep_blank_values=True)) if method == "POST" else {}
            with state.lock:
                state.requests.append({"method": method, "path": parts.path, "query": query, "form": form,
                                       "headers": {k.lower(): v for k, v in self.headers.items()}})
            try:
                with state.lock:
                    _authorized(state, self.headers.get("Authorization"))
                    status, body, extra = self._route(method, parts.path, query, form)
            except StripeHTTPError as exc:
                self._reply(exc.status, {"error": exc.body})
                return
            self._reply(status, body, extra)

        def _route(self, method: str, path: str, query: dict[str, Any],
                   form: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
            segments = [s for s in path.split("/") if s]
            if method == "POST" and segments in (["v1", "payment_intents"], ["v1", "checkout", "sessions"]):
                key = self.headers.get("Idempotency-Key")
                request = json.dumps([path, form], sort_keys=True)
                if key and key in state.idempotency:
                    first_request, status, body = state.idempotency[key]
                    if first_request != request:
                        raise StripeHTTPError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they were first "
                            f"used with. Try using a key other than '{key}' if you meant to execute a different "
                            "request.")
                    return status, body, {"Idempotent-Replayed": "true", "Idempotency-Key": key}
                if segments[1] == "payment_intents":
                    created = _new_intent(form)
                    state.intents[created["id"]] = created
                else:
                    created, intent_data = _new_session(form, state.base_url)
                    state.sessions[created["id"]] = created
                    state.intent_data[created["id"]] = intent_data
                body = json.loads(json.dumps(created))
                if key:
                    state.idempotency[key] = (request, 200, body)
                return 200, body, ({"Idempotency-Key": key} if key else {})
            if len(segments) == 4 and segments[:3] == ["v1", "checkout", "sessions"] and method == "GET":
                expand = query.get("expand") or []
                return 200, _render_session(state, segments[3], "payment_intent" in expand), {}
            if len(segments) == 3 and segments[:2] == ["v1", "payment_intents"] and method == "GET":
                expand = query.get("expand") or []
                return 200, _render_intent(state, segments[2], "latest_charge" in expand), {}
            if (len(segments) == 4 and segments[:2] == ["v1", "payment_intents"] and segments[3] == "confirm"
                    and method == "POST"):
                numbers = {pm: number for number, (_b, _f, pm) in TEST_CARDS.items()}
                number = numbers.get(str(form.get("payment_method", "")))
                if number is None:
                    raise StripeHTTPError(400, "invalid_request_error",
                                          f"No such PaymentMethod: '{form.get('payment_method')}'",
                                          "resource_missing", "payment_method")
                return 200, _confirm(state, segments[2], number, 12, 2034), {}
            raise StripeHTTPError(404, "invalid_request_error",
                                  f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                                  "or we can help at https://support.stripe.com/.")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
