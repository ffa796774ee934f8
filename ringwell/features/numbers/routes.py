"""API routes of the numbers slice (`/api/v1`): an org's rented numbers, renting, releasing and
routing them; the operator's inventory.

Thin: parse, call ``NumbersService``, serialise. A number in a path is E.164 with '+'; send the
'+' URL-encoded (``%2B14155550100``) or raw (``+14155550100``): both reach the route as '+'
(a '+' in a URL path is not a space). A number another org rents answers exactly like one that
does not exist: 404 ``number_not_found``.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.errors import InvalidCursor
from ringwell.features.accounts.service import AuditHook
from ringwell.features.numbers.schemas import (
    AvailableList,
    AvailableNumberOut,
    ImportRequest,
    ImportResult,
    InventoryNumberOut,
    InventoryPage,
    NumberOut,
    NumberPage,
    RentRequest,
    RouteRequest,
    number_event_data,
)
from ringwell.features.numbers.service import MAX_SEARCH, NumberView
from ringwell.storage.cursor import decode_cursor, encode_cursor
from ringwell.web.deps import Scope, operator_scope, org_scope, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter()

E164 = Annotated[str, Path(min_length=1, max_length=64, description=(
    "the number in E.164 with '+', URL-encoded (%2B14155550100) or raw (+14155550100)"))]
_E164 = re.compile(r"\+[0-9]{1,15}")
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")]
NumberType = Literal["fixed", "mobile", "fixed-or-mobile", "toll-free", "premium", "shared-cost", "voip",
                     "personal", "pager", "uan", "voicemail", "unknown"]


def _error(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": description}}


def _decode(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    bad = InvalidCursor("the cursor is not one this API returned", {"field": "cursor"})
    value = decode_cursor(cursor, bad)
    if not isinstance(value, str) or not _E164.fullmatch(value):
        raise bad
    return value


def _audit(request: Request, scope: Scope, action: str) -> AuditHook:
    """Records ``action`` by the caller inside the service's transaction."""
    audit = services(request).audit

    async def record(session: AsyncSession, target_id: str, details: dict[str, Any]) -> None:
        await audit.record(action, scope.actor, org_id=scope.org.id, target_type="number", target_id=target_id,
                           details=details, session=session)

    return record


# -- an organization's numbers -----------------------------------------------------------------
@router.get("/orgs/{org_id}/numbers", response_model=NumberPage, operation_id="list_numbers", tags=["numbers"],
            summary="The organization's rented numbers with their routes and renewal dates (permission numbers.read)")
async def list_numbers(request: Request, scope: Annotated[Scope, Depends(org_scope("numbers.read"))],
                       limit: Limit = 50, cursor: Cursor = None) -> NumberPage:
    views = await services(request).numbers.numbers_page(scope.org.id, after=_decode(cursor), limit=limit + 1)
    more = len(views) > limit
    views = views[:limit]
    return NumberPage(items=[NumberOut.of(v) for v in views],
                      next_cursor=encode_cursor(views[-1].e164) if more and views else None)


@router.get("/orgs/{org_id}/numbers/available", response_model=AvailableList,
            operation_id="search_available_numbers", tags=["numbers"],
            summary="Numbers the organization can rent, priced in its currency (permission numbers.read)")
async def search_available_numbers(
    request: Request,
    scope: Annotated[Scope, Depends(org_scope("numbers.read"))],
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2")] = None,
    area: Annotated[str | None, Query(pattern=r"^[0-9]{1,8}$",
                                      description="leading digits of the national number (415, 20)")] = None,
    contains: Annotated[str | None, Query(pattern=r"^[0-9]{1,15}$",
                                          description="digits anywhere in the national number")] = None,
    type: Annotated[NumberType | None, Query(description="kind of line")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH)] = 20,
) -> AvailableList:
    found = await services(request).numbers.search(country=country, area=area, contains=contains, type=type,
                                                   limit=limit, currency=scope.org.currency)
    return AvailableList(items=[AvailableNumberOut.of(n) for n in found])


@router.post("/orgs/{org_id}/numbers", response_model=NumberOut, status_code=201, operation_id="rent_number",
             tags=["numbers"],
             responses={**_error(402, "The available credit does not cover the setup fee and first month"),
                        **_error(409, "The number is rented or in quarantine, or priced in another currency")},
             summary="Rent a number: the setup fee and first month are charged from the credit "
                     "(permission numbers.write)")
async def rent_number(request: Request, body: RentRequest,
                      scope: Annotated[Scope, Depends(org_scope("numbers.write"))]) -> NumberOut:
    web = services(request)
    number = await web.numbers.rent(scope.org.id, body.e164, datetime.now(UTC),
                                    audit=_audit(request, scope, "numbers.rent"))
    view = NumberView.of(number)
    await web.webhooks.publish(scope.org.id, "number.rented", number_event_data(number))
    return NumberOut.of(view)


@router.delete("/orgs/{org_id}/numbers/{e164}", status_code=204, response_class=Response,
               operation_id="release_number", tags=["numbers"],
               summary="Give a rented number back (no refund; it goes into quarantine) (permission numbers.write)")
async def release_number(request: Request, e164: E164,
                         scope: Annotated[Scope, Depends(org_scope("numbers.write"))]) -> Response:
    web = services(request)
    released = await web.numbers.release(scope.org.id, e164, datetime.now(UTC),
                                         audit=_audit(request, scope, "numbers.release"))
    await web.webhooks.publish(scope.org.id, "number.released", number_event_data(released))
    return Response(status_code=204)


@router.put("/orgs/{org_id}/numbers/{e164}/route", response_model=NumberOut, operation_id="route_number",
            tags=["numbers"],
            summary="Choose the user whose phones ring for calls to the number (null: nobody) "
                    "(permission numbers.write)")
async def route_number(request: Request, e164: E164, body: RouteRequest,
                       scope: Annotated[Scope, Depends(org_scope("numbers.write"))]) -> NumberOut:
    number = await services(request).numbers.route(e164, body.extension, org_id=scope.org.id,
                                                   audit=_audit(request, scope, "numbers.route"))
    return NumberOut.of(NumberView.of(number, body.extension))


# -- operator inventory ------------------------------------------------------------------------
@router.get("/operator/numbers", response_model=InventoryPage, operation_id="operator_list_numbers",
            tags=["operator"],
            summary="The number inventory by E.164 (operator permission operator.numbers.manage)")
async def operator_list_numbers(
    request: Request,
    _scope: Annotated[Scope, Depends(operator_scope("operator.numbers.manage"))],
    state: Annotated[Literal["available", "rented", "quarantine"] | None, Query()] = None,
    org_id: Annotated[str | None, Query(max_length=36, pattern=r"^[A-Za-z0-9-]+$",
                                        description="only numbers this org rents")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InventoryPage:
    items = await services(request).numbers.inventory(state=state, org_id=org_id, after=_decode(cursor),
                                                      limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return InventoryPage(items=[InventoryNumberOut.of(i) for i in items],
                         next_cursor=encode_cursor(items[-1].number.e164) if more and items else None)


@router.post("/operator/numbers", response_model=ImportResult, status_code=201, operation_id="operator_import_numbers",
             tags=["operator"],
             summary="Import numbers into the inventory from a CSV, all or nothing "
                     "(operator permission operator.numbers.manage)")
async def operator_import_numbers(
    request: Request, body: ImportRequest,
    scope: Annotated[Scope, Depends(operator_scope("operator.numbers.manage"))],
) -> ImportResult:
    audit = services(request).audit

    async def record(session: AsyncSession, target_id: str, details: dict[str, Any]) -> None:
        await audit.record("numbers.import", scope.actor, org_id=scope.org.id, target_type="inventory",
                           target_id=target_id, details=details, session=session)

    count = await services(request).numbers.import_numbers(io.StringIO(body.csv, newline=""), audit=record)
    return ImportResult(imported=count)
