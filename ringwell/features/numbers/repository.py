"""Queries of the numbers slice.

Every query about a rented number names the organization. The exceptions are server-wide on
purpose: the inventory (import, search, rent), the inbound look-up (a carrier's call names only
the number) and the renewal job.

State changes are conditional ``UPDATE … WHERE <expected state> RETURNING id``: when two requests
race (two orgs renting one number, two renewal runs) exactly one sees its row come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization, User
from ringwell.features.numbers.models import CallerIdVerification, NumberState, PhoneNumber
from ringwell.features.trunks.models import Trunk

__all__ = [
    "InboundRoute",
    "advance",
    "claim",
    "count_attempt",
    "default_number",
    "due",
    "existing_numbers",
    "inbound_route",
    "insert_numbers",
    "inventory_page",
    "is_verified",
    "kill_pending",
    "mark_verified",
    "mark_warned",
    "number_by_e164",
    "numbers_of_org",
    "numbers_page",
    "org_country_currency",
    "pending_verification",
    "release",
    "rentable",
    "rented_number",
    "search",
    "set_route",
    "trunk_ids",
    "unclaim",
    "user_in_org",
    "verifications_created_since",
    "verifications_started_since",
    "verified_numbers",
]

_IN_CHUNK = 500  # well under SQLite's and asyncpg's bound-parameter limits
_RENTED = NumberState.RENTED.value


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """Where a call from a carrier to a rented number goes. ``user_id``/``extension`` are None
    when the organization has not routed the number to anyone."""

    org_id: str
    number_id: str
    user_id: str | None
    extension: str | None
    e164: str


def rentable(now: datetime) -> ColumnElement[bool]:
    """Available, or in a quarantine that has ended."""
    return or_(
        PhoneNumber.state == NumberState.AVAILABLE.value,
        and_(PhoneNumber.state == NumberState.QUARANTINE.value, PhoneNumber.quarantine_until <= now),
    )


# -- inventory -------------------------------------------------------------------------------
async def number_by_e164(session: AsyncSession, e164: str) -> PhoneNumber | None:
    result = await session.execute(select(PhoneNumber).where(PhoneNumber.e164 == e164))
    return result.scalar_one_or_none()


async def existing_numbers(session: AsyncSession, e164s: Sequence[str]) -> set[str]:
    """Which of ``e164s`` are in the inventory already."""
    found: set[str] = set()
    for start in range(0, len(e164s), _IN_CHUNK):
        chunk = e164s[start : start + _IN_CHUNK]
        result = await session.execute(select(PhoneNumber.e164).where(PhoneNumber.e164.in_(chunk)))
        found.update(result.scalars().all())
    return found


async def trunk_ids(session: AsyncSession) -> dict[str, str]:
    """Trunk name → id (operators have a handful of trunks)."""
    result = await session.execute(select(Trunk.name, Trunk.id))
    return {name: trunk_id for name, trunk_id in result.all()}


async def insert_numbers(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert inventory rows given as column dicts (every dict with the same keys)."""
    if rows:
        connection = await session.connection()
        await connection.execute(insert(PhoneNumber), list(rows))


async def search(
    session: AsyncSession, now: datetime, *, country: str | None, area: str | None, type_: str | None, limit: int,
    contains: str | None = None, currency: str | None = None,
) -> Sequence[PhoneNumber]:
    query = select(PhoneNumber).where(rentable(now))
    if country is not None:
        query = query.where(PhoneNumber.country == country)
    if area is not None:
        query = query.where(PhoneNumber.national_number.startswith(area, autoescape=True))
    if contains is not None:
        query = query.where(PhoneNumber.national_number.contains(contains, autoescape=True))
    if type_ is not None:
        query = query.where(PhoneNumber.type == type_)
    if currency is not None:
        query = query.where(PhoneNumber.currency == currency)
    result = await session.execute(query.order_by(PhoneNumber.e164).limit(limit))
    return result.scalars().all()


# -- renting -----------------------------------------------------------------------------------
async def claim(session: AsyncSession, number_id: str, org_id: str, now: datetime) -> bool:
    """Rent the number to ``org_id`` if it is still rentable, with nothing paid yet
    (``paid_until = now``: whatever happens next, the renewal job sees the month as due)."""
    result = await session.execute(
        update(PhoneNumber)
        .where(PhoneNumber.id == number_id, rentable(now))
        .values(state=_RENTED, org_id=org_id, route_user_id=None, rented_at=now, paid_until=now,
                renewal_warned_at=None, quarantine_until=None)
        .returning(PhoneNumber.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def unclaim(session: AsyncSession, number: PhoneNumber, org_id: str, now: datetime) -> bool:
    """Undo ``claim`` of ``number`` (its state before the claim) if nothing else changed it."""
    result = await session.execute(
        update(PhoneNumber)
        .where(PhoneNumber.id == number.id, PhoneNumber.org_id == org_id, PhoneNumber.state == _RENTED,
               PhoneNumber.rented_at == now, PhoneNumber.paid_until == now)
        .values(state=number.state, org_id=None, route_user_id=None, rented_at=None, paid_until=None,
                renewal_warned_at=None, quarantine_until=number.quarantine_until)
        .returning(PhoneNumber.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def advance(
    session: AsyncSession, number_id: str, org_id: str, paid_until: datetime, new_paid_until: datetime
) -> bool:
    """Move a rented number's ``paid_until`` on if it still is ``paid_until`` (clears the warning)."""
    result = await session.execute(
        update(PhoneNumber)
        .where(PhoneNumber.id == number_id, PhoneNumber.org_id == org_id, PhoneNumber.state == _RENTED,
               PhoneNumber.paid_until == paid_until)
        .values(paid_until=new_paid_until, renewal_warned_at=None)
        .returning(PhoneNumber.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def release(
    session: AsyncSession, org_id: str, e164: str, until: datetime, *, paid_until: datetime | None = None
) -> PhoneNumber | None:
    """Put a number rented by ``org_id`` in quarantine until ``until`` (only if its
    ``paid_until`` still is ``paid_until``, when given); the released row or None."""
    conditions = [PhoneNumber.e164 == e164, PhoneNumber.org_id == org_id, PhoneNumber.state == _RENTED]
    if paid_until is not None:
        conditions.append(PhoneNumber.paid_until == paid_until)
    result = await session.execute(
        update(PhoneNumber)
        .where(*conditions)
        .values(state=NumberState.QUARANTINE.value, org_id=None, route_user_id=None, rented_at=None,
                paid_until=None, renewal_warned_at=None, quarantine_until=until)
        .returning(PhoneNumber)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none()


async def rented_number(session: AsyncSession, org_id: str | None, e164: str) -> PhoneNumber | None:
    """The number if it is rented (by ``org_id`` when given)."""
    query = select(PhoneNumber).where(PhoneNumber.e164 == e164, PhoneNumber.state == _RENTED)
    if org_id is not None:
        query = query.where(PhoneNumber.org_id == org_id)
    return (await session.execute(query)).scalar_one_or_none()


async def numbers_of_org(session: AsyncSession, org_id: str) -> Sequence[tuple[PhoneNumber, str | None]]:
    """The org's rented numbers with the extension each is routed to, oldest rental first."""
    result = await session.execute(
        select(PhoneNumber, User.extension)
        .outerjoin(User, User.id == PhoneNumber.route_user_id)
        .where(PhoneNumber.org_id == org_id, PhoneNumber.state == _RENTED)
        .order_by(PhoneNumber.rented_at, PhoneNumber.e164)
    )
    return [(number, extension) for number, extension in result.all()]


async def numbers_page(session: AsyncSession, org_id: str, after: str | None,
                       limit: int) -> Sequence[tuple[PhoneNumber, str | None]]:
    """The org's rented numbers by E.164 after ``after``, with the extension each is routed to."""
    query = (
        select(PhoneNumber, User.extension)
        .outerjoin(User, User.id == PhoneNumber.route_user_id)
        .where(PhoneNumber.org_id == org_id, PhoneNumber.state == _RENTED)
        .order_by(PhoneNumber.e164)
        .limit(limit)
    )
    if after is not None:
        query = query.where(PhoneNumber.e164 > after)
    return [(number, extension) for number, extension in (await session.execute(query)).all()]


async def inventory_page(
    session: AsyncSession, now: datetime, *, state: str | None, org_id: str | None, after: str | None, limit: int
) -> Sequence[tuple[PhoneNumber, str | None, str | None]]:
    """The whole inventory by E.164 (server-wide: the operator console) with each rental's org
    name and trunk name. ``state`` as a customer would see it: an ended quarantine is available."""
    query = (
        select(PhoneNumber, Organization.name, Trunk.name)
        .outerjoin(Organization, Organization.id == PhoneNumber.org_id)
        .outerjoin(Trunk, Trunk.id == PhoneNumber.trunk_id)
        .order_by(PhoneNumber.e164)
        .limit(limit)
    )
    if state == NumberState.AVAILABLE.value:
        query = query.where(rentable(now))
    elif state == NumberState.QUARANTINE.value:
        query = query.where(PhoneNumber.state == NumberState.QUARANTINE.value, PhoneNumber.quarantine_until > now)
    elif state is not None:
        query = query.where(PhoneNumber.state == state)
    if org_id is not None:
        query = query.where(PhoneNumber.org_id == org_id)
    if after is not None:
        query = query.where(PhoneNumber.e164 > after)
    return [(number, org, trunk) for number, org, trunk in (await session.execute(query)).all()]


async def due(session: AsyncSession, horizon: datetime) -> Sequence[PhoneNumber]:
    """Rented numbers paid until ``horizon`` or earlier (server-wide: the renewal job)."""
    result = await session.execute(
        select(PhoneNumber)
        .where(PhoneNumber.state == _RENTED, PhoneNumber.paid_until <= horizon)
        .order_by(PhoneNumber.paid_until, PhoneNumber.e164)
    )
    return result.scalars().all()


async def mark_warned(session: AsyncSession, number_id: str, paid_until: datetime, now: datetime) -> bool:
    """Record the renewal warning of the period ending ``paid_until``; False if already warned."""
    result = await session.execute(
        update(PhoneNumber)
        .where(PhoneNumber.id == number_id, PhoneNumber.state == _RENTED, PhoneNumber.paid_until == paid_until,
               PhoneNumber.renewal_warned_at.is_(None))
        .values(renewal_warned_at=now)
        .returning(PhoneNumber.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


# -- calls -------------------------------------------------------------------------------------
async def inbound_route(session: AsyncSession, e164: str) -> InboundRoute | None:
    """One query on the unique ``e164`` index (called for every call from a carrier)."""
    result = await session.execute(
        select(PhoneNumber.org_id, PhoneNumber.id, PhoneNumber.route_user_id, User.extension)
        .outerjoin(User, User.id == PhoneNumber.route_user_id)
        .where(PhoneNumber.e164 == e164, PhoneNumber.state == _RENTED)
    )
    row = result.one_or_none()
    if row is None:
        return None
    org_id, number_id, user_id, extension = row
    return None if org_id is None else InboundRoute(org_id, number_id, user_id, extension, e164)


async def default_number(session: AsyncSession, org_id: str, user_id: str | None) -> str | None:
    """The org's default caller ID: a number routed to the user (a call-back rings them), else
    the org's oldest rental."""
    mine = case((PhoneNumber.route_user_id == user_id, 0), else_=1) if user_id is not None else None
    order = [PhoneNumber.rented_at, PhoneNumber.e164]
    query = select(PhoneNumber.e164).where(PhoneNumber.org_id == org_id, PhoneNumber.state == _RENTED)
    query = query.order_by(mine, *order) if mine is not None else query.order_by(*order)
    result = await session.execute(query.limit(1))
    return result.scalar_one_or_none()


# -- accounts (read-only) --------------------------------------------------------------------
async def org_country_currency(session: AsyncSession, org_id: str) -> tuple[str, str] | None:
    result = await session.execute(
        select(Organization.country, Organization.currency).where(Organization.id == org_id)
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1])


async def org_closed(session: AsyncSession, org_id: str, *, lock: bool = False) -> bool:
    """Whether the org is closed; with ``lock`` its row stays locked (FOR UPDATE) until the transaction ends."""
    query = select(Organization.closed_at).where(Organization.id == org_id)
    closed = (await session.execute(query.with_for_update() if lock else query)).scalar()
    return closed is not None


async def user_in_org(session: AsyncSession, org_id: str, *, user_id: str | None = None,
                      extension: str | None = None) -> User | None:
    query = select(User).where(User.org_id == org_id)
    if user_id is not None:
        query = query.where(User.id == user_id)
    if extension is not None:
        query = query.where(User.extension == extension)
    return (await session.execute(query)).scalar_one_or_none()


async def set_route(session: AsyncSession, number_id: str, org_id: str, user_id: str | None) -> bool:
    result = await session.execute(
        update(PhoneNumber)
        .where(PhoneNumber.id == number_id, PhoneNumber.org_id == org_id, PhoneNumber.state == _RENTED)
        .values(route_user_id=user_id)
        .returning(PhoneNumber.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


# -- caller-ID verification ------------------------------------------------------------------
async def is_verified(session: AsyncSession, org_id: str, user_id: str, e164: str) -> bool:
    result = await session.execute(
        select(CallerIdVerification.id)
        .where(CallerIdVerification.org_id == org_id, CallerIdVerification.user_id == user_id,
               CallerIdVerification.e164 == e164, CallerIdVerification.verified_at.is_not(None))
        .limit(1)
    )
    return result.scalar_one_or_none() is not None


async def verified_numbers(session: AsyncSession, org_id: str, user_id: str) -> list[str]:
    result = await session.execute(
        select(CallerIdVerification.e164)
        .where(CallerIdVerification.org_id == org_id, CallerIdVerification.user_id == user_id,
               CallerIdVerification.verified_at.is_not(None))
        .distinct()
        .order_by(CallerIdVerification.e164)
    )
    return list(result.scalars().all())


async def verifications_started_since(session: AsyncSession, org_id: str, user_id: str, since: datetime) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(CallerIdVerification)
        .where(CallerIdVerification.org_id == org_id, CallerIdVerification.user_id == user_id,
               CallerIdVerification.created_at > since)
    )
    return int(result.scalar_one())


async def kill_pending(session: AsyncSession, org_id: str, user_id: str, e164: str, attempts: int) -> None:
    """End the pending verifications of the number (a new code supersedes them)."""
    await session.execute(
        update(CallerIdVerification)
        .where(CallerIdVerification.org_id == org_id, CallerIdVerification.user_id == user_id,
               CallerIdVerification.e164 == e164, CallerIdVerification.verified_at.is_(None),
               CallerIdVerification.attempts < attempts)
        .values(attempts=attempts)
        .execution_options(synchronize_session=False)
    )


async def pending_verification(
    session: AsyncSession, org_id: str, user_id: str, e164: str
) -> CallerIdVerification | None:
    """The newest unverified verification of the number."""
    result = await session.execute(
        select(CallerIdVerification)
        .where(CallerIdVerification.org_id == org_id, CallerIdVerification.user_id == user_id,
               CallerIdVerification.e164 == e164, CallerIdVerification.verified_at.is_(None))
        .order_by(CallerIdVerification.created_at.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def count_attempt(session: AsyncSession, verification_id: str, max_attempts: int, now: datetime) -> bool:
    """Use one attempt of a live verification; False if it is dead (attempts used, expired, verified)."""
    result = await session.execute(
        update(CallerIdVerification)
        .where(CallerIdVerification.id == verification_id, CallerIdVerification.attempts < max_attempts,
               CallerIdVerification.expires_at > now, CallerIdVerification.verified_at.is_(None))
        .values(attempts=CallerIdVerification.attempts + 1)
        .returning(CallerIdVerification.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def mark_verified(session: AsyncSession, verification_id: str, now: datetime) -> None:
    await session.execute(
        update(CallerIdVerification)
        .where(CallerIdVerification.id == verification_id)
        .values(verified_at=now)
        .execution_options(synchronize_session=False)
    )


async def verifications_created_since(session: AsyncSession, since: datetime, now: datetime,
                                      max_attempts: int) -> Sequence[CallerIdVerification]:
    """Live verifications started after ``since``: the calls Ringwell has to place (server-wide)."""
    result = await session.execute(
        select(CallerIdVerification)
        .where(CallerIdVerification.created_at > since, CallerIdVerification.verified_at.is_(None),
               CallerIdVerification.expires_at > now, CallerIdVerification.attempts < max_attempts)
        .order_by(CallerIdVerification.created_at)
        .limit(100)
    )
    return result.scalars().all()
