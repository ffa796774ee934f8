"""Data key rotation of an organization, without downtime (``ringwell admin keys rotate``).

1. Every owner of live keys in the org (the org itself, and each person with a key) gets a new
   data key (``KeyRing.rotate``): new blobs use it at once; old blobs stay readable under the
   old keys, which stay live.
2. With ``reencrypt``, every blob under an old key is re-encrypted under its owners' new keys, one
   by one (``BlobStore.reencrypt``: each file replaced atomically, readable throughout).
3. Once nothing is left under them, the old keys are destroyed (``KeyRing.retire``): a copy of an
   old file (a backup) no longer decrypts.

Safe to run again after an interruption: step 2 picks up what is still under an old key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from ringwell.blobs.models import OrgDataKey
from ringwell.blobs.store import BlobStore

__all__ = ["RotationReport", "rotate_org"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RotationReport:
    keys_created: int
    blobs_reencrypted: int
    keys_retired: int  # old keys destroyed after re-encryption (0 without it)


async def _owners(store: BlobStore, org_id: str) -> list[str | None]:
    async with store.sessions() as session:
        rows = (await session.execute(select(OrgDataKey.user_id).where(
            OrgDataKey.org_id == org_id, OrgDataKey.wrapped_key.is_not(None)).distinct())).scalars().all()
    return sorted(set(rows), key=lambda u: (u is not None, u or ""))


async def rotate_org(store: BlobStore, org_id: str, *, reencrypt: bool = False,
                     progress: Callable[[int, int], None] | None = None, batch: int = 500) -> RotationReport:
    """Rotate the org's data keys (module docstring); ``progress(done, total)`` after each blob."""
    owners = await _owners(store, org_id)
    if None not in owners:
        owners.insert(0, None)  # the org's own key, even if it has none yet
    for owner in owners:
        await store.keys.rotate(org_id, owner)
    if not reencrypt:
        return RotationReport(len(owners), 0, 0)
    stale: set[str] = set()
    for owner in owners:
        after = ""
        while page := await store.stale(org_id, owner, limit=batch, after=after):
            stale.update(page)
            after = page[-1]
    total, done = len(stale), 0
    if progress is not None:
        progress(0, total)
    for position, blob_id in enumerate(sorted(stale), 1):
        if await store.reencrypt(org_id, blob_id):
            done += 1
        if progress is not None:
            progress(position, total)
    retired = 0
    for owner in owners:
        if not await store.stale(org_id, owner, limit=1):
            retired += await store.keys.retire(org_id, owner)
        else:  # something was written under an old key meanwhile: keep it readable, a rerun finishes
            log.warning("org %s: blobs still under an old key of %s; run the rotation again", org_id,
                        owner or "the org")
    return RotationReport(len(owners), done, retired)
