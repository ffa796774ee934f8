"""Encrypted blob storage: files under ``<root>/<org_id>/<blob_id>``, metadata in ``blobs``.

File format (version 1), an online AEAD in the STREAM construction (Hoang, Reyhanitabar, Rogaway,
Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015)::

    header  = "RWBLOB" | version (1 byte = 1) | chunk_size (u32 BE) | salt (16) | nonce_prefix (7)
    chunk_i = AES-256-GCM(file_key, nonce_prefix | i (u32 BE) | last (1 byte 0/1), plaintext_i, aad)

- ``file_key = HKDF-SHA256(data key, salt, info=binding)``: a fresh key per file, so nonces
  never repeat under one key however many files an org has. The data key is the org's (hold
  music, blobs from before per-person keys) or the owner's (a voicemail is its mailbox owner's).
- A blob with several owners (a recording of a call between two of the org's users) derives
  ``file_key = HKDF-SHA256(k_1 | k_2 | ..., salt, info=binding | 0 | "keys" | 0 | id_1 id_2 ...)``
  over every owner's data key: destroying any one of them (erasing that person) makes it
  unreadable. The key ids are in ``blobs.key_id`` and ``blobs.extra_key_ids``.
- ``binding = "ringwell blob v1" | org_id | blob_id | kind`` (NUL-separated) and
  ``aad = header | binding``: a file copied to another org, renamed to another blob id, relabelled
  as another kind or given another header fails authentication.
- Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last (possibly empty)
  carries the last flag, so truncation at a chunk boundary, reordering, duplication and appended
  data all fail. Nothing is returned from a chunk that does not authenticate.

Files are written to a temporary name, fsynced and renamed into place; the row is inserted after
the rename, so a crash leaves at most an unreadable orphan file, never a row without its file.
The row's transaction locks its data keys and checks they are still live (``KeyRing.live_keys``):
if a rotation retired one while the file was written, the file is re-encrypted under the active
keys first, so no row is ever committed under a destroyed key.
Deleting unlinks the file first, then the row. Blocking crypto and file work runs in
``asyncio.to_thread``.

Re-encryption (after a key rotation) writes the new file beside the old, then swaps it in and
updates the row in one transaction (the old file kept aside until the commit). A reader that
already opened the old file keeps reading it; one that meets the new file with the old row's keys
re-reads the row and tries again (the first chunk is checked when a blob is opened).
"""

from __future__ import annotations

import asyncio
import builtins
import enum
import logging
import os
import secrets
import struct
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.blobs.errors import BlobCorrupt, BlobNotFound
from ringwell.blobs.keys import DataKey, KeyRing
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.errors import Invalid
from ringwell.storage.base import new_id, utcnow

__all__ = ["DEFAULT_CHUNK_SIZE", "BlobKind", "BlobRef", "BlobStore", "OpenBlob"]

log = logging.getLogger(__name__)

MAGIC = b"RWBLOB"
VERSION = 1
_HEADER = struct.Struct(">6sBI16s7s")
HEADER_SIZE = _HEADER.size
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 1024 * 1024
MAX_CHUNKS = 2**32
_BATCH = 1024 * 1024  # plaintext handed to a worker thread at a time
_OPEN_ATTEMPTS = 4
_OPEN_RETRY_SECONDS = 0.02


class BlobKind(enum.StrEnum):
    VOICEMAIL = "voicemail"
    RECORDING = "recording"
    TRANSCRIPT = "transcript"
    GREETING = "greeting"
    HOLD_MUSIC = "hold_music"


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A stored blob's metadata (never its content)."""

    id: str
    org_id: str
    kind: BlobKind
    content_type: str
    size: int
    created_at: datetime
    retention_until: datetime | None

    @classmethod
    def of(cls, row: Blob) -> BlobRef:
        return cls(row.id, row.org_id, BlobKind(row.kind), row.content_type, row.size, row.created_at,
                   row.retention_until)


def _canonical_id(value: str) -> str | None:
    """``value`` if it is a canonical UUID (ids become file names: nothing else may reach the disk)."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
    return value if str(parsed) == value else None


def _binding(org_id: str, blob_id: str, kind: str) -> bytes:
    return b"\x00".join((b"ringwell blob v1", org_id.encode(), blob_id.encode(), kind.encode()))


def _file_key(keys: Sequence[DataKey], salt: bytes, binding: bytes) -> AESGCM:
    """One key: HKDF over it (the original format). Several: over all of them, their ids in the info."""
    if not keys:
        raise ValueError("a blob needs at least one data key")
    if len(keys) == 1:
        return AESGCM(HKDF(algorithm=SHA256(), length=32, salt=salt, info=binding).derive(keys[0].secret))
    info = b"\x00".join((binding, b"keys", " ".join(k.id for k in keys).encode()))
    material = b"".join(k.secret for k in keys)
    return AESGCM(HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(material))


def _key_ids(row: Blob) -> list[str]:
    return [row.key_id, *(row.extra_key_ids or "").split()]


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Sealer:
    """Synchronous writer of one blob file (runs in a worker thread for large payloads)."""

    def __init__(self, final: Path, keys: Sequence[DataKey], binding: bytes, chunk_size: int) -> None:
        salt, self._prefix = secrets.token_bytes(16), secrets.token_bytes(7)
        header = _HEADER.pack(MAGIC, VERSION, chunk_size, salt, self._prefix)
        self._aead = _file_key(keys, salt, binding)
        self._aad = header + binding
        self._chunk = chunk_size
        self._buffer = bytearray()
        self._counter = 0
        self.size = 0
        self._final = final
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._file.write(header)

    def _emit(self, plaintext: bytes, last: bool) -> None:
        if self._counter >= MAX_CHUNKS:
            raise Invalid("blob too large")
        self._file.write(self._aead.encrypt(_nonce(self._prefix, self._counter, last), plaintext, self._aad))
        self._counter += 1

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        pos = 0
        while pos < len(view):
            if len(self._buffer) == self._chunk:  # full, and more follows: not the last chunk
                self._emit(bytes(self._buffer), last=False)
                self._buffer.clear()
            take = min(self._chunk - len(self._buffer), len(view) - pos)
            self._buffer += view[pos : pos + take]
            pos += take

    def finish(self) -> None:
        self.seal()
        os.replace(self._temp, self._final)
        _fsync_dir(self._final.parent)

    def seal(self) -> Path:
        """Write the last chunk and fsync, leaving the file under its temporary name (returned)."""
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._temp

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


class _Opener:
    """Synchronous, authenticated reader of one blob file, chunk by chunk."""

    def __init__(self, path: Path, ref: BlobRef, keys: Sequence[DataKey]) -> None:
        try:
            self._file: IO[bytes] = path.open("rb")
        except FileNotFoundError:
            raise BlobCorrupt(f"blob {ref.id}: its file is missing") from None
        try:
            self._remaining = os.fstat(self._file.fileno()).st_size - HEADER_SIZE
            header = self._file.read(HEADER_SIZE)
            if len(header) != HEADER_SIZE:
                raise BlobCorrupt(f"blob {ref.id}: not a Ringwell blob file (too short)")
            magic, version, chunk_size, salt, self._prefix = _HEADER.unpack(header)
            if magic != MAGIC:
                raise BlobCorrupt(f"blob {ref.id}: not a Ringwell blob file (bad magic)")
            if version != VERSION:
                raise BlobCorrupt(f"blob {ref.id}: unsupported blob format version {version}")
            if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
                raise BlobCorrupt(f"blob {ref.id}: invalid chunk size {chunk_size}")
        except BaseException:
            self._file.close()
            raise
        binding = _binding(ref.org_id, ref.id, ref.kind)
        self._aead = _file_key(keys, salt, binding)
        self._aad = header + binding
        self._chunk = chunk_size
        self._counter = 0
        self._ref = ref
        self.returned = 0
        self.done = False  # the last chunk was decrypted
        self.finished = False  # ... and everything returned
        # The first chunk is checked now: a file and a row that disagree on the keys (a blob being
        # re-encrypted) are noticed when the blob is opened, where the store can look again.
        self._first = self._next()

    def _next(self) -> bytes:
        full = self._chunk + TAG_SIZE
        last = self._remaining <= full
        length = self._remaining if last else full
        sealed = self._file.read(length)
        if len(sealed) != length or length < TAG_SIZE:
            self.close()
            raise BlobCorrupt(f"blob {self._ref.id}: the file is truncated")
        self._remaining -= length
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, self._counter, last), sealed, self._aad)
        except InvalidTag:
            self.close()
            raise BlobCorrupt(f"blob {self._ref.id}: chunk {self._counter} failed authentication (the file "
                              "was altered, truncated, reordered, or belongs to another blob)") from None
        self._counter += 1
        if last:
            self.done = True
        return plain

    def read(self, budget: int = _BATCH) -> bytes:
        """Up to about ``budget`` authenticated plaintext bytes; ``b""`` with ``done`` at the end."""
        out = bytearray(self._first)
        self._first = b""
        while not self.done and len(out) < budget:
            out += self._next()
        self.returned += len(out)
        if self.done:
            self.close()
            if self.returned != self._ref.size:
                raise BlobCorrupt(f"blob {self._ref.id}: {self.returned} bytes decrypted, {self._ref.size} stored")
            self.finished = True
        return bytes(out)

    def close(self) -> None:
        self._file.close()


class OpenBlob:
    """An opened blob: its metadata, then its plaintext as an async iterator of chunks.

    The file is opened (and its header and key checked) before this object exists, so an HTTP
    handler can answer an error status before it starts streaming. Iterate once; ``close()`` (or
    finishing the iteration) releases the file.
    """

    def __init__(self, ref: BlobRef, opener: _Opener) -> None:
        self.ref = ref
        self._opener = opener

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            while not self._opener.finished:
                piece = await asyncio.to_thread(self._opener.read)
                if piece:
                    yield piece
        finally:
            self._opener.close()

    async def read_all(self) -> bytes:
        parts = [piece async for piece in self]
        return b"".join(parts)

    def close(self) -> None:
        self._opener.close()


class BlobStore:
    """Encrypted blobs of every org. The tenant is always explicit; another org's blob is not found."""

    def __init__(self, sessions: async_sessionmaker[Any], keys: KeyRing, root: Path, *,
                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be 1-{MAX_CHUNK_SIZE}")
        self._sessions = sessions
        self._keys = keys
        self._root = root
        self._chunk = chunk_size

    @property
    def keys(self) -> KeyRing:
        return self._keys

    @property
    def sessions(self) -> async_sessionmaker[Any]:
        return self._sessions

    def path(self, org_id: str, blob_id: str) -> Path:
        """Where the blob's file lives (ids are validated: nothing else reaches the file system)."""
        org, blob = _canonical_id(org_id), _canonical_id(blob_id)
        if org is None or blob is None:
            raise BlobNotFound("no such blob", {"blob_id": blob_id})
        return self._root / org / blob

    async def put(self, org_id: str, kind: BlobKind | str, data: bytes | AsyncIterable[bytes], *,
                  content_type: str, retention_until: datetime | None = None,
                  owners: Sequence[str] = ()) -> BlobRef:
        """Encrypt and store ``data`` for ``org_id``; the row appears only once the file is in place.

        ``owners``: the users (of ``org_id``) whose data it is; it is encrypted under all of their
        data keys, so erasing any of them shreds it. None: the org's key (hold music).
        """
        try:
            kind = BlobKind(kind)
        except ValueError:
            raise Invalid(f"unknown blob kind {kind!r}", {"kinds": [k.value for k in BlobKind]}) from None
        if not content_type or len(content_type) > 100 or not content_type.isprintable():
            raise Invalid("content_type must be 1-100 printable characters")
        if retention_until is not None:
            if retention_until.tzinfo is None:
                raise Invalid("retention_until must be timezone-aware (stored in UTC)")
            retention_until = retention_until.astimezone(UTC)
        if _canonical_id(org_id) is None:
            raise Invalid("org_id is not an organization id")
        if any(_canonical_id(owner) is None for owner in owners):
            raise Invalid("owners must be user ids")
        keys = (await self._keys.active_keys(org_id, owners)) if owners else [await self._keys.active_key(org_id)]
        blob_id = new_id()
        final = self.path(org_id, blob_id)
        binding = _binding(org_id, blob_id, kind)
        if isinstance(data, bytes | bytearray | memoryview):
            size = await self._seal_bytes(final, keys, binding, data)
        else:
            size = await self._seal_stream(final, keys, binding, data)
        try:
            for _attempt in range(_OPEN_ATTEMPTS):
                row = Blob(id=blob_id, org_id=org_id, key_id=keys[0].id,
                           extra_key_ids=" ".join(k.id for k in keys[1:]) or None, kind=kind.value,
                           content_type=content_type, size=size, created_at=utcnow(), retention_until=retention_until)
                if await self._insert(row, keys):
                    break
                # A key was retired while the file was written (a rotation ran meanwhile): the file
                # moves to the owners' active keys before its row may exist.
                fresh = (await self._keys.active_keys(org_id, owners)) if owners else [
                    await self._keys.active_key(org_id)]
                await asyncio.to_thread(self._reseal, final, BlobRef(blob_id, org_id, kind, content_type, size,
                                                                      row.created_at, retention_until), keys, fresh)
                keys = fresh
            else:
                raise BlobCorrupt(f"blob {blob_id}: its data keys kept being retired while it was stored")
        except BaseException:
            await asyncio.to_thread(final.unlink, missing_ok=True)
            raise
        log.info("stored %s blob %s of org %s (%d bytes)", kind.value, blob_id, org_id, size)
        return BlobRef.of(row)

    async def _seal_bytes(self, final: Path, keys: Sequence[DataKey], binding: bytes,
                          data: bytes | bytearray | memoryview) -> int:
        def seal() -> int:
            sealer = _Sealer(final, keys, binding, self._chunk)
            try:
                sealer.feed(data)
                sealer.finish()
            except BaseException:
                sealer.abort()
                raise
            return sealer.size

        return await asyncio.to_thread(seal)  # even small payloads: the fsyncs block

    async def _seal_stream(self, final: Path, keys: Sequence[DataKey], binding: bytes,
                           data: AsyncIterable[bytes]) -> int:
        sealer = await asyncio.to_thread(_Sealer, final, keys, binding, self._chunk)
        try:
            pending = bytearray()
            async for piece in data:
                pending += piece
                if len(pending) >= _BATCH:
                    batch, pending = pending, bytearray()
                    await asyncio.to_thread(sealer.feed, batch)
            await asyncio.to_thread(sealer.feed, pending)
            await asyncio.to_thread(sealer.finish)
        except BaseException:
            sealer.abort()
            raise
        return sealer.size

    async def get(self, org_id: str, blob_id: str) -> BlobRef:
        if _canonical_id(blob_id) is None:
            raise BlobNotFound("no such blob", {"blob_id": blob_id})
        async with self._sessions() as session:
            row = (await session.execute(select(Blob).where(Blob.id == blob_id, Blob.org_id == org_id))
                   ).scalar_one_or_none()
        if row is None:
            raise BlobNotFound("no such blob", {"blob_id": blob_id})
        return BlobRef.of(row)

    async def list(self, org_id: str, kind: BlobKind | str | None = None, *, limit: int = 100,
                   offset: int = 0) -> list[BlobRef]:
        """The org's blobs, newest first."""
        query = select(Blob).where(Blob.org_id == org_id)
        if kind is not None:
            query = query.where(Blob.kind == BlobKind(kind).value)
        query = query.order_by(Blob.created_at.desc(), Blob.id).limit(limit).offset(offset)
        async with self._sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [BlobRef.of(row) for row in rows]

    async def _row(self, org_id: str, blob_id: str) -> Blob:
        async with self._sessions() as session:
            row = (await session.execute(select(Blob).where(Blob.id == blob_id, Blob.org_id == org_id))
                   ).scalar_one_or_none() if _canonical_id(blob_id) else None
        if row is None:
            raise BlobNotFound("no such blob", {"blob_id": blob_id})
        found: Blob = row
        return found

    async def _keys_of(self, row: Blob) -> builtins.list[DataKey]:
        return [await self._keys.key(row.org_id, key_id) for key_id in _key_ids(row)]

    async def open(self, org_id: str, blob_id: str) -> OpenBlob:
        """Open for reading; raises BlobNotFound, KeyDestroyed (any owner's key destroyed),
        WrongMasterKey or BlobCorrupt (header or first chunk)."""
        for attempt in range(_OPEN_ATTEMPTS):
            row = await self._row(org_id, blob_id)
            ref = BlobRef.of(row)
            keys = await self._keys_of(row)
            try:
                opener = await asyncio.to_thread(_Opener, self.path(org_id, blob_id), ref, keys)
            except BlobCorrupt:
                # Met a re-encrypted file with the row read before its swap was committed: look again.
                if attempt + 1 == _OPEN_ATTEMPTS:
                    raise
                await asyncio.sleep(_OPEN_RETRY_SECONDS * (attempt + 1))
                continue
            return OpenBlob(ref, opener)
        raise AssertionError("unreachable")

    async def owners(self, org_id: str, blob_id: str) -> builtins.list[str | None]:
        """Whose keys the blob is under: user ids, None for the org's own key."""
        row = await self._row(org_id, blob_id)
        return [key.user_id for key in await self._keys_of(row)]

    async def _insert(self, row: Blob, keys: Sequence[DataKey]) -> bool:
        """Insert ``row`` if every one of ``keys`` is still live; False (nothing inserted) if not.
        The keys stay locked until the commit: ``KeyRing.retire`` cannot destroy one under the row."""
        wanted = {k.id for k in keys}
        async with self._sessions() as session:  # closing it rolls back whatever did not commit
            await session.begin()
            # PostgreSQL: the keys' share locks first (the row's foreign key check would otherwise take
            # a weaker one to upgrade, which can deadlock with retire()). SQLite: the insert first, so
            # the transaction holds the writer lock before it reads (no stale read snapshot to upgrade).
            locks_first = session.get_bind().dialect.name != "sqlite"
            if locks_first and await KeyRing.live_keys(session, wanted) != wanted:
                return False
            session.add(row)
            await session.flush()
            if not locks_first and await KeyRing.live_keys(session, wanted) != wanted:
                await session.rollback()
                return False
            await session.commit()
        return True

    def _rewrite(self, final: Path, ref: BlobRef, old_keys: Sequence[DataKey], new_keys: Sequence[DataKey],
                 binding: bytes) -> Path:
        """Decrypt ``final`` with ``old_keys`` into a sealed temporary file under ``new_keys`` (returned)."""
        opener = _Opener(final, ref, old_keys)
        sealer = _Sealer(final, new_keys, binding, self._chunk)
        try:
            while not opener.finished:
                sealer.feed(opener.read())
            return sealer.seal()
        except BaseException:
            opener.close()
            sealer.abort()
            raise

    def _reseal(self, final: Path, ref: BlobRef, old_keys: Sequence[DataKey], new_keys: Sequence[DataKey]) -> None:
        """Replace ``final`` (no row yet) by the same plaintext under ``new_keys``."""
        temp = self._rewrite(final, ref, old_keys, new_keys, _binding(ref.org_id, ref.id, ref.kind))
        os.replace(temp, final)
        _fsync_dir(final.parent)

    async def reencrypt(self, org_id: str, blob_id: str) -> bool:
        """Re-encrypt the blob under its owners' *active* keys (after :meth:`KeyRing.rotate`).

        Same blob id, same plaintext; readable throughout (module docstring). False when it already
        is under the active keys, or was deleted or re-encrypted meanwhile.
        """
        row = await self._row(org_id, blob_id)
        old_ids = _key_ids(row)
        old_keys = await self._keys_of(row)
        new_keys = await self._keys.active_keys(org_id, [key.user_id for key in old_keys])
        if [key.id for key in new_keys] == old_ids:
            return False
        ref, final = BlobRef.of(row), self.path(org_id, blob_id)
        binding = _binding(org_id, blob_id, ref.kind)

        temp = await asyncio.to_thread(self._rewrite, final, ref, old_keys, new_keys, binding)
        aside = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old")
        swapped = False
        try:
            async with self._sessions() as session, session.begin():
                current = (await session.execute(select(Blob).where(Blob.id == blob_id, Blob.org_id == org_id)
                                                 .with_for_update())).scalar_one_or_none()
                if current is None or _key_ids(current) != old_ids or (
                        await KeyRing.live_keys(session, [k.id for k in new_keys]) != {k.id for k in new_keys}):
                    await asyncio.to_thread(temp.unlink, missing_ok=True)  # a later pass does it again
                    return False
                current.key_id = new_keys[0].id
                current.extra_key_ids = " ".join(k.id for k in new_keys[1:]) or None
                await session.flush()

                def swap() -> None:
                    os.link(final, aside)
                    os.replace(temp, final)
                    _fsync_dir(final.parent)

                await asyncio.to_thread(swap)
                swapped = True
        except BaseException:
            if swapped:  # the row change did not commit: the old file goes back
                await asyncio.to_thread(os.replace, aside, final)
            await asyncio.to_thread(temp.unlink, missing_ok=True)
            raise
        await asyncio.to_thread(aside.unlink, missing_ok=True)
        log.info("re-encrypted blob %s of org %s under key(s) %s", blob_id, org_id, [k.id for k in new_keys])
        return True

    async def stale(self, org_id: str, user_id: str | None = None, *, limit: int = 500,
                    after: str = "") -> builtins.list[str]:
        """Ids (ascending, after ``after``) of the org's blobs under a live key of the org (or of
        ``user_id``) that is not its newest: what re-encryption after a rotation has to do."""
        async with self._sessions() as session:
            query = select(OrgDataKey.id).where(OrgDataKey.org_id == org_id, OrgDataKey.wrapped_key.is_not(None))
            query = query.where(OrgDataKey.user_id.is_(None) if user_id is None else OrgDataKey.user_id == user_id)
            ids = (await session.execute(query.order_by(OrgDataKey.created_at.desc(), OrgDataKey.id.desc())
                                         )).scalars().all()
            old = list(ids[1:])
            if not old:
                return []
            clauses = [Blob.key_id.in_(old), *(Blob.extra_key_ids.contains(key_id) for key_id in old)]
            rows = (await session.execute(select(Blob.id).where(Blob.org_id == org_id, Blob.id > after, or_(*clauses))
                                          .order_by(Blob.id).limit(limit))).scalars().all()
        return list(rows)

    async def read_all(self, org_id: str, blob_id: str) -> bytes:
        return await (await self.open(org_id, blob_id)).read_all()

    async def delete(self, org_id: str, blob_id: str) -> bool:
        """Remove the file, then the row. Idempotent: False when there was no such blob in the org."""
        if _canonical_id(blob_id) is None or _canonical_id(org_id) is None:
            return False
        path = self.path(org_id, blob_id)
        async with self._sessions() as session, session.begin():
            exists = (await session.execute(select(Blob.id).where(Blob.id == blob_id, Blob.org_id == org_id))
                      ).scalar_one_or_none()
            # The file goes first: a failure after this leaves a row whose delete can be retried,
            # never a readable file whose row is gone.
            await asyncio.to_thread(path.unlink, missing_ok=True)
            if exists is None:
                return False
            await session.execute(delete(Blob).where(Blob.id == blob_id, Blob.org_id == org_id))
        log.info("deleted blob %s of org %s", blob_id, org_id)
        return True

    async def expired(self, now: datetime, *, limit: int = 500) -> builtins.list[BlobRef]:
        """Blobs of every org whose retention deadline is at or before ``now`` (for the purge job)."""
        query = (select(Blob).where(Blob.retention_until.is_not(None), Blob.retention_until <= now)
                 .order_by(Blob.retention_until).limit(limit))
        async with self._sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [BlobRef.of(row) for row in rows]

    async def shred(self, org_id: str) -> int:
        """Crypto-shred the org: destroy its data keys; its blobs (rows and files) stay but never decrypt."""
        return await self._keys.destroy(org_id)

    async def search_key(self, org_id: str) -> bytes:
        """The org's 32-byte key for blind indexes (keyed hashes of words, e.g. of transcripts).

        ``HKDF-SHA256(org data key, info="ringwell search v1" | org_id)`` of the org's active data key:
        stable while that key lives, unrelated to any file key, and gone with it — after
        :meth:`shred` a new data key gives a new search key, so an old index matches nothing.
        """
        key = await self._keys.active_key(org_id)
        info = b"\x00".join((b"ringwell search v1", org_id.encode()))
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(key.secret)
