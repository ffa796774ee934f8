"""Background jobs on the event loop (STYLE.md §2: ``start()`` and an idempotent ``stop()``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``job`` every ``every`` seconds, the first time after ``first``.

    A failing run is logged with its traceback and the next run happens on schedule: a job
    that dies silently is a hang later.
    """

    def __init__(self, name: str, job: Callable[[], Awaitable[None]], *, every: float, first: float = 0.0) -> None:
        self.name = name
        self._job = job
        self._every = every
        self._first = first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        await asyncio.sleep(self._first)
        while True:
            try:
                await self._job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed; next run in %.0f s", self.name, self._every)
            await asyncio.sleep(self._every)
