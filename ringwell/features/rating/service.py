"""Rating service: imports rate decks, assigns sell decks to organizations, quotes calls.

Decks live in the database; a server rates calls from an in-memory :class:`PrefixTable` per
deck, loaded on first use and kept in this service instance. Another process (the operator's
``ringwell admin import-rates``) may replace a deck while the server runs: every
``recheck_interval`` seconds (5 by default) at most, the first call that needs a deck compares
the deck's ``updated_at`` with the copy's and reloads it when it changed. While one task
reloads, the others keep rating with the copy they have, so a reload never stalls call setup.

Imports are all or nothing: the CSV is parsed completely before the database is touched, and
the deck's rates are replaced in one transaction, so a failed import leaves the deck as it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.models import Organization
from ringwell.features.rating import repository as repo
from ringwell.features.rating.errors import (
    CurrencyMismatch,
    DeckImportConflict,
    InvalidRatingData,
    RateDeckNotFound,
)
from ringwell.features.rating.models import OrgRateDeck, RateDeck, RateRow
from ringwell.features.rating.rates import (
    PrefixTable,
    Rate,
    RateBuilder,
    affordable_seconds,
    call_charge,
    currency_exponent,
    parse_rates_csv,
)
from ringwell.storage.base import utcnow

__all__ = ["DEFAULT_RECHECK_INTERVAL", "DeckInfo", "InTransaction", "LoadedDeck", "RateQuote", "RatingService"]

log = logging.getLogger(__name__)

# Runs inside a change's database transaction with the id of what changed (an audit event, say).
InTransaction = Callable[[AsyncSession, str], Awaitable[None]]

DEFAULT_RECHECK_INTERVAL = 5.0  # seconds a server may rate with a deck before checking for a new import
MAX_DECK_NAME = 100


@dataclass(frozen=True, slots=True)
class LoadedDeck:
    """A deck in memory, ready to rate calls."""

    name: str
    currency: str
    table: PrefixTable


@dataclass(frozen=True, slots=True)
class RateQuote:
    """The rate that applies to a call, with the deck and currency it is priced in."""

    deck: str
    currency: str
    rate: Rate

    def charge(self, talk_seconds: float) -> tuple[int, int]:
        """``(billable seconds, charge in minor units of currency)`` of a call that lasted ``talk_seconds``."""
        return call_charge(self.rate, talk_seconds, self.currency)

    def affordable_seconds(self, budget_minor: int) -> int:
        """The longest talk time (whole seconds) ``budget_minor`` pays for at this rate."""
        return affordable_seconds(self.rate, self.currency, budget_minor)


@dataclass(frozen=True, slots=True)
class DeckInfo:
    """A deck as the operator lists it: how many rates it has and how many organizations pay by it."""

    id: str
    name: str
    currency: str
    rates: int
    orgs: int
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class _Cached:
    deck: LoadedDeck
    deck_id: str
    updated_at: datetime
    checked_at: float  # on the service's monotonic clock


class RatingService:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        *,
        recheck_interval: float = DEFAULT_RECHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._recheck = recheck_interval
        self._clock = clock
        self._decks: dict[str, _Cached] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._org_decks: dict[str, tuple[str | None, float]] = {}

    # -- operator ------------------------------------------------------------------------------
    async def import_deck(self, name: str, lines: Iterable[str], currency: str = "USD", *,
                          in_transaction: InTransaction | None = None) -> int:
        """Create the deck ``name`` priced in ``currency``, or replace all its rates; returns how many.

        ``lines`` is the CSV (see ``rates.parse_rates_csv``); a bad line raises
        ``RateImportError`` and nothing changes. A deck's currency may change only if no
        organization paying in another currency is assigned to it (``CurrencyMismatch``).
        ``in_transaction(session, deck_id)`` runs inside the import's transaction (e.g. its audit event).
        """
        name = _deck_name(name)
        currency = _currency(currency)
        # Parsing 100 000 lines takes a fraction of a second of CPU: off the event loop.
        rates = await asyncio.to_thread(parse_rates_csv, lines)
        try:
            async with self._sessions() as session, session.begin():
                deck = await repo.deck_by_name(session, name, for_update=True)
                now = utcnow()
                if deck is None:
                    deck = RateDeck(name=name, currency=currency, created_at=now, updated_at=now)
                    session.add(deck)
                    await session.flush()
                else:
                    if deck.currency != currency:
                        others = await repo.currencies_of_orgs_on_deck(session, deck.id) - {currency}
                        if others:
                            raise CurrencyMismatch(
                                f"deck {name!r} is in {deck.currency} and assigned to organizations paying in "
                                f"{', '.join(sorted(others))}; it cannot become a {currency} deck",
                                {"deck": name, "currency": currency})  # fmt: skip
                        deck.currency = currency
                    # Servers notice a new import by a changed updated_at: it must change.
                    deck.updated_at = max(now, deck.updated_at + timedelta(microseconds=1))
                await repo.replace_rates(session, deck.id, rates)
                if in_transaction is not None:
                    await in_transaction(session, deck.id)
        except IntegrityError as exc:  # the deck was created by a concurrent import meanwhile
            raise DeckImportConflict(f"deck {name!r} was being imported at the same time; try again",
                                     {"deck": name}) from exc
        self.invalidate(name)
        log.info("imported %d rates into deck %r (%s)", len(rates), name, currency)
        return len(rates)

    async def assign_deck(self, org_id: str, deck_name: str, *, in_transaction: InTransaction | None = None) -> None:
        """Make ``deck_name`` the sell deck of the organization (replacing any other).

        The deck must be priced in the organization's currency (``CurrencyMismatch``).
        ``in_transaction(session, deck_id)`` runs inside the assignment's transaction.
        """
        async with self._sessions() as session, session.begin():
            org = await session.get(Organization, org_id)
            if org is None:
                raise OrganizationNotFound(f"no organization with id {org_id!r}", {"org_id": org_id})
            deck = await repo.deck_by_name(session, deck_name)
            if deck is None:
                raise RateDeckNotFound(f"no rate deck named {deck_name!r}", {"deck": deck_name})
            if deck.currency != org.currency:
                raise CurrencyMismatch(
                    f"{org.name} pays in {org.currency}; deck {deck_name!r} is priced in {deck.currency}",
                    {"deck": deck_name, "currency": deck.currency, "org_currency": org.currency})  # fmt: skip
            await repo.assign_deck(session, org_id, deck.id)
            if in_transaction is not None:
                await in_transaction(session, deck.id)
        self._org_decks.pop(org_id, None)

    async def decks(self) -> list[DeckInfo]:
        """Every rate deck, by name, with its number of rates and of organizations assigned to it."""
        rates = (select(RateRow.deck_id, func.count().label("n")).group_by(RateRow.deck_id)).subquery()
        orgs = (select(OrgRateDeck.deck_id, func.count().label("n")).group_by(OrgRateDeck.deck_id)).subquery()
        query = (
            select(RateDeck.id, RateDeck.name, RateDeck.currency, func.coalesce(rates.c.n, 0),
                   func.coalesce(orgs.c.n, 0), RateDeck.created_at, RateDeck.updated_at)
            .outerjoin(rates, rates.c.deck_id == RateDeck.id)
            .outerjoin(orgs, orgs.c.deck_id == RateDeck.id)
            .order_by(RateDeck.name)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [DeckInfo(id_, name, currency, int(n_rates), int(n_orgs), created, updated)
                for id_, name, currency, n_rates, n_orgs, created, updated in rows]

    async def deck_of_org(self, org_id: str) -> str | None:
        """The name of the organization's sell deck, or ``None`` if it has none (read now, not cached)."""
        async with self._sessions() as session:
            return await repo.deck_name_of_org(session, org_id)

    def invalidate(self, deck_name: str | None = None) -> None:
        """Forget the in-memory copy of a deck (all decks with ``None``) and the org assignments."""
        if deck_name is None:
            self._decks.clear()
        else:
            self._decks.pop(deck_name, None)
        self._org_decks.clear()

    # -- rating ------------------------------------------------------------------------------
    async def table(self, deck_name: str) -> LoadedDeck | None:
        """The deck in memory (loaded on first use, reloaded after an import); ``None`` if no such deck."""
        cached = self._decks.get(deck_name)
        if cached is not None and self._clock() - cached.checked_at < self._recheck:
            return cached.deck
        lock = self._loading.setdefault(deck_name, asyncio.Lock())
        if cached is not None and lock.locked():
            return cached.deck  # another task is checking or reloading it: rate with this copy meanwhile
        async with lock:
            return await self._refresh(deck_name)

    async def _refresh(self, deck_name: str) -> LoadedDeck | None:
        cached = self._decks.get(deck_name)
        now = self._clock()
        if cached is not None and now - cached.checked_at < self._recheck:
            return cached.deck  # refreshed by the task that held the lock
        # One transaction: on SQLite the version and the rows come from the same snapshot. (On
        # PostgreSQL an import committed between the two reads only causes one more reload.)
        async with self._sessions() as session, session.begin():
            version = await repo.deck_version(session, deck_name)
            if version is None:
                self._decks.pop(deck_name, None)
                return None
            if (cached is not None and cached.deck_id == version.id and cached.updated_at == version.updated_at
                    and cached.deck.currency == version.currency):
                cached.checked_at = now
                return cached.deck
            started = time.monotonic()
            rows = await repo.deck_rows(session, version.id)
        table = await asyncio.to_thread(_build_table, rows)
        deck = LoadedDeck(version.name, version.currency, table)
        self._decks[deck_name] = _Cached(deck, version.id, version.updated_at, now)
        log.info("loaded rate deck %r: %d rates, %d prefixes in %.2f s", deck_name, len(table), table.prefix_count,
                 time.monotonic() - started)
        return deck

    async def quote(self, deck_name: str, number: str, on: date) -> RateQuote | None:
        """The rate of deck ``deck_name`` for a call to ``number`` (E.164) on ``on`` (the call's UTC
        date); ``None`` when there is no such deck or no prefix of the number has a rate then."""
        deck = await self.table(deck_name)
        if deck is None:
            return None
        rate = deck.table.lookup(number, on)
        return None if rate is None else RateQuote(deck.name, deck.currency, rate)

    async def quote_for_org(self, org_id: str, number: str, on: date) -> RateQuote | None:
        """:meth:`quote` in the organization's sell deck; ``None`` when it has none assigned.

        The assignment is cached like the decks (``recheck_interval``).
        """
        now = self._clock()
        known = self._org_decks.get(org_id)
        if known is not None and now - known[1] < self._recheck:
            deck_name = known[0]
        else:
            deck_name = await self.deck_of_org(org_id)
            self._org_decks[org_id] = (deck_name, now)
        if deck_name is None:
            return None
        return await self.quote(deck_name, number, on)


def _build_table(rows: Sequence[repo.RateTuple]) -> PrefixTable:
    builder = RateBuilder()
    return PrefixTable(builder.rate(*row) for row in rows)


def _deck_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_DECK_NAME:
        raise InvalidRatingData(f"a rate deck name must be 1 to {MAX_DECK_NAME} characters", {"field": "deck"})
    return name


def _currency(currency: str) -> str:
    code = currency.strip().upper()
    try:
        currency_exponent(code)
    except ValueError as exc:
        raise InvalidRatingData(str(exc), {"field": "currency"}) from exc
    return code
