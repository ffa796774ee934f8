"""Card top-ups from the portal through Stripe Checkout, end to end: the form → 303 to Stripe's hosted
page (a fake Stripe on loopback, driven by the real ``stripe`` library) → the customer pays → Stripe's
signed webhooks at ``POST /webhooks/stripe`` → the balance on ``/billing``. SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.billing.models import Payment
from ringwell.features.billing.routes import stripe_routes
from ringwell.web.app import build_app
from ringwell.web.deps import CSRF_HEADER
from tests.peers.fake_stripe import FakeStripe

API_KEY = "sk_test_51RingwellPortalCheckout000"
WEBHOOK_SECRET = "whsec_ringwell_portal_checkout"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def fake():
    with FakeStripe(API_KEY) as server:
        yield server


@pytest.fixture
def web_settings(fake):
    return {"stripe_secret_key": API_KEY, "stripe_webhook_secret": WEBHOOK_SECRET, "stripe_api_base": fake.url}


@pytest.fixture
def app(web):
    """The app as the server composes it: the API, the portal and the Stripe webhook route."""
    web.app = build_app(lambda: {}, stripe_routes(web.services.payments), web.services)
    return web.app


def text(response) -> str:
    """What the user reads: tags dropped, entities decoded, white space collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.text)))


def token_of(page) -> str:
    found = TOKEN_RE.search(page.text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def browser(web, member) -> httpx.AsyncClient:
    """A logged-in browser: it sends the CSRF token in forms, not in a header."""
    client = await web.logged_in(member)
    client.headers.pop(CSRF_HEADER, None)
    return client


async def start_top_up(client, amount="25.00") -> httpx.Response:
    page = await client.get("/billing")
    assert page.status_code == 200
    return await client.post("/billing/top-up", data={"csrf_token": token_of(page), "amount": amount})


async def deliver(app, event) -> httpx.Response:
    """Stripe's POST of ``event`` to the webhook endpoint (no cookie, no CSRF: only the signature)."""
    body, headers = FakeStripe.signed(event, WEBHOOK_SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://ringwell.test") as stripe:
        return await stripe.post("/webhooks/stripe", content=body, headers=headers)


async def available(client) -> str:
    page = text(await client.get("/billing"))
    found = re.search(r"Available credit (\S+ USD)", page)
    assert found, page[:400]
    return found.group(1)


async def test_a_top_up_is_paid_on_stripe_checkout_and_credited_once_by_the_webhook(web, app, fake):
    acme = await web.tenant("Acme")
    owner = await browser(web, acme.owner)
    billing = await owner.get("/billing")
    assert "Continue to payment" in billing.text
    # The top-up form may lead to Checkout (Chromium applies form-action to the redirect after a POST) ...
    assert f"form-action 'self' {fake.url};" in billing.headers["content-security-policy"]
    # ... and nothing else may.
    assert "form-action 'self';" in (await owner.get("/")).headers["content-security-policy"]

    started = await start_top_up(owner, "25.00")
    assert started.status_code == 303, text(started)[:600]
    location = started.headers["location"]
    session_id = re.fullmatch(re.escape(fake.url) + r"/c/pay/(cs_test_[A-Za-z0-9]+)#\S+", location).group(1)
    created = [r for r in fake.requests if (r["method"], r["path"]) == ("POST", "/v1/checkout/sessions")]
    assert len(created) == 1
    form = created[0]["form"]
    assert form["success_url"] == "https://ringwell.test/billing/top-up/done?session_id={CHECKOUT_SESSION_ID}"
    assert form["cancel_url"] == "https://ringwell.test/billing/top-up/cancelled"
    assert form["customer_email"] == acme.owner.email
    assert form["line_items"][0]["price_data"]["unit_amount"] == "2500"
    async with httpx.AsyncClient() as outside:  # the browser follows the redirect to the hosted page
        assert "Pay 2500 usd" in (await outside.get(location)).text
    assert await available(owner) == "0.00 USD"

    # Back from Stripe before paying (the customer used the browser's back and forward buttons).
    unpaid = await owner.get(fake.return_url(session_id))
    assert unpaid.status_code == 200 and "Not paid yet" in text(unpaid)

    events = fake.complete_checkout(session_id, "4242424242424242", 12, 2034)
    done = await owner.get(fake.return_url(session_id))
    assert done.status_code == 200
    assert "Thank you — your credit appears as soon as Stripe confirms the payment" in text(done)
    assert "Stripe has confirmed the payment" in text(done) and "25.00 USD" in text(done)
    assert await available(owner) == "0.00 USD"  # the page does not credit: only the signed webhook does

    for event in [*events, *events]:  # every event Stripe sends, each delivered twice
        response = await deliver(app, event)
        assert (response.status_code, response.json()) == (200, {"received": True})
    assert await available(owner) == "25.00 USD"
    page = await owner.get("/billing")
    assert set(re.findall(r'href="/billing/receipts/(\d+)"', page.text)) == {"1"}  # one ledger entry
    assert "top-up (stripe)" in text(page) and "+25.00 USD" in text(page)
    done = text(await owner.get(fake.return_url(session_id)))
    assert "Payment confirmed: 25.00 USD was added to your credit" in done and "Visa ending in 4242" in done

    async with web.services.sessions() as session:
        payment = (await session.execute(select(Payment).where(Payment.org_id == acme.org.id))).scalar_one()
        audit = (await session.execute(select(AuditEvent).where(AuditEvent.action == "billing.topup"))).scalar_one()
    assert (payment.provider_id, payment.status, payment.amount_minor) == (session_id, "succeeded", 2500)
    assert (audit.org_id, audit.target_id, audit.actor_user_id) == (acme.org.id, session_id, acme.owner.user.id)


async def test_cancelled_and_expired_top_ups_credit_nothing(web, app, fake):
    acme = await web.tenant("Acme")
    owner = await browser(web, acme.owner)
    started = await start_top_up(owner, "10")
    session_id = re.search(r"/c/pay/(cs_test_[A-Za-z0-9]+)", started.headers["location"]).group(1)
    # The customer clicks "back" on Stripe's page.
    assert fake.session(session_id)["cancel_url"] == "https://ringwell.test/billing/top-up/cancelled"
    cancelled = await owner.get("/billing/top-up/cancelled")
    assert cancelled.status_code == 200
    assert "nothing was charged" in text(cancelled) and 'href="/billing#top-up"' in cancelled.text
    # The page expires unpaid: Stripe says so, and the payment is closed as failed.
    assert (await deliver(app, fake.expire_checkout(session_id))).status_code == 200
    done = text(await owner.get(fake.return_url(session_id)))
    assert "did not go through" in done and "not paid" in done
    assert await available(owner) == "0.00 USD"


async def test_who_may_top_up_and_whose_top_ups_they_see(web, app, fake):
    acme = await web.tenant("Acme")
    other = await web.tenant("Other")
    owner = await browser(web, acme.owner)
    started = await start_top_up(owner, "30")
    session_id = re.search(r"/c/pay/(cs_test_[A-Za-z0-9]+)", started.headers["location"]).group(1)
    before = len(fake.requests)

    member = await browser(web, await web.member(acme.org, "member"))
    page = await member.get("/billing")
    assert "Continue to payment" not in page.text
    refused = await member.post("/billing/top-up", data={"csrf_token": token_of(page), "amount": "30"})
    assert refused.status_code == 403
    # Reading the status is billing.read: a member may see the org's top-up, another org may not.
    assert (await member.get(f"/billing/top-up/done?session_id={session_id}")).status_code == 200
    stranger = await browser(web, other.owner)
    before = len(fake.requests)
    for query in (f"session_id={session_id}", "session_id=cs_test_doesnotexist", "session_id=../../x", ""):
        assert (await stranger.get(f"/billing/top-up/done?{query}")).status_code == 404
    assert len(fake.requests) == before  # Stripe is not even asked about another org's session

    # Amounts as before: refused before Stripe is asked.
    for amount in ("0", "1.234", "-5", "1000000", "lots"):
        bad = await start_top_up(owner, amount)
        assert bad.status_code == 422 and 'name="amount"' in bad.text
    assert not [r for r in fake.requests[before:] if r["method"] == "POST"]
    # Stripe refusing (below its minimum) is shown on the form, not a crash.
    small = await start_top_up(owner, "0.10")
    assert small.status_code == 502 and "minimum charge amount" in text(small)


async def test_the_api_can_start_a_checkout_top_up(web, app, fake):
    acme = await web.tenant("Acme")
    url = f"/api/v1/orgs/{acme.org.id}/top-ups"
    response = await acme.api.post(url, json={"amount_minor": 4000, "mode": "checkout"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mode"] == "checkout" and body["provider"] == "stripe"
    assert body["checkout_session_id"].startswith("cs_test_")
    assert body["checkout_url"].startswith(f"{fake.url}/c/pay/{body['checkout_session_id']}")
    assert (body["status"], body["payment_status"]) == ("open", "unpaid")
    assert body["amount"] == {"minor": 4000, "currency": "USD", "formatted": "40.00"}
    assert fake.session(body["checkout_session_id"])["success_url"] == (
        "https://ringwell.test/billing/top-up/done?session_id={CHECKOUT_SESSION_ID}")
    own = await acme.api.post(url, json={"amount_minor": 4000, "mode": "checkout",
                                         "success_url": "https://shop.example/paid?s={CHECKOUT_SESSION_ID}",
                                         "cancel_url": "https://shop.example/cart"})
    session = fake.session(own.json()["checkout_session_id"])
    assert (session["success_url"], session["cancel_url"]) == ("https://shop.example/paid?s={CHECKOUT_SESSION_ID}",
                                                               "https://shop.example/cart")
    # The default is unchanged: a PaymentIntent and its client secret.
    default = (await acme.api.post(url, json={"amount_minor": 4000})).json()
    assert default["mode"] == "payment_intent" and default["client_secret"].startswith(default["payment_intent_id"])
    for wrong in ({"amount_minor": 4000, "mode": "hosted"},
                  {"amount_minor": 4000, "mode": "checkout", "success_url": "javascript:alert(1)"},
                  {"amount_minor": 4000, "success_url": "https://shop.example/paid"}):
        assert (await acme.api.post(url, json=wrong)).status_code == 422
    # Paid and delivered: credited.
    for event in fake.complete_checkout(body["checkout_session_id"]):
        assert (await deliver(app, event)).status_code == 200
    balance = (await acme.api.get(f"/api/v1/orgs/{acme.org.id}/balance")).json()
    assert balance["balance"]["minor"] == 4000
    spec = (await acme.api.get("/api/v1/openapi.json")).json()
    schema = spec["paths"]["/api/v1/orgs/{org_id}/top-ups"]["post"]["responses"]["201"]["content"][
        "application/json"]["schema"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in schema["oneOf"]} == {"TopUpOut", "CheckoutTopUpOut"}
