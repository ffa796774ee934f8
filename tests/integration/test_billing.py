"""The ledger on SQLite and PostgreSQL: double entry, reservations under concurrency, idempotency."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.service import AccountsService
from ringwell.features.billing.errors import InvalidBillingData, ReservationConflict
from ringwell.features.billing.models import LedgerAccount, LedgerPosting, LedgerTransaction
from ringwell.features.billing.service import Balance, LedgerService
from ringwell.storage.base import new_id
from ringwell.storage.engine import create_engine, session_factory


@pytest.fixture
async def orgs(sessions):
    accounts = AccountsService(sessions, "ringwell")
    acme = await accounts.create_org("Acme")
    other = await accounts.create_org("Other")
    yen = await accounts.create_org("Yen", "JP", "JPY")
    return {"acme": acme.id, "other": other.id, "yen": yen.id}


@pytest.fixture
def ledger(sessions):
    return LedgerService(sessions, node="node-1")


async def postings_by_transaction(sessions):
    async with sessions() as session:
        rows = (await session.execute(select(LedgerPosting.transaction_id, LedgerPosting.amount_minor))).all()
    sums: dict[str, list[int]] = defaultdict(list)
    for txn, amount in rows:
        sums[txn].append(amount)
    return sums


async def test_a_new_org_has_nothing_in_its_own_currency(ledger, orgs):
    assert await ledger.balance(orgs["acme"]) == Balance("USD", 0, 0, 0)
    assert (await ledger.balance(orgs["yen"])).currency == "JPY"
    assert await ledger.entries(orgs["acme"]) == []
    with pytest.raises(OrganizationNotFound):
        await ledger.balance(new_id())


async def test_manual_credit_and_debit_record_reason_and_operator(ledger, orgs):
    acme = orgs["acme"]
    first = await ledger.adjust(acme, 1000, "welcome credit", "olivia")
    second = await ledger.adjust(acme, -250, "mistaken credit corrected", "pat")
    assert await ledger.balance(acme) == Balance("USD", 750, 0, 750)
    newest, oldest = await ledger.entries(acme)
    assert (oldest.id, oldest.kind, oldest.amount_minor, oldest.balance_after_minor) == (
        first, "adjustment", 1000, 1000)
    assert (oldest.description, oldest.reason, oldest.operator) == ("manual credit", "welcome credit", "olivia")
    assert (newest.id, newest.amount_minor, newest.balance_after_minor) == (second, -250, 750)
    assert (newest.description, newest.reason, newest.operator) == ("manual debit", "mistaken credit corrected", "pat")
    assert newest.time >= oldest.time and newest.time.tzinfo is not None
    assert (await ledger.verify(acme)).ok
    # The other organization saw none of it.
    assert await ledger.entries(orgs["other"]) == []


@pytest.mark.parametrize(("amount", "reason", "operator"), [
    (0, "why", "olivia"), (100, "", "olivia"), (100, "   ", "olivia"), (100, "why", ""), (100, "x" * 501, "o"),
])
async def test_a_manual_entry_needs_an_amount_a_reason_and_an_operator(ledger, orgs, amount, reason, operator):
    with pytest.raises(InvalidBillingData):
        await ledger.adjust(orgs["acme"], amount, reason, operator)
    assert await ledger.entries(orgs["acme"]) == []


async def test_reserve_settle_and_release(ledger, orgs):
    acme = orgs["acme"]
    await ledger.adjust(acme, 1000, "test credit", "olivia")
    assert await ledger.reserve(acme, "call-1", 300)
    assert await ledger.reserve(acme, "call-1", 200)  # the next slice of the same call adds up
    assert await ledger.balance(acme) == Balance("USD", 1000, 500, 500)
    assert not await ledger.reserve(acme, "call-2", 501)  # more than what is available
    assert await ledger.balance(acme) == Balance("USD", 1000, 500, 500)

    txn = await ledger.settle(acme, "call-1", 437, description="call: United States", reference="call-1",
                              cost_minor=120)
    assert await ledger.balance(acme) == Balance("USD", 563, 0, 563)
    charge = (await ledger.entries(acme))[0]
    assert (charge.id, charge.kind, charge.amount_minor, charge.balance_after_minor) == (txn, "call_charge", -437, 563)
    assert (charge.description, charge.reference) == ("call: United States", "call-1")

    assert await ledger.reserve(acme, "call-3", 100)
    assert await ledger.release(acme, "call-3") == 100
    assert await ledger.release(acme, "call-3") == 0
    assert await ledger.balance(acme) == Balance("USD", 563, 0, 563)
    assert len(await ledger.entries(acme)) == 2  # releasing posts nothing
    assert (await ledger.verify(acme)).ok


async def test_settle_is_idempotent_and_a_settled_call_cannot_reserve_again(ledger, orgs):
    acme = orgs["acme"]
    await ledger.adjust(acme, 1000, "test credit", "olivia")
    assert await ledger.reserve(acme, "call-1", 100)
    first = await ledger.settle(acme, "call-1", 150, description="call", reference="call-1")
    # The charge exceeded the reservation: the call happened, it is posted in full.
    assert await ledger.balance(acme) == Balance("USD", 850, 0, 850)
    again = await ledger.settle(acme, "call-1", 150, description="call", reference="call-1")
    other_amount = await ledger.settle(acme, "call-1", 999, description="call", reference="call-1")
    assert first is not None and again == first and other_amount == first
    assert await ledger.balance(acme) == Balance("USD", 850, 0, 850)
    assert [e.kind for e in await ledger.entries(acme)] == ["call_charge", "adjustment"]
    assert not await ledger.reserve(acme, "call-1", 10)
    assert (await ledger.balance(acme)).reserved_minor == 0
    assert (await ledger.verify(acme)).ok


async def test_concurrent_settles_of_one_call_charge_once(ledger, sessions, orgs):
    acme = orgs["acme"]
    await ledger.adjust(acme, 1000, "test credit", "olivia")
    assert await ledger.reserve(acme, "call-1", 200)
    ids = await asyncio.gather(*(LedgerService(sessions).settle(acme, "call-1", 123, description="call")
                                 for _ in range(5)))
    assert len(set(ids)) == 1 and ids[0] is not None
    assert await ledger.balance(acme) == Balance("USD", 877, 0, 877)


async def test_settling_nothing_releases_without_an_entry(ledger, orgs):
    acme = orgs["acme"]
    await ledger.adjust(acme, 500, "test credit", "olivia")
    assert await ledger.reserve(acme, "call-1", 200)
    assert await ledger.settle(acme, "call-1", 0, description="unanswered call") is None
    assert await ledger.balance(acme) == Balance("USD", 500, 0, 500)
    assert len(await ledger.entries(acme)) == 1
    # A call that never reserved (an emergency call, say) is still charged when settled.
    assert await ledger.settle(acme, "call-2", 42, description="call") is not None
    assert await ledger.balance(acme) == Balance("USD", 458, 0, 458)
    assert (await ledger.verify(acme)).ok


async def test_reservation_keys_are_scoped_to_their_organization(ledger, orgs):
    acme, other = orgs["acme"], orgs["other"]
    await ledger.adjust(acme, 500, "test credit", "olivia")
    await ledger.adjust(other, 500, "test credit", "olivia")
    assert await ledger.reserve(acme, "call-1", 200)
    assert await ledger.release(other, "call-1") == 0
    with pytest.raises(ReservationConflict):
        await ledger.settle(other, "call-1", 100, description="call")
    with pytest.raises(ReservationConflict):
        await ledger.reserve(other, "call-1", 100)
    assert await ledger.balance(acme) == Balance("USD", 500, 200, 300)
    assert await ledger.balance(other) == Balance("USD", 500, 0, 500)


async def test_try_charge_only_takes_available_credit(ledger, orgs):
    acme = orgs["acme"]
    await ledger.adjust(acme, 500, "test credit", "olivia")
    assert await ledger.reserve(acme, "call-1", 200)
    assert await ledger.try_charge(acme, 301, "number_setup", "setup of +14155550100", "number:1") is None
    assert await ledger.balance(acme) == Balance("USD", 500, 200, 300)
    txn = await ledger.try_charge(acme, 300, "number_rental", "rental of +14155550100", "number:1")
    assert await ledger.balance(acme) == Balance("USD", 200, 200, 0)
    entry = (await ledger.entries(acme))[0]
    assert (entry.id, entry.kind, entry.amount_minor, entry.reference) == (txn, "number_rental", -300, "number:1")
    with pytest.raises(InvalidBillingData):
        await ledger.try_charge(acme, 100, "top_up", "free money")
    with pytest.raises(InvalidBillingData):
        await ledger.try_charge(acme, -5, "number_setup", "negative")


async def test_refund_credits_and_top_up_credits_a_payment_once(ledger, orgs):
    acme = orgs["acme"]
    refund = await ledger.refund(acme, 250, "dropped call", "olivia", "call-7")
    first = await ledger.top_up(acme, 2000, provider="stripe", reference="pi_123")
    again = await ledger.top_up(acme, 2000, provider="stripe", reference="pi_123")
    assert again == first
    assert await ledger.balance(acme) == Balance("USD", 2250, 0, 2250)
    top_up, refunded = await ledger.entries(acme)
    assert (refunded.id, refunded.kind, refunded.amount_minor, refunded.reason, refunded.operator,
            refunded.reference) == (refund, "refund", 250, "dropped call", "olivia", "call-7")
    assert (top_up.kind, top_up.amount_minor, top_up.reference, top_up.description) == (
        "top_up", 2000, "pi_123", "top-up (stripe)")
    with pytest.raises(InvalidBillingData):
        await ledger.refund(acme, 100, "", "olivia")


async def test_spent_since_counts_call_charges_only(ledger, orgs):
    acme = orgs["acme"]
    await ledger.adjust(acme, 5000, "test credit", "olivia")
    before = datetime.now(UTC) - timedelta(seconds=1)
    await ledger.settle(acme, "call-1", 37, description="call")
    await ledger.settle(acme, "call-2", 60, description="call")
    await ledger.try_charge(acme, 100, "number_setup", "setup")
    assert await ledger.spent_since(acme, before) == 97
    assert await ledger.spent_since(acme, datetime.now(UTC) + timedelta(minutes=1)) == 0
    assert await ledger.spent_since(orgs["other"], before) == 0


async def test_stale_reservations_of_a_node_are_released_at_start(sessions, orgs):
    acme = orgs["acme"]
    node1, node2 = LedgerService(sessions, node="node-1"), LedgerService(sessions, node="node-2")
    await node1.adjust(acme, 1000, "test credit", "olivia")
    assert await node1.reserve(acme, "call-1", 100)
    assert await node1.reserve(acme, "call-2", 150)
    assert await node2.reserve(acme, "call-3", 200)
    await node1.settle(acme, "call-2", 50, description="call")
    assert await LedgerService(sessions, node="node-1").release_stale_reservations("node-1") == 1
    assert await node1.balance(acme) == Balance("USD", 950, 200, 750)
    assert await node1.release_stale_reservations() == 1
    assert await node1.balance(acme) == Balance("USD", 950, 0, 950)
    assert (await node1.verify(acme)).ok


async def test_every_transaction_balances_against_a_system_account(ledger, sessions, orgs):
    acme, yen = orgs["acme"], orgs["yen"]
    await ledger.adjust(acme, 1000, "credit", "olivia")
    await ledger.adjust(yen, 500, "credit", "olivia")
    await ledger.adjust(acme, -100, "debit", "olivia")
    await ledger.reserve(acme, "call-1", 100)
    await ledger.settle(acme, "call-1", 77, description="call")
    await ledger.try_charge(acme, 300, "number_setup", "setup")
    await ledger.refund(acme, 20, "bad line", "olivia")
    await ledger.top_up(yen, 1000, provider="stripe", reference="pi_1")
    sums = await postings_by_transaction(sessions)
    assert len(sums) == 7
    for amounts in sums.values():
        assert len(amounts) == 2 and sum(amounts) == 0
    async with sessions() as session:
        contra = dict((await session.execute(
            select(LedgerTransaction.kind, LedgerAccount.key)
            .join(LedgerPosting, LedgerPosting.transaction_id == LedgerTransaction.id)
            .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
            .where(LedgerAccount.org_id.is_(None), LedgerTransaction.org_id == acme))).all())
        total = (await session.execute(select(func.sum(LedgerPosting.amount_minor)))).scalar_one()
    assert contra == {"adjustment": "system:adjustments:USD", "call_charge": "system:revenue:calls:USD",
                      "number_setup": "system:revenue:numbers:USD", "refund": "system:refunds:USD"}
    assert total == 0
    for org in (acme, yen):
        check = await ledger.verify(org)
        assert check.ok and check.balance_minor == check.postings_sum
    assert (await ledger.balance(yen)) == Balance("JPY", 1500, 0, 1500)


async def test_verify_notices_a_balance_that_does_not_match_its_entries(ledger, sessions, orgs):
    acme = orgs["acme"]
    await ledger.adjust(acme, 1000, "credit", "olivia")
    async with sessions() as session, session.begin():
        account = (await session.execute(select(LedgerAccount).where(LedgerAccount.org_id == acme))).scalar_one()
        account.balance_minor += 1  # what a bug (or a hand-edited database) would do
    check = await ledger.verify(acme)
    assert not check.ok and (check.balance_minor, check.postings_sum) == (1001, 1000)


async def test_twenty_parallel_reservations_never_overdraw(db_url, orgs):
    """20 calls start at once on an org with credit for 16 slices: 16 get one, the ledger balances."""
    acme = orgs["acme"]
    engines = [create_engine(db_url) for _ in range(3)]  # three pools: as if three server processes
    try:
        services = [LedgerService(session_factory(engine), node=f"node-{i}") for i, engine in enumerate(engines)]
        await services[0].adjust(acme, 1000, "little credit", "olivia")
        keys = [f"call-{n}" for n in range(20)]
        granted = await asyncio.gather(*(services[n % 3].reserve(acme, key, 60) for n, key in enumerate(keys)))
        assert sum(granted) == 16
        balance = await services[0].balance(acme)
        assert balance == Balance("USD", 1000, 960, 40)
        # The calls end at once; each is charged at most what it reserved (it is cut off there).
        charges = {key: 60 - n for n, key in enumerate(keys)}
        await asyncio.gather(*(services[n % 3].settle(acme, key, charges[key] if ok else 0, description="call")
                               for n, (key, ok) in enumerate(zip(keys, granted, strict=True))))
        charged = sum(charges[key] for key, ok in zip(keys, granted, strict=True) if ok)
        final = await services[1].balance(acme)
        assert final == Balance("USD", 1000 - charged, 0, 1000 - charged) and final.balance_minor >= 0
        check = await services[2].verify(acme)
        assert check.ok and check.postings_sum == 1000 - charged and check.reservations_sum == 0
    finally:
        for engine in engines:
            await engine.dispose()


# -- randomized: concurrent calls, credits and number charges --------------------------------------

SLICE = 25  # minor units per reservation slice


async def _run_plan(db_url: str, plan: dict) -> None:
    """Run ``plan`` concurrently on a fresh org and check every invariant while and after it runs."""
    engines = [create_engine(db_url) for _ in range(2)]
    try:
        services = [LedgerService(session_factory(engine), node=f"n{i}") for i, engine in enumerate(engines)]
        org = await AccountsService(session_factory(engines[0]), "ringwell").create_org(f"org-{new_id()}")
        credited = plan["initial"]
        if credited:
            await services[0].adjust(org.id, credited, "initial", "prop")
        charged = 0
        rng = random.Random(plan["seed"])
        done = asyncio.Event()
        lowest = {"balance": credited, "available": credited}

        async def monitor() -> None:
            while not done.is_set():
                balance = await services[1].balance(org.id)
                lowest["balance"] = min(lowest["balance"], balance.balance_minor)
                lowest["available"] = min(lowest["available"], balance.available_minor)
                await asyncio.sleep(0)

        async def call(n: int, slices: int, used: float) -> None:
            nonlocal charged
            ledger = services[n % 2]
            key = f"{org.id}:{n}"
            reserved = 0
            for _ in range(slices):  # reserve slice after slice until refused or the caller hangs up
                if not await ledger.reserve(org.id, key, SLICE):
                    break
                reserved += SLICE
            # Cut off at what was reserved: the charge is at most that (the call path guarantees it).
            charge = int(reserved * used)
            if rng.random() < 0.3:
                await ledger.release(org.id, key)
                charge = 0
            await ledger.settle(org.id, key, charge, description="call")
            charged += charge

        async def credit(amount: int) -> None:
            nonlocal credited
            await services[0].adjust(org.id, amount, "top-up by phone", "prop")
            credited += amount

        async def number(amount: int) -> None:
            nonlocal charged
            if await services[1].try_charge(org.id, amount, "number_rental", "rental") is not None:
                charged += amount

        tasks = [call(n, slices, used) for n, (slices, used) in enumerate(plan["calls"])]
        tasks += [credit(amount) for amount in plan["credits"]]
        tasks += [number(amount) for amount in plan["numbers"]]
        rng.shuffle(tasks)
        watcher = asyncio.create_task(monitor())
        await asyncio.gather(*tasks)
        done.set()
        await watcher

        balance = await services[0].balance(org.id)
        assert balance.balance_minor == credited - charged  # nothing lost, nothing made up
        assert balance.reserved_minor == 0
        assert lowest["balance"] >= 0 and lowest["available"] >= 0  # never overdrawn
        check = await services[1].verify(org.id)
        assert check.ok, check
        entries = list(reversed(await services[0].entries(org.id, limit=10_000)))
        assert sum(e.amount_minor for e in entries) == balance.balance_minor
        running = 0
        for number_, entry in enumerate(entries, start=1):  # "balance after" tells the story in order
            running += entry.amount_minor
            assert (entry.seq, entry.balance_after_minor) == (number_, running)
    finally:
        for engine in engines:
            await engine.dispose()


plans = st.fixed_dictionaries({
    "initial": st.integers(0, 400),
    "calls": st.lists(st.tuples(st.integers(1, 6), st.floats(0, 1)), min_size=1, max_size=20),
    "credits": st.lists(st.integers(1, 200), max_size=3),
    "numbers": st.lists(st.integers(1, 150), max_size=3),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans)
def test_concurrent_ledger_operations_keep_every_invariant(db_url, plan):
    asyncio.run(_run_plan(db_url, plan))
