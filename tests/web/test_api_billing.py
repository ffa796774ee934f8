"""The money API: balance, the ledger in cursor pages, and card top-ups through Stripe (the real
``stripe`` library against the fake Stripe on loopback) or refused when no provider is configured."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.billing.models import Payment
from tests.peers.fake_stripe import FakeStripe, sign

API_KEY = "sk_test_51RingwellFakeKey0000000000"
WEBHOOK_SECRET = "whsec_ringwell_test_secret"


async def test_balance_and_ledger_follow_top_ups_adjustments_and_reservations(web):
    a = await web.tenant()
    b = await web.tenant()
    ledger = web.services.ledger
    url = f"/api/v1/orgs/{a.org.id}"
    empty = await a.client.get(f"{url}/balance")
    assert empty.status_code == 200
    assert empty.json() == {"currency": "USD", "balance": {"minor": 0, "currency": "USD", "formatted": "0.00"},
                            "reserved": {"minor": 0, "currency": "USD", "formatted": "0.00"},
                            "available": {"minor": 0, "currency": "USD", "formatted": "0.00"}}
    assert (await a.client.get(f"{url}/ledger")).json() == {"items": [], "next_cursor": None}

    await ledger.top_up(a.org.id, 2500, provider="stripe", reference="pi_123")
    await ledger.adjust(a.org.id, -305, "duplicate call charge reversed the wrong way", "ops@operator.test")
    await ledger.reserve(a.org.id, "call-1", 400)
    await ledger.top_up(b.org.id, 9900, provider="stripe", reference="pi_999")

    balance = (await a.api.get(f"{url}/balance")).json()
    assert (balance["balance"]["minor"], balance["reserved"]["minor"], balance["available"]["minor"]) == (
        2195, 400, 1795)
    assert (balance["balance"]["formatted"], balance["available"]["formatted"]) == ("21.95", "17.95")
    entries = (await a.client.get(f"{url}/ledger")).json()["items"]
    assert [(e["seq"], e["kind"], e["amount"]["minor"], e["balance_after"]["minor"]) for e in entries] == [
        (2, "adjustment", -305, 2195), (1, "top_up", 2500, 2500)]
    assert entries[0]["reason"] == "duplicate call charge reversed the wrong way"
    assert entries[0]["amount"] == {"minor": -305, "currency": "USD", "formatted": "-3.05"}
    assert entries[1]["reference"] == "pi_123" and entries[1]["time"].endswith("Z")
    assert "operator" not in entries[0]  # who at the operator did it stays with the operator

    # A member reads the money; another org's id is not found; a key without the scope is refused.
    member = await web.logged_in(await web.member(a.org, "member"))
    assert (await member.get(f"{url}/balance")).json()["balance"]["minor"] == 2195
    for path in ("balance", "ledger"):
        other = await a.client.get(f"/api/v1/orgs/{b.org.id}/{path}")
        assert other.status_code == 404 and other.json()["error_id"] == "organization_not_found"
    reader, _ = await web.api_client(a.org, ["calls.read"])
    assert (await reader.get(f"{url}/balance")).status_code == 403
    assert (await web.client().get(f"{url}/ledger")).status_code == 401


async def test_ledger_pages_newest_first_each_entry_once(web):
    a = await web.tenant()
    for i in range(23):
        await web.services.ledger.adjust(a.org.id, 100 + i, f"goodwill {i}", "ops@operator.test")
    url = f"/api/v1/orgs/{a.org.id}/ledger"
    seqs, cursor, pages = [], None, 0
    while True:
        body = (await a.client.get(url, params={"limit": 10, **({"cursor": cursor} if cursor else {})})).json()
        pages += 1
        seqs += [entry["seq"] for entry in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seqs == list(range(23, 0, -1)) and pages == 3
    last = (await a.client.get(url, params={"limit": 23})).json()
    assert last["next_cursor"] is None and last["items"][-1]["amount"]["minor"] == 100
    for tampered in ["nope", "eyJzIjoiMSJ9", "eyJzIjowfQ", "x" * 65]:
        refused = await a.client.get(url, params={"cursor": tampered})
        assert refused.status_code == 422, tampered
    for limit in (0, 201):
        assert (await a.client.get(url, params={"limit": limit})).status_code == 422


async def test_top_ups_are_refused_without_a_payment_provider(web):
    a = await web.tenant()
    refused = await a.client.post(f"/api/v1/orgs/{a.org.id}/top-ups", json={"amount_minor": 2000})
    assert refused.status_code == 422 and refused.json()["error_id"] == "payments_not_configured"
    for role in ("member", "admin"):  # only owners (and keys with the scope) may spend the org's card
        client = await web.logged_in(await web.member(a.org, role))
        denied = await client.post(f"/api/v1/orgs/{a.org.id}/top-ups", json={"amount_minor": 2000})
        assert denied.status_code == 403 and denied.json()["error_id"] == "permission_denied"


@pytest.fixture
def fake():
    with FakeStripe(API_KEY) as server:
        yield server


class TestWithStripe:
    @pytest.fixture
    def web_settings(self, fake):
        return {"stripe_secret_key": API_KEY, "stripe_webhook_secret": WEBHOOK_SECRET, "stripe_api_base": fake.url}

    async def test_a_top_up_returns_the_client_secret_and_is_credited_when_stripe_confirms(self, web, fake):
        a = await web.tenant()
        url = f"/api/v1/orgs/{a.org.id}/top-ups"
        response = await a.client.post(url, json={"amount_minor": 2500})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["provider"] == "stripe" and body["status"] == "requires_payment_method"
        assert body["payment_intent_id"].startswith("pi_")
        assert body["client_secret"].startswith(f"{body['payment_intent_id']}_secret_")
        assert body["amount"] == {"minor": 2500, "currency": "USD", "formatted": "25.00"}
        created = [r for r in fake.requests if (r["method"], r["path"]) == ("POST", "/v1/payment_intents")]
        assert created[-1]["form"]["amount"] == "2500" and created[-1]["form"]["currency"] == "usd"
        async with web.services.sessions() as session:
            payment = (await session.execute(select(Payment).where(
                Payment.provider_id == body["payment_intent_id"]))).scalar_one()
            event = (await session.execute(select(AuditEvent).where(AuditEvent.action == "billing.topup"))).scalar_one()
        assert (payment.org_id, payment.status, payment.amount_minor) == (a.org.id, "pending", 2500)
        assert (event.org_id, event.target_id, event.actor_user_id) == (a.org.id, payment.provider_id, a.owner.user.id)
        assert body["client_secret"] not in json.dumps(event.details)
        # Nothing is credited until Stripe says the card was charged.
        balance_url = f"/api/v1/orgs/{a.org.id}/balance"
        assert (await a.client.get(balance_url)).json()["balance"]["minor"] == 0
        fake.confirm(body["payment_intent_id"], "4242424242424242", 12, 2034)
        payload = json.dumps(fake.event("payment_intent.succeeded", body["payment_intent_id"])).encode()
        await web.services.payments.handle_webhook(payload, sign(payload, WEBHOOK_SECRET))
        assert (await a.client.get(balance_url)).json()["balance"]["minor"] == 2500
        entries = (await a.client.get(f"/api/v1/orgs/{a.org.id}/ledger")).json()["items"]
        assert [(e["kind"], e["amount"]["minor"], e["reference"]) for e in entries] == [
            ("top_up", 2500, body["payment_intent_id"])]

    @pytest.mark.parametrize("amount", [0, -100, 100_000_000, 12.5, "lots", None])
    async def test_top_up_amounts_are_bounded(self, web, fake, amount):
        a = await web.tenant()
        refused = await a.api.post(f"/api/v1/orgs/{a.org.id}/top-ups", json={"amount_minor": amount})
        assert refused.status_code == 422
        assert not [r for r in fake.requests if r["method"] == "POST"]  # Stripe was never asked

    async def test_stripe_refusing_is_a_502_with_nothing_stored(self, web, fake):
        a = await web.tenant()
        refused = await a.api.post(f"/api/v1/orgs/{a.org.id}/top-ups", json={"amount_minor": 10})  # below $0.50
        assert refused.status_code == 502 and refused.json()["error_id"] == "payment_provider_error"
        async with web.services.sessions() as session:
            assert (await session.execute(select(Payment))).scalars().all() == []
