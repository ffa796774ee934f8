"""Connections to carriers reached over TCP: opened ahead of the calls and kept open.

A request goes to a TCP trunk over the connection Ringwell opened to its ``host:port``
(RFC 3261 §18.1.1); that connection is registered with the TCP server like one a phone
opened, so responses and the carrier's own requests on it are handled the same way, and an
INVITE coming over it is recognised as the trunk's. Every ``every`` seconds each TCP trunk
without a connection gets a new attempt; while a trunk has none, a call skips to the next
trunk at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ringwell.features.trunks.service import TrunkRoute
from ringwell.tasks import Periodic
from ringwell.transport.stream import StreamConnection, StreamServer

__all__ = ["TrunkConnections"]

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 5.0
LOG_EVERY = 60.0


class TrunkConnections:
    def __init__(self, server: StreamServer, trunks: Callable[[], list[TrunkRoute]], every: float = 2.0) -> None:
        self._server = server
        self._trunks = trunks
        self._pending: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._logged: dict[tuple[str, int], float] = {}
        self._job = Periodic("trunk-connections", self._check, every=every)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _check(self) -> None:
        for trunk in self._trunks():
            key = (trunk.host, trunk.port)
            if trunk.transport != "tcp" or key in self._server.connections or key in self._pending:
                continue
            task = asyncio.create_task(self._connect(trunk))
            self._pending[key] = task
            task.add_done_callback(self._forget(key))

    def _forget(self, key: tuple[str, int]) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._pending.pop(key, None)

        return forget

    async def _connect(self, trunk: TrunkRoute) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: StreamConnection(self._server), trunk.host, trunk.port),
                CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            key = (trunk.host, trunk.port)
            now = time.monotonic()
            if now - self._logged.get(key, -LOG_EVERY) >= LOG_EVERY:
                self._logged[key] = now
                log.warning("trunk %s: cannot connect over TCP to %s:%d: %s", trunk.name, trunk.host, trunk.port,
                            exc or type(exc).__name__)
            return
        log.info("trunk %s: connected over TCP to %s:%d", trunk.name, trunk.host, trunk.port)
