"""Queries of the registrations slice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select
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


_TABLE = cast(Table, BindingRow.__table__)
_DELETE_ONE = delete(_TABLE).where(_TABLE.c.credential_id == bindparam("c"), _TABLE.c.binding_key == bindparam("k"))


async def delete_bindings(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> None:
    """Delete bindings by (credential, key): one executemany, not one ORM object each."""
    if keys:
        connection = await session.connection()
        await connection.execute(_DELETE_ONE, [{"c": c, "k": k} for c, k in keys])


async def save_bindings(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace bindings (by credential and key), given as column dicts."""
    if rows:
        await delete_bindings(session, [(row["credential_id"], row["binding_key"]) for row in rows])
        connection = await session.connection()
        await connection.execute(insert(_TABLE), list(rows))


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
