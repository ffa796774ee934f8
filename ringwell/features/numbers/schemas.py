"""API shapes of the numbers slice: rented numbers, the numbers an org can rent, the operator's
inventory. Prices are integer minor units of ``currency`` (250 USD = 2.50 USD)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ringwell.features.numbers.models import PhoneNumber
from ringwell.features.numbers.service import InventoryItem, NumberView
from ringwell.web.schemas import RequestBody

__all__ = [
    "AvailableList",
    "AvailableNumberOut",
    "ImportRequest",
    "ImportResult",
    "InventoryNumberOut",
    "InventoryPage",
    "NumberOut",
    "NumberPage",
    "RentRequest",
    "RouteRequest",
    "number_event_data",
]

_EXTENSION = r"^[0-9]{2,8}$"
MAX_IMPORT_CHARS = 5_000_000  # some 100 000 inventory lines


class _Request(RequestBody):
    model_config = ConfigDict(extra="forbid")


class NumberOut(BaseModel):
    """A number the organization rents."""

    e164: str = Field(description="E.164 with '+', e.g. +14155550100")
    country: str
    type: str = Field(description="fixed, mobile, toll-free, ...")
    extension: str | None = Field(description="the user inbound calls ring; null: not routed")
    monthly_price_minor: int
    currency: str
    rented_at: datetime | None
    paid_until: datetime | None = Field(description="the renewal date: the next month is charged then")

    @classmethod
    def of(cls, view: NumberView) -> NumberOut:
        return cls(e164=view.e164, country=view.country, type=view.type, extension=view.extension,
                   monthly_price_minor=view.monthly_price_minor, currency=view.currency, rented_at=view.rented_at,
                   paid_until=view.paid_until)


class NumberPage(BaseModel):
    items: list[NumberOut]
    next_cursor: str | None


class AvailableNumberOut(BaseModel):
    """A number the organization can rent (priced in its currency)."""

    e164: str
    country: str
    type: str
    monthly_price_minor: int
    setup_price_minor: int = Field(description="charged once when renting, with the first month")
    currency: str

    @classmethod
    def of(cls, number: PhoneNumber) -> AvailableNumberOut:
        return cls(e164=number.e164, country=number.country, type=number.type,
                   monthly_price_minor=number.monthly_price_minor, setup_price_minor=number.setup_price_minor,
                   currency=number.currency)


class AvailableList(BaseModel):
    """At most ``limit`` matches, by E.164 (narrow the search to see others)."""

    items: list[AvailableNumberOut]


class RentRequest(_Request):
    e164: str = Field(min_length=1, max_length=64, description="the number to rent, as listed by the search")


class RouteRequest(_Request):
    extension: str | None = Field(pattern=_EXTENSION, description="the user's extension; null: ring nobody")


class InventoryNumberOut(BaseModel):
    e164: str
    country: str
    type: str
    state: Literal["available", "rented", "quarantine"] = Field(
        description="as customers see it: a number whose quarantine ended is available")
    monthly_price_minor: int
    setup_price_minor: int
    currency: str
    trunk: str | None = Field(description="the carrier trunk the number arrives on")
    org_id: str | None = Field(description="the renter (while rented)")
    org_name: str | None
    rented_at: datetime | None
    paid_until: datetime | None
    quarantine_until: datetime | None

    @classmethod
    def of(cls, item: InventoryItem) -> InventoryNumberOut:
        view = item.number
        return cls(e164=view.e164, country=view.country, type=view.type, state=view.state,  # type: ignore[arg-type]
                   monthly_price_minor=view.monthly_price_minor, setup_price_minor=view.setup_price_minor,
                   currency=view.currency, trunk=item.trunk, org_id=item.org_id, org_name=item.org_name,
                   rented_at=view.rented_at, paid_until=view.paid_until, quarantine_until=item.quarantine_until)


class InventoryPage(BaseModel):
    items: list[InventoryNumberOut]
    next_cursor: str | None


class ImportRequest(_Request):
    csv: str = Field(min_length=1, max_length=MAX_IMPORT_CHARS, description=(
        "an inventory CSV as for `ringwell admin import-numbers`: header "
        "number,country,type,monthly_price,setup_price,trunk[,currency]; prices in major units (\"2.50\"). "
        "All or nothing: a bad line rejects the file (422, details.line)."))


class ImportResult(BaseModel):
    imported: int


def number_event_data(number: PhoneNumber) -> dict[str, Any]:
    """The ``data`` of the ``number.rented`` and ``number.released`` webhooks (docs/webhooks.md),
    the same from the API and the portal. ``paid_until`` is null once released."""
    return {"number": number.e164, "country": number.country, "type": number.type,
            "monthly_price_minor": number.monthly_price_minor, "setup_price_minor": number.setup_price_minor,
            "currency": number.currency, "paid_until": number.paid_until}
