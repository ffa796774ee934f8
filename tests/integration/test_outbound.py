"""``authorize_call`` and the credit of running calls against the real slices (SQLite and
PostgreSQL): emergency numbers pass everything, bad numbers get 484, blocked destinations 403,
no credit 402, partial credit grants exactly what it affords, least-cost trunk order, channel
limits, slices extended until the money runs out, exact settlement, and the ledger balances."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.billing.service import LedgerService
from ringwell.features.fraud.counters import CallCounters
from ringwell.features.fraud.service import FraudService
from ringwell.features.numbers.service import NumbersService
from ringwell.features.outbound.service import Authorized, OrgProfile, OutboundService, Refusal
from ringwell.features.rating.service import RatingService
from ringwell.features.trunks.service import TrunkDirectory, TrunkSpec, TrunksService
from ringwell.storage.engine import create_engine, session_factory

HEADER = "prefix,description,price_per_minute,connection_fee,increments,effective_date\n"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
async def world(db_url):
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    accounts = AccountsService(sessions, "ringwell")
    org = await accounts.create_org("Acme", "US", "USD")
    user = (await accounts.create_user("Acme", UserSpec("a@example.com", "101", "alice", "password-1"))).user
    rating = RatingService(sessions)
    await rating.import_deck("sell", [HEADER, "1,NANP,0.10,0,1/1,2020-01-01\n", "44,UK,0.20,0,1/1,2020-01-01\n"])
    await rating.import_deck("cheap", [HEADER, "1,NANP,0.002,0,1/1,2020-01-01\n"])
    await rating.import_deck("dear", [HEADER, "1,NANP,0.009,0,1/1,2020-01-01\n"])
    await rating.assign_deck(org.id, "sell")
    trunks = TrunksService(sessions, "a-test-secret-key-with-enough-entropy")
    await trunks.add(TrunkSpec("dear-first", "127.0.0.1", 5071, priority=1, buy_deck="dear"))
    await trunks.add(TrunkSpec("cheap-late", "127.0.0.1", 5072, priority=9, buy_deck="cheap",
                               username="u", password="p", max_channels=1))
    ledger = LedgerService(sessions)
    busy: dict[str, int] = {}
    counters = CallCounters()

    async def orgs(org_id: str) -> OrgProfile | None:
        return OrgProfile(org.id, org.name, org.country, org.currency, org.created_at) if org_id == org.id else None

    fraud = FraudService(sessions)
    await fraud.set_caps(org.id, max_concurrent=50, max_calls_per_minute=100)
    service = OutboundService(orgs=orgs, rating=rating, ledger=ledger, fraud=fraud, counters=counters,
                              numbers=NumbersService(sessions, ledger), trunks=TrunkDirectory(trunks),
                              slice_seconds=60, channels=lambda: busy)
    yield service, ledger, org, user, busy, counters
    await engine.dispose()


async def authorize(service, org, user, dialled, key="call-1"):
    return await service.authorize_call(org_id=org.id, user_id=user.id, dialled=dialled, requested_cli=None,
                                        key=key, now=NOW, mono=1000.0)


async def test_emergency_calls_pass_with_no_credit_and_are_free(world):
    service, ledger, org, user, _busy, _counters = world
    verdict = await authorize(service, org, user, "911")
    assert isinstance(verdict, Authorized) and verdict.emergency
    assert [t.dial for t in verdict.trunks] == ["911", "911"]
    assert verdict.charge.unlimited and await service.extend(verdict.charge)
    assert await service.settle(verdict.charge, 600.0, None, "emergency") == (0, 0, None)
    assert (await ledger.balance(org.id)).balance_minor == 0


async def test_bad_number_blocked_destination_no_rate_and_no_credit(world):
    service, _ledger, org, user, _busy, counters = world
    bad = await authorize(service, org, user, "+1")
    assert isinstance(bad, Refusal) and bad.status == 484
    missing = await authorize(service, org, user, "301")  # too short for a number: a wrong extension
    assert isinstance(missing, Refusal) and missing.status == 404
    blocked = await authorize(service, org, user, "+88213123456")
    assert isinstance(blocked, Refusal) and blocked.status == 403 and blocked.disposition == "blocked"
    poor = await authorize(service, org, user, "+14155550100")
    assert isinstance(poor, Refusal) and poor.status == 402 and poor.disposition == "blocked"
    assert counters.usage(org.id, 1000.0)[0] == 0, "a refused call does not count as up"


async def test_partial_credit_grants_exactly_what_it_affords(world):
    service, ledger, org, user, _busy, _counters = world
    await ledger.adjust(org.id, 5, "thirty seconds at ten cents a minute", "test")
    verdict = await authorize(service, org, user, "+14155550100")
    assert isinstance(verdict, Authorized)
    assert verdict.charge.granted == 30 and verdict.charge.reserved_minor == 5
    assert (await ledger.balance(org.id)).available_minor == 0
    assert not await service.extend(verdict.charge), "nothing left for another slice"
    billable, amount, _cost = await service.settle(verdict.charge, 30.4, None, "call")
    assert (billable, amount) == (30, 5)
    balance = await ledger.balance(org.id)
    assert balance.balance_minor == 0 and balance.reserved_minor == 0
    assert (await ledger.verify(org.id)).ok


async def test_cheapest_trunk_first_and_full_trunks_skipped(world):
    service, ledger, org, user, busy, _counters = world
    await ledger.adjust(org.id, 1000, "credit", "test")
    verdict = await authorize(service, org, user, "+14155550100")
    assert isinstance(verdict, Authorized)
    assert [t.trunk.name for t in verdict.trunks] == ["cheap-late", "dear-first"]
    assert verdict.trunks[0].dial == "+14155550100" and verdict.trunks[0].trunk.password == "p"
    busy[verdict.trunks[0].trunk.id] = 1  # at its max_channels
    second = await authorize(service, org, user, "+14155550100", key="call-2")
    assert isinstance(second, Authorized) and [t.trunk.name for t in second.trunks] == ["dear-first"]


async def test_slices_are_extended_and_the_exact_charge_settled(world):
    service, ledger, org, user, _busy, _counters = world
    await ledger.adjust(org.id, 25, "credit", "test")  # 150 s at $0.10/min
    verdict = await authorize(service, org, user, "+14155550100")
    assert isinstance(verdict, Authorized) and verdict.charge.granted == 60
    assert await service.extend(verdict.charge) and verdict.charge.granted == 120
    assert await service.extend(verdict.charge) and verdict.charge.granted == 150
    assert not await service.extend(verdict.charge)
    cheap = verdict.trunks[0].cost
    billable, amount, cost = await service.settle(verdict.charge, 149.6, cheap, "call")
    # 150 s at $0.10/min = 25 cents; the carrier's $0.002/min = 0.5 cent -> 1 cent
    assert (billable, amount, cost) == (150, 25, 1)
    assert await service.settle(verdict.charge, 149.6, cheap, "call") == (0, 0, None), "settled once"
    balance = await ledger.balance(org.id)
    assert balance.balance_minor == 0 and balance.reserved_minor == 0
    assert (await ledger.verify(org.id)).ok


async def test_the_daily_spend_cap_bounds_the_talk_time_granted(world):
    """$10 of credit but a 10-cent daily cap: one minute at $0.10/min, and no more slices."""
    service, ledger, org, user, _busy, _counters = world
    await ledger.adjust(org.id, 1000, "credit", "test")
    await service.fraud.set_caps(org.id, daily_spend_cap_minor=10)
    verdict = await authorize(service, org, user, "+14155550100")
    assert isinstance(verdict, Authorized) and verdict.charge.granted == 60
    assert not await service.extend(verdict.charge), "the cap, not the balance, ends the call"
    assert verdict.charge.capped and verdict.charge.granted == 60
    second = await authorize(service, org, user, "+14155550100", key="call-2")
    assert isinstance(second, Refusal) and second.status == 402, "the first call holds the whole day's cap"
    await service.settle(verdict.charge, 60.0, None, "call")
    assert (await ledger.balance(org.id)).balance_minor == 990


async def test_verification_calls_obey_destination_permissions(world):
    service, _ledger, org, _user, _busy, _counters = world
    assert await service.verification_refusal(org.id, "+14155550100", NOW) is None
    assert "destination_blocked" in (await service.verification_refusal(org.id, "+88213123456", NOW) or "")
