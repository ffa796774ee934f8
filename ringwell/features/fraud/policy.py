"""The fraud policy of an organization and the decision taken before every outbound call (pure).

``decide(destination, policy, usage, price_micros)`` checks, in this order, and stops at the
first refusal:

1. destination permission — 403 "Destination not permitted" (``destination_blocked``)
2. concurrent calls        — 403 "Too many concurrent calls" (``too_many_calls``)
3. new calls per minute    — 403 "Call rate exceeded" (``call_rate_exceeded``)
4. daily spend             — 403 "Daily spend cap reached" (``daily_spend_cap``)
5. price per minute        — 403 "Price cap exceeded" (``price_cap_exceeded``)

Every refusal is 403 Forbidden, the caps included. 503 Service Unavailable says the *server*
is overloaded: RFC 3261 §21.5.4 and RFC 3263 §4.3 have the client retry after Retry-After or
fail over to another server, which only multiplies a fraud burst and hides that a policy, not
a fault, stopped the call. 486 Busy Here would blame the callee. 403 with a reason phrase that
names the limit tells the user (and the CDR) what happened; a later call can succeed.

Emergency destinations (``Risk.EMERGENCY``) are allowed before any check. The call path tests
``is_emergency`` first and never gets here for them; the early return is the second line of
defence, so a slip there cannot leave an emergency call refused.

Destination permission. A policy is the org's home region plus rules ``(region, risk, allow)``:
``(GB, None)`` is about a country, ``(None, PREMIUM)`` about a class everywhere, ``(GB, PREMIUM)``
about a class in one country. A destination must pass two gates:

- where: the most specific of ``(region, None)``; for a domestic number the home country's rule
  (allowed by default); otherwise ``(None, INTERNATIONAL)`` (denied by default).
  Non-geographic numbers (+882 …) have no region: only the international rule applies.
- what: premium and high-risk numbers need ``(None, PREMIUM)`` / ``(None, HIGH_RISK)`` allowed
  (both denied by default); allowing a *country* never unblocks its premium or high-risk ranges.

A ``(region, PREMIUM|HIGH_RISK)`` rule, the most specific there is, decides alone for that
class in that country: ``allow --country CU --risk high-risk`` lets Cuba through and nothing
else high-risk; ``deny --country GB --risk premium`` keeps UK premium numbers out when premium
is allowed elsewhere.

Defaults (``default_policy``): the home country allowed; international, premium and high-risk
denied; caps from ``NEW_ORG_CAPS`` for an org younger than ``NEW_ORG_PERIOD`` (30 days) — the
age at which stolen-card sign-ups have shown themselves — else ``ESTABLISHED_CAPS``:

==================  =========  ===========
cap                 new org    established
==================  =========  ===========
concurrent calls    3          20
new calls / minute  10         60
daily spend         25.00      250.00
price per minute    0.50       1.00
==================  =========  ===========

Money caps are stated for currencies worth about a US dollar and scaled by an order of
magnitude per currency (``_CAP_SCALE``: 100 for JPY, 1000 for KRW, …). For a currency not in
that table they are None (no default): a guess could block every call or none, and the
operator sets them (``set-fraud-caps``); concurrency and rate caps still apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from ringwell.features.fraud.destinations import Destination, Risk
from ringwell.features.fraud.errors import InvalidFraudSetting

__all__ = [
    "ALLOWED",
    "ESTABLISHED_CAPS",
    "GUARDED_RISKS",
    "MICROS",
    "NEW_ORG_CAPS",
    "NEW_ORG_PERIOD",
    "RULE_RISKS",
    "Allowed",
    "CapOverrides",
    "Caps",
    "Decision",
    "DestinationRule",
    "FraudPolicy",
    "Refused",
    "Usage",
    "decide",
    "default_policy",
    "default_rules",
    "destination_refusal",
    "is_new_org",
    "major_to_micros",
    "major_to_minor",
    "micros_to_major",
    "minor_exponent",
    "minor_to_major",
    "overlay",
    "spend_headroom_minor",
]

NEW_ORG_PERIOD = timedelta(days=30)
MICROS = 1_000_000  # rates are in 10^-6 of the currency's major unit

GUARDED_RISKS: frozenset[Risk] = frozenset({Risk.PREMIUM, Risk.HIGH_RISK})
"""Classes a country permission does not unblock: they need their own allow rule."""
RULE_RISKS: frozenset[Risk] = frozenset({Risk.INTERNATIONAL, Risk.PREMIUM, Risk.HIGH_RISK})
"""Classes a rule may name (domestic is the home country's rule; emergency is never refused)."""

_LABELS = MappingProxyType({
    Risk.INTERNATIONAL: "international",
    Risk.PREMIUM: "premium-rate",
    Risk.HIGH_RISK: "high-risk",
})


# -- money -----------------------------------------------------------------------------------
_EXPONENTS = MappingProxyType({
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
})
# Order of magnitude of each currency's unit against the US dollar the default caps are written
# in. Deliberately coarse (a power of ten, so it needs no updating): a cap ends up between about
# a third and three times the dollar figure.
_CAP_SCALE = MappingProxyType({
    **dict.fromkeys(("USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "SGD"), 1),
    **dict.fromkeys(("SEK", "NOK", "DKK", "HKD", "CNY", "ZAR", "MXN"), 10),
    **dict.fromkeys(("JPY", "INR"), 100),
    "KRW": 1000,
})


def minor_exponent(currency: str) -> int:
    """Decimal places of a currency's minor unit (ISO 4217): 2 unless listed (JPY 0, KWD 3, …)."""
    return _EXPONENTS.get(currency.upper(), 2)


def major_to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` in major units ("50.00" USD) as integer minor units (5000), exactly.

    Raises ``InvalidFraudSetting`` for a negative amount, or one finer than the currency's
    minor unit ("50.005" USD): rounding a cap the operator typed would be a silent change.
    """
    exponent = minor_exponent(currency)
    return _exact(amount, exponent, f"{currency.upper()} has {exponent} decimals")


def major_to_micros(amount: Decimal) -> int:
    """``amount`` in major units as micros (10^-6), exactly (at most 6 decimals)."""
    return _exact(amount, 6, "prices have at most 6 decimals")


def _exact(amount: Decimal, exponent: int, finer: str) -> int:
    if not amount.is_finite():
        raise InvalidFraudSetting(f"not an amount: {amount}", {"amount": str(amount)})
    shown = format(amount, "f")
    if amount < 0:
        raise InvalidFraudSetting(f"amount must not be negative: {shown}", {"amount": shown})
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise InvalidFraudSetting(f"too many decimals in {shown}: {finer}", {"amount": shown})
    return int(scaled)


def minor_to_major(minor: int, currency: str) -> Decimal:
    """Integer minor units as a ``Decimal`` in major units with the currency's decimals (5000 → 50.00)."""
    return Decimal(minor).scaleb(-minor_exponent(currency))


def micros_to_major(micros: int) -> Decimal:
    """Micros as a ``Decimal`` in major units, trailing zeros kept to cents (500000 → 0.50)."""
    value = Decimal(micros).scaleb(-6)
    cents = value.quantize(Decimal("0.01"))
    return cents if cents == value else value.normalize()


# -- policy ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DestinationRule:
    """Allow or deny a country (``risk`` None), a class everywhere (``region`` None), or a class
    in one country. ``region`` is ISO 3166-1 alpha-2; ``risk`` one of ``RULE_RISKS``."""

    region: str | None
    risk: Risk | None
    allow: bool
    default: bool = False  # part of the defaults rather than set for the org (for display)

    @property
    def key(self) -> tuple[str | None, Risk | None]:
        return (self.region, self.risk)


@dataclass(frozen=True, slots=True)
class Caps:
    """Default caps; money in major units of a currency worth about a US dollar."""

    max_concurrent: int
    max_calls_per_minute: int
    daily_spend: Decimal
    price_per_minute: Decimal


NEW_ORG_CAPS = Caps(max_concurrent=3, max_calls_per_minute=10, daily_spend=Decimal("25.00"),
                    price_per_minute=Decimal("0.50"))
ESTABLISHED_CAPS = Caps(max_concurrent=20, max_calls_per_minute=60, daily_spend=Decimal("250.00"),
                        price_per_minute=Decimal("1.00"))


@dataclass(frozen=True, slots=True)
class FraudPolicy:
    """What an org may call and how much. Money caps None mean "no cap"; a count cap of 0
    refuses every call but emergency ones (a way to suspend outbound calling)."""

    home_region: str
    currency: str
    rules: tuple[DestinationRule, ...]
    max_concurrent: int
    max_calls_per_minute: int
    daily_spend_cap_minor: int | None
    max_price_per_minute_micros: int | None
    _by_key: MappingProxyType[tuple[str | None, Risk | None], bool] = field(
        init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", MappingProxyType({rule.key: rule.allow for rule in self.rules}))

    def rule(self, region: str | None, risk: Risk | None) -> bool | None:
        """Whether the rule for exactly this key allows (None: no such rule)."""
        return self._by_key.get((region, risk))


@dataclass(frozen=True, slots=True)
class CapOverrides:
    """An org's own caps; None keeps the default."""

    max_concurrent: int | None = None
    max_calls_per_minute: int | None = None
    daily_spend_cap_minor: int | None = None
    max_price_per_minute_micros: int | None = None


def default_rules(org_country: str) -> tuple[DestinationRule, ...]:
    home = org_country.strip().upper()
    return (
        DestinationRule(home, None, True, default=True),
        DestinationRule(None, Risk.INTERNATIONAL, False, default=True),
        DestinationRule(None, Risk.PREMIUM, False, default=True),
        DestinationRule(None, Risk.HIGH_RISK, False, default=True),
    )


def is_new_org(org_created_at: datetime, now: datetime) -> bool:
    """Whether the stricter new-org defaults apply (younger than ``NEW_ORG_PERIOD``)."""
    return now - org_created_at < NEW_ORG_PERIOD


def default_policy(org_created_at: datetime, now: datetime, *, country: str = "US",
                   currency: str = "USD") -> FraudPolicy:
    """The policy of an org without settings of its own (see the module docstring for the numbers).

    Both datetimes must be aware (UTC).
    """
    caps = NEW_ORG_CAPS if is_new_org(org_created_at, now) else ESTABLISHED_CAPS
    currency = currency.strip().upper()
    scale = _CAP_SCALE.get(currency)
    return FraudPolicy(
        home_region=country.strip().upper(),
        currency=currency,
        rules=default_rules(country),
        max_concurrent=caps.max_concurrent,
        max_calls_per_minute=caps.max_calls_per_minute,
        daily_spend_cap_minor=None if scale is None else major_to_minor(caps.daily_spend * scale, currency),
        max_price_per_minute_micros=None if scale is None else major_to_micros(caps.price_per_minute * scale),
    )


def overlay(policy: FraudPolicy, rules: Iterable[DestinationRule], caps: CapOverrides) -> FraudPolicy:
    """``policy`` with an org's rules (each replacing a rule with the same key) and caps."""
    own = {rule.key: replace(rule, default=False) for rule in rules}
    merged = tuple(rule for rule in policy.rules if rule.key not in own) + tuple(own.values())
    return replace(
        policy,
        rules=merged,
        max_concurrent=policy.max_concurrent if caps.max_concurrent is None else caps.max_concurrent,
        max_calls_per_minute=(policy.max_calls_per_minute if caps.max_calls_per_minute is None
                              else caps.max_calls_per_minute),
        daily_spend_cap_minor=(policy.daily_spend_cap_minor if caps.daily_spend_cap_minor is None
                               else caps.daily_spend_cap_minor),
        max_price_per_minute_micros=(policy.max_price_per_minute_micros if caps.max_price_per_minute_micros is None
                                     else caps.max_price_per_minute_micros),
    )


# -- decision --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Usage:
    """What the org is doing now: calls up, calls started in the last 60 s, spent today (minor units)."""

    concurrent: int
    calls_last_minute: int
    spent_today_minor: int


@dataclass(frozen=True, slots=True)
class Allowed:
    """The call may go on (to rating and the credit reservation)."""


ALLOWED = Allowed()


@dataclass(frozen=True, slots=True)
class Refused:
    """The call is answered ``status reason``; ``error_id`` is stable, ``detail`` for people (CDR, logs)."""

    status: int
    reason: str
    error_id: str
    detail: str = ""


Decision = Allowed | Refused


def destination_refusal(destination: Destination, policy: FraudPolicy) -> str | None:
    """Why ``policy`` does not permit ``destination``, or None when it does (emergency: always)."""
    region, risk = destination.region, destination.risk
    if risk is Risk.EMERGENCY:
        return None
    guarded = risk in GUARDED_RISKS
    label = _LABELS.get(risk, str(risk))
    note = f" ({destination.note})" if destination.note else ""
    if guarded and region is not None:
        pair = policy.rule(region, risk)
        if pair is not None:
            return None if pair else f"{label} numbers in {region} are not permitted{note}"
    where = policy.rule(region, None) if region is not None else None
    if where is None and destination.domestic:
        where = policy.rule(policy.home_region, None)
        where = True if where is None else where
    if where is None:
        where = bool(policy.rule(None, Risk.INTERNATIONAL))
    if not where:
        place = region if region is not None else f"+{destination.country_code} (non-geographic)"
        return f"calls to {place} are not permitted{note}"
    if guarded and not policy.rule(None, risk):
        return f"{label} numbers are not permitted{note}"
    return None


def decide(destination: Destination, policy: FraudPolicy, usage: Usage, price_micros: int | None) -> Decision:
    """Allow or refuse an outbound call (order and statuses: see the module docstring).

    ``usage`` is taken *before* this call (``concurrent`` does not count it). ``price_micros`` is
    the sell price per minute; None (not rated yet, or no rate) skips the price check — whether
    an unrated destination may be called is the rating step's decision. A call that starts
    under the daily cap may end above it: bound its credit reservation with
    ``spend_headroom_minor``.
    """
    if destination.risk is Risk.EMERGENCY:
        return ALLOWED
    why = destination_refusal(destination, policy)
    if why is not None:
        return Refused(403, "Destination not permitted", "destination_blocked", why)
    if usage.concurrent >= policy.max_concurrent:
        return Refused(403, "Too many concurrent calls", "too_many_calls",
                       f"{usage.concurrent} calls up; the limit is {policy.max_concurrent}")
    if usage.calls_last_minute >= policy.max_calls_per_minute:
        return Refused(403, "Call rate exceeded", "call_rate_exceeded",
                       f"{usage.calls_last_minute} calls started in the last minute; "
                       f"the limit is {policy.max_calls_per_minute}")
    cap = policy.daily_spend_cap_minor
    if cap is not None and usage.spent_today_minor >= cap:
        return Refused(403, "Daily spend cap reached", "daily_spend_cap",
                       f"spent {minor_to_major(usage.spent_today_minor, policy.currency)} {policy.currency} today; "
                       f"the cap is {minor_to_major(cap, policy.currency)}")
    price_cap = policy.max_price_per_minute_micros
    if price_micros is not None and price_cap is not None and price_micros > price_cap:
        return Refused(403, "Price cap exceeded", "price_cap_exceeded",
                       f"{micros_to_major(price_micros)} {policy.currency}/min is above the cap of "
                       f"{micros_to_major(price_cap)}")
    return ALLOWED


def spend_headroom_minor(policy: FraudPolicy, spent_today_minor: int) -> int | None:
    """How much more the org may spend today (minor units, at least 0); None without a daily cap."""
    cap = policy.daily_spend_cap_minor
    return None if cap is None else max(0, cap - spent_today_minor)

