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
- Errors in Stripe's shape: ``{"error": {"type", "code", "message", "param", "doc_url", ...}}``
  with 400/401/402/404 as Stripe answers them.

For the test itself: ``confirm(intent_id, card_number, exp_month, exp_year)`` plays Stripe.js
collecting a card in the customer's browser (the card number stays inside the fake, as it
stays inside Stripe: only brand, last4, expiry and a fingerprint come back), and
``event(type, intent_id)`` + ``sign(payload, secret)`` build a webhook delivery as Stripe
sends it (``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>``).
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
    """Form keys as Stripe reads them: ``a[b]=1`` → {"a": {"b": "1"}}, ``a[0]=x`` or ``a[]=x`` → {"a": ["x"]}.

    One level deep: what the adapter sends (metadata, automatic_payment_methods, expand).
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        name, _, rest = key.partition("[")
        if not rest:
            out[name] = value
            continue
        inner = rest.rstrip("]")
        if inner == "" or inner.isdigit():
            out.setdefault(name, []).append(value)
        else:
            out.setdefault(name, {})[inner] = value
    return out


@dataclass
class _State:
    api_key: str
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeStripe:
    """``with FakeStripe("sk_test_...") as fake:`` — ``fake.url`` is the ``api_base`` to give the client."""

    def __init__(self, api_key: str) -> None:
        self.state = _State(api_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._server.daemon_threads = True
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

    def event(self, type_: str, intent_id: str, *, event_id: str | None = None,
              expand_charge: bool = False) -> dict[str, Any]:
        """An Event object (docs.stripe.com/api/events/object) whose ``data.object`` is the intent now."""
        with self.state.lock:
            obj = _render_intent(self.state, intent_id, expand_charge)
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

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
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
            if method == "POST" and segments == ["v1", "payment_intents"]:
                key = self.headers.get("Idempotency-Key")
                if key and key in state.idempotency:
                    first_form, status, body = state.idempotency[key]
                    if first_form != json.dumps(form, sort_keys=True):
                        raise StripeHTTPError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they were first "
                            f"used with. Try using a key other than '{key}' if you meant to execute a different "
                            "request.")
                    return status, body, {"Idempotent-Replayed": "true", "Idempotency-Key": key}
                intent = _new_intent(form)
                state.intents[intent["id"]] = intent
                body = json.loads(json.dumps(intent))
                if key:
                    state.idempotency[key] = (json.dumps(form, sort_keys=True), 200, body)
                return 200, body, ({"Idempotency-Key": key} if key else {})
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
