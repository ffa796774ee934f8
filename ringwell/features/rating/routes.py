"""API routes of the rating slice (``/api/v1``): thin — parse, call the service, serialise.

- ``GET /orgs/{org_id}/rates?number=`` — what the org pays per minute for calls to a number.
- Operator console: list and import rate decks, assign an organization's sell deck (audited).
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.numbers.e164 import normalize
from ringwell.features.rating.errors import NoRate
from ringwell.features.rating.schemas import (
    DeckAssignIn,
    DeckAssignOut,
    DeckImportIn,
    DeckImportOut,
    DeckList,
    DeckOut,
    RateOut,
    micros,
)
from ringwell.features.rating.service import InTransaction
from ringwell.web.context import WebServices
from ringwell.web.deps import Scope, operator_scope, org_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter()

Web = Annotated[WebServices, Depends(services)]


def _audited(web: WebServices, scope: Scope, action: str, org_id: str, details: dict[str, Any]) -> InTransaction:
    """Records ``action`` on the deck inside the change's own transaction (both commit or neither)."""

    async def record(session: AsyncSession, deck_id: str) -> None:
        await web.audit.record(action, scope.actor, org_id=org_id, target_type="rate_deck", target_id=deck_id,
                               details=details, session=session)

    return record


@router.get("/orgs/{org_id}/rates", response_model=RateOut, tags=["rates"], operation_id="get_rate",
            summary="The organization's rate for calls to a number",
            responses={404: {"model": ErrorBody, "description": "no_rate: no rate for this number (or no deck)"}})
async def get_rate(
    scope: Annotated[Scope, Depends(org_scope("rates.read"))], web: Web,
    number: Annotated[str, Query(min_length=1, max_length=64,
                                 description="E.164 (+14155550100), or national in the organization's country")],
) -> RateOut:
    e164 = normalize(number, scope.org.country)
    quote = await web.rating.quote_for_org(scope.org.id, e164, datetime.now(UTC).date())
    if quote is None:
        raise NoRate(f"no rate for calls to {e164}", {"number": e164})
    rate, currency = quote.rate, quote.currency
    return RateOut(number=e164, deck=quote.deck, prefix=rate.prefix, description=rate.description, currency=currency,
                   price_per_minute=micros(rate.price_micros, currency),
                   connection_fee=micros(rate.connection_fee_micros, currency), increments=str(rate.increments),
                   first_increment=rate.increments.first, next_increment=rate.increments.next,
                   effective_from=rate.effective_from)


@router.get("/operator/rate-decks", response_model=DeckList, tags=["operator"], operation_id="list_rate_decks",
            summary="Every rate deck")
async def list_rate_decks(_scope: Annotated[Scope, Depends(operator_scope("operator.ratedecks.manage"))],
                          web: Web) -> DeckList:
    decks = await web.rating.decks()
    return DeckList(items=[DeckOut(id=d.id, name=d.name, currency=d.currency, rates=d.rates, orgs=d.orgs,
                                   created_at=d.created_at, updated_at=d.updated_at) for d in decks],
                    next_cursor=None)


@router.post("/operator/rate-decks", response_model=DeckImportOut, tags=["operator"], operation_id="import_rate_deck",
             summary="Create a rate deck or replace all its rates (all or nothing)",
             responses={409: {"model": ErrorBody, "description": "currency_mismatch or rate_deck_busy"}})
async def import_rate_deck(scope: Annotated[Scope, Depends(operator_scope("operator.ratedecks.manage"))], web: Web,
                           body: DeckImportIn) -> DeckImportOut:
    name, currency = body.name.strip(), body.currency.upper()
    # What was imported, exactly: the digest of the CSV (the deck itself is in the database).
    details = {"name": name, "currency": currency, "csv_sha256": hashlib.sha256(body.csv.encode()).hexdigest()}
    count = await web.rating.import_deck(name, io.StringIO(body.csv, newline=""), currency,
                                         in_transaction=_audited(web, scope, "ratedecks.import", scope.org.id, details))
    return DeckImportOut(name=name, currency=currency, rates=count)


@router.put("/operator/orgs/{org_id}/rate-deck", response_model=DeckAssignOut, tags=["operator"],
            operation_id="assign_rate_deck", summary="Set the rate deck an organization's calls are charged by",
            responses={409: {"model": ErrorBody, "description": "currency_mismatch: the deck is in another currency"}})
async def assign_rate_deck(scope: Annotated[Scope, Depends(operator_scope("operator.ratedecks.manage"))], web: Web,
                           org_id: Annotated[str, Path(max_length=36)], body: DeckAssignIn) -> DeckAssignOut:
    name = body.deck.strip()
    await web.rating.assign_deck(org_id, name,
                                 in_transaction=_audited(web, scope, "ratedecks.assign", org_id, {"deck": name}))
    return DeckAssignOut(org_id=org_id, deck=name)
