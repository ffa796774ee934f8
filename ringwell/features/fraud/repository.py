"""Queries of the fraud slice; every one is scoped to one organization."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization
from ringwell.features.fraud.models import DestinationPermission, FraudSettings

__all__ = ["OrgProfile", "lock_org", "org_profile", "replace_rule", "rules", "settings_row"]


@dataclass(frozen=True, slots=True)
class OrgProfile:
    """What the defaults depend on."""

    org_id: str
    country: str
    currency: str
    created_at: datetime


async def org_profile(session: AsyncSession, org_id: str) -> OrgProfile | None:
    result = await session.execute(
        select(Organization.country, Organization.currency, Organization.created_at).where(Organization.id == org_id)
    )
    row = result.one_or_none()
    return None if row is None else OrgProfile(org_id, row.country, row.currency, row.created_at)


async def lock_org(session: AsyncSession, org_id: str) -> bool:
    """Serialize writers of one org's fraud settings (row lock on PostgreSQL; on SQLite the
    transaction's first write takes the database lock). False if there is no such org."""
    result = await session.execute(select(Organization.id).where(Organization.id == org_id).with_for_update())
    return result.scalar_one_or_none() is not None


async def settings_row(session: AsyncSession, org_id: str) -> FraudSettings | None:
    return await session.get(FraudSettings, org_id)


async def rules(session: AsyncSession, org_id: str) -> Sequence[DestinationPermission]:
    """The org's rules, oldest first (so that a later duplicate, if one slipped in, wins)."""
    result = await session.execute(
        select(DestinationPermission)
        .where(DestinationPermission.org_id == org_id)
        .order_by(DestinationPermission.created_at, DestinationPermission.id)
    )
    return result.scalars().all()


async def replace_rule(session: AsyncSession, org_id: str, region: str | None, risk: str | None, allow: bool,
                       now: datetime) -> DestinationPermission:
    """Set the org's one rule for ``(region, risk)``: any rule with that key (NULL matching
    NULL, which the unique constraint cannot do) is deleted, then the new one inserted. Call
    inside a transaction after ``lock_org``."""
    table = DestinationPermission
    region_match = table.region.is_(None) if region is None else table.region == region
    risk_match = table.risk.is_(None) if risk is None else table.risk == risk
    await session.execute(delete(table).where(table.org_id == org_id, region_match, risk_match))
    row = DestinationPermission(org_id=org_id, region=region, risk=risk, allow=allow, created_at=now)
    session.add(row)
    await session.flush()
    return row
