"""The portal's pages end to end through the real app (SQLite and PostgreSQL): dashboard, call history,
numbers, users and extensions, billing and the operator console — what a user sees and what their
forms change, with the same permissions as the API."""

from __future__ import annotations

import html
import re
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ringwell.features.accounts.models import OrgKind, SipCredential, User
from ringwell.features.audit.models import AuditEvent
from ringwell.features.billing.models import Payment
from ringwell.features.billing.payments import StripeProvider
from ringwell.features.cdr.models import CallRecord
from ringwell.features.numbers.models import PhoneNumber
from ringwell.features.rating.models import RateDeck
from ringwell.features.trunks.models import Trunk
from ringwell.sip.digest import compute_ha1
from ringwell.web.deps import CSRF_HEADER
from tests.peers.fake_stripe import FakeStripe

INVENTORY = (
    "number,country,type,monthly_price,setup_price,trunk\n"
    "+1 415 555 0100,US,fixed,2.50,1.00,\n"
    "+1 415 555 0101,US,mobile,3.00,0,\n"
    "+1 212 555 0100,US,fixed,2.00,1.50,\n"
)
SF, SF_MOBILE, NYC = "+14155550100", "+14155550101", "+12125550100"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(page: str) -> str:
    """The CSRF token a form of the page carries (what a browser would send back)."""
    found = TOKEN_RE.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def as_browser(client):
    """A browser sends the CSRF token in the form, not in a header."""
    client.headers.pop(CSRF_HEADER, None)
    return client


def text(response) -> str:
    """The page's text, entities decoded (assertions read what the user reads)."""
    return html.unescape(response.text)


async def audit_actions(web, org_id) -> list[str]:
    async with web.services.sessions() as session:
        rows = (await session.execute(select(AuditEvent.action).where(AuditEvent.org_id == org_id))).scalars()
        return list(rows)


async def add_call(web, org_id, *, started_at=None, direction="internal", caller_user=None, caller_ext="101",
                   caller_number=None, callee_user=None, callee_ext=None, callee_number="102",
                   disposition="answered", talk=30.0, charge=None, currency=None) -> str:
    started = started_at or datetime.now(UTC) - timedelta(minutes=5)
    record = CallRecord(
        org_id=org_id, sip_call_id=secrets.token_hex(8), direction=direction, caller_user_id=caller_user,
        caller_extension=caller_ext, caller_number=caller_number, callee_user_id=callee_user,
        callee_extension=callee_ext, callee_number=callee_number, started_at=started,
        answered_at=started + timedelta(seconds=3) if disposition == "answered" else None,
        ended_at=started + timedelta(seconds=3 + talk), last_alive_at=started, ring_seconds=3.0,
        talk_seconds=talk if disposition == "answered" else None, state="closed", disposition=disposition,
        charge_minor=charge, currency=currency,
    )
    async with web.services.sessions() as session, session.begin():
        session.add(record)
    return record.id


async def stock_numbers(web) -> None:
    assert await web.services.numbers.import_numbers(INVENTORY.splitlines(keepends=True)) == 3


# -- layout and every page ------------------------------------------------------------------------
async def test_every_page_renders_for_an_owner_with_the_nav(web):
    acme = await web.tenant("Acme Telecom")
    pages = {
        "/": ["Acme Telecom", "Available credit", "Calls today", "No calls yet", "Last 14 days", 'role="img"'],
        "/calls": ["Calls", "No calls yet", "Download CSV"],
        "/numbers": ["Numbers", "No numbers yet", "Get a number"],
        "/numbers/search": ["Get a number", "No numbers available"],
        "/users": ["Users &amp; extensions", acme.owner.extension, "Add user"],
        "/users/new": ["Add a user", "Give portal access"],
        f"/users/{acme.owner.user.id}": ["Extension " + acme.owner.extension, "Devices registered now",
                                         "No device is registered", "Set a new SIP password"],
        "/billing": ["Billing", "Online payment is not configured", "No entries yet"],
    }
    for path, expected in pages.items():
        response = await acme.client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        for snippet in expected:
            assert snippet in response.text, (path, snippet)
        # The layout: the nav of an owner, the org's name, a logout form, no inline script or style.
        for href in ("/calls", "/numbers", "/users", "/billing"):
            assert f'href="{href}"' in response.text
        assert 'href="/operator"' not in response.text
        assert 'action="/logout"' in response.text
        assert "<script>" not in response.text and "style=" not in response.text and "<style" not in response.text
    current = (await acme.client.get("/numbers")).text
    assert '<a href="/numbers" aria-current="page">' in current


async def test_static_assets_are_served(web):
    client = web.client()
    css = await client.get("/static/app.css")
    js = await client.get("/static/app.js")
    assert css.status_code == js.status_code == 200
    for name in (".card", ".narrow", ".grid", ".stat", ".muted", ".badge", ".flash", ".error", ".ok", ".actions",
                 ".secret", ".filters", ".table-wrap", ".button", ".secondary", ".danger"):
        assert name in css.text, name
    assert "data-copy" in js.text and "data-confirm" in js.text


async def test_pages_need_a_login(web):
    client = web.client()
    for path in ("/", "/calls", "/numbers", "/users", "/billing", "/operator"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


# -- users and extensions ---------------------------------------------------------------------------
async def test_create_user_shows_the_sip_password_once_and_it_works(web):
    acme = await web.tenant("Acme")
    client = as_browser(acme.client)
    form = await client.get("/users/new")
    response = await client.post("/users", data={
        "csrf_token": token_of(form.text), "name": "Dora Diaz", "email": "dora@example.com", "extension": "150",
        "role": "admin", "portal_access": "1",
    })
    assert response.status_code == 201, response.text[:800]
    assert response.headers["cache-control"] == "no-store"
    page = text(response)
    assert "shown only once" in page
    password = re.search(r'<code id="sip-password">([^<]+)</code>', response.text).group(1)
    username = re.search(r'<code id="sip-username">([^<]+)</code>', response.text).group(1)
    assert web.services.settings.advertised_host in page
    assert 'data-copy="sip-password"' in response.text
    # The password is the one whose HA1 is stored; it is not stored itself.
    async with web.services.sessions() as session:
        cred = (await session.execute(select(SipCredential).where(SipCredential.username == username))).scalar_one()
        user = await session.get(User, cred.user_id)
    assert cred.ha1_md5 == compute_ha1(username, cred.realm, password, "MD5")
    assert cred.ha1_sha256 == compute_ha1(username, cred.realm, password, "SHA-256")
    assert (user.name, user.email, user.extension, user.role, user.org_id) == (
        "Dora Diaz", "dora@example.com", "150", "admin", acme.org.id)
    assert user.login_email == "dora@example.com"  # invited to the portal
    # Never again: not in the list, not on the user's page.
    listing = await client.get("/users")
    detail = await client.get(f"/users/{user.id}")
    for later in (listing, detail):
        assert later.status_code == 200
        assert password not in later.text
    assert "Dora Diaz" in listing.text and "invited" in listing.text
    assert "users.create" in await audit_actions(web, acme.org.id)


async def test_create_user_errors_rerender_the_form(web):
    acme = await web.tenant("Acme")
    client = as_browser(acme.client)
    token = token_of((await client.get("/users/new")).text)
    duplicate = await client.post("/users", data={"csrf_token": token, "email": "x@example.com",
                                                  "extension": acme.owner.extension, "role": "member"})
    assert duplicate.status_code == 409
    assert f"extension {acme.owner.extension} exists" in text(duplicate)
    assert 'value="x@example.com"' in duplicate.text  # what was typed is kept
    bad = await client.post("/users", data={"csrf_token": token, "email": "nope", "extension": "1"})
    assert bad.status_code == 422 and "invalid email address" in text(bad)
    async with web.services.sessions() as session:
        emails = (await session.execute(select(User.email).where(User.org_id == acme.org.id))).scalars().all()
    assert emails == [acme.owner.email]


async def test_rotate_sip_password_shows_the_new_one_once(web):
    acme = await web.tenant("Acme")
    client = as_browser(acme.client)
    detail = await client.get(f"/users/{acme.owner.user.id}")
    response = await client.post(f"/users/{acme.owner.user.id}/sip-password",
                                 data={"csrf_token": token_of(detail.text)})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    password = re.search(r'<code id="sip-password">([^<]+)</code>', response.text).group(1)
    assert password != acme.owner.sip_password
    async with web.services.sessions() as session:
        cred = (await session.execute(select(SipCredential).where(SipCredential.user_id == acme.owner.user.id)
                                      )).scalar_one()
    assert cred.ha1_md5 == compute_ha1(cred.username, cred.realm, password, "MD5")
    assert cred.ha1_md5 != compute_ha1(cred.username, cred.realm, acme.owner.sip_password, "MD5")
    assert password not in (await client.get(f"/users/{acme.owner.user.id}")).text
    assert "extensions.rotate_password" in await audit_actions(web, acme.org.id)


async def test_devices_registered_now_are_listed(web):
    import time

    from ringwell.pbx.registrar import Binding
    from ringwell.transport.source import Source

    acme = await web.tenant("Acme")
    cred = await web.services.accounts.credential(acme.owner.sip_username)
    web.services.registrar.load([Binding(
        cred.credential_id, acme.org.id, cred.username, "k1", f"sip:{cred.username}@192.0.2.7:5062",
        time.time() + 300, 1000, "call-1", 1, "Yealink T54W", Source("udp", "192.0.2.7", 5062))])
    listing = await acme.client.get("/users")
    assert "1 online" in listing.text
    detail = await acme.client.get(f"/users/{acme.owner.user.id}")
    assert "Yealink T54W" in detail.text and "192.0.2.7:5062" in detail.text
    dashboard = await acme.client.get("/")
    assert "1 online" in dashboard.text


async def test_another_orgs_user_is_not_found(web):
    acme = await web.tenant("Acme")
    other = await web.tenant("Other")
    response = await acme.client.get(f"/users/{other.owner.user.id}")
    assert response.status_code == 404
    rotate = await acme.client.post(f"/users/{other.owner.user.id}/sip-password")
    assert rotate.status_code == 404
    async with web.services.sessions() as session:
        cred = (await session.execute(select(SipCredential).where(SipCredential.user_id == other.owner.user.id)
                                      )).scalar_one()
    assert cred.ha1_md5 == compute_ha1(cred.username, cred.realm, other.owner.sip_password, "MD5")


# -- CSRF -----------------------------------------------------------------------------------------
async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(web):
    acme = await web.tenant("Acme")
    await stock_numbers(web)
    await web.services.ledger.adjust(acme.org.id, 10_000, "test credit", "tester")
    client = as_browser(acme.client)
    created = await client.post("/users", data={"email": "eve@example.com", "extension": "170"})
    rented = await client.post(f"/numbers/{SF}/rent", data={})
    forged = await client.post("/users", data={"csrf_token": "not-the-token", "email": "eve@example.com",
                                               "extension": "170"})
    for response in (created, rented, forged):
        assert response.status_code == 403
        assert "form has expired" in text(response)
    async with web.services.sessions() as session:
        assert (await session.execute(select(User).where(User.email == "eve@example.com"))).first() is None
        assert (await session.execute(select(PhoneNumber.state).where(PhoneNumber.e164 == SF))).scalar_one() \
            == "available"


# -- numbers --------------------------------------------------------------------------------------
async def test_rent_route_and_release_a_number(web):
    acme = await web.tenant("Acme")
    await stock_numbers(web)
    await web.services.ledger.adjust(acme.org.id, 1_000, "test credit", "tester")
    client = as_browser(acme.client)

    search = await client.get("/numbers/search", params={"area": "415"})
    assert search.status_code == 200
    assert SF in search.text and SF_MOBILE in search.text and NYC not in search.text
    offer = await client.get(f"/numbers/{SF}/rent")
    assert offer.status_code == 200
    assert "3.50 USD" in offer.text and "1.00 USD" in offer.text and "2.50 USD" in offer.text
    rented = await client.post(f"/numbers/{SF}/rent", data={"csrf_token": token_of(offer.text)})
    assert rented.status_code == 303 and rented.headers["location"].startswith("/numbers?done=rented")
    listing = await client.get(rented.headers["location"])
    assert f"{SF} is yours now" in text(listing)
    assert "Unrouted" not in listing.text and "Nobody (unrouted)" in listing.text
    assert (await web.services.ledger.balance(acme.org.id)).available_minor == 650

    routed = await client.post(f"/numbers/{SF}/route", data={"csrf_token": token_of(listing.text),
                                                             "extension": acme.owner.extension})
    assert routed.status_code == 303
    listing = await client.get("/numbers")
    assert f'<option value="{acme.owner.extension}" selected>' in listing.text
    route = await web.services.numbers.route_inbound(SF)
    assert route is not None and route.org_id == acme.org.id

    confirm = await client.get(f"/numbers/{SF}/release")
    assert confirm.status_code == 200 and "nothing is refunded" in confirm.text
    released = await client.post(f"/numbers/{SF}/release", data={"csrf_token": token_of(confirm.text)})
    assert released.status_code == 303
    listing = await client.get(released.headers["location"])
    assert "was released" in listing.text and "No numbers yet" in listing.text
    assert await web.services.numbers.route_inbound(SF) is None
    actions = await audit_actions(web, acme.org.id)
    assert {"numbers.rent", "numbers.route", "numbers.release"} <= set(actions)


async def test_renting_without_enough_credit_says_so_and_links_to_billing(web):
    acme = await web.tenant("Acme")
    await stock_numbers(web)
    await web.services.ledger.adjust(acme.org.id, 100, "test credit", "tester")
    client = as_browser(acme.client)
    offer = await client.get(f"/numbers/{NYC}/rent")
    assert "does not cover" in offer.text and 'href="/billing"' in offer.text
    assert re.search(r"<button type=\"submit\" disabled>", offer.text)
    refused = await client.post(f"/numbers/{NYC}/rent", data={"csrf_token": token_of(offer.text)})
    assert refused.status_code == 402
    assert "the available credit is 1.00 USD" in text(refused) and "add credit" in refused.text
    async with web.services.sessions() as session:
        assert (await session.execute(select(PhoneNumber.state).where(PhoneNumber.e164 == NYC))).scalar_one() \
            == "available"
    assert (await web.services.ledger.balance(acme.org.id)).available_minor == 100


async def test_a_number_of_another_org_cannot_be_released_or_routed(web):
    acme = await web.tenant("Acme")
    other = await web.tenant("Other")
    await stock_numbers(web)
    await web.services.ledger.adjust(other.org.id, 1_000, "test credit", "tester")
    await web.services.numbers.rent(other.org.id, SF, datetime.now(UTC))
    assert (await acme.client.get(f"/numbers/{SF}/release")).status_code == 404
    assert (await acme.client.post(f"/numbers/{SF}/release")).status_code == 404
    assert (await acme.client.post(f"/numbers/{SF}/route", data={"extension": ""})).status_code == 404
    assert SF not in (await acme.client.get("/numbers")).text
    assert [n.e164 for n in await web.services.numbers.numbers(other.org.id)] == [SF]


# -- calls ----------------------------------------------------------------------------------------
async def test_call_history_filters_narrow_the_list(web):
    acme = await web.tenant("Acme")
    now = datetime.now(UTC)
    await add_call(web, acme.org.id, direction="inbound", caller_ext=None, caller_number="+14155550111",
                   callee_number="+14155550100", callee_ext="101", disposition="answered")
    await add_call(web, acme.org.id, direction="outbound", caller_ext="101", callee_number="+12125550199",
                   disposition="busy")
    await add_call(web, acme.org.id, direction="internal", caller_ext="101", callee_number="103",
                   disposition="no-answer", started_at=now - timedelta(days=3))
    other = await web.tenant("Other")
    await add_call(web, other.org.id, direction="outbound", callee_number="+33123456789")

    every = (await acme.client.get("/calls")).text
    assert "+14155550111" in every and "+12125550199" in every and ">103<" in every
    assert "+33123456789" not in every  # another org's call
    inbound = (await acme.client.get("/calls", params={"direction": "inbound"})).text
    assert "+14155550111" in inbound and "+12125550199" not in inbound and ">103<" not in inbound
    busy = (await acme.client.get("/calls", params={"disposition": "busy"})).text
    assert "+12125550199" in busy and "+14155550111" not in busy
    by_number = (await acme.client.get("/calls", params={"number": "+1 (212) 555-0199"})).text
    assert "+12125550199" in by_number and "+14155550111" not in by_number
    today = now.date().isoformat()
    since_today = (await acme.client.get("/calls", params={"since": today, "until": today})).text
    assert "+12125550199" in since_today and ">103<" not in since_today
    nothing = await acme.client.get("/calls", params={"number": "999999"})
    assert "No calls match these filters" in nothing.text
    # The CSV link carries the same filters, as the API expects them.
    csv_link = re.search(r'href="(/api/v1/orgs/[^"]+/calls\.csv[^"]*)"',
                         (await acme.client.get("/calls", params={"direction": "outbound", "since": today})).text)
    assert csv_link is not None
    link = html.unescape(csv_link.group(1))
    assert f"/api/v1/orgs/{acme.org.id}/calls.csv?" in link
    assert "direction=outbound" in link and f"since={today}T00%3A00%3A00Z" in link
    bad = await acme.client.get("/calls", params={"since": "yesterday"})
    assert bad.status_code == 422 and "a date like 2026-03-01" in bad.text


async def test_call_history_pages(web):
    acme = await web.tenant("Acme")
    start = datetime.now(UTC) - timedelta(hours=2)
    for i in range(55):
        await add_call(web, acme.org.id, callee_number=f"2{i:02d}", started_at=start + timedelta(seconds=i))
    first = await acme.client.get("/calls")
    assert ">254<" in first.text and ">205<" in first.text and ">204<" not in first.text
    older = re.search(r'<a href="([^"]+)">Older →</a>', first.text)
    assert older is not None
    second = await acme.client.get(html.unescape(older.group(1)))
    assert ">204<" in second.text and ">200<" in second.text and ">205<" not in second.text
    assert "Older →" not in second.text


async def test_a_member_sees_only_their_own_calls_and_cannot_create_users(web):
    acme = await web.tenant("Acme")
    member = await web.member(acme.org, "member")
    mine = await add_call(web, acme.org.id, caller_user=member.user.id, caller_ext=member.extension,
                          callee_number="+14155550177", charge=12, currency="USD", direction="outbound")
    await add_call(web, acme.org.id, caller_user=acme.owner.user.id, caller_ext=acme.owner.extension,
                   callee_number="+14155550188", charge=40, currency="USD", direction="outbound")
    client = as_browser(await web.logged_in(member))

    calls = await client.get("/calls")
    assert calls.status_code == 200
    assert "Your calls" in calls.text and "+14155550177" in calls.text and "+14155550188" not in calls.text
    # Asking for someone else's calls does not widen the view.
    widened = await client.get("/calls", params={"user": acme.owner.user.id})
    assert "+14155550188" not in widened.text
    dashboard = await client.get("/")
    assert dashboard.status_code == 200
    assert "+14155550177" in dashboard.text and "+14155550188" not in dashboard.text
    assert "0.12 USD" in dashboard.text  # the member's spend today, not the org's
    assert 'data-calls="1"' in dashboard.text and 'data-calls="2"' not in dashboard.text
    assert mine

    users = await client.get("/users")
    assert users.status_code == 200
    assert "Add user" not in users.text and 'href="/users/new"' not in users.text
    assert (await client.get("/users/new")).status_code == 403
    token = token_of(users.text)
    refused = await client.post("/users", data={"csrf_token": token, "email": "m@example.com", "extension": "190"})
    assert refused.status_code == 403
    assert (await client.get("/numbers/search")).status_code == 403
    assert "Get a number" not in (await client.get("/numbers")).text


async def test_dashboard_counts_today_and_charts_two_weeks(web):
    acme = await web.tenant("Acme")
    now = datetime.now(UTC)
    for _ in range(3):
        await add_call(web, acme.org.id, charge=25, currency="USD", direction="outbound")
    await add_call(web, acme.org.id, disposition="busy", direction="outbound")
    await add_call(web, acme.org.id, started_at=now - timedelta(days=2), charge=100, currency="USD")
    await web.services.ledger.adjust(acme.org.id, 5_000, "welcome credit", "tester")
    page = await acme.client.get("/")
    body = text(page)
    stat = re.search(r"Calls today</span>\s*<strong class=\"value\">(\d+)</strong>", page.text)
    assert stat is not None and stat.group(1) == "4"
    assert "3 answered" in body and "0.75 USD" in body and "50.00 USD" in body
    # The chart is drawn twice (a wide and a narrow one; the stylesheet shows one): 14 days each.
    wide = re.search(r'<svg class="chart chart-wide".*?</svg>', page.text, re.S).group(0)
    narrow = re.search(r'<svg class="chart chart-narrow".*?</svg>', page.text, re.S).group(0)
    for chart in (wide, narrow):
        assert len(re.findall(r'class="chart-bar"', chart)) == 14
        assert 'data-calls="4"' in chart and 'data-calls="1"' in chart
        assert "5 calls" in chart  # the accessible summary


# -- billing --------------------------------------------------------------------------------------
async def test_ledger_and_receipts(web):
    acme = await web.tenant("Acme")
    other = await web.tenant("Other")
    ledger = web.services.ledger
    await ledger.adjust(acme.org.id, 2_500, "bank transfer 42", "ops@example.com")
    await ledger.try_charge(acme.org.id, 300, "number_rental", "rental of +14155550100", "ref-1")
    await ledger.adjust(other.org.id, 9_900, "other credit", "ops@example.com")
    page = await acme.client.get("/billing")
    body = text(page)
    assert "22.00 USD" in body and "+25.00 USD" in body and "-3.00 USD" in body
    assert "bank transfer 42" in body and "other credit" not in body
    receipts = set(re.findall(r'href="/billing/receipts/(\d+)"', page.text))
    assert receipts == {"1"}  # the credit has one; the charge has none
    receipt = await acme.client.get("/billing/receipts/1")
    assert receipt.status_code == 200
    body = text(receipt)
    assert "Receipt" in body and "Acme" in body and "25.00 USD" in body and "bank transfer 42" in body
    assert "Balance after" in body
    assert (await acme.client.get("/billing/receipts/2")).status_code == 404  # a charge
    assert (await acme.client.get("/billing/receipts/3")).status_code == 404  # no such entry (Other's is theirs)
    # Without a payment provider the owner is told how credit arrives, and a top-up is refused.
    assert "Online payment is not configured" in page.text
    refused = await as_browser(acme.client).post("/billing/top-up",
                                                 data={"csrf_token": token_of(page.text), "amount": "10"})
    assert refused.status_code == 422 and "not configured" in refused.text


async def test_top_up_starts_a_stripe_payment(web):
    acme = await web.tenant("Acme")
    with FakeStripe("sk_test_portal") as fake:
        web.services.payments = StripeProvider(web.services.sessions, web.services.ledger, api_key="sk_test_portal",
                                               webhook_secret="whsec_portal", api_base=fake.url)
        client = as_browser(acme.client)
        page = await client.get("/billing")
        assert "Continue to payment" in page.text
        bad = await client.post("/billing/top-up", data={"csrf_token": token_of(page.text), "amount": "1.234"})
        assert bad.status_code == 422 and "2 decimal places" in text(bad)
        started = await client.post("/billing/top-up", data={"csrf_token": token_of(page.text), "amount": "25.00"})
        assert started.status_code == 303, started.text[:600]  # to Stripe Checkout's page
        reference = re.match(re.escape(fake.url) + r"/c/pay/(cs_test_\w+)", started.headers["location"]).group(1)
        assert fake.session(reference)["amount_total"] == 2500
    async with web.services.sessions() as session:
        payment = (await session.execute(select(Payment).where(Payment.org_id == acme.org.id))).scalar_one()
    assert (payment.provider_id, payment.amount_minor, payment.status) == (reference, 2500, "pending")
    assert "billing.topup" in await audit_actions(web, acme.org.id)
    # A member cannot start one.
    member = as_browser(await web.logged_in(await web.member(acme.org, "member")))
    assert (await member.post("/billing/top-up", data={"csrf_token": token_of(page.text), "amount": "5"})
            ).status_code == 403


# -- operator console ---------------------------------------------------------------------------------
async def test_operator_console_for_staff(web):
    op = await web.org("Ringwell Ops", kind=OrgKind.OPERATOR)
    staff = await web.member(op, "billing")
    client = as_browser(await web.logged_in(staff))
    acme = await web.tenant("Acme")
    await web.services.ledger.adjust(acme.org.id, 1_234, "test credit", "tester")
    async with web.services.sessions() as session, session.begin():
        session.add(Trunk(name="carrier-a", host="192.0.2.10", port=5060, transport="udp", priority=5, enabled=True))

    orgs = await client.get("/operator")
    assert orgs.status_code == 200
    assert "Acme" in orgs.text and "12.34 USD" in orgs.text and "Ringwell Ops" in orgs.text
    assert 'href="/operator"' in orgs.text  # the nav shows the console to staff

    detail = await client.get(f"/operator/orgs/{acme.org.id}")
    assert detail.status_code == 200 and "test credit" in detail.text
    credited = await client.post(f"/operator/orgs/{acme.org.id}/credit", data={
        "csrf_token": token_of(detail.text), "direction": "credit", "amount": "10.00", "reason": "wire 77"})
    assert credited.status_code == 303
    assert (await web.services.ledger.balance(acme.org.id)).balance_minor == 2_234
    no_reason = await client.post(f"/operator/orgs/{acme.org.id}/credit", data={
        "csrf_token": token_of(detail.text), "direction": "debit", "amount": "1.00", "reason": ""})
    assert no_reason.status_code == 422 and "reason is required" in no_reason.text

    trunks = await client.get("/operator/trunks")
    assert trunks.status_code == 200 and "carrier-a" in trunks.text and "192.0.2.10:5060" in trunks.text
    trunk_id = re.search(r'action="/operator/trunks/([^/]+)/enabled"', trunks.text).group(1)
    disabled = await client.post(f"/operator/trunks/{trunk_id}/enabled",
                                 data={"csrf_token": token_of(trunks.text), "enabled": "0"})
    assert disabled.status_code == 303
    assert [t.enabled for t in await web.services.trunks.all()] == [False]
    assert "disabled" in (await client.get("/operator/trunks")).text

    rates = await client.get("/operator/rates")
    assert rates.status_code == 200 and "No rate decks yet" in rates.text
    imported = await client.post("/operator/rates", data={
        "csrf_token": token_of(rates.text), "name": "retail", "currency": "USD",
        "csv": "prefix,description,price_per_minute\n1,USA,0.010\n44,UK,0.020\n"})
    assert imported.status_code == 303
    listing = await client.get(imported.headers["location"])
    assert "retail" in listing.text and "(2 imported)" in listing.text
    uploaded = await client.post("/operator/rates", data={"csrf_token": token_of(rates.text), "name": "wholesale",
                                                          "currency": "EUR"},
                                 files={"file": ("deck.csv", b"prefix,description,price_per_minute\n33,FR,0.01\n",
                                                 "text/csv")})
    assert uploaded.status_code == 303
    broken = await client.post("/operator/rates", data={"csrf_token": token_of(rates.text), "name": "broken",
                                                        "currency": "USD", "csv": "prefix,description\n1,x\n"})
    assert broken.status_code == 422 and "line 1" in broken.text
    async with web.services.sessions() as session:
        decks = (await session.execute(select(RateDeck.name, RateDeck.currency).order_by(RateDeck.name))).all()
    assert [tuple(d) for d in decks] == [("retail", "USD"), ("wholesale", "EUR")]

    numbers = await client.get("/operator/numbers")
    assert numbers.status_code == 200
    added = await client.post("/operator/numbers", data={"csrf_token": token_of(numbers.text), "csv": INVENTORY})
    assert added.status_code == 303
    await web.services.numbers.rent(acme.org.id, SF, datetime.now(UTC))
    rented = await client.get("/operator/numbers", params={"state": "rented"})
    assert SF in rented.text and "Acme" in rented.text and NYC not in rented.text
    available = await client.get("/operator/numbers", params={"state": "available"})
    assert NYC in available.text and SF not in available.text
    again = await client.post("/operator/numbers", data={"csrf_token": token_of(numbers.text), "csv": INVENTORY})
    assert again.status_code == 422 and "already in the inventory" in again.text

    actions = set(await audit_actions(web, op.id)) | set(await audit_actions(web, acme.org.id))
    assert {"billing.adjust", "trunks.update", "ratedecks.import", "numbers.import", "staff.access"} <= actions


async def test_operator_console_is_refused_to_customers(web):
    acme = await web.tenant("Acme")
    for path in ("/operator", f"/operator/orgs/{acme.org.id}", "/operator/trunks", "/operator/rates",
                 "/operator/numbers"):
        response = await acme.client.get(path)
        assert response.status_code == 403, path
        assert "staff only" in response.text
    refused = await acme.client.post(f"/operator/orgs/{acme.org.id}/credit",
                                     data={"amount": "100.00", "reason": "free money"})
    assert refused.status_code == 403
    assert (await web.services.ledger.balance(acme.org.id)).balance_minor == 0
    # Staff of the operator whose role lacks a permission get a 403 for that page only.
    op = await web.org("Ops", kind=OrgKind.OPERATOR)
    auditor = await web.logged_in(await web.member(op, "auditor"))
    assert (await auditor.get("/operator")).status_code == 200
    assert (await auditor.get("/operator/trunks")).status_code == 403


@pytest.mark.parametrize("path", ["/numbers/%2B1/rent", "/users/x/sip-password"])
async def test_garbage_in_paths_is_not_a_server_error(web, path):
    acme = await web.tenant("Acme")
    response = await acme.client.post(path)
    assert 400 <= response.status_code < 500
