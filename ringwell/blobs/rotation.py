"""Data key rotation without downtime: an organization's on demand (``ringwell admin keys rotate``),
and every org's and person's once per key epoch (the daily job, :func:`rotate_due`).

1. Every owner of live keys in the org (the org itself, and each person with a key) gets a new
   data key (``KeyRing.rotate``): new blobs use it at once; old blobs stay readable under the
   old keys, which stay live.
2. With ``reencrypt``, every blob under an old key is re-encrypted under its owners' new keys, one
   by one (``BlobStore.reencrypt``: each file replaced atomically, readable throughout).
3. The old keys that nothing uses any more are destroyed (``KeyRing.retire``, one conditional
   statement: a blob written under an old key meanwhile keeps it live): a copy of an old file (a
   backup) no longer decrypts.

Safe to run again after an interruption: step 2 picks up what is still under an old key.

Key epochs (issue 8: deleted media is unrecoverable within 30 days, backups included). Deleting a
blob removes its file and row, but a copy of the file in a backup would decrypt for as long as its
key lives. So no key stays in use longer than ``key_epoch_days``: the daily job rotates every
owner whose newest key would pass that age before the next run, re-encrypts their live blobs and
retires the old keys. A file deleted today was under a key at most that old by then; once the key
is retired, no copy of the file decrypts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ringwell.blobs.errors import BlobNotFound, KeyDestroyed
from ringwell.blobs.models import OrgDataKey
from ringwell.blobs.store import BlobStore

__all__ = ["EPOCH_JOB_EVERY", "RETIRE_GRACE", "EpochReport", "RotationReport", "rotate_due", "rotate_org"]

log = logging.getLogger(__name__)

EPOCH_JOB_EVERY = timedelta(days=1)  # how often the server runs rotate_due
# A key younger than this is never retired by the epoch job (it may just have been handed to a writer;
# writers also re-check under a lock, this only spares them the re-encryption).
RETIRE_GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RotationReport:
    keys_created: int
    blobs_reencrypted: int
    keys_retired: int  # old keys destroyed after re-encryption (0 without it)


@dataclass(frozen=True, slots=True)
class EpochReport:
    keys_created: int  # owners (orgs and persons) rotated
    blobs_reencrypted: int
    keys_retired: int
    owners_pending: int  # owners still with blobs under an old key (the next run continues)


async def _owners(store: BlobStore, org_id: str) -> list[str | None]:
    async with store.sessions() as session:
        rows = (await session.execute(select(OrgDataKey.user_id).where(
            OrgDataKey.org_id == org_id, OrgDataKey.wrapped_key.is_not(None)).distinct())).scalars().all()
    return sorted(set(rows), key=lambda u: (u is not None, u or ""))


async def _stale(store: BlobStore, org_id: str, owners: list[str | None], batch: int) -> list[str]:
    stale: set[str] = set()
    for owner in owners:
        after = ""
        while page := await store.stale(org_id, owner, limit=batch, after=after):
            stale.update(page)
            after = page[-1]
    return sorted(stale)


async def _reencrypt(store: BlobStore, org_id: str, blob_ids: list[str],
                     progress: Callable[[int, int], None] | None) -> int:
    total, done = len(blob_ids), 0
    if progress is not None:
        progress(0, total)
    for position, blob_id in enumerate(blob_ids, 1):
        with contextlib.suppress(BlobNotFound, KeyDestroyed):  # deleted, or its owner erased, since listed
            done += await store.reencrypt(org_id, blob_id)
        if progress is not None:
            progress(position, total)
    return done


async def _retire(store: BlobStore, org_id: str, owners: list[str | None], min_age: timedelta) -> tuple[int, int]:
    """Retire each owner's unused old keys; (keys retired, owners still with a blob under an old key)."""
    retired = pending = 0
    for owner in owners:
        retired += await store.keys.retire(org_id, owner, min_age=min_age)
        if await store.stale(org_id, owner, limit=1):  # written under an old key meanwhile: a rerun finishes
            pending += 1
            log.warning("org %s: blobs still under an old key of %s; the next rotation finishes", org_id,
                        owner or "the org")
    return retired, pending


async def rotate_org(store: BlobStore, org_id: str, *, reencrypt: bool = False,
                     progress: Callable[[int, int], None] | None = None, batch: int = 500) -> RotationReport:
    """Rotate the org's data keys (module docstring); ``progress(done, total)`` after each blob.
    An operator's rotation (a suspected leak) retires the old keys at once, whatever their age."""
    owners = await _owners(store, org_id)
    if None not in owners:
        owners.insert(0, None)  # the org's own key, even if it has none yet
    for owner in owners:
        await store.keys.rotate(org_id, owner)
    if not reencrypt:
        return RotationReport(len(owners), 0, 0)
    done = await _reencrypt(store, org_id, await _stale(store, org_id, owners, batch), progress)
    retired, _pending = await _retire(store, org_id, owners, timedelta(0))
    return RotationReport(len(owners), done, retired)


async def rotate_due(store: BlobStore, now: datetime, *, epoch: timedelta, every: timedelta = EPOCH_JOB_EVERY,
                     org_rotated: Callable[[str], Awaitable[object]] | None = None,
                     batch: int = 500) -> EpochReport:
    """The key epoch job (module docstring): rotate every owner whose newest live key was created at
    or before ``now - epoch + every`` (it would be older than ``epoch`` at the next run), re-encrypt
    their live blobs and retire their old keys; also finish owners a former run left with old keys.

    ``org_rotated(org_id)`` is awaited after an org's own key rotated: what derives from that key
    (the transcripts' blind index, ``VoicemailService.reindex``) follows it."""
    if epoch <= timedelta(0):
        raise ValueError("epoch must be positive")
    due_before = now - epoch + every
    created = reencrypted = retired = pending = 0
    by_org: dict[str, list[str | None]] = {}
    for org_id, owner, newest, live in await store.keys.newest_keys():
        if newest <= due_before:
            await store.keys.rotate(org_id, owner)
            created += 1
            if owner is None and org_rotated is not None:
                await org_rotated(org_id)
        elif live < 2:
            continue
        by_org.setdefault(org_id, []).append(owner)
    for org_id, owners in by_org.items():
        reencrypted += await _reencrypt(store, org_id, await _stale(store, org_id, owners, batch), None)
        count, left = await _retire(store, org_id, owners, RETIRE_GRACE)
        retired, pending = retired + count, pending + left
    if created or retired or pending:
        log.warning("key epoch: %d key(s) rotated, %d file(s) re-encrypted, %d old key(s) destroyed, %d owner(s) "
                    "left for the next run", created, reencrypted, retired, pending)
    return EpochReport(created, reencrypted, retired, pending)
