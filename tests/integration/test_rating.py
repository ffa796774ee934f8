"""Rate decks on SQLite and PostgreSQL: import, replace, all-or-nothing, assignment, quotes, reloads."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import date

import pytest
from sqlalchemy import func, select, update

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.models import Organization
from ringwell.features.accounts.service import AccountsService
from ringwell.features.rating.errors import CurrencyMismatch, InvalidRatingData, RateDeckNotFound, RateImportError
from ringwell.features.rating.models import OrgRateDeck, RateDeck, RateRow
from ringwell.features.rating.rates import Increments
from ringwell.features.rating.service import RatingService

HEADER = "prefix,description,price_per_minute,connection_fee,increments,effective_date\n"
RETAIL = [
    HEADER,
    "1,United States,0.0123,0,60/60,\n",
    "1415,San Francisco,0.02,0.01,1/1,\n",
    "44,United Kingdom,0.10,0,30/6,2026-01-01\n",
    "44,United Kingdom,0.12,0,30/6,2026-07-01\n",
]
ON = date(2026, 3, 1)


@pytest.fixture
async def orgs(sessions):
    accounts = AccountsService(sessions, "ringwell")
    return {name: (await accounts.create_org(name)).id for name in ("Acme", "Other")}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def rate_rows(sessions, deck="retail"):
    async with sessions() as session:
        result = await session.execute(
            select(RateRow.prefix, RateRow.description, RateRow.price_micros, RateRow.connection_fee_micros,
                   RateRow.first_increment, RateRow.next_increment, RateRow.effective_from)
            .join(RateDeck, RateDeck.id == RateRow.deck_id).where(RateDeck.name == deck)
            .order_by(RateRow.prefix, RateRow.effective_from)
        )  # fmt: skip
        return [tuple(row) for row in result.all()]


async def test_import_stores_every_rate_exactly(sessions):
    rating = RatingService(sessions)
    assert await rating.import_deck("retail", RETAIL) == 4
    assert await rate_rows(sessions) == [
        ("1", "United States", 12_300, 0, 60, 60, date(1970, 1, 1)),
        ("1415", "San Francisco", 20_000, 10_000, 1, 1, date(1970, 1, 1)),
        ("44", "United Kingdom", 100_000, 0, 30, 6, date(2026, 1, 1)),
        ("44", "United Kingdom", 120_000, 0, 30, 6, date(2026, 7, 1)),
    ]
    loaded = await rating.table("retail")
    assert (loaded.name, loaded.currency, len(loaded.table)) == ("retail", "USD", 4)


async def test_quote_longest_prefix_and_effective_date(sessions):
    rating = RatingService(sessions)
    await rating.import_deck("retail", RETAIL)
    quote = await rating.quote("retail", "+14155550100", ON)
    assert (quote.deck, quote.currency, quote.rate.prefix, quote.rate.increments) == (
        "retail", "USD", "1415", Increments(1, 1))
    assert quote.charge(37.02) == (37, 3)  # 20000 * 37 / 60 = 12334 (up) + 10000 fee = 22334 micros -> 3 cents
    assert (await rating.quote("retail", "+12125550100", ON)).charge(37.02) == (60, 2)
    assert (await rating.quote("retail", "+447700900123", ON)).rate.price_micros == 100_000
    assert (await rating.quote("retail", "+447700900123", date(2026, 7, 1))).rate.price_micros == 120_000
    assert await rating.quote("retail", "+447700900123", date(2025, 12, 31)) is None
    assert await rating.quote("retail", "+33123456789", ON) is None
    assert await rating.quote("no-such-deck", "+14155550100", ON) is None
    assert await rating.table("no-such-deck") is None


async def test_reimport_replaces_the_deck(sessions):
    rating = RatingService(sessions)
    await rating.import_deck("retail", RETAIL)
    assert (await rating.quote("retail", "+14155550100", ON)).rate.prefix == "1415"
    assert await rating.import_deck("retail", [HEADER, "1,North America,0.011,0,6/6,\n"], currency="usd") == 1
    assert await rate_rows(sessions) == [("1", "North America", 11_000, 0, 6, 6, date(1970, 1, 1))]
    # The importing service forgets its copy at once.
    quote = await rating.quote("retail", "+14155550100", ON)
    assert (quote.rate.prefix, quote.rate.description, quote.currency) == ("1", "North America", "USD")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(RateDeck)) == 1


async def test_a_bad_line_leaves_the_old_deck_as_it_was(sessions):
    rating = RatingService(sessions)
    await rating.import_deck("retail", RETAIL)
    before = await rate_rows(sessions)
    async with sessions() as session:
        updated_at = await session.scalar(select(RateDeck.updated_at))
    bad = [HEADER, *(f"{31 + i},Country {i},0.05,0,60/60,\n" for i in range(5)), "49,Germany,0.0x5,0,60/60,\n",
           "50,Later,0.01,0,60/60,\n"]  # fmt: skip
    with pytest.raises(RateImportError) as info:
        await rating.import_deck("retail", bad)
    assert str(info.value) == "line 7: price is not a number: '0.0x5'"
    assert info.value.details == {"line": 7}
    assert await rate_rows(sessions) == before
    async with sessions() as session:
        assert await session.scalar(select(RateDeck.updated_at)) == updated_at
    fresh = RatingService(sessions)
    assert (await fresh.quote("retail", "+14155550100", ON)).rate.prefix == "1415"
    assert await fresh.quote("retail", "+4930123456", ON) is None


async def test_a_bad_new_deck_is_not_created(sessions):
    rating = RatingService(sessions)
    with pytest.raises(RateImportError, match=r"^line 3: duplicate rate for prefix 1 effective 1970-01-01"):
        await rating.import_deck("wholesale", [HEADER, "1,US,0.01,,,\n", "+1,US again,0.02,,,\n"])
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(RateDeck)) == 0
        assert await session.scalar(select(func.count()).select_from(RateRow)) == 0


@pytest.mark.parametrize(("name", "currency", "field"), [(" ", "USD", "deck"), ("x" * 101, "USD", "deck"),
                                                          ("retail", "dollars", "currency")])
async def test_bad_deck_name_or_currency(sessions, name, currency, field):
    with pytest.raises(InvalidRatingData) as info:
        await RatingService(sessions).import_deck(name, RETAIL, currency)
    assert info.value.details == {"field": field}


async def test_assign_a_deck_and_quote_for_the_org(sessions, orgs):
    rating = RatingService(sessions)
    await rating.import_deck("retail", RETAIL)
    await rating.import_deck("premium", [HEADER, "1,US premium,0.05,0,60/60,\n"])
    assert await rating.deck_of_org(orgs["Acme"]) is None
    assert await rating.quote_for_org(orgs["Acme"], "+14155550100", ON) is None
    await rating.assign_deck(orgs["Acme"], "retail")
    await rating.assign_deck(orgs["Other"], "premium")
    assert await rating.deck_of_org(orgs["Acme"]) == "retail"
    acme = await rating.quote_for_org(orgs["Acme"], "+14155550100", ON)
    other = await rating.quote_for_org(orgs["Other"], "+14155550100", ON)
    assert (acme.deck, acme.rate.prefix, other.deck, other.rate.price_micros) == ("retail", "1415", "premium", 50_000)
    assert await rating.quote_for_org(orgs["Acme"], "+33123456789", ON) is None
    await rating.assign_deck(orgs["Acme"], "premium")  # replaces, and this service sees it at once
    assert (await rating.quote_for_org(orgs["Acme"], "+14155550100", ON)).deck == "premium"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OrgRateDeck)) == 2


async def test_assign_errors(sessions, orgs):
    rating = RatingService(sessions)
    await rating.import_deck("retail", RETAIL)
    await rating.import_deck("euro", [HEADER, "33,France,0.02,,,\n"], currency="EUR")
    with pytest.raises(RateDeckNotFound, match="no rate deck named 'nope'"):
        await rating.assign_deck(orgs["Acme"], "nope")
    with pytest.raises(OrganizationNotFound):
        await rating.assign_deck("00000000-0000-0000-0000-000000000000", "retail")
    with pytest.raises(CurrencyMismatch, match="Acme pays in USD; deck 'euro' is priced in EUR"):
        await rating.assign_deck(orgs["Acme"], "euro")
    assert await rating.deck_of_org(orgs["Acme"]) is None
    async with sessions() as session, session.begin():
        await session.execute(update(Organization).where(Organization.id == orgs["Other"]).values(currency="EUR"))
    await rating.assign_deck(orgs["Other"], "euro")
    # Re-pricing the deck in dollars would charge a euro organization in dollars: refused, deck unchanged.
    with pytest.raises(CurrencyMismatch):
        await rating.import_deck("euro", [HEADER, "33,France,0.03,,,\n"], currency="USD")
    quote = await rating.quote_for_org(orgs["Other"], "+33123456789", ON)
    assert (quote.currency, quote.rate.price_micros) == ("EUR", 20_000)


async def test_a_server_notices_an_import_by_another_process(sessions):
    clock = FakeClock()
    server = RatingService(sessions, recheck_interval=5.0, clock=clock)
    cli = RatingService(sessions)  # another process: the operator's import-rates
    await cli.import_deck("retail", RETAIL)
    assert (await server.quote("retail", "+14155550100", ON)).rate.price_micros == 20_000
    await cli.import_deck("retail", [HEADER, "1415,San Francisco,0.03,0.01,1/1,\n"])
    clock.now += 4.9  # within the recheck interval the copy in memory is used
    assert (await server.quote("retail", "+14155550100", ON)).rate.price_micros == 20_000
    clock.now += 0.2
    assert (await server.quote("retail", "+14155550100", ON)).rate.price_micros == 30_000
    first = await server.table("retail")
    clock.now += 60  # nothing changed: the same copy, not a reload
    assert await server.table("retail") is first


async def test_a_server_notices_a_new_assignment_within_the_interval(sessions, orgs):
    clock = FakeClock()
    server = RatingService(sessions, clock=clock)
    cli = RatingService(sessions)
    await cli.import_deck("retail", RETAIL)
    assert await server.quote_for_org(orgs["Acme"], "+14155550100", ON) is None
    await cli.assign_deck(orgs["Acme"], "retail")
    clock.now += 5
    assert (await server.quote_for_org(orgs["Acme"], "+14155550100", ON)).deck == "retail"


async def test_concurrent_quotes_load_the_deck_once(sessions):
    rating = RatingService(sessions)
    await rating.import_deck("retail", RETAIL)
    quotes = await asyncio.gather(*(rating.quote("retail", "+14155550100", ON) for _ in range(20)))
    assert {q.rate.prefix for q in quotes} == {"1415"}
    assert len({id(q.rate) for q in quotes}) == 1  # every task rated with the same table


def big_deck(count, seed=7):
    rng = random.Random(seed)
    prefixes = set()
    while len(prefixes) < count:
        prefixes.add(str(rng.randint(1, 99)) + str(rng.randint(0, 10 ** rng.randint(1, 6))))
    lines = [HEADER]
    for prefix in sorted(prefixes):
        lines.append(f"{prefix},Destination {prefix[:2]},0.{rng.randint(1000, 99999):05d},0,"
                     f"{rng.choice(['60/60', '30/6', '1/1'])},2026-01-01\n")
    return lines


async def test_a_100000_rate_deck_imports_in_seconds(sessions):
    lines = big_deck(100_000)
    rating = RatingService(sessions)
    started = time.monotonic()
    assert await rating.import_deck("big", lines) == 100_000
    imported = time.monotonic() - started
    started = time.monotonic()
    loaded = await rating.table("big")
    load = time.monotonic() - started
    assert len(loaded.table) == 100_000
    assert imported < 30 and load < 30, (imported, load)  # typically 1-3 s each on 2 shared cores
    prefixes = [line.split(",")[0] for line in lines[1:]]
    for prefix in prefixes[::997]:
        number = prefix + "0000"
        longest = max((p for p in prefixes if number.startswith(p)), key=len)
        assert (await rating.quote("big", "+" + number, ON)).rate.prefix == longest
    # Replacing it with a smaller deck leaves no trace of the old rows.
    assert await rating.import_deck("big", lines[:11]) == 10
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(RateRow)) == 10
