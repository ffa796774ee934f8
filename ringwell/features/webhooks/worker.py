"""The delivery loop: one long-lived task per node that sends what is due from the outbox.

Each round it first runs ``before_each`` (the service moves events emitted by the call path
into the outbox) and, once a minute, ``every_minute`` (the low-balance check); then it reads
the due deliveries (``pending``, ``next_attempt_at`` passed, endpoint enabled) and hands them to
*lanes*: one task per endpoint, sending that endpoint's deliveries one after the other (so a
receiver sees events in order unless some are retried), at most ``lanes`` endpoints at a time,
so one slow receiver delays only its own events. Before each attempt the delivery is claimed
with an optimistic UPDATE (see ``repository.claim``): with several nodes on one database an
attempt is made by one of them.

It sleeps until the next delivery is due (at most ``idle`` seconds, so deliveries written by
other nodes are seen), or until woken by a publish or a finished lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.webhooks import repository as repo
from ringwell.features.webhooks.dispatch import Dispatcher
from ringwell.features.webhooks.models import WebhookDelivery, WebhookEndpoint
from ringwell.storage.base import utcnow

__all__ = ["DeliveryWorker"]

log = logging.getLogger(__name__)

_Job = Callable[[], Awaitable[None]]
_LEASE_MARGIN = 30.0  # seconds added to the request timeout before another node may retry a claimed delivery


class DeliveryWorker:
    def __init__(self, sessions: async_sessionmaker[Any], dispatcher: Dispatcher, *, timeout: float,
                 before_each: _Job, every_minute: _Job, lanes: int = 16, batch: int = 200, per_lane: int = 20,
                 idle: float = 5.0, minute: float = 60.0, clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._dispatcher = dispatcher
        self._lease = timedelta(seconds=timeout + _LEASE_MARGIN)
        self._before_each = before_each
        self._every_minute = every_minute
        self._max_lanes = lanes
        self._batch = batch
        self._per_lane = per_lane
        self._idle = idle
        self._minute = minute
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> bool:
        return self._task is not None

    def wake(self) -> None:
        """Look at the outbox now (something was published)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        """Stop the loop and every lane (idempotent). An attempt cut short is retried when its claim
        runs out; nothing is lost."""
        task, self._task = self._task, None
        lanes = list(self._lanes.values())
        self._lanes.clear()
        for running in (task, *lanes):
            if running is not None:
                running.cancel()
        for running in (task, *lanes):
            if running is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await running

    async def _run(self) -> None:
        last_minute = float("-inf")
        failures = 0
        while True:
            self._wake.clear()
            await self._safely("moving emitted events to the outbox", self._before_each)
            if time.monotonic() - last_minute >= self._minute:
                last_minute = time.monotonic()
                await self._safely("checking low balances", self._every_minute)
            try:
                wait = await self._dispatch_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                wait = min(30.0, 2.0 ** failures)
                log.exception("could not read the webhook outbox; trying again in %.0f s", wait)
            else:
                failures = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _safely(self, what: str, job: _Job) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhooks: failed %s; trying again later", what)

    async def _dispatch_due(self) -> float:
        """Start lanes for what is due; returns how long to sleep before looking again."""
        now = self._clock()
        free = self._max_lanes - len(self._lanes)
        if free > 0:
            async with self._sessions() as session:
                rows = await repo.due(session, now, self._batch, busy=list(self._lanes))
            groups: dict[str, list[tuple[WebhookDelivery, WebhookEndpoint]]] = {}
            for delivery, endpoint in rows:
                group = groups.setdefault(endpoint.id, [])
                if len(group) < self._per_lane:
                    group.append((delivery, endpoint))
            for endpoint_id, items in list(groups.items())[:free]:
                self._lanes[endpoint_id] = asyncio.create_task(self._lane(endpoint_id, items),
                                                               name=f"webhooks-{endpoint_id[:8]}")
        async with self._sessions() as session:
            next_due = await repo.next_due(session)
        if next_due is None or next_due <= now:
            # Nothing pending, or only what lanes are busy with: a finished lane wakes the loop.
            return self._idle
        return min(self._idle, (next_due - now).total_seconds())

    async def _lane(self, endpoint_id: str, items: list[tuple[WebhookDelivery, WebhookEndpoint]]) -> None:
        try:
            for delivery, endpoint in items:
                async with self._sessions() as session, session.begin():
                    claimed = await repo.claim(session, delivery.id, delivery.next_attempt_at,
                                               self._clock() + self._lease)
                if claimed:
                    await self._dispatcher.attempt(delivery, endpoint, manual=False)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhooks: sending to endpoint %s failed; its deliveries are retried", endpoint_id)
        finally:
            if self._lanes.get(endpoint_id) is asyncio.current_task():
                del self._lanes[endpoint_id]
            self._wake.set()
