"""Queries of the registrations slice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization, SipCredential
from ringwell.features.registrations.models import BindingRow

__all__ = ["active_bindings", "delete_bindings", "delete_expired", "listing", "save_bindings"]


async def active_bindings(session: AsyncSession, now: datetime) -> Sequence[tuple[BindingRow, str]]:
    """Every unexpired binding with its SIP username (server-wide: used at start-up)."""
    result = await session.execute(
        select(BindingRow, SipCredential.username)
        .join(SipCredential, SipCredential.id == BindingRow.credential_id)
        .where(BindingRow.expires_at > now)
    )
    return [(row, username) for row, username in result.all()]


def _keys_clause(keys: Sequence[tuple[str, str]]) -> object:
    return or_(*(and_(BindingRow.credential_id == c, BindingRow.binding_key == k) for c, k in keys))


async def delete_bindings(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> None:
    for start in range(0, len(keys), 200):
        chunk = keys[start : start + 200]
        await session.execute(delete(BindingRow).where(_keys_clause(chunk)))  # type: ignore[arg-type]


async def save_bindings(session: AsyncSession, rows: Sequence[BindingRow]) -> None:
    """Insert or replace bindings (by credential and key)."""
    await delete_bindings(session, [(row.credential_id, row.binding_key) for row in rows])
    session.add_all(rows)


async def delete_expired(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(BindingRow).where(BindingRow.expires_at <= now))


async def listing(
    session: AsyncSession, now: datetime, org_id: str | None = None
) -> Sequence[tuple[BindingRow, str, str]]:
    """Current bindings with username and org name, optionally for one org."""
    query = (
        select(BindingRow, SipCredential.username, Organization.name)
        .join(SipCredential, SipCredential.id == BindingRow.credential_id)
        .join(Organization, Organization.id == BindingRow.org_id)
        .where(BindingRow.expires_at > now)
        .order_by(Organization.name, SipCredential.username, BindingRow.binding_key)
    )
    if org_id is not None:
        query = query.where(BindingRow.org_id == org_id)
    result = await session.execute(query)
    return [(row, username, org) for row, username, org in result.all()]
