"""Music on hold: while one party holds the call, the other hears the organization's hold music.

``CallManager`` passes on the call's ``Held`` actions (a relayed offer that put a party on hold,
or took it off). On hold, ``HoldMusic`` fetches the org's music (``HoldMusicService.hold_music``,
cached a minute per org) and plays it, looped, to the waiting party through the relay
(``media.announce`` with ``repeat``: the holder's own packets carry it when the holding phone
keeps sending, else Ringwell's own stream); off hold, or when the call ends, it stops and the
session is unmuted. An org without hold music: nothing is played (the phones decide).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ringwell.media.announce import LegCodec, announce
from ringwell.media.apps import STATIC_PAYLOAD_TYPES
from ringwell.media.relay import MediaSession

__all__ = ["CACHE_SECONDS", "HoldMusic"]

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0


class HoldMusic:
    """The music-on-hold players of one ``CallManager``."""

    def __init__(self, source: Callable[[str], Awaitable[bytes | None]]) -> None:
        self._source = source
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self._playing: dict[str, asyncio.Task[None]] = {}

    @property
    def playing(self) -> int:
        return len(self._playing)

    def changed(self, call_id: str, org_id: str, session: MediaSession, codec: str | None, side: str,
                on: bool) -> None:
        """A party went on hold (``on``: play to ``side``) or the call came off hold (stop)."""
        self.ended(call_id)
        name = (codec or "").upper()
        if not on or name not in STATIC_PAYLOAD_TYPES:
            return
        task = asyncio.ensure_future(self._play(org_id, session, LegCodec(name, STATIC_PAYLOAD_TYPES[name]), side))
        self._playing[call_id] = task
        task.add_done_callback(lambda done: self._finished(call_id, done))

    def ended(self, call_id: str) -> None:
        task = self._playing.pop(call_id, None)
        if task is not None:
            task.cancel()

    def _finished(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self._playing.get(call_id) is task:
            del self._playing[call_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: hold music failed", call_id, exc_info=task.exception())

    async def _music(self, org_id: str) -> bytes | None:
        now = time.monotonic()
        hit = self._cache.get(org_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        pcm = await self._source(org_id)
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[org_id] = (now + CACHE_SECONDS, pcm)
        return pcm

    async def _play(self, org_id: str, session: MediaSession, leg: LegCodec, side: str) -> None:
        pcm = await self._music(org_id)
        if pcm and not session.closed:
            log.info("media %s: hold music to %s", session.label, side)
            await announce(session, pcm, {side: leg}, repeat=True)

    async def stop(self) -> None:
        tasks = list(self._playing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
