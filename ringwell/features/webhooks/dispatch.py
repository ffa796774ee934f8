"""One attempt of one delivery and what follows from its outcome.

Every attempt is logged (``webhook_attempts``). A 2xx answer delivers the delivery and ends the
endpoint's run of failures. Otherwise an automatic attempt schedules the next one after
:func:`retry_delay` — ``webhook_first_retry`` doubling per failure, at most an hour, up to 20 %
later at random so that many deliveries failing together do not come back together — until
``webhook_retry_window`` after the event, when the delivery is ``failed`` (one last attempt is
placed at the very end of the window). An endpoint whose automatic attempts have all failed for
the whole retry window (``failing_since``) is disabled: its pending deliveries are given up, an
audit event ``webhooks.disabled`` is recorded, and the org's owners and admins get an email.

A manual attempt (a replay, asked for by a person) is logged the same way and a success
delivers the delivery, but a failure changes neither its schedule nor the endpoint's state.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.audit.service import SYSTEM, AuditLog
from ringwell.features.trunks.sealing import Sealer
from ringwell.features.webhooks import repository as repo
from ringwell.features.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ringwell.features.webhooks.sender import Outcome, Sender
from ringwell.mail import Mailer
from ringwell.settings import Settings
from ringwell.storage.base import new_id, utcnow

__all__ = ["MAX_DELAY", "SEAL_LABEL", "Dispatcher", "retry_delay", "seal_context"]

log = logging.getLogger(__name__)

MAX_DELAY = 3600.0  # seconds: the longest wait between two automatic attempts
_JITTER = 0.2
SEAL_LABEL = b"ringwell webhook secrets v1"


def seal_context(endpoint_id: str) -> str:
    """What a sealed signing secret is bound to: it opens for its own endpoint only."""
    return f"webhook-endpoint:{endpoint_id}"


def retry_delay(failures: int, first: float, jitter: float) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (1, 2, ...): ``first * 2**(failures-1)``
    made up to 20 % longer by ``jitter`` (0 ≤ jitter < 1), never more than :data:`MAX_DELAY`."""
    base = first * 2.0 ** min(max(failures, 1) - 1, 32)
    return min(base * (1.0 + _JITTER * jitter), MAX_DELAY)


class Dispatcher:
    """Makes attempts and keeps the books (see the module docstring)."""

    def __init__(self, sessions: async_sessionmaker[Any], *, settings: Settings, sender: Sender, audit: AuditLog,
                 mailer: Mailer, clock: Callable[[], datetime] = utcnow,
                 jitter: Callable[[], float] = random.random) -> None:
        self._sessions = sessions
        self._settings = settings
        self._sealer = Sealer(settings.secret_key, label=SEAL_LABEL)
        self._sender = sender
        self._audit = audit
        self._mailer = mailer
        self._clock = clock
        self._jitter = jitter

    def seal(self, secret: str, endpoint_id: str) -> str:
        return self._sealer.seal(secret, seal_context(endpoint_id))

    async def attempt(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint, *, manual: bool) -> WebhookAttempt:
        """POST the delivery's payload to the endpoint now (a fresh signature) and record the outcome."""
        started = self._clock()
        try:
            secret = self._sealer.open(endpoint.secret, seal_context(endpoint.id))
        except ValueError:
            log.error("webhook endpoint %s: its signing secret cannot be opened (was secret_key changed?)",
                      endpoint.id)
            outcome = Outcome(None, "the signing secret cannot be opened on this server: rotate the secret", 0)
        else:
            outcome = await self._sender.post(endpoint.url, delivery.payload, secret=secret,
                                              event_type=delivery.event_type, delivery_id=delivery.id,
                                              now=started.timestamp())
        row, disabled = await self._record(delivery, endpoint, outcome, started, manual=manual)
        if outcome.ok:
            log.info("webhook %s (%s) delivered to endpoint %s", delivery.id, delivery.event_type, endpoint.id)
        else:
            log.info("webhook %s (%s) to endpoint %s failed: %s", delivery.id, delivery.event_type, endpoint.id,
                     outcome.error)
        if disabled is not None:
            await self._notify_disabled(endpoint, disabled)
        return row

    async def _record(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint, outcome: Outcome,
                      started: datetime, *, manual: bool) -> tuple[WebhookAttempt, str | None]:
        """Write the attempt and its consequences in one transaction; returns the attempt and the
        reason the endpoint was disabled by it (None: it was not)."""
        now = self._clock()
        window = timedelta(seconds=self._settings.webhook_retry_window)
        disabled: str | None = None
        async with self._sessions() as session, session.begin():
            row = WebhookAttempt(id=new_id(), delivery_id=delivery.id, org_id=delivery.org_id, at=started,
                                 status=outcome.status, error=outcome.error, duration_ms=outcome.duration_ms,
                                 manual=manual)
            session.add(row)
            counted = 0 if manual else 1
            if outcome.ok:
                await session.execute(
                    update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                    .values(status=repo.DELIVERED, delivered_at=now, last_status=outcome.status, last_error=None,
                            next_attempt_at=None, attempts=WebhookDelivery.attempts + counted)
                    .execution_options(synchronize_session=False))
                await session.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.failing_since.is_not(None))
                    .values(failing_since=None).execution_options(synchronize_session=False))
                return row, None
            if manual:
                await session.execute(
                    update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                    .values(last_status=outcome.status, last_error=outcome.error)
                    .execution_options(synchronize_session=False))
                return row, None
            failures = delivery.attempts + 1
            deadline = delivery.created_at + window
            if now >= deadline:
                values: dict[str, Any] = {"status": repo.FAILED, "next_attempt_at": None}
            else:
                delay = retry_delay(failures, self._settings.webhook_first_retry, self._jitter())
                values = {"next_attempt_at": min(now + timedelta(seconds=delay), deadline)}
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery.id, WebhookDelivery.status == repo.PENDING)
                .values(attempts=WebhookDelivery.attempts + 1, last_status=outcome.status, last_error=outcome.error,
                        **values)
                .execution_options(synchronize_session=False))
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.failing_since.is_(None))
                .values(failing_since=started).execution_options(synchronize_session=False))
            current = await session.get(WebhookEndpoint, endpoint.id, populate_existing=True)
            if (current is not None and current.enabled and current.failing_since is not None
                    and now - current.failing_since >= window):
                reason = (f"every delivery failed for {_duration(window)} "
                          f"(since {current.failing_since:%Y-%m-%d %H:%M} UTC); last error: {outcome.error}")[:255]
                switched = await session.execute(
                    update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.enabled.is_(True))
                    .values(enabled=False, disabled_reason=reason).execution_options(synchronize_session=False))
                if repo.rowcount(switched) != 1:
                    return row, None  # another node disabled it at the same moment
                disabled = reason
                given_up = await repo.fail_pending(session, endpoint.id, "the endpoint was disabled")
                await self._audit.record(
                    "webhooks.disabled", SYSTEM, org_id=endpoint.org_id, target_type="webhook_endpoint",
                    target_id=endpoint.id, reason=disabled,
                    details={"url": endpoint.url, "failing_since": current.failing_since.isoformat(),
                             "pending_given_up": given_up}, session=session)
        if disabled is not None:
            log.warning("webhook endpoint %s of org %s disabled: %s", endpoint.id, endpoint.org_id, disabled)
        return row, disabled

    async def _notify_disabled(self, endpoint: WebhookEndpoint, reason: str) -> None:
        """Email the org's owners and admins; a mail failure is logged (the endpoint stays disabled)."""
        async with self._sessions() as session:
            recipients = await repo.admin_emails(session, endpoint.org_id)
        page = f"{self._settings.portal_url}/settings/webhooks/{endpoint.id}"
        body = (
            "Ringwell stopped sending webhooks to this endpoint, because it did not accept any\n"
            f"delivery for {_duration(timedelta(seconds=self._settings.webhook_retry_window))}:\n\n"
            f"    {endpoint.url}\n\n"
            f"Reason: {reason}\n\n"
            "Events from now on are not queued for it. When the receiver works again, enable the\n"
            "endpoint and replay the deliveries you need:\n\n"
            f"    {page}\n"
        )
        for email in recipients:
            try:
                await self._mailer.send(email, "Webhook endpoint disabled", body)
            except Exception:
                log.exception("could not email %s that webhook endpoint %s was disabled", email, endpoint.id)


def _duration(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
