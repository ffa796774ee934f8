"""A bounded, fair intake queue: one FIFO per source, drained round-robin.

A flood from one source fills only that source's FIFO (further datagrams from it are dropped
and counted), while every other source keeps its turn, so one noisy peer cannot starve the rest
(hypercorn's bounded UDP intake, made per source).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["FairIntake"]

T = TypeVar("T")


class FairIntake(Generic[T]):
    def __init__(self, per_source: int = 1000, max_sources: int = 10_000) -> None:
        self.per_source = per_source
        self.max_sources = max_sources
        self._queues: dict[object, deque[T]] = {}
        self._ready: deque[object] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0
        self.accepted = 0

    def put(self, source: object, item: T) -> bool:
        """Queue ``item`` from ``source``; False (and counted) when it had to be dropped."""
        queue = self._queues.get(source)
        if queue is None:
            if len(self._queues) >= self.max_sources:
                self.dropped += 1
                return False
            queue = self._queues[source] = deque()
            self._ready.append(source)
        elif len(queue) >= self.per_source:
            self.dropped += 1
            return False
        queue.append(item)
        self.accepted += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def get_nowait(self) -> T | None:
        """The next item in round-robin order, or None when everything is drained."""
        if not self._ready:
            return None
        source = self._ready.popleft()
        queue = self._queues[source]
        item = queue.popleft()
        if queue:
            self._ready.append(source)
        else:
            del self._queues[source]
        return item

    async def wait(self) -> None:
        """Return when there is something to take."""
        while not self._ready:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())
