"""Fraud policies of organizations: defaults overlaid with each org's own rules and caps.

``policy_for(org_id, now)`` is on the path of every outbound call, so what it reads (the org's
country, currency and age, its settings row and rules) is cached per org for ``cache_ttl``
seconds (5 by default). The operator's CLI changes settings from another process while the
server runs; a change therefore takes effect within ``cache_ttl``. Writes made through this
service take effect at once in this process.

The org's age is evaluated at every call (only the reads are cached), so an org turns
"established" at the exact moment it is 30 days old.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

import phonenumbers
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.fraud import repository as repo
from ringwell.features.fraud.destinations import Risk
from ringwell.features.fraud.errors import InvalidFraudSetting
from ringwell.features.fraud.models import FraudSettings
from ringwell.features.fraud.policy import (
    NEW_ORG_PERIOD,
    RULE_RISKS,
    CapOverrides,
    DestinationRule,
    FraudPolicy,
    default_policy,
    is_new_org,
    overlay,
)
from ringwell.storage.base import utcnow

__all__ = ["CAP_NAMES", "KEEP", "FraudService", "Keep", "PolicyView"]

DEFAULT_CACHE_TTL = 5.0  # seconds
MAX_CACHED_ORGS = 10_000
MAX_COUNT_CAP = 1_000_000
MAX_MONEY_CAP = 2**62  # fits BigInteger with room to add to

CAP_NAMES: Final = ("max_concurrent", "max_calls_per_minute", "daily_spend_cap_minor", "max_price_per_minute_micros")


class Keep(Enum):
    """``set_caps``: leave this cap as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


@dataclass(frozen=True, slots=True)
class _Snapshot:
    profile: repo.OrgProfile
    rules: tuple[DestinationRule, ...]
    caps: CapOverrides


@dataclass(frozen=True, slots=True)
class PolicyView:
    """The effective policy with where each part comes from (what ``fraud-policy`` shows)."""

    org_id: str
    policy: FraudPolicy
    defaults: FraudPolicy
    org_created_at: datetime
    new_org_until: datetime | None  # when the stricter new-org defaults end; None once they have
    overridden: frozenset[str]  # names of the caps (``CAP_NAMES``) the org has its own value for


class FraudService:
    def __init__(self, sessions: async_sessionmaker[Any], *, cache_ttl: float = DEFAULT_CACHE_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, _Snapshot]] = {}

    # -- reading -----------------------------------------------------------------------------
    async def policy_for(self, org_id: str, now: datetime) -> FraudPolicy:
        """The org's effective policy at ``now`` (aware). Raises ``OrganizationNotFound``."""
        return self._compose(await self._snapshot(org_id), now)[0]

    async def view(self, org_id: str, now: datetime) -> PolicyView:
        """The effective policy at ``now`` with its provenance (read fresh, not from the cache)."""
        self.invalidate(org_id)
        snapshot = await self._snapshot(org_id)
        policy, defaults = self._compose(snapshot, now)
        created = snapshot.profile.created_at
        overridden = frozenset(name for name in CAP_NAMES if getattr(snapshot.caps, name) is not None)
        until = created + NEW_ORG_PERIOD if is_new_org(created, now) else None
        return PolicyView(org_id, policy, defaults, created, until, overridden)

    def invalidate(self, org_id: str) -> None:
        """Forget the cached reads of one org (the next ``policy_for`` reads the database)."""
        self._cache.pop(org_id, None)

    @staticmethod
    def _compose(snapshot: _Snapshot, now: datetime) -> tuple[FraudPolicy, FraudPolicy]:
        profile = snapshot.profile
        defaults = default_policy(profile.created_at, now, country=profile.country, currency=profile.currency)
        return overlay(defaults, snapshot.rules, snapshot.caps), defaults

    async def _snapshot(self, org_id: str) -> _Snapshot:
        clock = self._clock()
        cached = self._cache.get(org_id)
        if cached is not None and cached[0] > clock:
            return cached[1]
        async with self._sessions() as session:
            profile = await repo.org_profile(session, org_id)
            if profile is None:
                raise OrganizationNotFound(f"no organization with id {org_id!r}", {"org_id": org_id})
            row = await repo.settings_row(session, org_id)
            rows = await repo.rules(session, org_id)
        rules = tuple(DestinationRule(rule.region, None if rule.risk is None else Risk(rule.risk), rule.allow)
                      for rule in rows)
        caps = CapOverrides() if row is None else CapOverrides(
            row.max_concurrent, row.max_calls_per_minute, row.daily_spend_cap_minor, row.max_price_per_minute_micros)
        snapshot = _Snapshot(profile, rules, caps)
        self._remember(org_id, clock + self._ttl, snapshot)
        return snapshot

    def _remember(self, org_id: str, expires: float, snapshot: _Snapshot) -> None:
        if len(self._cache) >= MAX_CACHED_ORGS:
            clock = self._clock()
            for stale in [key for key, (until, _) in self._cache.items() if until <= clock]:
                del self._cache[stale]
            if len(self._cache) >= MAX_CACHED_ORGS:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[org_id] = (expires, snapshot)

    # -- destination rules -------------------------------------------------------------------
    async def allow_destination(self, org_id: str, *, region: str | None = None,
                                risk: Risk | str | None = None) -> DestinationRule:
        """Allow a country (``region``), a class everywhere (``risk``: international, premium,
        high-risk) or a class in one country (both). Replaces the org's rule for that key."""
        return await self._set_rule(org_id, region, risk, allow=True)

    async def deny_destination(self, org_id: str, *, region: str | None = None,
                               risk: Risk | str | None = None) -> DestinationRule:
        """Deny a country, a class everywhere or a class in one country (see ``allow_destination``)."""
        return await self._set_rule(org_id, region, risk, allow=False)

    async def _set_rule(self, org_id: str, region: str | None, risk: Risk | str | None, *,
                        allow: bool) -> DestinationRule:
        rule = _validated_rule(region, risk, allow)
        async with self._sessions() as session, session.begin():
            if not await repo.lock_org(session, org_id):
                raise OrganizationNotFound(f"no organization with id {org_id!r}", {"org_id": org_id})
            await repo.replace_rule(session, org_id, rule.region, None if rule.risk is None else rule.risk.value,
                                    allow, utcnow())
        self.invalidate(org_id)
        return rule

    # -- caps --------------------------------------------------------------------------------
    async def set_caps(
        self,
        org_id: str,
        *,
        max_concurrent: int | Keep | None = KEEP,
        max_calls_per_minute: int | Keep | None = KEEP,
        daily_spend_cap_minor: int | Keep | None = KEEP,
        max_price_per_minute_micros: int | Keep | None = KEEP,
    ) -> CapOverrides:
        """Set the org's own caps: a number sets it, None goes back to the default, ``KEEP``
        (the default) leaves it. Money in minor units (daily spend) and micros (price per
        minute) of the org's currency. Returns the org's overrides after the change."""
        changes: dict[str, int | None] = {}
        for name, value, upper in (
            ("max_concurrent", max_concurrent, MAX_COUNT_CAP),
            ("max_calls_per_minute", max_calls_per_minute, MAX_COUNT_CAP),
            ("daily_spend_cap_minor", daily_spend_cap_minor, MAX_MONEY_CAP),
            ("max_price_per_minute_micros", max_price_per_minute_micros, MAX_MONEY_CAP),
        ):
            if value is KEEP:
                continue
            if value is not None and (isinstance(value, bool) or not 0 <= value <= upper):
                raise InvalidFraudSetting(f"{name} must be between 0 and {upper}", {"field": name, "value": value})
            changes[name] = value
        async with self._sessions() as session, session.begin():
            if not await repo.lock_org(session, org_id):
                raise OrganizationNotFound(f"no organization with id {org_id!r}", {"org_id": org_id})
            row = await repo.settings_row(session, org_id)
            if row is None:
                row = FraudSettings(org_id=org_id)
                session.add(row)
            for name, change in changes.items():
                setattr(row, name, change)
            row.updated_at = utcnow()
            result = CapOverrides(row.max_concurrent, row.max_calls_per_minute, row.daily_spend_cap_minor,
                                  row.max_price_per_minute_micros)
        self.invalidate(org_id)
        return result


def _validated_rule(region: str | None, risk: Risk | str | None, allow: bool) -> DestinationRule:
    code = None
    if region is not None:
        code = region.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidFraudSetting(f"unknown country {region!r}: use an ISO 3166-1 alpha-2 code such as GB",
                                      {"field": "country", "value": region})
    kind = None
    if risk is not None:
        try:
            kind = Risk(risk.strip().lower() if isinstance(risk, str) else risk)
        except ValueError:
            kind = None
        if kind not in RULE_RISKS:
            names = ", ".join(sorted(item.value for item in RULE_RISKS))
            raise InvalidFraudSetting(f"unknown risk class {risk!r}: one of {names}", {"field": "risk", "value": risk})
    if code is None and kind is None:
        raise InvalidFraudSetting("give a country, a risk class or both", {"field": "country"})
    if code is not None and kind is Risk.INTERNATIONAL:
        raise InvalidFraudSetting("a country alone allows or denies calls to it; 'international' means every "
                                  "country", {"field": "risk", "value": risk})
    return DestinationRule(code, kind, allow)
