"""Stripe top-ups end to end: the real ``stripe`` library against a fake Stripe on loopback, webhooks
through the real HTTP route, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import stripe
from sqlalchemy import select

import ringwell.storage.models  # noqa: F401 - every table on Base.metadata
from ringwell.features.accounts.service import AccountsService
from ringwell.features.billing.errors import InvalidBillingData, InvalidWebhook, PaymentProviderError
from ringwell.features.billing.models import Payment, PaymentEvent
from ringwell.features.billing.payments import StripeProvider, WebhookAction
from ringwell.features.billing.routes import MAX_WEBHOOK_BYTES, stripe_routes
from ringwell.features.billing.service import Balance, LedgerService
from ringwell.storage.base import Base
from ringwell.storage.engine import create_engine, session_factory
from ringwell.web.app import build_app
from tests.peers.fake_stripe import FakeStripe, sign

API_KEY = "sk_test_51RingwellFakeKey0000000000"
WEBHOOK_SECRET = "whsec_ringwell_test_secret"
CARD = "4242424242424242"


@pytest.fixture
def fake():
    with FakeStripe(API_KEY) as server:
        yield server


@pytest.fixture
async def sessions(db_url):
    engine = create_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def acme(sessions):
    return (await AccountsService(sessions, "ringwell").create_org("Acme")).id


@pytest.fixture
def ledger(sessions):
    return LedgerService(sessions)


@pytest.fixture
def provider(sessions, ledger, fake):
    return StripeProvider(sessions, ledger, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=fake.url)


@pytest.fixture
async def http(provider):
    app = build_app(lambda: {}, stripe_routes(provider))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ringwell") as client:
        yield client


async def deliver(http, event, secret=WEBHOOK_SECRET, timestamp=None, payload=None):
    """POST an event to /webhooks/stripe as Stripe does: the raw JSON body and its signature."""
    body = payload if payload is not None else json.dumps(event, indent=2).encode()
    return await http.post("/webhooks/stripe", content=body, headers={
        "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(body, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})


async def payment(sessions, intent_id) -> Payment:
    async with sessions() as session:
        return (await session.execute(select(Payment).where(Payment.provider_id == intent_id))).scalar_one()


async def test_a_top_up_creates_a_payment_intent_and_a_pending_payment(provider, sessions, ledger, acme, fake):
    intent = await provider.create_top_up(acme, 2500, "USD")
    assert intent.id.startswith("pi_") and intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.status == "requires_payment_method"
    row = await payment(sessions, intent.id)
    assert (row.org_id, row.provider, row.amount_minor, row.currency, row.status) == (acme, "stripe", 2500, "USD",
                                                                                      "pending")
    request = fake.requests[-1]
    assert (request["method"], request["path"]) == ("POST", "/v1/payment_intents")
    assert request["form"] == {"amount": "2500", "currency": "usd", "automatic_payment_methods": {"enabled": "true"},
                               "description": "Ringwell credit top-up",
                               "metadata": {"ringwell_org_id": acme, "ringwell_payment_id": row.id}}
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert request["headers"]["idempotency-key"] == f"ringwell-top-up-{row.id}"
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)  # nothing until Stripe says it is paid


async def test_a_succeeded_payment_is_credited_once(provider, http, sessions, ledger, acme, fake):
    intent = await provider.create_top_up(acme, 2500)
    fake.confirm(intent.id, CARD, 12, 2034)
    event = fake.event("payment_intent.succeeded", intent.id)
    response = await deliver(http, event)
    assert (response.status_code, response.json()) == (200, {"received": True})
    assert await ledger.balance(acme) == Balance("USD", 2500, 0, 2500)
    # The event carries latest_charge as an id: the adapter asked Stripe for the charge.
    retrieval = [r for r in fake.requests if r["method"] == "GET"][-1]
    assert retrieval["path"] == f"/v1/payment_intents/{intent.id}" and retrieval["query"]["expand"] == ["latest_charge"]

    # Stripe retries the same event, then sends another event about the same PaymentIntent.
    assert (await deliver(http, event)).status_code == 200
    assert (await deliver(http, fake.event("payment_intent.succeeded", intent.id))).status_code == 200
    assert await ledger.balance(acme) == Balance("USD", 2500, 0, 2500)
    entries = await ledger.entries(acme)
    assert [(e.kind, e.amount_minor, e.reference) for e in entries] == [("top_up", 2500, intent.id)]
    row = await payment(sessions, intent.id)
    assert (row.status, row.card_brand, row.card_last4, row.card_exp_month, row.card_exp_year) == (
        "succeeded", "visa", "4242", 12, 2034)
    assert row.transaction_id == entries[0].id and row.succeeded_at is not None
    async with sessions() as session:
        events = (await session.execute(select(PaymentEvent.event_id))).scalars().all()
    assert len(events) == 2 and event["id"] in events
    assert (await ledger.verify(acme)).ok


async def test_outcomes_say_what_happened(provider, acme, fake):
    intent = await provider.create_top_up(acme, 1000)
    fake.confirm(intent.id, "5555555555554444", 3, 2031)
    event = fake.event("payment_intent.succeeded", intent.id, expand_charge=True)  # charge inline: no retrieval
    body = json.dumps(event).encode()
    before = len(fake.requests)
    first = await provider.handle_webhook(body, sign(body, WEBHOOK_SECRET))
    assert len(fake.requests) == before
    second = await provider.handle_webhook(body, sign(body, WEBHOOK_SECRET))
    assert (first.action, first.event_id, first.type) == (WebhookAction.CREDITED, event["id"],
                                                           "payment_intent.succeeded")
    assert first.transaction_id is not None and second.action == WebhookAction.DUPLICATE
    other = json.dumps(fake.event("customer.created", intent.id)).encode()
    assert (await provider.handle_webhook(other, sign(other, WEBHOOK_SECRET))).action == WebhookAction.IGNORED


@pytest.mark.parametrize("tamper", ["wrong secret", "other body", "stale", "no header", "not json"])
async def test_a_webhook_that_does_not_verify_is_400_and_credits_nothing(provider, http, sessions, ledger, acme,
                                                                        fake, tamper):
    intent = await provider.create_top_up(acme, 2500)
    fake.confirm(intent.id, CARD)
    event = fake.event("payment_intent.succeeded", intent.id)
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    if tamper == "wrong secret":
        headers["Stripe-Signature"] = sign(body, "whsec_someone_else")
    elif tamper == "other body":
        event["data"]["object"]["amount_received"] = 999_999
        body = json.dumps(event).encode()
    elif tamper == "stale":  # a replay of a recorded delivery, beyond the 5 minute tolerance
        headers["Stripe-Signature"] = sign(body, WEBHOOK_SECRET, int(time.time()) - 301)
    elif tamper == "no header":
        del headers["Stripe-Signature"]
    else:
        body = b"\xff not json"
        headers["Stripe-Signature"] = sign(body, WEBHOOK_SECRET)
    response = await http.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400
    error = response.json()
    assert error["error_id"] == "invalid_webhook" and error["message"] and isinstance(error["details"], dict)
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)
    assert (await payment(sessions, intent.id)).status == "pending"
    async with sessions() as session:
        assert (await session.execute(select(PaymentEvent))).scalars().all() == []


async def test_an_oversized_webhook_body_is_refused(http):
    response = await http.post("/webhooks/stripe", content=b"{" + b" " * MAX_WEBHOOK_BYTES + b"}",
                               headers={"Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 413 and response.json()["error_id"] == "invalid_webhook"


async def test_no_card_number_is_stored_anywhere(provider, http, sessions, acme, fake, db_url, tmp_path):
    intent = await provider.create_top_up(acme, 2500)
    fake.confirm(intent.id, CARD, 12, 2034)
    assert (await deliver(http, fake.event("payment_intent.succeeded", intent.id))).status_code == 200
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                text = " ".join(str(value) for value in row)
                assert CARD not in text and CARD[:6] not in text, table.name  # neither the number nor its BIN
    stored = await payment(sessions, intent.id)
    assert (stored.card_brand, stored.card_last4, stored.card_exp_month, stored.card_exp_year) == (
        "visa", "4242", 12, 2034)
    if db_url.startswith("sqlite"):  # and not in the file either (WAL included)
        for path in tmp_path.glob("test.db*"):
            assert CARD.encode() not in path.read_bytes()


async def test_a_failed_payment_is_marked_failed_and_a_later_success_still_credits(provider, http, sessions, ledger,
                                                                                 acme, fake):
    intent = await provider.create_top_up(acme, 1500)
    with pytest.raises(Exception, match="declined"):
        fake.confirm(intent.id, "4000000000000002")
    assert (await deliver(http, fake.event("payment_intent.payment_failed", intent.id))).status_code == 200
    assert (await payment(sessions, intent.id)).status == "failed"
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)
    fake.confirm(intent.id, CARD)  # the customer tries another card
    assert (await deliver(http, fake.event("payment_intent.succeeded", intent.id))).status_code == 200
    row = await payment(sessions, intent.id)
    assert (row.status, row.card_last4) == ("succeeded", "4242")
    assert await ledger.balance(acme) == Balance("USD", 1500, 0, 1500)


async def test_other_events_and_unknown_payment_intents_are_acknowledged_and_ignored(http, ledger, acme, fake):
    # A PaymentIntent made by something else on the same Stripe account, e.g. the operator's shop.
    client = stripe.StripeClient(API_KEY, base_addresses={"api": fake.url})
    foreign = client.v1.payment_intents.create({"amount": 5000, "currency": "usd"})
    fake.confirm(foreign.id, CARD)
    for event in (fake.event("payment_intent.succeeded", foreign.id), fake.event("charge.succeeded", foreign.id),
                  fake.event("payment_intent.created", foreign.id)):
        response = await deliver(http, event)
        assert (response.status_code, response.json()) == (200, {"received": True})
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)


async def test_when_stripe_cannot_be_asked_the_webhook_fails_and_its_retry_credits(provider, http, ledger, acme,
                                                                                 fake):
    intent = await provider.create_top_up(acme, 2500)
    fake.confirm(intent.id, CARD)
    event = fake.event("payment_intent.succeeded", intent.id)
    saved = fake.state.intents.pop(intent.id)  # Stripe answers 404 for a moment
    response = await deliver(http, event)
    assert response.status_code == 502 and response.json()["error_id"] == "payment_provider_error"
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)
    fake.state.intents[intent.id] = saved
    assert (await deliver(http, event)).status_code == 200  # Stripe's retry of the same event
    assert await ledger.balance(acme) == Balance("USD", 2500, 0, 2500)


async def test_stripe_errors_become_domain_errors_and_store_nothing(sessions, ledger, acme, fake):
    wrong = StripeProvider(sessions, ledger, api_key="sk_test_not_the_right_key_0000", webhook_secret=WEBHOOK_SECRET,
                           api_base=fake.url)
    with pytest.raises(PaymentProviderError, match="Invalid API Key"):
        await wrong.create_top_up(acme, 2500)
    right = StripeProvider(sessions, ledger, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=fake.url)
    with pytest.raises(PaymentProviderError, match="minimum charge amount"):
        await right.create_top_up(acme, 10)  # $0.10 is below Stripe's $0.50 minimum
    with pytest.raises(InvalidBillingData):
        await right.create_top_up(acme, 1000, "EUR")  # Acme pays in USD
    with pytest.raises(InvalidBillingData):
        await right.create_top_up(acme, 0)
    async with sessions() as session:
        assert (await session.execute(select(Payment))).scalars().all() == []
    assert "sk_test" not in repr(right) and "whsec" not in repr(right)


async def test_a_webhook_straight_to_the_provider_raises_invalid_webhook(provider):
    body = b'{"id": "evt_1", "object": "event"}'
    with pytest.raises(InvalidWebhook):
        await provider.handle_webhook(body, sign(body, "whsec_wrong"))


# -- Checkout Sessions (the portal's top-ups) --------------------------------------------------------------
SUCCESS_URL = "https://portal.example/billing/top-up/done?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://portal.example/billing/top-up/cancelled"


async def checkout(provider, org_id, amount=2500, email=None):
    return await provider.create_checkout(org_id, amount, "USD", SUCCESS_URL, CANCEL_URL, email)


async def test_a_checkout_top_up_creates_a_checkout_session_and_a_pending_payment(provider, sessions, ledger, acme,
                                                                                fake):
    started = await checkout(provider, acme, 2500, "owner@acme.example")
    assert started.id.startswith("cs_test_") and started.url.startswith(f"{fake.url}/c/pay/{started.id}")
    assert (started.status, started.payment_status) == ("open", "unpaid") and started.expires_at is not None
    row = await payment(sessions, started.id)
    assert (row.id, row.org_id, row.amount_minor, row.currency, row.status) == (started.payment_id, acme, 2500, "USD",
                                                                                "pending")
    request = fake.requests[-1]
    assert (request["method"], request["path"]) == ("POST", "/v1/checkout/sessions")
    metadata = {"ringwell_org_id": acme, "ringwell_payment_id": row.id}
    assert request["form"] == {
        "mode": "payment",
        "line_items": [{"price_data": {"currency": "usd", "unit_amount": "2500",
                                       "product_data": {"name": "Ringwell prepaid credit"}}, "quantity": "1"}],
        "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL, "client_reference_id": row.id,
        "customer_email": "owner@acme.example", "metadata": metadata,
        "payment_intent_data": {"description": "Ringwell credit top-up", "metadata": metadata},
    }
    assert request["headers"]["idempotency-key"] == f"ringwell-checkout-{row.id}"
    session = fake.session(started.id)
    assert (session["object"], session["amount_total"], session["currency"], session["payment_intent"]) == (
        "checkout.session", 2500, "usd", None)  # Checkout creates the PaymentIntent only when the customer pays
    assert fake.return_url(started.id) == SUCCESS_URL.replace("{CHECKOUT_SESSION_ID}", started.id)
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)


async def test_a_paid_checkout_is_credited_once_whatever_events_arrive_in_whatever_order(provider, http, sessions,
                                                                                       ledger, acme, fake):
    started = await checkout(provider, acme, 2500)
    events = fake.complete_checkout(started.id, CARD, 11, 2033)
    intent_id = fake.session(started.id)["payment_intent"]
    intent = fake.intent(intent_id)
    assert intent["metadata"] == {"ringwell_org_id": acme, "ringwell_payment_id": started.payment_id}
    assert [e["type"] for e in events] == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
                                           "checkout.session.completed"]
    outcomes = []
    for event in [*reversed(events), *events]:  # Stripe guarantees no order, and delivers at least once
        body = json.dumps(event).encode()
        outcomes.append(await provider.handle_webhook(body, sign(body, WEBHOOK_SECRET)))
    assert [o.action for o in outcomes].count(WebhookAction.CREDITED) == 1
    assert outcomes[0].type == "checkout.session.completed" and outcomes[0].action == WebhookAction.CREDITED
    assert await ledger.balance(acme) == Balance("USD", 2500, 0, 2500)
    entries = await ledger.entries(acme)
    assert [(e.kind, e.amount_minor, e.reference) for e in entries] == [("top_up", 2500, intent_id)]
    row = await payment(sessions, started.id)
    assert (row.status, row.transaction_id, row.card_brand, row.card_last4, row.card_exp_month, row.card_exp_year) == (
        "succeeded", entries[0].id, "visa", "4242", 11, 2033)
    # Through the HTTP route too: a new delivery of each event is acknowledged and changes nothing.
    for event in events:
        assert (await deliver(http, event)).json() == {"received": True}
    assert await ledger.balance(acme) == Balance("USD", 2500, 0, 2500)
    assert (await ledger.verify(acme)).ok


@pytest.mark.parametrize("only", ["checkout.session.completed", "payment_intent.succeeded"])
async def test_either_event_alone_credits_a_checkout(provider, http, sessions, ledger, acme, fake, only):
    """An endpoint may be subscribed to the Checkout events only, or to the PaymentIntent ones only."""
    started = await checkout(provider, acme, 1234)
    event = next(e for e in fake.complete_checkout(started.id, "5555555555554444", 3, 2031) if e["type"] == only)
    assert (await deliver(http, event)).status_code == 200
    assert await ledger.balance(acme) == Balance("USD", 1234, 0, 1234)
    row = await payment(sessions, started.id)
    assert (row.status, row.card_brand, row.card_last4) == ("succeeded", "mastercard", "4444")


async def test_a_delayed_payment_is_credited_when_it_succeeds_and_a_decline_leaves_the_page_open(provider, http,
                                                                                               sessions, ledger,
                                                                                               acme, fake):
    started = await checkout(provider, acme, 1500)
    with pytest.raises(Exception, match="declined"):
        fake.complete_checkout(started.id, "4000000000000002")
    intent_id = fake.session(started.id)["payment_intent"]
    failed = await deliver(http, fake.event("payment_intent.payment_failed", intent_id))
    assert failed.status_code == 200
    # The customer is still on Stripe's page and may try another card: the payment stays pending.
    assert (await payment(sessions, started.id)).status == "pending"
    events = fake.complete_checkout(started.id, CARD)
    assert fake.session(started.id)["payment_intent"] == intent_id  # the same PaymentIntent, paid this time
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    unpaid = json.loads(json.dumps(completed))  # as Stripe sends it for a bank debit that has not cleared yet
    unpaid["data"]["object"]["payment_status"] = "unpaid"
    body = json.dumps(unpaid).encode()
    assert (await provider.handle_webhook(body, sign(body, WEBHOOK_SECRET))).action == WebhookAction.IGNORED
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)
    cleared = fake.event("checkout.session.async_payment_succeeded", started.id)
    body = json.dumps(cleared).encode()
    assert (await provider.handle_webhook(body, sign(body, WEBHOOK_SECRET))).action == WebhookAction.CREDITED
    assert await ledger.balance(acme) == Balance("USD", 1500, 0, 1500)


async def test_an_expired_checkout_is_marked_failed_and_credits_nothing(provider, http, sessions, ledger, acme, fake):
    started = await checkout(provider, acme, 2000)
    expired = fake.expire_checkout(started.id)
    assert (await deliver(http, expired)).status_code == 200
    assert (await payment(sessions, started.id)).status == "failed"
    status = await provider.checkout_status(acme, started.id)
    assert status is not None and status.status == "failed" and status.stripe_status is None  # ours is final
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)


async def test_a_payment_intent_naming_a_payment_it_does_not_pay_is_ignored(provider, http, sessions, ledger, acme,
                                                                           fake):
    other = (await AccountsService(sessions, "ringwell").create_org("Other")).id
    started = await checkout(provider, acme, 2500)
    old_style = await provider.create_top_up(acme, 700)
    old_row = await payment(sessions, old_style.id)
    client = stripe.StripeClient(API_KEY, base_addresses={"api": fake.url})
    for metadata in ({"ringwell_org_id": other, "ringwell_payment_id": started.payment_id},  # not Other's payment
                     {"ringwell_org_id": acme, "ringwell_payment_id": old_row.id},  # paid by its own intent only
                     {"ringwell_org_id": acme, "ringwell_payment_id": "x" * 300}):
        foreign = client.v1.payment_intents.create({"amount": 2500, "currency": "usd", "metadata": metadata})
        fake.confirm(foreign.id, CARD)
        assert (await deliver(http, fake.event("payment_intent.succeeded", foreign.id))).status_code == 200
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)
    assert await ledger.balance(other) == Balance("USD", 0, 0, 0)
    assert (await payment(sessions, started.id)).status == "pending"


async def test_checkout_status_shows_stripes_view_and_only_to_the_org(provider, sessions, ledger, acme, fake):
    other = (await AccountsService(sessions, "ringwell").create_org("Other")).id
    started = await checkout(provider, acme, 2500)
    status = await provider.checkout_status(acme, started.id)
    assert status is not None and (status.status, status.stripe_status, status.stripe_payment_status) == (
        "pending", "open", "unpaid")
    assert await provider.checkout_status(other, started.id) is None
    assert await provider.checkout_status(acme, "cs_test_nosuchsession") is None
    assert await provider.checkout_status(acme, "pi_not_a_session") is None
    fake.complete_checkout(started.id, CARD)
    status = await provider.checkout_status(acme, started.id)
    assert (status.status, status.stripe_status, status.stripe_payment_status) == ("pending", "complete", "paid")
    assert await ledger.balance(acme) == Balance("USD", 0, 0, 0)  # asking is not crediting


async def test_checkout_errors_store_nothing(provider, sessions, acme, fake):
    with pytest.raises(PaymentProviderError, match="minimum charge amount"):
        await checkout(provider, acme, 10)
    with pytest.raises(InvalidBillingData):
        await provider.create_checkout(acme, 1000, "EUR", SUCCESS_URL, CANCEL_URL)
    for success, cancel in (("javascript:alert(1)", CANCEL_URL), (SUCCESS_URL, "/relative"),
                            ("https://x.example/" + "a" * 2000, CANCEL_URL)):
        with pytest.raises(InvalidBillingData):
            await provider.create_checkout(acme, 1000, None, success, cancel)
    assert [r["path"] for r in fake.requests] == ["/v1/checkout/sessions"]  # only the one Stripe refused
    async with sessions() as session:
        assert (await session.execute(select(Payment))).scalars().all() == []


def test_the_checkout_origin_is_stripes_or_the_configured_api_hosts(sessions, ledger, fake):
    real = StripeProvider(sessions, ledger, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    assert real.checkout_origin == "https://checkout.stripe.com"
    assert StripeProvider(sessions, ledger, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET,
                          api_base=fake.url + "/").checkout_origin == fake.url
