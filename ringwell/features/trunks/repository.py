"""Queries of the trunks slice (operator data: trunks belong to the server, not to an org)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.trunks.models import Trunk

__all__ = ["all_trunks", "trunk_by_name"]


async def trunk_by_name(session: AsyncSession, name: str) -> Trunk | None:
    result = await session.execute(select(Trunk).where(Trunk.name == name))
    return result.scalar_one_or_none()


async def all_trunks(session: AsyncSession) -> Sequence[Trunk]:
    result = await session.execute(select(Trunk).order_by(Trunk.priority, Trunk.name))
    return result.scalars().all()
