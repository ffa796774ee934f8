"""The recordings service: who records which calls (policies), and the recordings themselves.

Policies
--------
A policy is set for the organization (its default), for a user, or for one of the org's numbers;
unset means "inherit", and the org's unset default is off. Whether a call is recorded is decided
when it is answered, from the parties it has (``CallParties``):

* a call from the network to a number: the number's policy, else the called user's, else the
  org's — recorded when that is ``always`` or ``inbound``;
* a call to the network: the caller-ID number's policy (when it is one of the org's), else the
  calling user's, else the org's — recorded when ``always`` or ``outbound``;
* a call between two users: recorded when the caller's is ``always``/``outbound`` or the callee's
  ``always``/``inbound``.

Any mode but ``off`` (``on_demand`` included) lets a party start a recording from the phone or the
API; ``off`` everywhere means the call can never be recorded.

Recordings
----------
``begin()`` starts an upload: the Ogg/Opus bytes a live recording produces are fed in as they
come and sealed by the blob store (AES-256-GCM with the org's data key) as they arrive, so no
plain audio ever reaches the disk; ``finish()`` writes the row once the file is complete, or
removes the file when the recording is too short to keep. Deleting a recording removes its file,
then its row.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.blobs import BlobKind, BlobRef, BlobStore, OpenBlob
from ringwell.features.accounts.errors import UserNotFound
from ringwell.features.accounts.models import Organization, User
from ringwell.features.numbers.errors import NumberNotFound
from ringwell.features.numbers.models import PhoneNumber
from ringwell.features.recordings.errors import InvalidRecordingPolicy, RecordingNotFound
from ringwell.features.recordings.models import Mode, Recording, RecordingPolicy, Trigger

__all__ = ["MIN_SECONDS", "CallParties", "Decision", "RecordingService", "Upload", "number_scope", "user_scope"]

log = logging.getLogger(__name__)

ORG_SCOPE = "org"
POLICY_TTL = 5.0  # seconds another node's policy change may take to reach calls answered here
MIN_SECONDS = 0.5  # a stretch shorter than this (started and stopped at once) is not kept
MAX_LIST = 500
_AUTO_IN = frozenset({Mode.ALWAYS, Mode.INBOUND})
_AUTO_OUT = frozenset({Mode.ALWAYS, Mode.OUTBOUND})


def user_scope(user_id: str) -> str:
    return f"user:{user_id}"


def number_scope(e164: str) -> str:
    return f"number:{e164}"


@dataclass(frozen=True, slots=True)
class CallParties:
    """What decides a call's recording: its org, direction and the org's users and number on it."""

    org_id: str
    direction: str  # internal | inbound | outbound
    caller_user_id: str | None
    callee_user_id: str | None
    number: str | None = None  # the org's number: dialled (inbound) or the caller ID (outbound)


@dataclass(frozen=True, slots=True)
class Decision:
    record: bool  # start recording when the call is answered
    allowed: bool  # may be started on demand (from the phone or the API)


class Upload:
    """One recording being written: bytes in (``feed``), an encrypted blob out (module docstring)."""

    def __init__(self, blobs: BlobStore, org_id: str, content_type: str, retention_until: datetime,
                 owners: Sequence[str] = ()) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.retention_until = retention_until
        self.bytes = 0
        self._task: asyncio.Task[BlobRef] = asyncio.ensure_future(
            blobs.put(org_id, BlobKind.RECORDING, self._chunks(), content_type=content_type,
                      retention_until=retention_until, owners=owners))

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    def feed(self, data: bytes) -> None:
        """Hand over encoded bytes (never blocks: the sealing task drains them in batches)."""
        if data:
            self.bytes += len(data)
            self._queue.put_nowait(data)

    async def close(self) -> BlobRef:
        self._queue.put_nowait(None)
        return await self._task

    def cancel(self) -> None:
        """Give up: the partial file is removed by the blob store (no row is ever written)."""
        self._task.cancel()


class RecordingService:
    """Policies and recordings of every org; the org is always passed explicitly (tenant-scoped)."""

    def __init__(self, sessions: async_sessionmaker[Any], blobs: BlobStore, *, retention_days: int = 90) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self._sessions = sessions
        self._blobs = blobs
        self._retention = timedelta(days=retention_days)
        self._cache: dict[str, tuple[float, dict[str, Mode]]] = {}  # org -> (expiry, policies)

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    # -- policies -------------------------------------------------------------------------
    async def policies(self, org_id: str) -> dict[str, Mode]:
        """Every policy the org set, by scope (``org``, ``user:<id>``, ``number:<E.164>``)."""
        async with self._sessions() as session:
            rows = (await session.execute(select(RecordingPolicy.scope, RecordingPolicy.mode).where(
                RecordingPolicy.org_id == org_id))).all()
        return {scope: Mode(mode) for scope, mode in rows}

    async def check_scope(self, org_id: str, scope: str) -> None:
        """Pass for the org, one of its users or one of its numbers; else UserNotFound, NumberNotFound
        (another org's is not found either) or InvalidRecordingPolicy."""
        kind, _, key = scope.partition(":")
        async with self._sessions() as session:
            if scope == ORG_SCOPE:
                return
            if kind == "user" and key:
                found = (await session.execute(select(User.id).where(User.id == key, User.org_id == org_id))
                         ).scalar_one_or_none()
            elif kind == "number" and key:
                found = (await session.execute(select(PhoneNumber.id).where(
                    PhoneNumber.e164 == key, PhoneNumber.org_id == org_id))).scalar_one_or_none()
            else:
                found = None
        if found is None and kind == "user" and key:
            raise UserNotFound("no such user", {"user_id": key})
        if found is None and kind == "number" and key:
            raise NumberNotFound("no such number in the organization", {"e164": key})
        if found is None:
            raise InvalidRecordingPolicy("a policy is for the org, one of its users or one of its numbers",
                                         {"scope": scope})

    async def set_policy(self, org_id: str, scope: str, mode: Mode | None) -> None:
        """Set (or, with None, clear back to inherit) one scope's mode."""
        await self.check_scope(org_id, scope)
        async with self._sessions() as session, session.begin():
            row = (await session.execute(select(RecordingPolicy).where(
                RecordingPolicy.org_id == org_id, RecordingPolicy.scope == scope))).scalar_one_or_none()
            if mode is None:
                if row is not None:
                    await session.delete(row)
            elif row is None:
                session.add(RecordingPolicy(org_id=org_id, scope=scope, mode=mode.value, updated_at=datetime.now(UTC)))
            else:
                row.mode = mode.value
                row.updated_at = datetime.now(UTC)
        self._cache.pop(org_id, None)
        log.info("recording policy of org %s, %s: %s", org_id, scope, mode.value if mode else "inherit")

    async def _cached(self, org_id: str) -> dict[str, Mode]:
        """The org's policies, read at most every POLICY_TTL seconds per org (each answered call asks)."""
        now = time.monotonic()
        hit = self._cache.get(org_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        policies = await self.policies(org_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[org_id] = (now + POLICY_TTL, policies)
        return policies

    async def decide(self, call: CallParties) -> Decision:
        """Whether a call is recorded when answered, and whether it may be on demand (module docstring)."""
        policies = await self._cached(call.org_id)
        if not policies:
            return Decision(False, False)
        default = policies.get(ORG_SCOPE, Mode.OFF)

        def of(user_id: str | None, number: str | None = None) -> Mode:
            if number is not None and number_scope(number) in policies:
                return policies[number_scope(number)]
            if user_id is not None and user_scope(user_id) in policies:
                return policies[user_scope(user_id)]
            return default

        if call.direction == "inbound":
            modes = [(of(call.callee_user_id, call.number), _AUTO_IN)]
        elif call.direction == "outbound":
            modes = [(of(call.caller_user_id, call.number), _AUTO_OUT)]
        else:
            modes = [(of(call.caller_user_id), _AUTO_OUT), (of(call.callee_user_id), _AUTO_IN)]
        return Decision(record=any(mode in auto for mode, auto in modes),
                        allowed=any(mode is not Mode.OFF for mode, _ in modes))

    # -- recordings -------------------------------------------------------------------------
    async def begin(self, org_id: str, content_type: str, owners: Sequence[str | None] = ()) -> Upload:
        """Start a recording's encrypted upload; its retention deadline is the org's, else the server's.

        ``owners``: the org's users on the call (caller, callee; None for a party outside the org):
        the file is encrypted under all of their keys, so erasing any of them shreds it."""
        async with self._sessions() as session:
            days = (await session.execute(select(Organization.recording_retention_days).where(
                Organization.id == org_id))).scalar_one_or_none()
        return Upload(self._blobs, org_id, content_type,
                      datetime.now(UTC) + (timedelta(days=days) if days else self._retention),
                      tuple(owner for owner in owners if owner is not None))

    async def finish(self, upload: Upload, *, org_id: str, call_record_id: str, caller_user_id: str | None,
                     callee_user_id: str | None, trigger: Trigger, started_at: datetime, duration_s: float,
                     paused_s: float, content_type: str) -> Recording | None:
        """Close the upload and store its row; None (and no file) for a stretch under MIN_SECONDS."""
        ref = await upload.close()
        if duration_s < MIN_SECONDS:
            await self._blobs.delete(org_id, ref.id)
            log.info("call %s: discarded a %.2f s recording", call_record_id, duration_s)
            return None
        row = Recording(org_id=org_id, call_record_id=call_record_id, caller_user_id=caller_user_id,
                        callee_user_id=callee_user_id, trigger=trigger.value, started_at=started_at,
                        ended_at=datetime.now(UTC), duration_s=round(duration_s, 3), paused_s=round(paused_s, 3),
                        channels=2, content_type=content_type, blob_id=ref.id, size=ref.size,
                        retention_until=upload.retention_until)
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except BaseException:
            await self._blobs.delete(org_id, ref.id)  # no file without its row
            raise
        log.info("recording %s of call %s: %.1f s, %d bytes", row.id, call_record_id, duration_s, ref.size)
        return row

    async def list(self, org_id: str, *, call_record_id: str | None = None, user_id: str | None = None,
                   limit: int = MAX_LIST) -> Sequence[Recording]:
        """The org's recordings newest first (of one call; of calls a user took part in)."""
        query = select(Recording).where(Recording.org_id == org_id)
        if call_record_id is not None:
            query = query.where(Recording.call_record_id == call_record_id)
        if user_id is not None:
            query = query.where((Recording.caller_user_id == user_id) | (Recording.callee_user_id == user_id))
        query = query.order_by(Recording.started_at.desc(), Recording.id).limit(min(max(limit, 1), MAX_LIST))
        async with self._sessions() as session:
            rows: Sequence[Recording] = (await session.execute(query)).scalars().all()
        return rows

    async def of_calls(self, org_id: str, call_record_ids: Sequence[str], *,
                       user_id: str | None = None) -> dict[str, builtins.list[Recording]]:
        """The recordings of some calls (a page of the call history), by call, oldest first."""
        if not call_record_ids:
            return {}
        query = select(Recording).where(Recording.org_id == org_id,
                                        Recording.call_record_id.in_(list(call_record_ids)))
        if user_id is not None:
            query = query.where((Recording.caller_user_id == user_id) | (Recording.callee_user_id == user_id))
        async with self._sessions() as session:
            rows: Sequence[Recording] = (await session.execute(query.order_by(Recording.started_at))).scalars().all()
        out: dict[str, builtins.list[Recording]] = {}
        for row in rows:
            out.setdefault(row.call_record_id, []).append(row)
        return out

    async def get(self, org_id: str, recording_id: str) -> Recording:
        async with self._sessions() as session:
            row: Recording | None = (await session.execute(select(Recording).where(
                Recording.org_id == org_id, Recording.id == recording_id))).scalar_one_or_none()
        if row is None:
            raise RecordingNotFound("no such recording", {"recording_id": recording_id})
        return row

    async def open_audio(self, org_id: str, recording_id: str) -> tuple[Recording, OpenBlob]:
        row = await self.get(org_id, recording_id)
        return row, await self._blobs.open(org_id, row.blob_id)

    async def delete(self, org_id: str, recording_id: str) -> Recording:
        """Remove the file, then the row. A second delete is RecordingNotFound."""
        row = await self.get(org_id, recording_id)
        await self._blobs.delete(org_id, row.blob_id)
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(Recording).where(
                Recording.org_id == org_id, Recording.id == recording_id).execution_options(
                synchronize_session=False))
        if not result.rowcount:
            raise RecordingNotFound("no such recording", {"recording_id": recording_id})
        log.info("recording %s of call %s deleted", recording_id, row.call_record_id)
        return row
