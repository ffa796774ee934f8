"""Numbers on SQLite and PostgreSQL: inventory import, search, renting from prepaid credit,
quarantine, renewals, inbound routing, caller ID and its verification, tenant isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text, update

from ringwell.errors import Invalid, NotFound
from ringwell.features.accounts.errors import UserNotFound
from ringwell.features.accounts.models import Organization
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.billing.service import LedgerService
from ringwell.features.numbers.errors import (
    CurrencyMismatch,
    InsufficientCredit,
    InvalidNumber,
    InvalidNumberImport,
    NumberNotAvailable,
    NumberNotFound,
    NumberOwnedElsewhere,
    TooManyVerifications,
)
from ringwell.features.numbers.models import CallerIdVerification, PhoneNumber
from ringwell.features.numbers.service import InboundRoute, NumbersService
from ringwell.features.trunks.models import Trunk

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
APR_1 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

HEADER = "number,country,type,monthly_price,setup_price,trunk\n"
INVENTORY = HEADER + (
    "+1 415 555 0100,US,fixed,2.50,1.00,carrier-a\n"
    "(415) 555-0101,US,mobile,3.00,0,\n"
    "+1 212 555 0100,US,fixed,2.00,1.50,carrier-a\n"
    "+1 800 555 0100,US,toll-free,5.00,10.00,\n"
    "020 7946 0000,GB,,1.20,0.00,\n"
)
SF = "+14155550100"  # setup 1.00 + month 2.50
SF_MOBILE = "+14155550101"  # setup 0 + month 3.00
NYC = "+12125550100"  # setup 1.50 + month 2.00
LONDON = "+442079460000"


@pytest.fixture
def ledger(sessions):
    return LedgerService(sessions)


@pytest.fixture
def numbers(sessions, ledger):
    return NumbersService(sessions, ledger, quarantine_days=30, warn_days=3)


@pytest.fixture
async def ids(sessions):
    """Acme (alice 101, bob 102) and Other (carol 201) pay in USD, Euro GmbH (erik 301) in EUR;
    one trunk, carrier-a."""
    accounts = AccountsService(sessions, "ringwell")
    for name in ("Acme", "Other", "Euro GmbH"):
        await accounts.create_org(name)
    alice = await accounts.create_user("Acme", UserSpec("alice@example.com", "101", "alice", "password1"))
    bob = await accounts.create_user("Acme", UserSpec("bob@example.com", "102", "bob", "password1"))
    carol = await accounts.create_user("Other", UserSpec("carol@example.com", "201", "carol", "password1"))
    erik = await accounts.create_user("Euro GmbH", UserSpec("erik@example.com", "301", "erik", "password1"))
    async with sessions() as session, session.begin():
        await session.execute(update(Organization).where(Organization.id == erik.user.org_id)
                              .values(country="DE", currency="EUR"))
        trunk = Trunk(name="carrier-a", host="192.0.2.10")
        session.add(trunk)
    return {"acme": alice.user.org_id, "other": carol.user.org_id, "euro": erik.user.org_id,
            "alice": alice.user.id, "bob": bob.user.id, "carol": carol.user.id, "erik": erik.user.id,
            "trunk": trunk.id}


@pytest.fixture
async def stocked(numbers, ids):
    assert await numbers.import_numbers(INVENTORY.splitlines(keepends=True)) == 5
    return ids


async def credit(ledger, org_id, amount_minor):
    await ledger.adjust(org_id, amount_minor, "test credit", "tester")


async def row(sessions, e164) -> PhoneNumber:
    async with sessions() as session:
        return (await session.execute(select(PhoneNumber).where(PhoneNumber.e164 == e164))).scalar_one()


async def inventory_size(sessions) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(PhoneNumber))).scalar_one()


async def available(ledger, org_id) -> int:
    return (await ledger.balance(org_id)).available_minor


# -- import --------------------------------------------------------------------------------------
async def test_import_stores_normalized_numbers_and_exact_prices(sessions, stocked):
    sf = await row(sessions, SF)
    assert (sf.country, sf.national_number, sf.type, sf.monthly_price_minor, sf.setup_price_minor, sf.currency,
            sf.trunk_id, sf.state, sf.org_id) == ("US", "4155550100", "fixed", 250, 100, "USD", stocked["trunk"],
                                                  "available", None)
    mobile = await row(sessions, SF_MOBILE)  # "(415) 555-0101" read with the row's country
    assert (mobile.type, mobile.monthly_price_minor, mobile.setup_price_minor, mobile.trunk_id) == (
        "mobile", 300, 0, None)
    london = await row(sessions, LONDON)  # "020 7946 0000" with GB; empty type derived from the number
    assert (london.country, london.national_number, london.type, london.monthly_price_minor) == (
        "GB", "2079460000", "fixed", 120)


async def test_import_currency_column_any_order_and_blank_lines(numbers, sessions, ids):
    lines = ["currency,trunk,setup_price,monthly_price,type,country,number\n",
             "\n",
             "EUR,,5.00,1.99,fixed,DE,030 1234567\n",
             "JPY,,0,500,mobile,JP,090-1234-5678\n"]
    assert await numbers.import_numbers(lines) == 2
    berlin = await row(sessions, "+49301234567")
    assert (berlin.currency, berlin.monthly_price_minor, berlin.setup_price_minor) == ("EUR", 199, 500)
    tokyo = await row(sessions, "+819012345678")
    assert (tokyo.currency, tokyo.monthly_price_minor) == ("JPY", 500)  # the yen has no minor unit


@pytest.mark.parametrize(("bad_line", "message"), [
    ("+1 415 555 0199,US,fixed,abc,1.00,", "line 3: monthly_price: not an amount: 'abc' (expected e.g. 10.00)"),
    ("+1 415 555 0199,US,fixed,2.505,1.00,", "line 3: monthly_price: USD has 2 decimal places; '2.505' has 3"),
    ("+1 415 555 0199,US,fixed,2.50,-1.00,", "line 3: setup_price must be a plain amount of at least 0, "
                                               "not '-1.00'"),
    ("+1 415 555 0199,US,fixed,2.50,1.00,carrier-z", "line 3: no trunk named 'carrier-z'"),
    ("+1 415 555,US,fixed,2.50,1.00,", "line 3: not a phone number: '+1 415 555' (too short for +1 (US))"),
    ("555 0199,US,fixed,2.50,1.00,",
     "line 3: not a phone number: '555 0199' (a local number without its area code for +1 (US))"),
    ("+44 20 7946 0001,US,fixed,2.50,1.00,", "line 3: +442079460001 is a number of GB, not US"),
    ("+1 415 555 0199,XX,fixed,2.50,1.00,", "line 3: unknown country 'XX' (ISO 3166-1 alpha-2, e.g. US)"),
    ("+1 415 555 0199,US,landline,2.50,1.00,", "line 3: unknown type 'landline' (one of fixed, "
                                                 "fixed-or-mobile, mobile, pager, personal, premium, shared-cost, "
                                                 "toll-free, uan, unknown, voicemail, voip)"),
    ("+1 415 555 0199,US,fixed,2.50", "line 3: 4 fields, the header has 6"),
    ("(415) 555-0150,US,fixed,2.50,1.00,", "line 3: +14155550150 is also on line 2"),
])
async def test_a_bad_line_rejects_the_whole_file(numbers, sessions, ids, bad_line, message):
    lines = [HEADER, "+1 415 555 0150,US,fixed,2.50,1.00,carrier-a\n", bad_line + "\n",
             "+1 415 555 0151,US,fixed,2.50,1.00,\n"]
    with pytest.raises(InvalidNumberImport) as info:
        await numbers.import_numbers(lines)
    assert info.value.message == message
    assert info.value.details["line"] == 3
    assert info.value.error_id == "invalid_number_import" and isinstance(info.value, Invalid)
    assert await inventory_size(sessions) == 0


async def test_line_numbers_count_blank_lines_and_header_errors(numbers, sessions, ids):
    with pytest.raises(InvalidNumberImport) as info:
        await numbers.import_numbers([HEADER, "\n", "\n", "+1 415 555 0150,US,fixed,x,1.00,\n"])
    assert info.value.message.startswith("line 4: ") and info.value.details == {"line": 4}
    with pytest.raises(InvalidNumberImport, match=r"^line 1: missing column\(s\) trunk$"):
        await numbers.import_numbers(["number,country,type,monthly_price,setup_price\n"])
    with pytest.raises(InvalidNumberImport, match=r"^line 1: unknown column 'price'"):
        await numbers.import_numbers(["number,country,type,price,monthly_price,setup_price,trunk\n"])
    with pytest.raises(InvalidNumberImport, match=r"^line 1: the file is empty"):
        await numbers.import_numbers([])
    assert await numbers.import_numbers([HEADER]) == 0
    assert await inventory_size(sessions) == 0


async def test_a_number_already_in_the_inventory_rejects_the_file(numbers, sessions, stocked):
    lines = [HEADER, "+1 303 555 0100,US,fixed,2.00,1.00,\n", "+1 (415) 555-0100,US,fixed,9.00,9.00,\n"]
    with pytest.raises(InvalidNumberImport) as info:
        await numbers.import_numbers(lines)
    assert info.value.message == f"line 3: {SF} is already in the inventory"
    assert info.value.details == {"line": 3, "number": SF}
    assert await inventory_size(sessions) == 5
    assert (await row(sessions, SF)).monthly_price_minor == 250


# -- search --------------------------------------------------------------------------------------
async def test_search_filters(numbers, stocked):
    def e164s(found):
        return [number.e164 for number in found]

    assert e164s(await numbers.search(now=T0)) == [NYC, SF, SF_MOBILE, "+18005550100", LONDON]
    assert e164s(await numbers.search(country="us", now=T0)) == [NYC, SF, SF_MOBILE, "+18005550100"]
    assert e164s(await numbers.search(country="US", area="415", now=T0)) == [SF, SF_MOBILE]
    assert e164s(await numbers.search(area="20", now=T0)) == [LONDON]
    assert e164s(await numbers.search(country="US", area="415", type="mobile", now=T0)) == [SF_MOBILE]
    assert e164s(await numbers.search(type="toll-free", now=T0)) == ["+18005550100"]
    assert e164s(await numbers.search(country="GB", area="415", now=T0)) == []
    assert e164s(await numbers.search(limit=2, now=T0)) == [NYC, SF]
    assert len(await numbers.search()) == 5  # now defaults to the clock
    for bad in ({"area": "4x"}, {"area": "%"}, {"country": "USA"}, {"type": "landline"}, {"limit": 0}):
        with pytest.raises(InvalidNumber):
            await numbers.search(**bad)


# -- renting -------------------------------------------------------------------------------------
async def test_rent_charges_setup_and_first_month_exactly(numbers, ledger, stocked):
    await credit(ledger, stocked["acme"], 1000)
    rented = await numbers.rent(stocked["acme"], "(415) 555-0100", T0)  # national form, the org's country
    assert (rented.e164, rented.state, rented.org_id, rented.rented_at, rented.paid_until) == (
        SF, "rented", stocked["acme"], T0, APR_1)
    assert await available(ledger, stocked["acme"]) == 1000 - 100 - 250
    entries = await ledger.entries(stocked["acme"])
    assert [(e.kind, e.amount_minor) for e in entries[:2]] == [("number_rental", -250), ("number_setup", -100)]
    assert (await ledger.verify(stocked["acme"])).ok
    assert SF not in [number.e164 for number in await numbers.search(now=T0)]
    [view] = await numbers.numbers(stocked["acme"])
    assert (view.e164, view.paid_until, view.extension) == (SF, APR_1, None)
    assert await numbers.numbers(stocked["other"]) == []


async def test_a_free_setup_is_one_charge(numbers, ledger, stocked):
    await credit(ledger, stocked["acme"], 300)
    await numbers.rent(stocked["acme"], SF_MOBILE, T0)
    assert await available(ledger, stocked["acme"]) == 0
    assert [(e.kind, e.amount_minor) for e in (await ledger.entries(stocked["acme"]))[:1]] == [
        ("number_rental", -300)]


async def test_insufficient_credit_changes_nothing(numbers, ledger, sessions, stocked):
    await credit(ledger, stocked["acme"], 349)  # one cent short of 1.00 + 2.50
    with pytest.raises(InsufficientCredit) as info:
        await numbers.rent(stocked["acme"], SF, T0)
    assert info.value.error_id == "insufficient_credit"
    assert info.value.message == (f"renting {SF} costs 3.50 USD (setup 1.00 USD + first month 2.50 USD); "
                                  "the available credit is 3.49 USD")
    assert await available(ledger, stocked["acme"]) == 349
    assert len(await ledger.entries(stocked["acme"])) == 1  # just the credit
    number = await row(sessions, SF)
    assert (number.state, number.org_id, number.paid_until) == ("available", None, None)


async def test_credit_taken_between_check_and_charge_is_refunded(sessions, stocked):
    """A call reserves credit after the check: the setup charge is undone, the number stays free."""

    class RacingLedger(LedgerService):
        async def try_charge(self, org_id, amount_minor, kind, description, reference=None):
            if kind == "number_rental":
                assert await self.reserve(org_id, "call-1", 200)  # a call's next slice, right now
            return await super().try_charge(org_id, amount_minor, kind, description, reference)

    ledger = RacingLedger(sessions)
    numbers = NumbersService(sessions, ledger)
    await credit(ledger, stocked["acme"], 400)
    with pytest.raises(InsufficientCredit, match="no longer covers it"):
        await numbers.rent(stocked["acme"], SF, T0)
    balance = await ledger.balance(stocked["acme"])
    assert (balance.balance_minor, balance.reserved_minor) == (400, 200)
    assert [(e.kind, e.amount_minor) for e in (await ledger.entries(stocked["acme"]))[:2]] == [
        ("refund", 100), ("number_setup", -100)]
    assert (await ledger.verify(stocked["acme"])).ok
    assert (await row(sessions, SF)).state == "available"


async def test_rent_refusals(numbers, ledger, stocked):
    for org in ("acme", "other", "euro"):
        await credit(ledger, stocked[org], 10_000)
    await numbers.rent(stocked["acme"], SF, T0)
    with pytest.raises(NumberNotAvailable, match=r"^\+14155550100 is rented$"):
        await numbers.rent(stocked["other"], SF, T0)
    with pytest.raises(NumberNotAvailable, match="by this organization already"):
        await numbers.rent(stocked["acme"], SF, T0)
    with pytest.raises(NumberNotFound, match=r"^\+14155550199 is not in the inventory$"):
        await numbers.rent(stocked["acme"], "+1 415 555 0199", T0)
    with pytest.raises(CurrencyMismatch, match="priced in USD; the organization pays in EUR"):
        await numbers.rent(stocked["euro"], NYC, T0)
    with pytest.raises(InvalidNumber):
        await numbers.rent(stocked["acme"], "not a number", T0)
    assert await available(ledger, stocked["other"]) == 10_000
    assert await available(ledger, stocked["euro"]) == 10_000


async def test_two_orgs_renting_the_same_number_at_once(numbers, ledger, stocked):
    await credit(ledger, stocked["acme"], 1000)
    await credit(ledger, stocked["other"], 1000)
    results = await asyncio.gather(numbers.rent(stocked["acme"], SF, T0), numbers.rent(stocked["other"], SF, T0),
                                   return_exceptions=True)
    assert sorted(type(result).__name__ for result in results) == ["NumberNotAvailable", "PhoneNumber"]
    winner = next(result for result in results if isinstance(result, PhoneNumber))
    loser = "other" if winner.org_id == stocked["acme"] else "acme"
    assert await available(ledger, winner.org_id) == 650
    assert await available(ledger, stocked[loser]) == 1000


# -- release and quarantine ------------------------------------------------------------------------
async def test_release_quarantine_then_available_again(numbers, ledger, sessions, stocked):
    await credit(ledger, stocked["acme"], 1000)
    await credit(ledger, stocked["other"], 1000)
    await numbers.rent(stocked["acme"], SF, T0)
    await numbers.route(SF, "101")
    released = await numbers.release(stocked["acme"], SF, T0 + timedelta(days=5))
    until = T0 + timedelta(days=35)
    assert (released.state, released.org_id, released.route_user_id, released.quarantine_until) == (
        "quarantine", None, None, until)
    assert await available(ledger, stocked["acme"]) == 650  # nothing refunded
    assert await numbers.route_inbound(SF) is None
    assert await numbers.numbers(stocked["acme"]) == []
    # In quarantine: not found, not rentable, by anyone.
    assert SF not in [n.e164 for n in await numbers.search(now=until - timedelta(seconds=1))]
    with pytest.raises(NumberNotAvailable, match="in quarantine"):
        await numbers.rent(stocked["other"], SF, until - timedelta(seconds=1))
    with pytest.raises(NumberNotFound):
        await numbers.release(stocked["acme"], SF, T0 + timedelta(days=6))
    # The quarantine over, it is simply available.
    assert SF in [n.e164 for n in await numbers.search(area="415", now=until)]
    rented = await numbers.rent(stocked["other"], SF, until)
    assert (rented.org_id, rented.quarantine_until, rented.route_user_id) == (stocked["other"], None, None)
    assert await available(ledger, stocked["other"]) == 650


# -- renewals --------------------------------------------------------------------------------------
async def test_renewal_warns_once_then_charges_then_releases_when_unpaid(numbers, ledger, sessions, stocked):
    acme = stocked["acme"]
    await credit(ledger, acme, 350 + 250)  # setup + first month + exactly one renewal
    await numbers.rent(acme, SF, T0)
    report = await numbers.renew_due(T0 + timedelta(days=10))
    assert (report.warned, report.renewed, report.released) == ([], [], [])

    # Three days before the end: one warning, however often the job runs.
    report = await numbers.renew_due(APR_1 - timedelta(days=3))
    assert [(w.e164, w.org_id, w.amount_minor, w.paid_until, w.covered) for w in report.warned] == [
        (SF, acme, 250, APR_1, True)]
    assert (await numbers.renew_due(APR_1 - timedelta(days=3))).warned == []
    assert (await numbers.renew_due(APR_1 - timedelta(days=1))).warned == []
    assert (await row(sessions, SF)).renewal_warned_at == APR_1 - timedelta(days=3)
    assert await available(ledger, acme) == 250

    # At the end: the next month is charged, paid until May 1.
    report = await numbers.renew_due(APR_1)
    assert [(r.e164, r.amount_minor, r.paid_until) for r in report.renewed] == [(SF, 250, MAY_1)]
    assert (report.warned, report.released) == ([], [])
    assert await available(ledger, acme) == 0
    again = await numbers.renew_due(APR_1)  # idempotent at the same moment
    assert (again.warned, again.renewed, again.released) == ([], [], [])
    assert await available(ledger, acme) == 0
    number = await row(sessions, SF)
    assert (number.paid_until, number.renewal_warned_at) == (MAY_1, None)

    # The next period: warned that the credit does not cover it, then released.
    report = await numbers.renew_due(MAY_1 - timedelta(days=2))
    assert [(w.e164, w.covered) for w in report.warned] == [(SF, False)]
    report = await numbers.renew_due(MAY_1 + timedelta(hours=1))
    assert [(r.e164, r.org_id, r.amount_minor, r.paid_until) for r in report.released] == [
        (SF, acme, 250, MAY_1)]
    assert report.renewed == []
    number = await row(sessions, SF)
    assert (number.state, number.org_id, number.quarantine_until) == (
        "quarantine", None, MAY_1 + timedelta(hours=1, days=30))
    assert await available(ledger, acme) == 0
    assert (await ledger.verify(acme)).ok
    again = await numbers.renew_due(MAY_1 + timedelta(hours=1))
    assert (again.warned, again.renewed, again.released) == ([], [], [])
    # Entries: credit, setup, first month, one renewal. Nothing else was charged.
    assert [(e.kind, e.amount_minor) for e in await ledger.entries(acme)] == [
        ("number_rental", -250), ("number_rental", -250), ("number_setup", -100), ("adjustment", 600)]


async def test_renewal_catches_up_missed_months_on_the_rental_day(numbers, ledger, sessions, stocked):
    jan_31 = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    await credit(ledger, stocked["acme"], 10_000)
    rented = await numbers.rent(stocked["acme"], NYC, jan_31)
    assert rented.paid_until == datetime(2026, 2, 28, 8, 0, tzinfo=UTC)
    report = await numbers.renew_due(datetime(2026, 4, 2, tzinfo=UTC))  # the job did not run in March
    assert [r.paid_until for r in report.renewed] == [datetime(2026, 3, 31, 8, 0, tzinfo=UTC),
                                                      datetime(2026, 4, 30, 8, 0, tzinfo=UTC)]
    assert await available(ledger, stocked["acme"]) == 10_000 - 150 - 3 * 200


# -- routing -------------------------------------------------------------------------------------------
async def test_route_and_inbound_route(numbers, ledger, stocked):
    await credit(ledger, stocked["acme"], 1000)
    number = await numbers.rent(stocked["acme"], SF, T0)
    assert await numbers.route_inbound(SF) == InboundRoute(stocked["acme"], number.id, None, None, SF)
    await numbers.route("+1 (415) 555-0100", "102")
    assert await numbers.route_inbound(SF) == InboundRoute(stocked["acme"], number.id, stocked["bob"], "102", SF)
    [view] = await numbers.numbers(stocked["acme"])
    assert view.extension == "102"
    await numbers.route(SF, "101", org_id=stocked["acme"])
    assert (await numbers.route_inbound(SF)).extension == "101"
    await numbers.route(SF, None, org_id=stocked["acme"])
    assert (await numbers.route_inbound(SF)).user_id is None
    assert await numbers.route_inbound(NYC) is None  # in the inventory, not rented
    assert await numbers.route_inbound("+14155550199") is None
    with pytest.raises(UserNotFound):
        await numbers.route(SF, "201")  # carol's extension, in another org
    with pytest.raises(NumberNotFound, match="not rented by any organization"):
        await numbers.route(NYC, "101")


async def test_another_org_cannot_release_or_route_your_number(numbers, ledger, sessions, stocked):
    await credit(ledger, stocked["acme"], 1000)
    await numbers.rent(stocked["acme"], SF, T0)
    await numbers.route(SF, "101")
    with pytest.raises(NumberNotFound, match="not rented by this organization"):
        await numbers.release(stocked["other"], SF, T0)
    with pytest.raises(NumberNotFound, match="not rented by this organization"):
        await numbers.route(SF, "201", org_id=stocked["other"])
    with pytest.raises(NumberNotFound):
        await numbers.route(SF, "101", org_id=stocked["other"])
    number = await row(sessions, SF)
    assert (number.state, number.org_id, number.route_user_id) == ("rented", stocked["acme"], stocked["alice"])
    assert isinstance(NumberNotFound("x"), NotFound)


# -- caller ID -------------------------------------------------------------------------------------
async def test_caller_id_rules(numbers, ledger, stocked):
    acme, alice, bob = stocked["acme"], stocked["alice"], stocked["bob"]
    assert await numbers.caller_id_for(acme, alice, SF) is None  # no numbers at all: nothing to send
    await credit(ledger, acme, 10_000)
    await credit(ledger, stocked["other"], 10_000)
    await numbers.rent(acme, SF, T0)
    await numbers.rent(acme, NYC, T0 + timedelta(minutes=1))
    await numbers.rent(stocked["other"], SF_MOBILE, T0)
    # One of the org's rented numbers, in any form: sent as asked.
    assert await numbers.caller_id_for(acme, alice, "(212) 555-0100") == NYC
    assert await numbers.caller_id_for(acme, alice, SF) == SF
    # Anything else is replaced by the default: the oldest rental...
    assert await numbers.caller_id_for(acme, alice, "+1 303 555 0100") == SF  # not verified
    assert await numbers.caller_id_for(acme, alice, SF_MOBILE) == SF  # another org's number
    assert await numbers.caller_id_for(acme, alice, "garbage") == SF
    assert await numbers.caller_id_for(acme, alice, None) == SF
    assert await numbers.caller_id_for(acme, None, None) == SF
    # ... unless a number is routed to the user: call-backs ring them.
    await numbers.route(NYC, "102")
    assert await numbers.caller_id_for(acme, bob, None) == NYC
    assert await numbers.caller_id_for(acme, alice, None) == SF
    # A number the user verified is theirs, not their colleague's.
    mobile = "+13035550100"
    code = await numbers.start_verification(acme, alice, "(303) 555-0100", T0)
    assert await numbers.confirm_verification(acme, alice, mobile, code, T0 + timedelta(minutes=1))
    assert await numbers.caller_id_for(acme, alice, "303-555-0100") == mobile
    assert await numbers.caller_id_for(acme, bob, mobile) == NYC
    assert await numbers.verified_numbers(acme, alice) == [mobile]
    assert await numbers.verified_numbers(acme, bob) == []


async def test_verification_right_wrong_expired_and_too_many_attempts(numbers, sessions, stocked):
    acme, alice = stocked["acme"], stocked["alice"]
    mobile = "+13035550100"
    later = T0 + timedelta(minutes=2)
    code = await numbers.start_verification(acme, alice, mobile, T0)
    assert len(code) == 6 and code.isdigit()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    async with sessions() as session:  # the code is not stored in clear anywhere
        stored = (await session.execute(select(CallerIdVerification))).scalar_one()
    assert code not in stored.code_hash and stored.expires_at == T0 + timedelta(minutes=10)
    assert not await numbers.confirm_verification(acme, alice, mobile, wrong, later)
    assert not await numbers.confirm_verification(stocked["other"], stocked["carol"], mobile, code, later)
    assert not await numbers.confirm_verification(acme, stocked["bob"], mobile, code, later)
    assert await numbers.confirm_verification(acme, alice, mobile, f" {code} ", later)  # 2nd attempt
    assert await numbers.verified_numbers(acme, alice) == [mobile]
    assert not await numbers.confirm_verification(acme, alice, mobile, code, later)  # used up

    other = "+13035550101"
    code = await numbers.start_verification(acme, alice, other, T0)
    assert not await numbers.confirm_verification(acme, alice, other, code, T0 + timedelta(minutes=10))  # expired

    code = await numbers.start_verification(acme, alice, other, T0)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert not await numbers.confirm_verification(acme, alice, other, wrong, later)
    assert not await numbers.confirm_verification(acme, alice, other, code, later)  # dead after 5 attempts
    assert await numbers.verified_numbers(acme, alice) == [mobile]


async def test_a_new_code_replaces_the_pending_one_and_starts_are_limited(numbers, stocked):
    acme, alice = stocked["acme"], stocked["alice"]
    mobile = "+13035550100"
    first = await numbers.start_verification(acme, alice, mobile, T0)
    second = await numbers.start_verification(acme, alice, mobile, T0 + timedelta(seconds=1))
    if first != second:  # 1 in a million they are equal
        assert not await numbers.confirm_verification(acme, alice, mobile, first, T0 + timedelta(seconds=2))
    assert await numbers.confirm_verification(acme, alice, mobile, second, T0 + timedelta(seconds=3))
    for minute in range(3):
        await numbers.start_verification(acme, alice, f"+1303555020{minute}", T0 + timedelta(minutes=minute))
    with pytest.raises(TooManyVerifications):
        await numbers.start_verification(acme, alice, "+13035550300", T0 + timedelta(minutes=5))
    await numbers.start_verification(acme, alice, "+13035550300", T0 + timedelta(minutes=61))  # an hour later


async def test_verification_of_inventory_numbers(numbers, ledger, stocked):
    await credit(ledger, stocked["other"], 1000)
    await numbers.rent(stocked["other"], SF, T0)
    with pytest.raises(NumberOwnedElsewhere):
        await numbers.start_verification(stocked["acme"], stocked["alice"], SF, T0)
    with pytest.raises(NumberOwnedElsewhere):  # available inventory: rent it instead
        await numbers.start_verification(stocked["acme"], stocked["alice"], NYC, T0)
    with pytest.raises(UserNotFound):  # carol is not in Acme
        await numbers.start_verification(stocked["acme"], stocked["carol"], "+13035550100", T0)
    with pytest.raises(InvalidNumber):
        await numbers.start_verification(stocked["acme"], stocked["alice"], "12", T0)


async def test_a_verified_number_later_rented_by_another_org_is_not_sent(numbers, ledger, sessions, stocked):
    acme, alice = stocked["acme"], stocked["alice"]
    await credit(ledger, acme, 1000)
    await credit(ledger, stocked["other"], 1000)
    await numbers.rent(acme, NYC, T0)
    external = "+13035550100"
    code = await numbers.start_verification(acme, alice, external, T0)
    assert await numbers.confirm_verification(acme, alice, external, code, T0)
    await numbers.import_numbers([HEADER, "+1 303 555 0100,US,fixed,1.00,1.00,\n"])
    await numbers.rent(stocked["other"], external, T0)
    assert await numbers.caller_id_for(acme, alice, external) == NYC


async def test_times_must_be_utc(numbers, stocked):
    with pytest.raises(ValueError, match="aware UTC"):
        await numbers.rent(stocked["acme"], SF, datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="aware UTC"):
        await numbers.renew_due(datetime(2026, 3, 1))


async def test_route_inbound_is_one_indexed_query(numbers, ledger, engine, stocked):
    """The look-up every carrier call makes uses the unique index on e164."""
    await credit(ledger, stocked["acme"], 1000)
    await numbers.rent(stocked["acme"], SF, T0)
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (await numbers.route_inbound(SF)).org_id == stocked["acme"]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 1 and "phone_numbers.e164 =" in queries[0]
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r) for r in (await conn.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM phone_numbers WHERE e164 = '+14155550100'"))).all())
            assert "uq_phone_numbers_e164" in plan or "sqlite_autoindex_phone_numbers" in plan
