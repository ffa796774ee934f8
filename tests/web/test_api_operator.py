"""The operator console API: carrier trunks, rate decks and manual credit — staff only, every change
audited, the trunk password accepted and never shown — and the customer's rate lookup it feeds."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from ringwell.features.accounts.models import OrgKind
from ringwell.features.audit.models import AuditEvent

DECK = "prefix,description,price_per_minute,connection_fee,increments\n" \
       "1,United States,0.0123,0,60/60\n" \
       "1415,San Francisco,0.02,0.01,1/1\n" \
       "44,United Kingdom,0.10,0,30/6\n"
PASSWORD = "Tr0nk-S3cret-PW"
NEW_PASSWORD = "An0ther-S3cret"


async def staff(web, role="billing"):
    op = await web.org("Operator Ltd", kind=OrgKind.OPERATOR)
    member = await web.member(op, role)
    return op, member, await web.logged_in(member)


async def audit(web, prefix):
    async with web.services.sessions() as session:
        rows = (await session.execute(select(AuditEvent).where(AuditEvent.action.startswith(prefix))
                                      .order_by(AuditEvent.at))).scalars().all()
    return list(rows)


async def test_operator_routes_are_staff_only(web):
    a = await web.tenant()
    _, _, support = await staff(web, "support")  # staff, but not allowed to manage trunks, decks or money
    calls = [("GET", "/api/v1/operator/trunks", None),
             ("POST", "/api/v1/operator/trunks", {"name": "carrier", "host": "127.0.0.1"}),
             ("PATCH", "/api/v1/operator/trunks/some-id", {"enabled": False}),
             ("DELETE", "/api/v1/operator/trunks/some-id", None),
             ("GET", "/api/v1/operator/rate-decks", None),
             ("POST", "/api/v1/operator/rate-decks", {"name": "retail", "currency": "USD", "csv": DECK}),
             ("PUT", f"/api/v1/operator/orgs/{a.org.id}/rate-deck", {"deck": "retail"}),
             ("POST", f"/api/v1/operator/orgs/{a.org.id}/credit", {"amount_minor": 100000, "reason": "free money"})]
    for method, path, body in calls:
        for client in (a.client, a.api, support):
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (method, path)
            assert response.json()["error_id"] == "permission_denied"
        assert (await web.client().request(method, path, json=body)).status_code == 401
    assert (await web.services.ledger.balance(a.org.id)).balance_minor == 0
    assert await web.services.trunks.all() == []


async def test_trunks_are_managed_and_the_password_never_comes_back(web):
    op, member, client = await staff(web)
    created = await client.post("/api/v1/operator/trunks", json={
        "name": "carrier-a", "host": "127.0.0.1", "port": 5090, "transport": "udp", "username": "ringwell",
        "password": PASSWORD, "register": True, "inbound": ["127.0.0.1:5090", "198.51.100.0/24"], "priority": 20,
        "max_channels": 60, "buy_deck": "carrier-a-costs"})
    assert created.status_code == 201, created.text
    trunk = created.json()
    assert trunk["name"] == "carrier-a" and trunk["has_password"] is True and trunk["register"] is True
    assert (trunk["enabled"], trunk["priority"], trunk["max_channels"]) == (True, 20, 60)
    assert trunk["inbound"] == ["127.0.0.1:5090", "198.51.100.0/24"] and "password" not in trunk
    trunk_id = trunk["id"]
    url = f"/api/v1/operator/trunks/{trunk_id}"
    responses = [created]

    duplicate = await client.post("/api/v1/operator/trunks", json={"name": "carrier-a", "host": "127.0.0.2"})
    assert duplicate.status_code == 409 and duplicate.json()["error_id"] == "duplicate_trunk"
    for bad in [{"name": "x", "host": "carrier.example.com"}, {"name": "bad name", "host": "127.0.0.1"},
                {"name": "x", "host": "127.0.0.1", "transport": "tls"},
                {"name": "x", "host": "127.0.0.1", "username": "only-user"},
                {"name": "x", "host": "127.0.0.1", "inbound": ["not-an-ip"]},
                {"name": "x", "host": "127.0.0.1", "inbound": ["10.0.0.0/8"] * 51}]:
        refused = await client.post("/api/v1/operator/trunks", json=bad)
        assert refused.status_code == 422, bad

    changed = await client.patch(url, json={"enabled": False, "priority": 5, "max_channels": 30})
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["priority"], changed.json()["max_channels"]) == (False, 5, 30)
    assert changed.json()["has_password"] is True and changed.json()["port"] == 5090  # the rest unchanged
    assert await web.services.trunks.routes() == []  # disabled: no longer offered to the call path
    rotated = await client.patch(url, json={"enabled": True, "password": NEW_PASSWORD})
    assert rotated.status_code == 200
    [route] = await web.services.trunks.routes()
    assert (route.name, route.password, route.priority) == ("carrier-a", NEW_PASSWORD, 5)
    responses += [changed, rotated, await client.get("/api/v1/operator/trunks"), await client.get(url)]
    assert [t["id"] for t in responses[-2].json()["items"]] == [trunk_id]

    for bad in [{"username": None}, {"host": None}, {"port": 70000}, {"transport": "tls"}, {"enabled": None}]:
        refused = await client.patch(url, json=bad)
        assert refused.status_code == 422, bad
    removed_credentials = await client.patch(url, json={"username": None, "password": None, "register": False})
    assert removed_credentials.status_code == 200 and removed_credentials.json()["has_password"] is False
    responses.append(removed_credentials)

    for response in responses:
        assert PASSWORD not in response.text and NEW_PASSWORD not in response.text
    deleted = await client.delete(url)
    assert deleted.status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        missing = await client.request(method, url, json={} if method == "PATCH" else None)
        assert missing.status_code == 404 and missing.json()["error_id"] == "trunk_not_found"

    events = await audit(web, "trunks.")
    assert [e.action for e in events] == ["trunks.create", "trunks.update", "trunks.update", "trunks.update",
                                          "trunks.delete"]
    assert all(e.actor_user_id == member.user.id and e.org_id == op.id and e.target_id == trunk_id for e in events)
    assert events[2].details["password"] == "set" and events[3].details["password"] == "removed"
    assert events[1].details == {"name": "carrier-a", "enabled": False, "priority": 5, "max_channels": 30}
    for event in events:
        assert PASSWORD not in json.dumps(event.details) and NEW_PASSWORD not in json.dumps(event.details)


async def test_rate_decks_are_imported_and_assigned_and_customers_look_up_their_rate(web):
    a = await web.tenant()
    _, member, client = await staff(web)
    rates = f"/api/v1/orgs/{a.org.id}/rates"
    none_yet = await a.client.get(rates, params={"number": "+14155550100"})
    assert none_yet.status_code == 404 and none_yet.json()["error_id"] == "no_rate"

    imported = await client.post("/api/v1/operator/rate-decks", json={"name": "retail", "currency": "usd",
                                                                      "csv": DECK})
    assert imported.status_code == 200 and imported.json() == {"name": "retail", "currency": "USD", "rates": 3}
    await client.post("/api/v1/operator/rate-decks", json={"name": "euro", "currency": "EUR", "csv": DECK})
    bad = await client.post("/api/v1/operator/rate-decks", json={"name": "retail", "csv": DECK + "44,Again,x,0\n"})
    assert bad.status_code == 422 and bad.json()["error_id"] == "invalid_rate_deck"
    assert bad.json()["details"]["line"] == 5
    assert (await client.post("/api/v1/operator/rate-decks", json={"name": "", "csv": DECK})).status_code == 422

    assigned = await client.put(f"/api/v1/operator/orgs/{a.org.id}/rate-deck", json={"deck": "retail"})
    assert assigned.status_code == 200 and assigned.json() == {"org_id": a.org.id, "deck": "retail"}
    listed = (await client.get("/api/v1/operator/rate-decks")).json()["items"]
    assert [(d["name"], d["currency"], d["rates"], d["orgs"]) for d in listed] == [
        ("euro", "EUR", 3, 0), ("retail", "USD", 3, 1)]
    mismatch = await client.put(f"/api/v1/operator/orgs/{a.org.id}/rate-deck", json={"deck": "euro"})
    assert mismatch.status_code == 409 and mismatch.json()["error_id"] == "currency_mismatch"
    unknown = await client.put(f"/api/v1/operator/orgs/{a.org.id}/rate-deck", json={"deck": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error_id"] == "rate_deck_not_found"
    nobody = await client.put("/api/v1/operator/orgs/00000000-0000-0000-0000-000000000000/rate-deck",
                              json={"deck": "retail"})
    assert nobody.status_code == 404 and nobody.json()["error_id"] == "organization_not_found"

    rate = await a.client.get(rates, params={"number": "+14155550100"})
    assert rate.status_code == 200
    assert rate.json() == {
        "number": "+14155550100", "deck": "retail", "prefix": "1415", "description": "San Francisco",
        "currency": "USD", "price_per_minute": {"micros": 20000, "currency": "USD", "formatted": "0.02"},
        "connection_fee": {"micros": 10000, "currency": "USD", "formatted": "0.01"}, "increments": "1/1",
        "first_increment": 1, "next_increment": 1, "effective_from": "1970-01-01"}
    national = await (await web.logged_in(await web.member(a.org, "member"))).get(
        rates, params={"number": "(212) 555-0100"})  # national, read in the org's country
    assert national.json()["number"] == "+12125550100" and national.json()["prefix"] == "1"
    assert national.json()["price_per_minute"]["formatted"] == "0.0123"
    uk = await a.api.get(rates, params={"number": "+44 20 7946 0000"})
    assert (uk.json()["prefix"], uk.json()["increments"]) == ("44", "30/6")
    japan = await a.client.get(rates, params={"number": "+81312345678"})
    assert japan.status_code == 404 and japan.json()["error_id"] == "no_rate"
    garbage = await a.client.get(rates, params={"number": "call me"})
    assert garbage.status_code == 422 and garbage.json()["error_id"] == "invalid_number"
    assert (await a.client.get(rates)).status_code == 422

    deck_ids = {d["name"]: d["id"] for d in listed}
    events = await audit(web, "ratedecks.")
    assert [(e.action, e.target_id, e.org_id, e.actor_user_id) for e in events] == [
        ("ratedecks.import", deck_ids["retail"], member.org.id, member.user.id),
        ("ratedecks.import", deck_ids["euro"], member.org.id, member.user.id),
        ("ratedecks.assign", deck_ids["retail"], a.org.id, member.user.id)]  # the refused ones left no event
    assert events[0].details == {"name": "retail", "currency": "USD",
                                 "csv_sha256": hashlib.sha256(DECK.encode()).hexdigest()}


async def test_staff_credit_and_debit_an_org_with_a_reason(web):
    a = await web.tenant()
    _, member, client = await staff(web)
    url = f"/api/v1/operator/orgs/{a.org.id}/credit"
    credited = await client.post(url, json={"amount_minor": 1500, "reason": "outage goodwill, ticket 4711"})
    assert credited.status_code == 200, credited.text
    assert credited.json()["balance"]["balance"] == {"minor": 1500, "currency": "USD", "formatted": "15.00"}
    debited = await client.post(url, json={"amount_minor": -200, "reason": "correction of ticket 4711"})
    assert debited.json()["balance"]["available"]["minor"] == 1300
    for bad in [{"amount_minor": 0, "reason": "nothing"}, {"amount_minor": 100}, {"amount_minor": 100, "reason": ""},
                {"amount_minor": 100, "reason": "x" * 501}, {"amount_minor": 10**13, "reason": "too much"}]:
        refused = await client.post(url, json=bad)
        assert refused.status_code == 422, bad
    nobody = await client.post("/api/v1/operator/orgs/00000000-0000-0000-0000-000000000000/credit",
                               json={"amount_minor": 100, "reason": "typo"})
    assert nobody.status_code == 404

    entries = (await a.client.get(f"/api/v1/orgs/{a.org.id}/ledger")).json()["items"]
    assert [(e["kind"], e["amount"]["minor"], e["reason"]) for e in entries] == [
        ("adjustment", -200, "correction of ticket 4711"), ("adjustment", 1500, "outage goodwill, ticket 4711")]
    events = await audit(web, "billing.adjust")
    assert [(e.org_id, e.actor_user_id, e.details["amount_minor"], e.reason) for e in events] == [
        (a.org.id, member.user.id, 1500, "outage goodwill, ticket 4711"),
        (a.org.id, member.user.id, -200, "correction of ticket 4711")]
    assert events[0].target_id == credited.json()["transaction_id"]
    assert (await web.services.ledger.verify(a.org.id)).ok
