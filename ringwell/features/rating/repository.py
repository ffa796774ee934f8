"""Queries of the rating slice.

Decks are the operator's (not an organization's), so deck queries are by deck; everything about
an organization takes its id. Rates are written with Core ``executemany`` in chunks: a deck of
100 000 rates is one DELETE and a hundred multi-row statements, not 100 000 ORM objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization
from ringwell.features.rating.models import OrgRateDeck, RateDeck, RateRow
from ringwell.features.rating.rates import Rate

__all__ = [
    "DeckVersion",
    "assign_deck",
    "currencies_of_orgs_on_deck",
    "deck_by_name",
    "deck_name_of_org",
    "deck_rows",
    "deck_version",
    "replace_rates",
]

_RATES = cast(Table, RateRow.__table__)
_INSERT_CHUNK = 5_000  # rows per executemany: bounded memory for the parameter dicts

RateTuple = tuple[str, str, int, int, int, int, date]


@dataclass(frozen=True, slots=True)
class DeckVersion:
    """What a server compares to know whether its copy of a deck is current."""

    id: str
    name: str
    currency: str
    updated_at: datetime


async def deck_by_name(session: AsyncSession, name: str, *, for_update: bool = False) -> RateDeck | None:
    query = select(RateDeck).where(RateDeck.name == name)
    if for_update:
        query = query.with_for_update()  # two imports of one deck run one after the other
    return (await session.execute(query)).scalar_one_or_none()


async def deck_version(session: AsyncSession, name: str) -> DeckVersion | None:
    result = await session.execute(
        select(RateDeck.id, RateDeck.name, RateDeck.currency, RateDeck.updated_at).where(RateDeck.name == name)
    )
    row = result.one_or_none()
    return None if row is None else DeckVersion(*row)


async def replace_rates(session: AsyncSession, deck_id: str, rates: Sequence[Rate]) -> None:
    """Delete the deck's rates and insert ``rates`` instead (in the caller's transaction)."""
    connection = await session.connection()
    await connection.execute(delete(_RATES).where(_RATES.c.deck_id == deck_id))
    statement = insert(_RATES)
    for start in range(0, len(rates), _INSERT_CHUNK):
        rows: list[dict[str, Any]] = [
            {
                "deck_id": deck_id,
                "prefix": rate.prefix,
                "description": rate.description,
                "price_micros": rate.price_micros,
                "connection_fee_micros": rate.connection_fee_micros,
                "first_increment": rate.increments.first,
                "next_increment": rate.increments.next,
                "effective_from": rate.effective_from,
            }
            for rate in rates[start : start + _INSERT_CHUNK]
        ]
        await connection.execute(statement, rows)


async def deck_rows(session: AsyncSession, deck_id: str) -> list[RateTuple]:
    """Every rate of a deck as plain tuples (prefix, description, price, fee, first, next, from)."""
    result = await session.execute(
        select(
            _RATES.c.prefix, _RATES.c.description, _RATES.c.price_micros, _RATES.c.connection_fee_micros,
            _RATES.c.first_increment, _RATES.c.next_increment, _RATES.c.effective_from,
        ).where(_RATES.c.deck_id == deck_id)
    )  # fmt: skip
    return [cast(RateTuple, tuple(row)) for row in result.all()]


async def deck_name_of_org(session: AsyncSession, org_id: str) -> str | None:
    result = await session.execute(
        select(RateDeck.name).join(OrgRateDeck, OrgRateDeck.deck_id == RateDeck.id).where(
            OrgRateDeck.org_id == org_id
        )
    )
    return result.scalar_one_or_none()


async def assign_deck(session: AsyncSession, org_id: str, deck_id: str) -> None:
    row = await session.get(OrgRateDeck, org_id)
    if row is None:
        session.add(OrgRateDeck(org_id=org_id, deck_id=deck_id))
    else:
        row.deck_id = deck_id


async def currencies_of_orgs_on_deck(session: AsyncSession, deck_id: str) -> set[str]:
    """The currencies of the organizations that pay by this deck."""
    result = await session.execute(
        select(Organization.currency)
        .join(OrgRateDeck, OrgRateDeck.org_id == Organization.id)
        .where(OrgRateDeck.deck_id == deck_id)
        .distinct()
    )
    return set(result.scalars().all())
