"""The look-up caches in front of the database: a burst of calls or REGISTERs costs one query."""

from __future__ import annotations

import asyncio

from ringwell.features.accounts.repository import CredentialRecord, Reachable
from ringwell.pbx.calls import CachedDirectory
from ringwell.pbx.endpoint import MISSING, CredentialCache

RECORD = CredentialRecord("c1", "o1", "u1", "alice", "ringwell", "0" * 32, "0" * 64, "101")


class SlowStore:
    def __init__(self, value):
        self.value = value
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, *args):
        self.calls += 1
        await self.release.wait()
        return self.value


async def test_credentials_expired_entry_is_served_while_one_lookup_refreshes_it():
    store = SlowStore(RECORD)
    cache = CredentialCache(store, ttl=30.0)
    store.release.set()
    assert await cache.fetch("alice", 1000.0) == RECORD
    assert cache.get("alice", 1010.0) == RECORD  # fresh
    store.release.clear()
    # expired: every caller still gets the record at once, and only one refresh runs
    assert all(cache.get("alice", 1031.0) == RECORD for _ in range(100))
    await asyncio.sleep(0)
    assert store.calls == 2
    store.release.set()
    await asyncio.sleep(0.01)
    assert cache.get("alice", 1040.0) == RECORD
    await cache.stop()


async def test_credentials_too_old_or_unknown_are_looked_up_now():
    store = SlowStore(None)
    store.release.set()
    cache = CredentialCache(store, ttl=30.0, negative_ttl=5.0)
    assert cache.get("mallory", 0.0) is MISSING
    assert await cache.fetch("mallory", 0.0) is None
    assert cache.get("mallory", 1.0) is None  # a miss is cached briefly
    assert cache.get("mallory", 6.0) is MISSING  # and then asked again, never served stale
    store.value = RECORD
    await cache.fetch("alice", 0.0)
    assert cache.get("alice", 61.0) is MISSING  # older than twice the TTL: not served


async def test_directory_burst_shares_one_lookup():
    callee = Reachable("u2", "201", ("c2",), 30)
    store = SlowStore(callee)
    directory = CachedDirectory(store, ttl=5.0)
    waiting = [asyncio.create_task(directory("o1", "201")) for _ in range(50)]
    await asyncio.sleep(0.01)
    assert store.calls == 1
    store.release.set()
    assert await asyncio.gather(*waiting) == [callee] * 50
    assert await directory("o1", "201") == callee
    assert store.calls == 1
