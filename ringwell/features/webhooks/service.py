"""Webhooks: endpoints per org, events queued in an outbox, signed deliveries with retries.

STUB — being written (issue 5).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.audit.service import AuditLog
from ringwell.mail import Mailer
from ringwell.settings import Settings

__all__ = ["WebhooksService"]


class WebhooksService:
    def __init__(self, sessions: async_sessionmaker[Any], *, audit: AuditLog, mailer: Mailer,
                 settings: Settings) -> None:
        self._sessions = sessions
        self._audit = audit
        self._mailer = mailer
        self._settings = settings

    async def publish(self, org_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Queue ``event_type`` for every enabled endpoint of ``org_id`` subscribed to it."""

    def start(self) -> None:
        """Start the delivery worker."""

    async def stop(self) -> None:
        """Stop the delivery worker (idempotent)."""
