"""Webhooks: endpoints per org, events queued in an outbox, signed deliveries with retries.

validate → persist → publish: an org registers endpoints (URL, the event types it wants, a
signing secret shown once); :meth:`WebhooksService.publish` writes one outbox row
(``webhook_deliveries``) per enabled endpoint subscribed to the event, in one transaction,
and wakes the delivery worker (``worker``), which sends, retries and logs (``dispatch``).
The call path, which must never wait on the database or the network, uses the non-blocking
:meth:`WebhooksService.emit` instead: events wait in a bounded in-memory queue (full: dropped,
counted and logged) that the worker moves to the outbox. Signatures: ``signing``. Which
addresses may receive: ``urls``.

Every change made through the API or the portal is an audit event (``webhooks.create``,
``webhooks.update``, ``webhooks.delete``, ``webhooks.rotate_secret``, ``webhooks.test``,
``webhooks.replay``; ``webhooks.disabled`` by the system).
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.errors import DomainError
from ringwell.features.accounts.models import Organization
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.billing.money import format_minor
from ringwell.features.billing.service import LedgerService
from ringwell.features.webhooks import repository as repo
from ringwell.features.webhooks.dispatch import Dispatcher
from ringwell.features.webhooks.errors import (
    InvalidWebhookCursor,
    InvalidWebhookData,
    InvalidWebhookEvents,
    TooManyWebhookEndpoints,
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
    WebhookEndpointNotFound,
)
from ringwell.features.webhooks.events import ALL, EVENT_TYPES, SUBSCRIBABLE, TEST_EVENT, Event, make_event, subscribed
from ringwell.features.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ringwell.features.webhooks.sender import Sender
from ringwell.features.webhooks.signing import new_secret
from ringwell.features.webhooks.urls import resolve
from ringwell.features.webhooks.worker import DeliveryWorker
from ringwell.mail import Mailer
from ringwell.settings import Settings
from ringwell.storage.base import new_id, utcnow
from ringwell.storage.cursor import decode_position, encode_position

__all__ = [
    "ID_PATTERN",
    "MAX_ENDPOINTS",
    "MAX_PAGE",
    "AttemptView",
    "CreatedEndpoint",
    "DeliveryDetail",
    "DeliveryPage",
    "DeliveryView",
    "EndpointView",
    "WebhooksService",
]

log = logging.getLogger(__name__)

MAX_ENDPOINTS = 20  # per org: every event is sent once per endpoint
MAX_PAGE = 200
MAX_DESCRIPTION = 200
ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"  # the ids this slice hands out (UUIDs)
ID_RE = re.compile(ID_PATTERN)
_EMIT_QUEUE = 10_000  # events from the call path waiting for the worker
_FLUSH_BATCH = 500


@dataclass(frozen=True, slots=True)
class EndpointView:
    """An endpoint as shown to its org (never with its secret)."""

    id: str
    org_id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointView:
        return cls(row.id, row.org_id, row.url, tuple(str(e) for e in row.events), row.description, row.enabled,
                   row.disabled_reason, row.failing_since, row.created_at)


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    """An endpoint and its signing secret: the only time the secret is shown."""

    endpoint: EndpointView
    secret: str


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str  # pending | delivered | failed
    attempts: int  # automatic attempts made (replays are in the log, not counted here)
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryView:
        return cls(row.id, row.endpoint_id, row.event_id, row.event_type, row.status, row.attempts,
                   row.next_attempt_at if row.status == repo.PENDING else None, row.created_at, row.delivered_at,
                   row.last_status, row.last_error)


@dataclass(frozen=True, slots=True)
class AttemptView:
    id: str
    at: datetime
    status: int | None  # the receiver's HTTP status; None: no answer (see error)
    error: str | None
    duration_ms: int
    manual: bool

    @classmethod
    def of(cls, row: WebhookAttempt) -> AttemptView:
        return cls(row.id, row.at, row.status, row.error, row.duration_ms, row.manual)


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    delivery: DeliveryView
    payload: str  # the exact body that is signed and sent
    attempts: tuple[AttemptView, ...]  # oldest first


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: tuple[DeliveryView, ...]
    next_cursor: str | None


def _events(events: Sequence[str]) -> list[str]:
    """A clean subscription list: known types (or ``*`` alone), each once, in the given order."""
    chosen = list(dict.fromkeys(e.strip() for e in events))
    if not chosen:
        raise InvalidWebhookEvents("choose at least one event type", {"field": "events"})
    unknown = [e for e in chosen if e != ALL and e not in SUBSCRIBABLE]
    if unknown:
        raise InvalidWebhookEvents(f"unknown event type {unknown[0]!r}", {"field": "events", "known": SUBSCRIBABLE})
    return [ALL] if ALL in chosen else chosen


def _description(description: str | None) -> str | None:
    cleaned = (description or "").strip()
    if not cleaned.isprintable():
        raise InvalidWebhookData("the description must be plain text on one line", {"field": "description"})
    if len(cleaned) > MAX_DESCRIPTION:
        raise InvalidWebhookData(f"the description is longer than {MAX_DESCRIPTION} characters",
                                 {"field": "description"})
    return cleaned or None


def _encode_cursor(row: WebhookDelivery) -> str:
    return encode_position(row.created_at, row.id)


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    bad = InvalidWebhookCursor("the cursor is not one this API returned", {"field": "cursor"})
    moment, last_id = decode_position(cursor, bad)
    if not ID_RE.fullmatch(last_id):
        raise bad
    return moment, last_id


class WebhooksService:
    """An org's webhook endpoints, its outbox and the delivery worker (see the module docstring)."""

    def __init__(self, sessions: async_sessionmaker[Any], *, audit: AuditLog, mailer: Mailer,
                 settings: Settings) -> None:
        self._sessions = sessions
        self._audit = audit
        self._mailer = mailer
        self._settings = settings
        self._dispatcher = Dispatcher(sessions, settings=settings, audit=audit, mailer=mailer,
                                      sender=Sender(timeout=settings.webhook_timeout,
                                                    allow_private=settings.webhook_allow_private))
        self._worker = DeliveryWorker(sessions, self._dispatcher, timeout=settings.webhook_timeout,
                                      before_each=self.flush_emitted, every_minute=self.check_balances)
        self._ledger: LedgerService | None = None
        self._emitted: collections.deque[tuple[str, str, dict[str, Any], datetime]] = collections.deque()
        self.dropped = 0  # emitted events lost because the queue was full or their data was not JSON

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, ledger: LedgerService | None = None) -> None:
        """Start the delivery worker; with ``ledger``, it also checks low balances every minute."""
        if ledger is not None:
            self._ledger = ledger
        self._worker.start()

    async def stop(self) -> None:
        """Stop the delivery worker (idempotent); events still queued by ``emit`` go to the outbox."""
        await self._worker.stop()
        try:
            await self.flush_emitted()
        except Exception:
            log.exception("could not queue %d webhook events at shutdown; they are lost", len(self._emitted))

    # -- events ------------------------------------------------------------------------------
    async def publish(self, org_id: str, event_type: str, data: dict[str, Any], *,
                      session: AsyncSession | None = None) -> str:
        """Queue ``event_type`` for every enabled endpoint of ``org_id`` subscribed to it; returns the
        event id. With ``session`` the outbox rows are written in the caller's transaction (they
        are sent only if it commits). ``ValueError`` for an unknown event type, ``TypeError`` for
        data that is not JSON."""
        if event_type == TEST_EVENT:
            raise ValueError("test events go to one endpoint: use send_test")
        event = make_event(org_id, event_type, data, now=utcnow())
        if session is not None:
            await self._enqueue(session, [event])
        else:
            async with self._sessions() as own, own.begin():
                await self._enqueue(own, [event])
        self._worker.wake()
        return event.id

    def emit(self, org_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Queue an event without waiting (for the call path): never blocks, never raises."""
        if event_type not in EVENT_TYPES or event_type == TEST_EVENT:
            log.error("webhook event type %r does not exist; not sent", event_type)
            return
        if len(self._emitted) >= _EMIT_QUEUE:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("webhook event queue full (%d waiting; is the database reachable?): %d events dropped",
                          len(self._emitted), self.dropped)
            return
        self._emitted.append((org_id, event_type, data, utcnow()))
        if len(self._emitted) == 1:
            self._worker.wake()

    @property
    def queued(self) -> int:
        """Events emitted and not yet in the outbox."""
        return len(self._emitted)

    async def flush_emitted(self) -> None:
        """Move the events queued by :meth:`emit` to the outbox (run by the worker each round).

        If the database fails they are put back, in order, and the error is raised."""
        while self._emitted:
            taken = [self._emitted.popleft() for _ in range(min(_FLUSH_BATCH, len(self._emitted)))]
            events: list[Event] = []
            for org_id, event_type, data, at in taken:
                try:
                    events.append(make_event(org_id, event_type, data, now=at))
                except (TypeError, ValueError):
                    self.dropped += 1
                    log.exception("webhook event %s of org %s could not be serialised; dropped", event_type, org_id)
            try:
                async with self._sessions() as session, session.begin():
                    await self._enqueue(session, events)
            except BaseException:
                self._emitted.extendleft(reversed(taken))
                raise

    async def _enqueue(self, session: AsyncSession, events: Sequence[Event], endpoint_id: str | None = None) -> int:
        """Write the outbox rows of ``events`` (each for the subscribed enabled endpoints of its org)."""
        if not events:
            return 0
        now = utcnow()
        by_org: dict[str, list[WebhookEndpoint]] = {}
        for endpoint in await repo.subscribers(session, {e.org_id for e in events}):
            by_org.setdefault(endpoint.org_id, []).append(endpoint)
        written = 0
        for event in events:
            for endpoint in by_org.get(event.org_id, ()):
                if subscribed(endpoint.events, event.type):
                    session.add(WebhookDelivery(
                        id=new_id(), org_id=event.org_id, endpoint_id=endpoint.id, event_id=event.id,
                        event_type=event.type, payload=event.body, status=repo.PENDING, attempts=0,
                        next_attempt_at=now, created_at=event.created_at))
                    written += 1
        return written

    async def check_balances(self) -> None:
        """Publish ``balance.low`` for each org whose available balance fell below its threshold
        (once: ``low_balance_alerted_at`` is set, and cleared when the balance is back above)."""
        ledger = self._ledger
        if ledger is None:
            return
        async with self._sessions() as session:
            orgs = await repo.threshold_orgs(session)
        for org in orgs:
            threshold = org.low_balance_minor
            assert threshold is not None
            try:
                balance = await ledger.balance(org.id)
            except DomainError as exc:  # deleted meanwhile
                log.debug("no balance for org %s: %s", org.id, exc.message)
                continue
            low = balance.available_minor < threshold
            if low and org.low_balance_alerted_at is None:
                await self._alert_low(org, balance.available_minor, threshold, balance.currency)
            elif not low and org.low_balance_alerted_at is not None:
                async with self._sessions() as session, session.begin():
                    await session.execute(
                        update(Organization)
                        .where(Organization.id == org.id, Organization.low_balance_alerted_at.is_not(None))
                        .values(low_balance_alerted_at=None).execution_options(synchronize_session=False))

    async def _alert_low(self, org: Organization, available: int, threshold: int, currency: str) -> None:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            claimed = await session.execute(
                update(Organization)
                .where(Organization.id == org.id, Organization.low_balance_alerted_at.is_(None))
                .values(low_balance_alerted_at=now).execution_options(synchronize_session=False))
            if repo.rowcount(claimed) != 1:
                return  # another node alerted
            data = {"balance_minor": available, "balance": format_minor(available, currency),
                    "threshold_minor": threshold, "threshold": format_minor(threshold, currency),
                    "currency": currency}
            await self._enqueue(session, [make_event(org.id, "balance.low", data, now=now)])
        log.info("org %s: balance %s %s below the threshold %s", org.id, format_minor(available, currency),
                 currency, format_minor(threshold, currency))
        self._worker.wake()

    # -- endpoints -----------------------------------------------------------------------------
    async def _endpoint(self, session: AsyncSession, org_id: str, endpoint_id: str) -> WebhookEndpoint:
        row = await repo.endpoint(session, org_id, endpoint_id)
        if row is None:
            raise WebhookEndpointNotFound("no such webhook endpoint", {"endpoint_id": endpoint_id})
        return row

    async def endpoints(self, org_id: str) -> list[EndpointView]:
        async with self._sessions() as session:
            return [EndpointView.of(row) for row in await repo.endpoints(session, org_id)]

    async def endpoint(self, org_id: str, endpoint_id: str) -> EndpointView:
        async with self._sessions() as session:
            return EndpointView.of(await self._endpoint(session, org_id, endpoint_id))

    async def create_endpoint(self, org_id: str, *, url: str, events: Sequence[str], actor: Actor,
                              description: str | None = None, enabled: bool = True) -> CreatedEndpoint:
        """Add an endpoint; the returned secret is not shown again (only replaced by ``rotate_secret``)."""
        url = url.strip()
        await resolve(url, allow_private=self._settings.webhook_allow_private)
        chosen = _events(events)
        text = _description(description)
        secret = new_secret()
        endpoint_id = new_id()
        async with self._sessions() as session, session.begin():
            if len(await repo.endpoints(session, org_id)) >= MAX_ENDPOINTS:
                raise TooManyWebhookEndpoints(f"an organization can have at most {MAX_ENDPOINTS} webhook endpoints",
                                              {"limit": MAX_ENDPOINTS})
            row = WebhookEndpoint(id=endpoint_id, org_id=org_id, url=url, events=chosen,
                                  secret=self._dispatcher.seal(secret, endpoint_id), description=text,
                                  enabled=enabled, created_at=utcnow())
            session.add(row)
            await self._audit.record("webhooks.create", actor, org_id=org_id, target_type="webhook_endpoint",
                                     target_id=endpoint_id,
                                     details={"url": url, "events": chosen, "enabled": enabled}, session=session)
        return CreatedEndpoint(EndpointView.of(row), secret)

    async def update_endpoint(self, org_id: str, endpoint_id: str, *, actor: Actor, url: str | None = None,
                              events: Sequence[str] | None = None, description: str | None = None,
                              enabled: bool | None = None) -> EndpointView:
        """Change what is given (``description=""`` clears it). Enabling an endpoint clears its
        disabled reason and run of failures; disabling it gives up its pending deliveries."""
        if url is not None:
            url = url.strip()
            await resolve(url, allow_private=self._settings.webhook_allow_private)
        chosen = _events(events) if events is not None else None
        text = _description(description) if description is not None else None
        async with self._sessions() as session, session.begin():
            row = await self._endpoint(session, org_id, endpoint_id)
            changes: dict[str, Any] = {}
            if url is not None and url != row.url:
                changes["url"] = url
                row.url = url
            if chosen is not None and chosen != list(row.events):
                changes["events"] = chosen
                row.events = chosen
            if description is not None and text != row.description:
                changes["description"] = text
                row.description = text
            if enabled is not None and enabled != row.enabled:
                changes["enabled"] = enabled
                row.enabled = enabled
                row.disabled_reason = None if enabled else "disabled by a user"
                row.failing_since = None
                if not enabled:
                    await repo.fail_pending(session, row.id, "the endpoint was disabled")
            if changes:
                await self._audit.record("webhooks.update", actor, org_id=org_id, target_type="webhook_endpoint",
                                         target_id=row.id, details=changes, session=session)
        return EndpointView.of(row)

    async def delete_endpoint(self, org_id: str, endpoint_id: str, *, actor: Actor) -> None:
        """Delete an endpoint with its deliveries and their log."""
        async with self._sessions() as session, session.begin():
            row = await self._endpoint(session, org_id, endpoint_id)
            # Explicit rather than left to ON DELETE CASCADE (which SQLite applies only with its pragma on).
            of_endpoint = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == row.id).scalar_subquery()
            await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(of_endpoint)))
            await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id))
            await session.delete(row)
            await self._audit.record("webhooks.delete", actor, org_id=org_id, target_type="webhook_endpoint",
                                     target_id=row.id, details={"url": row.url}, session=session)

    async def rotate_secret(self, org_id: str, endpoint_id: str, *, actor: Actor) -> CreatedEndpoint:
        """Replace the signing secret (the old one stops working at once); the new one is shown once."""
        secret = new_secret()
        async with self._sessions() as session, session.begin():
            row = await self._endpoint(session, org_id, endpoint_id)
            row.secret = self._dispatcher.seal(secret, row.id)
            await self._audit.record("webhooks.rotate_secret", actor, org_id=org_id,
                                     target_type="webhook_endpoint", target_id=row.id, session=session)
        return CreatedEndpoint(EndpointView.of(row), secret)

    # -- deliveries ----------------------------------------------------------------------------
    async def deliveries(self, org_id: str, endpoint_id: str, *, limit: int = 50,
                         cursor: str | None = None) -> DeliveryPage:
        """An endpoint's deliveries, newest first (cursor pagination)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidWebhookCursor(f"limit must be 1 to {MAX_PAGE}", {"field": "limit"})
        before = _decode_cursor(cursor) if cursor else None
        async with self._sessions() as session:
            await self._endpoint(session, org_id, endpoint_id)
            rows = await repo.deliveries(session, org_id, endpoint_id, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return DeliveryPage(tuple(DeliveryView.of(r) for r in rows), _encode_cursor(rows[-1]) if more else None)

    async def delivery(self, org_id: str, delivery_id: str) -> DeliveryDetail:
        """One delivery with its payload and every attempt."""
        async with self._sessions() as session:
            row = await repo.delivery(session, org_id, delivery_id)
            if row is None:
                raise WebhookDeliveryNotFound("no such webhook delivery", {"delivery_id": delivery_id})
            attempts = await repo.attempts(session, row.id)
        return DeliveryDetail(DeliveryView.of(row), row.payload, tuple(AttemptView.of(a) for a in attempts))

    async def replay(self, org_id: str, delivery_id: str, *, actor: Actor) -> DeliveryDetail:
        """Send a delivery again now — whatever its status — with the same event id and body and a
        fresh signature; the attempt is logged as manual. Returns the delivery after it."""
        async with self._sessions() as session:
            row = await repo.delivery(session, org_id, delivery_id)
            if row is None:
                raise WebhookDeliveryNotFound("no such webhook delivery", {"delivery_id": delivery_id})
            endpoint = await self._endpoint(session, org_id, row.endpoint_id)
        attempt = await self._dispatcher.attempt(row, endpoint, manual=True)
        await self._audit.record("webhooks.replay", actor, org_id=org_id, target_type="webhook_delivery",
                                 target_id=row.id, outcome="ok" if attempt.status and 200 <= attempt.status < 300
                                 else "failed", details={"event_id": row.event_id, "status": attempt.status})
        return await self.delivery(org_id, delivery_id)

    async def send_test(self, org_id: str, endpoint_id: str, *, actor: Actor) -> DeliveryDetail:
        """Send a ``webhook.test`` event to one endpoint now (retried like any delivery if it fails)."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            endpoint = await self._endpoint(session, org_id, endpoint_id)
            if not endpoint.enabled:
                raise WebhookEndpointDisabled("the endpoint is disabled: enable it to send it events",
                                              {"endpoint_id": endpoint_id})
            event = make_event(org_id, TEST_EVENT, {
                "endpoint_id": endpoint.id, "message": "This is a test event from Ringwell."}, now=now)
            # Created claimed by this request (see repository.claim), so the worker leaves it alone.
            lease = now + timedelta(seconds=self._settings.webhook_timeout + 30)
            row = WebhookDelivery(id=new_id(), org_id=org_id, endpoint_id=endpoint.id, event_id=event.id,
                                  event_type=event.type, payload=event.body, status=repo.PENDING, attempts=0,
                                  next_attempt_at=lease, created_at=now)
            session.add(row)
            await self._audit.record("webhooks.test", actor, org_id=org_id, target_type="webhook_endpoint",
                                     target_id=endpoint.id, details={"delivery_id": row.id}, session=session)
        await self._dispatcher.attempt(row, endpoint, manual=False)
        self._worker.wake()
        return await self.delivery(org_id, row.id)
