"""Encrypted blob storage: files under ``<root>/<org_id>/<blob_id>``, metadata in ``blobs``.

File format (version 1), an online AEAD in the STREAM construction (Hoang, Reyhanitabar, Rogaway,
Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015)::

    header  = "RWBLOB" | version (1 byte = 1) | chunk_size (u32 BE) | salt (16) | nonce_prefix (7)
    chunk_i = AES-256-GCM(file_key, nonce_prefix | i (u32 BE) | last (1 byte 0/1), plaintext_i, aad)

- ``file_key = HKDF-SHA256(org data key, salt, info=binding)``: a fresh key per file, so nonces
  never repeat under one key however many files an org has.
- ``binding = "ringwell blob v1" | org_id | blob_id | kind`` (NUL-separated) and
  ``aad = header | binding``: a file copied to another org, renamed to another blob id, relabelled
  as another kind or given another header fails authentication.
- Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last (possibly empty)
  carries the last flag, so truncation at a chunk boundary, reordering, duplication and appended
  data all fail. Nothing is returned from a chunk that does not authenticate.

Files are written to a temporary name, fsynced and renamed into place; the row is inserted after
the rename, so a crash leaves at most an unreadable orphan file, never a row without its file.
Deleting unlinks the file first, then the row. Blocking crypto and file work runs in
``asyncio.to_thread``.
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
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.blobs.errors import BlobCorrupt, BlobNotFound
from ringwell.blobs.keys import DataKey, KeyRing
from ringwell.blobs.models import Blob
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


def _file_key(data_key: DataKey, salt: bytes, binding: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=SHA256(), length=32, salt=salt, info=binding).derive(data_key.secret))


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

    def __init__(self, final: Path, data_key: DataKey, binding: bytes, chunk_size: int) -> None:
        salt, self._prefix = secrets.token_bytes(16), secrets.token_bytes(7)
        header = _HEADER.pack(MAGIC, VERSION, chunk_size, salt, self._prefix)
        self._aead = _file_key(data_key, salt, binding)
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
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self._final)
        _fsync_dir(self._final.parent)

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


class _Opener:
    """Synchronous, authenticated reader of one blob file, chunk by chunk."""

    def __init__(self, path: Path, ref: BlobRef, data_key: DataKey) -> None:
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
        self._aead = _file_key(data_key, salt, binding)
        self._aad = header + binding
        self._chunk = chunk_size
        self._counter = 0
        self._ref = ref
        self.returned = 0
        self.done = False

    def read(self, budget: int = _BATCH) -> bytes:
        """Up to about ``budget`` authenticated plaintext bytes; ``b""`` with ``done`` at the end."""
        out = bytearray()
        while not self.done and len(out) < budget:
            full = self._chunk + TAG_SIZE
            last = self._remaining <= full
            length = self._remaining if last else full
            sealed = self._file.read(length)
            if len(sealed) != length or length < TAG_SIZE:
                self.close()
                raise BlobCorrupt(f"blob {self._ref.id}: the file is truncated")
            self._remaining -= length
            try:
                out += self._aead.decrypt(_nonce(self._prefix, self._counter, last), sealed, self._aad)
            except InvalidTag:
                self.close()
                raise BlobCorrupt(f"blob {self._ref.id}: chunk {self._counter} failed authentication (the file "
                                  "was altered, truncated, reordered, or belongs to another blob)") from None
            self._counter += 1
            if last:
                self.done = True
        self.returned += len(out)
        if self.done:
            self.close()
            if self.returned != self._ref.size:
                raise BlobCorrupt(f"blob {self._ref.id}: {self.returned} bytes decrypted, {self._ref.size} stored")
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
            while not self._opener.done:
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

    def path(self, org_id: str, blob_id: str) -> Path:
        """Where the blob's file lives (ids are validated: nothing else reaches the file system)."""
        org, blob = _canonical_id(org_id), _canonical_id(blob_id)
        if org is None or blob is None:
            raise BlobNotFound("no such blob", {"blob_id": blob_id})
        return self._root / org / blob

    async def put(self, org_id: str, kind: BlobKind | str, data: bytes | AsyncIterable[bytes], *,
                  content_type: str, retention_until: datetime | None = None) -> BlobRef:
        """Encrypt and store ``data`` for ``org_id``; the row appears only once the file is in place."""
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
        key = await self._keys.active_key(org_id)
        blob_id = new_id()
        final = self.path(org_id, blob_id)
        binding = _binding(org_id, blob_id, kind)
        if isinstance(data, bytes | bytearray | memoryview):
            size = await self._seal_bytes(final, key, binding, data)
        else:
            size = await self._seal_stream(final, key, binding, data)
        row = Blob(id=blob_id, org_id=org_id, key_id=key.id, kind=kind.value, content_type=content_type,
                   size=size, created_at=utcnow(), retention_until=retention_until)
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except BaseException:
            await asyncio.to_thread(final.unlink, missing_ok=True)
            raise
        log.info("stored %s blob %s of org %s (%d bytes)", kind.value, blob_id, org_id, size)
        return BlobRef.of(row)

    async def _seal_bytes(self, final: Path, key: DataKey, binding: bytes, data: bytes | bytearray | memoryview) -> int:
        def seal() -> int:
            sealer = _Sealer(final, key, binding, self._chunk)
            try:
                sealer.feed(data)
                sealer.finish()
            except BaseException:
                sealer.abort()
                raise
            return sealer.size

        return await asyncio.to_thread(seal)  # even small payloads: the fsyncs block

    async def _seal_stream(self, final: Path, key: DataKey, binding: bytes, data: AsyncIterable[bytes]) -> int:
        sealer = await asyncio.to_thread(_Sealer, final, key, binding, self._chunk)
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

    async def open(self, org_id: str, blob_id: str) -> OpenBlob:
        """Open for reading; raises BlobNotFound, KeyDestroyed, WrongMasterKey or BlobCorrupt (header)."""
        async with self._sessions() as session:
            row = (await session.execute(select(Blob).where(Blob.id == blob_id, Blob.org_id == org_id))
                   ).scalar_one_or_none() if _canonical_id(blob_id) else None
        if row is None:
            raise BlobNotFound("no such blob", {"blob_id": blob_id})
        ref = BlobRef.of(row)
        key = await self._keys.key(org_id, row.key_id)
        opener = await asyncio.to_thread(_Opener, self.path(org_id, blob_id), ref, key)
        return OpenBlob(ref, opener)

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
