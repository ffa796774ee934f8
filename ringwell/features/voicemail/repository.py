"""Queries of the voicemail slice; every one is scoped to an organization."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.voicemail.mailbox_models import MailboxRow
from ringwell.features.voicemail.models import Folder, Voicemail

__all__ = ["count_by_folder", "get", "list_messages", "user_files"]


async def get(session: AsyncSession, org_id: str, voicemail_id: str) -> Voicemail | None:
    row: Voicemail | None = (await session.execute(select(Voicemail).where(
        Voicemail.org_id == org_id, Voicemail.id == voicemail_id))).scalar_one_or_none()
    return row


async def list_messages(session: AsyncSession, org_id: str, user_id: str | None, folder: Folder | None,
                        limit: int, *, only: Select[Any] | None = None) -> Sequence[Voicemail]:
    """Newest first; ``only``: a query of the message ids to keep (a search)."""
    query = select(Voicemail).where(Voicemail.org_id == org_id)
    if only is not None:
        query = query.where(Voicemail.id.in_(only))
    if user_id is not None:
        query = query.where(Voicemail.user_id == user_id)
    if folder is not None:
        query = query.where(Voicemail.folder == folder.value)
    query = query.order_by(Voicemail.received_at.desc(), Voicemail.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def count_by_folder(session: AsyncSession, user_id: str) -> dict[str, int]:
    query = (select(Voicemail.folder, func.count()).where(Voicemail.user_id == user_id)
             .group_by(Voicemail.folder))
    return {str(folder): int(count) for folder, count in (await session.execute(query)).all()}


async def user_files(session: AsyncSession, org_id: str, user_id: str) -> list[str]:
    """Every blob id of a user's mailbox: messages, transcripts and the custom greeting (for deleting
    the user: their rows go by cascade, their encrypted files must go too)."""
    rows = (await session.execute(select(Voicemail.audio_blob_id, Voicemail.transcript_blob_id).where(
        Voicemail.org_id == org_id, Voicemail.user_id == user_id))).all()
    greeting = (await session.execute(select(MailboxRow.greeting_blob_id).where(
        MailboxRow.org_id == org_id, MailboxRow.user_id == user_id))).scalar_one_or_none()
    return [blob for row in rows for blob in row if blob] + ([greeting] if greeting else [])
