"""Authorization of calls to the phone network, and their credit while they run.

``authorize_call`` decides, in this order (issue 4, DESIGN.md "A call, end to end"):

1. an emergency number (911, 112, 999 and the org country's own) is always allowed: no
   permission, cap, rate or balance can refuse it, and it is not charged;
2. the dialled string must be a phone number (else 484 Address Incomplete);
3. destination permission, fraud caps and the per-minute price cap (``fraud.decide``);
4. a rate in the org's sell deck (no rate: the destination is not sold);
5. trunks that can reach it, cheapest buy rate first, then priority; trunks at their channel
   limit are skipped;
6. a credit reservation for the first slice of talk time — or for what the balance still
   affords, so a call can never cost more than the credit there was.

While the call is up the driver asks ``extend`` for the next slice before the current one ends;
when nothing more can be reserved the call is cut off at exactly the granted second. At the
end ``settle`` charges the exact amount for the talk time and releases the reservation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from ringwell.features.fraud.destinations import (
    UnparseableNumber,
    classify,
    dialled_to_e164,
    emergency_number,
    is_emergency,
)
from ringwell.features.fraud.policy import FraudPolicy, Refused, Usage, decide, spend_headroom_minor
from ringwell.features.rating.rates import Rate, affordable_seconds, call_charge
from ringwell.features.rating.service import RateQuote as Quote
from ringwell.features.trunks.service import TrunkRoute, dial_string

__all__ = [
    "Authorized",
    "CallCharge",
    "OrgProfile",
    "OutboundService",
    "Refusal",
    "TrunkChoice",
]

log = logging.getLogger(__name__)
MIN_NUMBER_DIGITS = 7  # shorter and not an emergency number: an extension that does not exist (404)


@dataclass(frozen=True, slots=True)
class OrgProfile:
    id: str
    name: str
    country: str
    currency: str
    created_at: datetime


class Balance(Protocol):
    @property
    def available_minor(self) -> int: ...

    @property
    def reserved_minor(self) -> int: ...


# -- the seams to the other slices (their services satisfy these) --------------------------
class Orgs(Protocol):
    async def __call__(self, org_id: str) -> OrgProfile | None: ...


class Rating(Protocol):
    async def quote_for_org(self, org_id: str, number: str, on: date) -> Quote | None: ...

    async def quote(self, deck_name: str, number: str, on: date) -> Quote | None: ...


class Ledger(Protocol):
    async def balance(self, org_id: str) -> Balance: ...

    async def reserve(self, org_id: str, key: str, amount_minor: int) -> bool: ...

    async def settle(self, org_id: str, key: str, charge_minor: int, *, description: str, reference: str,
                     cost_minor: int | None = None) -> str | None: ...

    async def release(self, org_id: str, key: str) -> object: ...

    async def spent_since(self, org_id: str, since: datetime) -> int: ...


class Fraud(Protocol):
    async def policy_for(self, org_id: str, now: datetime) -> FraudPolicy: ...


class Counters(Protocol):
    def usage(self, org_id: str, now: float) -> tuple[int, int]: ...

    def started(self, org_id: str, call_key: str, now: float) -> bool: ...

    def ended(self, call_key: str) -> None: ...


class Numbers(Protocol):
    async def caller_id_for(self, org_id: str, user_id: str, requested: str | None) -> str | None: ...


class Trunks(Protocol):
    async def load(self) -> list[TrunkRoute]: ...

    def cached(self) -> list[TrunkRoute]: ...


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str  # the SIP reason phrase
    text: str  # why, for the call record
    disposition: str = "blocked"


@dataclass(frozen=True, slots=True)
class TrunkChoice:
    trunk: TrunkRoute
    dial: str  # the number as this trunk wants it
    cost: Quote | None  # the trunk's buy rate for the destination


@dataclass(slots=True)
class CallCharge:
    """The credit of one running call: what is granted and reserved so far."""

    org_id: str
    key: str
    currency: str
    rate: Rate | None  # None: free (emergency)
    deck: str | None
    granted: int = 0  # seconds of talk covered by reservations
    reserved_minor: int = 0
    settled: bool = False
    capped: bool = False  # the daily spend cap limits this call's talk time


    @property
    def unlimited(self) -> bool:
        return self.rate is None


@dataclass(frozen=True, slots=True)
class Authorized:
    e164: str  # the destination (an emergency short code stays as dialled)
    emergency: bool
    caller_id: str | None
    trunks: list[TrunkChoice]
    charge: CallCharge
    risk: str = ""
    notes: list[str] = field(default_factory=list)


def _start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class OutboundService:
    def __init__(self, *, orgs: Orgs, rating: Rating, ledger: Ledger, fraud: Fraud, counters: Counters,
                 numbers: Numbers, trunks: Trunks, slice_seconds: int = 60,
                 channels: Callable[[], dict[str, int]] | None = None) -> None:
        self.orgs = orgs
        self.rating = rating
        self.ledger = ledger
        self.fraud = fraud
        self.counters = counters
        self.numbers = numbers
        self.trunks = trunks
        self.slice_seconds = slice_seconds
        self.channels = channels or dict  # trunk id -> calls ringing or up on it now

    async def authorize_call(self, *, org_id: str, user_id: str, dialled: str, requested_cli: str | None,
                             key: str, now: datetime, mono: float) -> Authorized | Refusal:
        org = await self.orgs(org_id)
        if org is None:
            return Refusal(403, "Forbidden", "Unknown organization")
        if is_emergency(dialled, org.country):
            return await self._emergency(org, user_id, dialled, requested_cli, key, mono)
        caller_id = await self.numbers.caller_id_for(org_id, user_id, requested_cli)
        if not dialled.startswith("+") and len(dialled) < MIN_NUMBER_DIGITS:
            # Too short for a phone number of any country: a mistyped or missing extension.
            return Refusal(404, "Not Found", "No such extension", "failed")
        try:
            e164 = dialled_to_e164(dialled, org.country)
        except UnparseableNumber as exc:
            return Refusal(484, "Address Incomplete", exc.message, "failed")
        destination = classify(e164, org.country)
        policy = await self.fraud.policy_for(org_id, now)
        spent = await self.ledger.spent_since(org_id, _start_of_day(now))
        quote = await self.rating.quote_for_org(org_id, e164, now.date())
        # No await between reading the counters, deciding and counting this call: two INVITEs
        # arriving together cannot both take the last free slot.
        concurrent, last_minute = self.counters.usage(org_id, mono)
        decision = decide(destination, policy, Usage(concurrent, last_minute, spent),
                          quote.rate.price_micros if quote else None)
        if isinstance(decision, Refused):
            return Refusal(decision.status, decision.reason, f"{decision.reason} ({decision.error_id})")
        if quote is None:
            return Refusal(403, "Forbidden", "No rate for this destination")
        self.counters.started(org_id, key, mono)
        refusal: Refusal | None = None
        try:
            trunks = await self.trunks_for(e164, now)
            if not trunks:
                refusal = Refusal(503, "Service Unavailable", "No trunk can reach this destination", "failed")
                return refusal
            charge = CallCharge(org_id, key, org.currency, quote.rate, quote.deck)
            if not await self._reserve(charge, self.slice_seconds, await self._spend_limit(charge, policy, spent)):
                refusal = Refusal(402, "Payment Required", "Insufficient credit")
                return refusal
        except BaseException:
            self.counters.ended(key)
            raise
        finally:
            if refusal is not None:
                self.counters.ended(key)
        return Authorized(e164, False, caller_id, trunks, charge, destination.risk.value)

    async def trunks_for(self, e164: str, now: datetime) -> list[TrunkChoice]:
        choices: list[tuple[int, int, TrunkChoice]] = []
        busy = self.channels()
        for trunk in await self.trunks.load():
            if trunk.max_channels and busy.get(trunk.id, 0) >= trunk.max_channels:
                continue
            cost = await self.rating.quote(trunk.buy_deck, e164, now.date()) if trunk.buy_deck else None
            if trunk.buy_deck and cost is None:
                continue  # the carrier does not sell this destination
            price = cost.rate.price_micros if cost else 0
            dial = dial_string(e164, trunk.number_format, trunk.tech_prefix)
            choices.append((price, trunk.priority, TrunkChoice(trunk, dial, cost)))
        choices.sort(key=lambda c: (c[0], c[1]))
        return [c[2] for c in choices]

    async def _emergency(self, org: OrgProfile, user_id: str, dialled: str, requested_cli: str | None, key: str,
                         mono: float) -> Authorized | Refusal:
        """Always allowed and never charged; a database problem must not stop it either."""
        code = emergency_number(dialled, org.country) or dialled
        try:
            caller_id = await self.numbers.caller_id_for(org.id, user_id, requested_cli)
        except Exception:
            log.exception("emergency call from org %s: caller ID look-up failed, calling without", org.name)
            caller_id = None
        try:
            routes = await self.trunks.load()
        except Exception:
            log.exception("emergency call from org %s: trunk list not readable, using the last one", org.name)
            routes = self.trunks.cached()
        trunks = [TrunkChoice(t, t.tech_prefix + code, None) for t in routes]
        if not trunks:
            log.error("emergency call to %s from org %s: no trunk configured", dialled, org.name)
            return Refusal(503, "Service Unavailable", "No trunk for an emergency call", "failed")
        self.counters.started(org.id, key, mono)
        log.warning("emergency call to %s from org %s", code, org.name)
        return Authorized(code, True, caller_id, trunks, CallCharge(org.id, key, org.currency, None, None))

    async def _spend_limit(self, charge: CallCharge, policy: FraudPolicy, spent: int) -> int | None:
        """The most this call may have reserved in all under the daily spend cap (None: no cap).

        What the org's other calls hold already counts as spent: a few long calls must not
        run past the cap between authorizations.
        """
        headroom = spend_headroom_minor(policy, spent)
        if headroom is None:
            return None
        reserved_by_others = (await self.ledger.balance(charge.org_id)).reserved_minor - charge.reserved_minor
        return max(0, headroom - max(0, reserved_by_others))

    async def _reserve(self, charge: CallCharge, seconds: int, limit: int | None) -> bool:
        """Reserve up to ``seconds`` more talk time; what the balance (and ``limit``, the most this
        call may hold in all) affords if not all. False: none."""
        rate = charge.rate
        assert rate is not None
        target = charge.granted + seconds
        if limit is not None:
            capped = affordable_seconds(rate, charge.currency, limit)
            if capped < target:
                charge.capped = True
                target = capped
            if target <= charge.granted:
                return False
        needed = call_charge(rate, target, charge.currency)[1] - charge.reserved_minor
        if needed <= 0 or await self.ledger.reserve(charge.org_id, charge.key, needed):
            charge.granted = target
            charge.reserved_minor += max(0, needed)
            return True
        for _ in range(3):  # the balance moved under us: take what is left, a few tries
            available = (await self.ledger.balance(charge.org_id)).available_minor
            budget = charge.reserved_minor + max(0, available)
            if limit is not None:
                budget = min(budget, limit)
            affordable = min(target, affordable_seconds(rate, charge.currency, budget))
            if affordable <= charge.granted:
                return False
            needed = call_charge(rate, affordable, charge.currency)[1] - charge.reserved_minor
            if needed <= 0 or await self.ledger.reserve(charge.org_id, charge.key, needed):
                charge.granted = affordable
                charge.reserved_minor += max(0, needed)
                return True
        return False

    async def extend(self, charge: CallCharge) -> bool:
        """Reserve the next slice; False when no more talk time could be granted."""
        if charge.unlimited:
            return True
        before = charge.granted
        now = datetime.now(UTC)
        policy = await self.fraud.policy_for(charge.org_id, now)
        spent = await self.ledger.spent_since(charge.org_id, _start_of_day(now))
        limit = await self._spend_limit(charge, policy, spent)
        return await self._reserve(charge, self.slice_seconds, limit) and charge.granted > before

    async def settle(self, charge: CallCharge, talk_seconds: float, cost: Quote | None,
                     description: str) -> tuple[int, int, int | None]:
        """Charge the exact amount and release the reservation: (billable s, charge, cost) in minor units."""
        if charge.settled:
            return 0, 0, None
        if charge.rate is None:
            await self.ledger.release(charge.org_id, charge.key)
            charge.settled = True
            return 0, 0, None
        # The call is cut off at the granted second; a late BYE's milliseconds are not charged beyond it.
        talk = min(talk_seconds, float(charge.granted))
        billable, amount = call_charge(charge.rate, talk, charge.currency)
        carrier = call_charge(cost.rate, talk, cost.currency)[1] if cost is not None else None
        # Settling is idempotent per key in the ledger: a retry after a failure charges once.
        await self.ledger.settle(charge.org_id, charge.key, amount, description=description, reference=charge.key,
                                 cost_minor=carrier)
        charge.settled = True
        return billable, amount, carrier

    async def verification_refusal(self, org_id: str, e164: str, now: datetime) -> str | None:
        """Why Ringwell must not call ``e164`` for a caller-ID check of ``org_id`` (None: it may).

        The org's destination permissions apply: a verification call to a premium or
        high-risk number would be revenue-share fraud paid by the operator.
        """
        org = await self.orgs(org_id)
        if org is None:
            return "unknown organization"
        destination = classify(e164, org.country)
        decision = decide(destination, await self.fraud.policy_for(org_id, now), Usage(0, 0, 0), None)
        return f"{decision.reason} ({decision.error_id})" if isinstance(decision, Refused) else None

