"""The numbers API: searching the inventory, renting from prepaid credit, routing, releasing,
tenant isolation, and the operator's inventory — on SQLite and PostgreSQL, through the real app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ringwell.features.accounts.models import OrgKind
from ringwell.features.audit.models import AuditEvent
from tests.peers.http_receiver import Receiver

API = "/api/v1"
INVENTORY = (
    "number,country,type,monthly_price,setup_price,trunk,currency\n"
    "+1 415 555 0100,US,fixed,2.50,1.00,,USD\n"
    "(415) 555-0101,US,mobile,3.00,0,,USD\n"
    "+1 212 555 0100,US,fixed,2.00,1.50,,USD\n"
    "+1 800 555 0100,US,toll-free,5.00,10.00,,USD\n"
    "+49 30 1234567,DE,fixed,1.00,0,,EUR\n"
)
SF = "+14155550100"  # setup 1.00 + month 2.50
SF_MOBILE = "+14155550101"  # month 3.00, no setup
NYC = "+12125550100"


@pytest.fixture
def web_settings():
    return {"webhook_allow_private": True, "webhook_first_retry": 0.2, "webhook_timeout": 3.0}


async def _audit(web, org_id, action):
    async with web.services.sessions() as session:
        rows = await session.execute(select(AuditEvent).where(AuditEvent.org_id == org_id,
                                                              AuditEvent.action == action))
        return list(rows.scalars().all())


@pytest.fixture
async def staff(web):
    """A logged-in owner of the operator org, who has imported the inventory through the API."""
    operator = await web.org("Operator", kind=OrgKind.OPERATOR)
    client = await web.logged_in(await web.member(operator, "owner"))
    imported = await client.post(f"{API}/operator/numbers", json={"csv": INVENTORY})
    assert imported.status_code == 201 and imported.json() == {"imported": 5}
    [event] = await _audit(web, operator.id, "numbers.import")
    assert event.details == {"imported": 5}
    return client


async def test_search_rent_route_and_release(web, staff):
    a = await web.tenant("Alpha")
    url = f"{API}/orgs/{a.org.id}/numbers"

    found = await a.client.get(f"{url}/available", params={"country": "US", "area": "415"})
    assert found.status_code == 200
    assert [(n["e164"], n["monthly_price_minor"], n["setup_price_minor"], n["currency"])
            for n in found.json()["items"]] == [(SF, 250, 100, "USD"), (SF_MOBILE, 300, 0, "USD")]
    # Only numbers in the org's currency; other filters.
    everything = (await a.client.get(f"{url}/available")).json()["items"]
    assert {n["currency"] for n in everything} == {"USD"} and len(everything) == 4
    assert [n["e164"] for n in (await a.client.get(f"{url}/available", params={"contains": "5550101"})).json()[
        "items"]] == [SF_MOBILE]
    assert [n["e164"] for n in (await a.client.get(f"{url}/available", params={"type": "toll-free"})).json()[
        "items"]] == ["+18005550100"]
    assert len((await a.client.get(f"{url}/available", params={"limit": 1})).json()["items"]) == 1
    for bad in ({"country": "USA"}, {"area": "4x"}, {"type": "satellite"}, {"limit": 0}, {"limit": 101}):
        assert (await a.client.get(f"{url}/available", params=bad)).status_code == 422, bad

    # Without credit: 402, nothing rented, nothing charged.
    broke = await a.client.post(url, json={"e164": SF})
    assert broke.status_code == 402 and broke.json()["error_id"] == "insufficient_credit"
    assert broke.json()["details"]["needed_minor"] == 350
    assert (await a.client.get(url)).json()["items"] == []

    await web.services.ledger.adjust(a.org.id, 1000, "test credit", "tests")
    rented = await a.client.post(url, json={"e164": SF})
    assert rented.status_code == 201
    number = rented.json()
    assert (number["e164"], number["monthly_price_minor"], number["extension"]) == (SF, 250, None)
    paid_until = datetime.fromisoformat(number["paid_until"])
    assert timedelta(days=27) < paid_until - datetime.now(UTC) <= timedelta(days=31)
    assert (await web.services.ledger.balance(a.org.id)).balance_minor == 1000 - 350
    assert [n["e164"] for n in (await a.client.get(url)).json()["items"]] == [SF]
    assert SF not in [n["e164"] for n in (await a.client.get(f"{url}/available")).json()["items"]]
    again = await a.client.post(url, json={"e164": SF})
    assert again.status_code == 409 and again.json()["error_id"] == "number_not_available"
    unknown = await a.client.post(url, json={"e164": "+14155550199"})
    assert unknown.status_code == 404 and unknown.json()["error_id"] == "number_not_found"
    euro = await a.client.post(url, json={"e164": "+49301234567"})
    assert euro.status_code == 409 and euro.json()["error_id"] == "currency_mismatch"
    [event] = await _audit(web, a.org.id, "numbers.rent")
    assert event.target_id == SF and event.actor_user_id == a.owner.user.id

    # Route to a user: the list shows it and a carrier's call to the number rings them.
    routed = await a.client.put(f"{url}/%2B14155550100/route", json={"extension": a.owner.extension})
    assert routed.status_code == 200 and routed.json()["extension"] == a.owner.extension
    assert (await a.client.get(url)).json()["items"][0]["extension"] == a.owner.extension
    inbound = await web.services.numbers.route_inbound(SF)
    assert inbound is not None and inbound.user_id == a.owner.user.id
    nobody = await a.client.put(f"{url}/{SF}/route", json={"extension": "999"})  # raw '+' in the path
    assert nobody.status_code == 404 and nobody.json()["error_id"] == "user_not_found"
    unrouted = await a.client.put(f"{url}/{SF}/route", json={"extension": None})
    assert unrouted.status_code == 200 and unrouted.json()["extension"] is None
    assert (await web.services.numbers.route_inbound(SF)).user_id is None
    assert (await a.client.put(f"{url}/{SF}/route", json={"extension": "12ab"})).status_code == 422
    assert [e.details["extension"] for e in await _audit(web, a.org.id, "numbers.route")] in (
        [a.owner.extension, None], [None, a.owner.extension])

    # Release: gone from the list, not rentable again (quarantine), nothing refunded.
    released = await a.client.delete(f"{url}/%2B14155550100")
    assert released.status_code == 204
    assert (await a.client.get(url)).json()["items"] == []
    assert await web.services.numbers.route_inbound(SF) is None
    assert SF not in [n["e164"] for n in (await a.client.get(f"{url}/available")).json()["items"]]
    assert (await web.services.ledger.balance(a.org.id)).balance_minor == 650
    twice = await a.client.delete(f"{url}/{SF}")
    assert twice.status_code == 404 and twice.json()["error_id"] == "number_not_found"
    assert len(await _audit(web, a.org.id, "numbers.release")) == 1
    inventory = (await staff.get(f"{API}/operator/numbers", params={"state": "quarantine"})).json()["items"]
    assert [(n["e164"], n["state"], n["org_id"]) for n in inventory] == [(SF, "quarantine", None)]


async def test_rented_numbers_are_paged(web, staff):
    a = await web.tenant("Alpha")
    await web.services.ledger.adjust(a.org.id, 10_000, "test credit", "tests")
    url = f"{API}/orgs/{a.org.id}/numbers"
    for e164 in (SF_MOBILE, NYC, SF):
        assert (await a.api.post(url, json={"e164": e164})).status_code == 201
    first = (await a.api.get(url, params={"limit": 2})).json()
    second = (await a.api.get(url, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [n["e164"] for n in first["items"] + second["items"]] == [NYC, SF, SF_MOBILE]
    assert second["next_cursor"] is None
    assert (await a.api.get(url, params={"cursor": "%%%"})).status_code == 422


async def test_a_member_can_see_numbers_but_not_rent_route_or_release(web, staff):
    a = await web.tenant("Alpha")
    await web.services.ledger.adjust(a.org.id, 1000, "test credit", "tests")
    url = f"{API}/orgs/{a.org.id}/numbers"
    assert (await a.client.post(url, json={"e164": SF})).status_code == 201
    member = await web.logged_in(await web.member(a.org, "member"))
    assert [n["e164"] for n in (await member.get(url)).json()["items"]] == [SF]
    assert (await member.get(f"{url}/available")).status_code == 200
    for response in (await member.post(url, json={"e164": NYC}),
                     await member.put(f"{url}/{SF}/route", json={"extension": None}),
                     await member.delete(f"{url}/{SF}")):
        assert response.status_code == 403 and response.json()["error_id"] == "permission_denied"
    assert [n["e164"] for n in (await a.client.get(url)).json()["items"]] == [SF]


async def test_another_orgs_number_is_not_found(web, staff):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    await web.services.ledger.adjust(b.org.id, 1000, "test credit", "tests")
    assert (await b.api.post(f"{API}/orgs/{b.org.id}/numbers", json={"e164": SF})).status_code == 201
    assert (await b.api.put(f"{API}/orgs/{b.org.id}/numbers/{SF}/route",
                            json={"extension": b.owner.extension})).status_code == 200
    base = f"{API}/orgs/{a.org.id}/numbers"
    missing = "+14155550199"  # not in the inventory at all
    for method, suffix, body in (("DELETE", "", None), ("PUT", "/route", {"extension": None})):
        answers = []
        for e164 in (SF, missing):
            response = await a.client.request(method, f"{base}/{e164}{suffix}", json=body)
            assert response.status_code == 404, (method, suffix)
            answers.append(response.json())
        foreign, absent = answers
        assert foreign["error_id"] == absent["error_id"] == "number_not_found"
        assert foreign["message"] == absent["message"].replace(missing, SF)
        assert foreign["details"] == {"number": SF} and absent["details"] == {"number": missing}
    # Beta's number is untouched: still rented by Beta and ringing Beta's owner.
    inbound = await web.services.numbers.route_inbound(SF)
    assert inbound is not None and (inbound.org_id, inbound.user_id) == (b.org.id, b.owner.user.id)
    assert (await a.client.get(base)).json()["items"] == []


async def test_operator_inventory_filters_pages_and_imports(web, staff):
    a = await web.tenant("Alpha")
    await web.services.ledger.adjust(a.org.id, 1000, "test credit", "tests")
    assert (await a.api.post(f"{API}/orgs/{a.org.id}/numbers", json={"e164": NYC})).status_code == 201

    rented = (await staff.get(f"{API}/operator/numbers", params={"state": "rented"})).json()["items"]
    assert [(n["e164"], n["org_id"], n["org_name"], n["state"]) for n in rented] == [(NYC, a.org.id, "Alpha",
                                                                                       "rented")]
    assert [n["e164"] for n in (await staff.get(f"{API}/operator/numbers",
                                                params={"org_id": a.org.id})).json()["items"]] == [NYC]
    available = (await staff.get(f"{API}/operator/numbers", params={"state": "available"})).json()["items"]
    assert len(available) == 4 and all(n["org_id"] is None for n in available)
    seen, cursor = [], None
    for _ in range(5):
        page = (await staff.get(f"{API}/operator/numbers",
                                params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [n["e164"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(["+14155550100", "+14155550101", NYC, "+18005550100", "+49301234567"])
    assert (await staff.get(f"{API}/operator/numbers", params={"state": "lost"})).status_code == 422

    # A bad line rejects the whole file and says where; a duplicate too.
    bad = await staff.post(f"{API}/operator/numbers", json={
        "csv": "number,country,type,monthly_price,setup_price,trunk\n+1 650 555 0100,US,fixed,1.00,0,\n"
               "+1 650 555 0101,US,fixed,lots,0,\n"})
    assert bad.status_code == 422 and bad.json()["error_id"] == "invalid_number_import"
    assert bad.json()["details"]["line"] == 3
    duplicate = await staff.post(f"{API}/operator/numbers", json={
        "csv": "number,country,type,monthly_price,setup_price,trunk\n+1 415 555 0100,US,fixed,1.00,0,\n"})
    assert duplicate.status_code == 422 and duplicate.json()["details"]["line"] == 2
    assert len((await staff.get(f"{API}/operator/numbers")).json()["items"]) == 5
    added = await staff.post(f"{API}/operator/numbers", json={
        "csv": "number,country,type,monthly_price,setup_price,trunk\n+1 650 555 0100,US,fixed,1.00,0,\n"})
    assert added.json() == {"imported": 1}

    # Customers (and their API keys) never see the inventory console.
    for outsider in (a.client, a.api):
        for response in (await outsider.get(f"{API}/operator/numbers"),
                         await outsider.post(f"{API}/operator/numbers", json={"csv": INVENTORY})):
            assert response.status_code == 403 and response.json()["error_id"] == "permission_denied"


async def test_garbage_is_refused_with_422_not_a_server_error(web, staff):
    a = await web.tenant("Alpha")
    base = f"{API}/orgs/{a.org.id}/numbers"
    for method, path, body in (
        ("DELETE", f"{base}/abc", None),
        ("DELETE", f"{base}/%00", None),
        ("PUT", f"{base}/+1/route", {"extension": None}),
        ("PUT", f"{base}/{SF}/route", {}),
        ("POST", base, {"e164": "\x00"}),
        ("POST", base, {"e164": SF, "extra": 1}),
        ("GET", f"{base}?cursor=Ilx1MDAwMCI", None),  # "\0" as JSON in base64
        ("GET", f"{API}/operator/numbers?org_id=%00", None),
        ("POST", f"{API}/operator/numbers", {"csv": "number\x00,country\n"}),
        ("POST", f"{API}/operator/numbers", {"csv": ""}),
        ("POST", f"{API}/operator/numbers", {"csv": "\r0"}),  # the csv module's own error, found by schemathesis
        ("POST", f"{API}/operator/numbers", {"csv": 'number,country\n"+14155550100'}),  # unterminated quote
    ):
        client = staff if "/operator/" in path else a.client
        response = await client.request(method, path, json=body)
        assert response.status_code == 422, (method, path, body, response.text)


async def test_renting_and_releasing_send_webhooks(web, staff):
    a = await web.tenant("Alpha")
    await web.services.ledger.adjust(a.org.id, 1000, "test credit", "tests")
    web.services.webhooks.start(ledger=web.services.ledger)
    try:
        with Receiver() as receiver:
            endpoint = await a.api.post(f"{API}/orgs/{a.org.id}/webhooks", json={
                "url": receiver.url, "events": ["number.rented", "number.released"], "description": "numbers"})
            assert endpoint.status_code == 201, endpoint.text
            assert (await a.api.post(f"{API}/orgs/{a.org.id}/numbers", json={"e164": SF})).status_code == 201
            assert (await a.api.delete(f"{API}/orgs/{a.org.id}/numbers/{SF}")).status_code == 204
            requests = await receiver.arrived(2)
    finally:
        await web.services.webhooks.stop()
    bodies = sorted((r.json() for r in requests), key=lambda b: b["type"] != "number.rented")
    assert [(b["type"], b["org_id"]) for b in bodies] == [("number.rented", a.org.id), ("number.released", a.org.id)]
    rented, released = bodies[0]["data"], bodies[1]["data"]
    assert (rented["number"], rented["country"], rented["monthly_price_minor"], rented["setup_price_minor"],
            rented["currency"]) == (SF, "US", 250, 100, "USD")
    assert rented["paid_until"].endswith("Z")
    assert (released["number"], released["paid_until"]) == (SF, None)
