"""API shapes of the rating slice: an org's sell rate for a number, and the operator's rate decks.

Prices are per minute in **micros** (10^-6 of the currency's major unit: $0.0123 = 12300), with
the same as a decimal for display.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from ringwell.features.rating.rates import format_micros
from ringwell.web.schemas import RequestBody

__all__ = ["DeckAssignIn", "DeckAssignOut", "DeckImportIn", "DeckImportOut", "DeckList", "DeckOut", "Micros", "RateOut",
           "micros"]

MAX_DECK_CSV = 32 * 1024 * 1024  # characters: a 100 000-rate deck is about 5 MB


class Micros(BaseModel):
    micros: int = Field(description="10^-6 of the currency's major unit")
    currency: str
    formatted: str = Field(description="The same as a decimal, e.g. 0.0123")


def micros(value: int, currency: str) -> Micros:
    return Micros(micros=value, currency=currency, formatted=format_micros(value, currency))


class RateOut(BaseModel):
    """The rate a call to ``number`` is charged at today (the longest matching prefix of the org's deck)."""

    number: str = Field(description="The number, in E.164")
    deck: str
    prefix: str
    description: str
    currency: str
    price_per_minute: Micros
    connection_fee: Micros = Field(description="Charged once per answered call")
    increments: str = Field(description="first/next billing increments in seconds, e.g. 60/60")
    first_increment: int
    next_increment: int
    effective_from: date


class DeckOut(BaseModel):
    id: str
    name: str
    currency: str
    rates: int
    orgs: int = Field(description="How many organizations pay by this deck")
    created_at: datetime
    updated_at: datetime = Field(description="The last import")


class DeckList(BaseModel):
    items: list[DeckOut]
    next_cursor: str | None = Field(description="Always null: every deck is listed")


class DeckImportIn(RequestBody):
    name: str = Field(min_length=1, max_length=100, description="Creates the deck, or replaces all its rates")
    currency: str = Field(default="USD", pattern=r"^[A-Za-z]{3}$")
    csv: str = Field(min_length=1, max_length=MAX_DECK_CSV,
                     description="prefix,description,price_per_minute,connection_fee,increments,effective_date "
                                 "(a header line, then one rate a line; see `ringwell admin import-rates`)")


class DeckImportOut(BaseModel):
    name: str
    currency: str
    rates: int = Field(description="How many rates the deck now has")


class DeckAssignIn(RequestBody):
    deck: str = Field(min_length=1, max_length=100, description="The name of the deck the organization pays by")


class DeckAssignOut(BaseModel):
    org_id: str
    deck: str
