"""Fraud policies stored per organization, on SQLite and PostgreSQL: defaults, overrides,
destination rules, tenant isolation and the policy cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.models import Organization
from ringwell.features.accounts.service import AccountsService
from ringwell.features.fraud.destinations import Risk, classify
from ringwell.features.fraud.errors import InvalidFraudSetting
from ringwell.features.fraud.models import DestinationPermission, FraudSettings
from ringwell.features.fraud.policy import ALLOWED, CapOverrides, DestinationRule, Usage, decide
from ringwell.features.fraud.service import KEEP, FraudService
from ringwell.storage.engine import create_engine, session_factory

CREATED = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
NEW = CREATED + timedelta(days=3)  # Acme is a new org at NEW
IDLE = Usage(0, 0, 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sessions(db_url):
    engine = create_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def orgs(sessions):
    accounts = AccountsService(sessions, "ringwell")
    acme = await accounts.create_org("Acme", "US", "USD")
    other = await accounts.create_org("Other", "GB", "GBP")
    async with sessions() as session, session.begin():
        await session.execute(update(Organization).values(created_at=CREATED))
    return {"acme": acme.id, "other": other.id}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fraud(sessions, clock):
    return FraudService(sessions, clock=clock)


def caps(policy):
    return (policy.max_concurrent, policy.max_calls_per_minute, policy.daily_spend_cap_minor,
            policy.max_price_per_minute_micros)


def permitted(number, policy, org="US"):
    return decide(classify(number, org), policy, IDLE, None) is ALLOWED


async def test_defaults_follow_country_currency_and_age(fraud, orgs):
    acme = await fraud.policy_for(orgs["acme"], NEW)
    assert (acme.home_region, acme.currency) == ("US", "USD")
    assert caps(acme) == (3, 10, 2500, 500_000)
    assert permitted("+14155550100", acme) and not permitted("+18765550100", acme)
    other = await fraud.policy_for(orgs["other"], CREATED + timedelta(days=45))
    assert (other.home_region, other.currency) == ("GB", "GBP")
    assert caps(other) == (20, 60, 25_000, 1_000_000)
    assert permitted("+442079460000", other, "GB") and not permitted("+449012345678", other, "GB")


async def test_age_is_evaluated_at_every_call_even_when_cached(fraud, orgs):
    assert caps(await fraud.policy_for(orgs["acme"], CREATED + timedelta(days=29, hours=23)))[0] == 3
    assert caps(await fraud.policy_for(orgs["acme"], CREATED + timedelta(days=30)))[0] == 20


async def test_cap_overrides(fraud, orgs, sessions):
    result = await fraud.set_caps(orgs["acme"], max_concurrent=7, daily_spend_cap_minor=5000)
    assert result == CapOverrides(7, None, 5000, None)
    assert caps(await fraud.policy_for(orgs["acme"], NEW)) == (7, 10, 5000, 500_000)
    # None goes back to the default; what is not named is kept.
    result = await fraud.set_caps(orgs["acme"], max_concurrent=None, max_price_per_minute_micros=2_000_000)
    assert result == CapOverrides(None, None, 5000, 2_000_000)
    assert caps(await fraud.policy_for(orgs["acme"], NEW)) == (3, 10, 5000, 2_000_000)
    # Overrides stay when the org grows up; the defaults under them change.
    assert caps(await fraud.policy_for(orgs["acme"], CREATED + timedelta(days=31))) == (20, 60, 5000, 2_000_000)
    # 0 concurrent calls suspends outbound calling.
    await fraud.set_caps(orgs["acme"], max_concurrent=0)
    refused = decide(classify("+14155550100", "US"), await fraud.policy_for(orgs["acme"], NEW), IDLE, None)
    assert refused is not ALLOWED and refused.error_id == "too_many_calls"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(FraudSettings)) == 1


async def test_destination_rules(fraud, orgs):
    acme = orgs["acme"]
    assert await fraud.allow_destination(acme, region="gb") == DestinationRule("GB", None, True)
    await fraud.allow_destination(acme, risk="premium")
    await fraud.deny_destination(acme, region="GB", risk=Risk.PREMIUM)
    await fraud.allow_destination(acme, region="CU", risk="high-risk")
    policy = await fraud.policy_for(acme, NEW)
    assert permitted("+442079460000", policy)
    assert permitted("+19005550100", policy)
    assert not permitted("+449012345678", policy)
    assert permitted("+5352345678", policy)
    assert not permitted("+37120000000", policy)
    assert not permitted("+18765550100", policy)
    own = [(rule.region, rule.risk, rule.allow) for rule in policy.rules if not rule.default]
    assert sorted(own, key=str) == sorted([("GB", None, True), (None, Risk.PREMIUM, True),
                                           ("GB", Risk.PREMIUM, False), ("CU", Risk.HIGH_RISK, True)], key=str)


async def test_one_rule_per_key_even_with_nulls(fraud, orgs, sessions):
    """NULLs are distinct in the unique constraint; the service still keeps one rule per key."""
    acme = orgs["acme"]
    for _ in range(3):
        await fraud.allow_destination(acme, risk="international")
        await fraud.deny_destination(acme, risk="international")
        await fraud.allow_destination(acme, region="GB")
    await fraud.deny_destination(acme, region="GB")
    async with sessions() as session:
        rows = (await session.execute(select(DestinationPermission.region, DestinationPermission.risk,
                                             DestinationPermission.allow))).all()
    assert sorted(rows, key=str) == sorted([(None, "international", False), ("GB", None, False)], key=str)
    policy = await fraud.policy_for(acme, NEW)
    assert not permitted("+442079460000", policy)


async def test_tenant_isolation(fraud, orgs):
    await fraud.allow_destination(orgs["acme"], risk="international")
    await fraud.set_caps(orgs["acme"], max_concurrent=50)
    await fraud.deny_destination(orgs["other"], region="GB")
    acme = await fraud.policy_for(orgs["acme"], NEW)
    other = await fraud.policy_for(orgs["other"], NEW)
    assert permitted("+442079460000", acme) and caps(acme)[0] == 50
    assert not permitted("+442079460000", other, "GB") and caps(other)[0] == 3
    assert not permitted("+14155550100", other, "GB")  # Acme's international allow is Acme's alone
    assert [rule for rule in other.rules if not rule.default] == [DestinationRule("GB", None, False)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"region": "XX"}, "unknown country 'XX'"),
    ({"region": "GBR"}, "unknown country 'GBR'"),
    ({"risk": "domestic"}, "unknown risk class 'domestic'"),
    ({"risk": "cheap"}, "unknown risk class 'cheap'"),
    ({}, "give a country, a risk class or both"),
    ({"region": "GB", "risk": "international"}, "a country alone"),
])
async def test_bad_rules_are_refused(fraud, orgs, sessions, kwargs, message):
    with pytest.raises(InvalidFraudSetting, match=message) as caught:
        await fraud.allow_destination(orgs["acme"], **kwargs)
    assert caught.value.error_id == "invalid_fraud_setting"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DestinationPermission)) == 0


@pytest.mark.parametrize("kwargs", [
    {"max_concurrent": -1}, {"max_calls_per_minute": 1_000_001}, {"daily_spend_cap_minor": -5},
    {"max_price_per_minute_micros": 2**63}, {"max_concurrent": True},
])
async def test_bad_caps_are_refused(fraud, orgs, kwargs):
    await fraud.set_caps(orgs["acme"], max_concurrent=4)
    with pytest.raises(InvalidFraudSetting):
        await fraud.set_caps(orgs["acme"], **kwargs)
    assert caps(await fraud.policy_for(orgs["acme"], NEW))[:2] == (4, 10)


async def test_unknown_org(fraud, orgs):
    for call in (fraud.policy_for("nope", NEW), fraud.allow_destination("nope", region="GB"),
                 fraud.set_caps("nope", max_concurrent=1)):
        with pytest.raises(OrganizationNotFound):
            await call


async def test_cache_lets_another_process_change_the_policy_within_the_ttl(sessions, orgs, clock):
    server = FraudService(sessions, cache_ttl=5.0, clock=clock)
    cli = FraudService(sessions)  # the operator's CLI: another process in real life
    assert caps(await server.policy_for(orgs["acme"], NEW))[0] == 3
    await cli.set_caps(orgs["acme"], max_concurrent=9)
    await cli.allow_destination(orgs["acme"], region="JM")
    clock.now += 4.9
    stale = await server.policy_for(orgs["acme"], NEW)
    assert caps(stale)[0] == 3 and not permitted("+18765550100", stale)
    clock.now += 0.2
    fresh = await server.policy_for(orgs["acme"], NEW)
    assert caps(fresh)[0] == 9 and permitted("+18765550100", fresh)
    # The server's own writes apply at once.
    await server.set_caps(orgs["acme"], max_concurrent=11)
    assert caps(await server.policy_for(orgs["acme"], NEW))[0] == 11


async def test_view_shows_provenance(fraud, orgs):
    await fraud.set_caps(orgs["acme"], daily_spend_cap_minor=9000)
    await fraud.allow_destination(orgs["acme"], region="GB")
    view = await fraud.view(orgs["acme"], NEW)
    assert view.overridden == {"daily_spend_cap_minor"}
    assert view.new_org_until == CREATED + timedelta(days=30)
    assert view.defaults.daily_spend_cap_minor == 2500 and view.policy.daily_spend_cap_minor == 9000
    assert (await fraud.view(orgs["acme"], CREATED + timedelta(days=30))).new_org_until is None


async def test_rows_go_with_the_organization(fraud, orgs, sessions):
    await fraud.allow_destination(orgs["acme"], region="GB")
    await fraud.set_caps(orgs["acme"], max_concurrent=5)
    await fraud.allow_destination(orgs["other"], risk="premium")
    async with sessions() as session, session.begin():
        await session.execute(delete(Organization).where(Organization.id == orgs["acme"]))
    async with sessions() as session:
        left = (await session.execute(select(DestinationPermission.org_id))).scalars().all()
        settings_left = (await session.execute(select(FraudSettings.org_id))).scalars().all()
    assert left == [orgs["other"]] and settings_left == []


async def test_keep_is_the_default(fraud, orgs):
    await fraud.set_caps(orgs["acme"], max_concurrent=6, max_calls_per_minute=12)
    await fraud.set_caps(orgs["acme"], max_calls_per_minute=KEEP, daily_spend_cap_minor=100)
    assert caps(await fraud.policy_for(orgs["acme"], NEW)) == (6, 12, 100, 500_000)
