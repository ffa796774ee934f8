"""The key hierarchy: one master key (env or file) wraps the data keys of each org and of each person.

- The master key is 32 random bytes, base64 in ``RINGWELL_MASTER_KEY`` or in the key file
  (``master_key_file``, default ``<data_dir>/master.key``; created with mode 0600 on first use when
  no environment key is given). It is never logged and never has a default.
- A data key is 32 random bytes per org, stored only wrapped: ``0x01 | nonce(12) | AES-256-GCM(dk)``
  with associated data naming the org, so a wrapped key copied to another org's row fails.
- A person's data key (``user_id`` set) encrypts their media (their voicemail, transcripts,
  greeting; the recordings of calls they were on, together with the other parties' keys). Its
  associated data names the org *and* the person, so a wrapped key moved to another row fails.
- Unwrapped data keys are cached in memory (bounded LRU); destroying an org's keys (or one
  person's) drops them from the cache and from the database (crypto-shredding): every copy of the
  files, backups included, is then unreadable.
- Rotation (:meth:`KeyRing.rotate`) adds a newer key for new blobs; older keys stay live, so what
  they encrypt stays readable until it is re-encrypted (``BlobStore.reencrypt``) or deleted; then
  :meth:`KeyRing.retire` destroys them. The key epoch job (``ringwell.blobs.rotation.rotate_due``)
  does this for every org and person each ``key_epoch_days``: a deleted file's copy (a backup)
  stops decrypting within that period.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.blobs.errors import KeyDestroyed, WrongMasterKey
from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.errors import ConfigError
from ringwell.settings import Settings
from ringwell.storage.base import new_id, utcnow

__all__ = ["DataKey", "KeyRing", "MasterKey", "load_master_key"]

log = logging.getLogger(__name__)

KEY_BYTES = 32
_WRAP_VERSION = b"\x01"
_WRAP_AAD = b"ringwell org data key v1\x00"
_PERSON_WRAP_AAD = b"ringwell person data key v1\x00"


@dataclass(frozen=True, slots=True)
class MasterKey:
    """The 32-byte master key. ``key_id`` is a public fingerprint (HMAC of a constant), safe to log."""

    secret: bytes = field(repr=False)
    source: str  # "environment" or the key file's path: for messages, never the key itself

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError("a master key is 32 bytes")

    @property
    def key_id(self) -> str:
        return hmac.new(self.secret, b"ringwell master key id", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def generate(cls, source: str = "generated") -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES), source)

    def encoded(self) -> str:
        """Base64, the form of ``RINGWELL_MASTER_KEY`` and of the key file."""
        return base64.b64encode(self.secret).decode("ascii")


def _decode(key: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(key, "not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(key, f"must decode to {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def load_master_key(settings: Settings) -> MasterKey:
    """The master key from ``RINGWELL_MASTER_KEY`` (``settings.master_key``), else from the key file.

    The key file is created (32 random bytes, base64, mode 0600) when it does not exist. A key
    file readable by group or others is used but warned about.
    """
    if settings.master_key:
        return MasterKey(_decode("master_key", settings.master_key), "environment")
    path = settings.master_key_path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError("master_key_file", f"cannot create {path}: {exc.strerror}") from None
    else:
        generated = MasterKey.generate(str(path))
        with os.fdopen(fd, "w") as handle:
            handle.write(generated.encoded() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("generated a new master key in %s (id %s): back it up, without it no recording, voicemail "
                    "or transcript can be read", path, generated.key_id)
        return generated
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("master_key_file", f"cannot read {path}: {exc}") from None
    if mode & 0o077:
        log.warning("master key file %s is readable by other users (mode %o): chmod 600 it", path, mode & 0o777)
    return MasterKey(_decode("master_key_file", text), str(path))


@dataclass(frozen=True, slots=True)
class DataKey:
    """An unwrapped data key: the org's own (``user_id`` None) or one person's."""

    id: str
    org_id: str
    secret: bytes = field(repr=False)
    user_id: str | None = None


def _wrap_aad(org_id: str, user_id: str | None = None) -> bytes:
    if user_id is None:
        return _WRAP_AAD + org_id.encode()
    return _PERSON_WRAP_AAD + org_id.encode() + b"\x00" + user_id.encode()


def wrap(master: MasterKey, org_id: str, secret: bytes, user_id: str | None = None) -> bytes:
    """``secret`` wrapped for ``org_id`` (and the person ``user_id``, when it is theirs)."""
    nonce = secrets.token_bytes(12)
    return _WRAP_VERSION + nonce + AESGCM(master.secret).encrypt(nonce, secret, _wrap_aad(org_id, user_id))


def unwrap(master: MasterKey, row: OrgDataKey) -> bytes:
    wrapped = row.wrapped_key
    if wrapped is None or row.destroyed_at is not None:
        whose = "its organization's key" if row.user_id is None else "the key of a person it belonged to"
        raise KeyDestroyed(f"this item was permanently destroyed with {whose}",
                           {"org_id": row.org_id, "key_id": row.id})
    try:
        if wrapped[:1] != _WRAP_VERSION:
            raise InvalidTag
        return AESGCM(master.secret).decrypt(wrapped[1:13], wrapped[13:], _wrap_aad(row.org_id, row.user_id))
    except InvalidTag:
        raise WrongMasterKey(
            f"data key {row.id} of org {row.org_id} does not unwrap under the master key from {master.source} "
            f"(id {master.key_id}; the key was wrapped under id {row.master_key_id}): restore the master key "
            "that was in use (see docs/encryption.md)") from None


class KeyRing:
    """Per-org data keys: created on first use, unwrapped through a bounded cache, destroyable."""

    def __init__(self, sessions: async_sessionmaker[Any], master: MasterKey, *, cache_size: int = 256) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._sessions = sessions
        self._master = master
        self._cache: OrderedDict[str, DataKey] = OrderedDict()
        self._cache_size = cache_size

    @property
    def master_key_id(self) -> str:
        return self._master.key_id

    def _remember(self, key: DataKey) -> DataKey:
        self._cache[key.id] = key
        self._cache.move_to_end(key.id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return key

    def _from_row(self, row: OrgDataKey) -> DataKey:
        cached = self._cache.get(row.id)
        if cached is not None and row.wrapped_key is not None and row.destroyed_at is None:
            self._cache.move_to_end(row.id)
            return cached
        return self._remember(DataKey(row.id, row.org_id, unwrap(self._master, row), row.user_id))

    async def active_key(self, org_id: str, user_id: str | None = None) -> DataKey:
        """The newest live data key of the org (``user_id`` None) or of the person ``user_id`` in
        it, created (and wrapped) if there is none."""
        async with self._sessions() as session, session.begin():
            row = await self._newest_live(session, org_id, user_id)
            if row is None:
                return await self._create(session, org_id, user_id)
            return self._from_row(row)

    async def active_keys(self, org_id: str, user_ids: Iterable[str | None]) -> list[DataKey]:
        """The active key of each owner, deduplicated, in a stable order (the org key, then persons by id)."""
        owners = sorted(set(user_ids), key=lambda u: (u is not None, u or ""))
        return [await self.active_key(org_id, user_id) for user_id in owners]

    async def _create(self, session: AsyncSession, org_id: str, user_id: str | None) -> DataKey:
        secret = secrets.token_bytes(KEY_BYTES)
        row = OrgDataKey(id=new_id(), org_id=org_id, user_id=user_id,
                         wrapped_key=wrap(self._master, org_id, secret, user_id),
                         master_key_id=self._master.key_id, created_at=utcnow())
        session.add(row)
        await session.flush()
        return self._remember(DataKey(row.id, org_id, secret, user_id))

    @staticmethod
    def _whose(user_id: str | None) -> ColumnElement[bool]:
        return OrgDataKey.user_id.is_(None) if user_id is None else OrgDataKey.user_id == user_id

    @classmethod
    async def _newest_live(cls, session: AsyncSession, org_id: str, user_id: str | None) -> OrgDataKey | None:
        query = (select(OrgDataKey).where(OrgDataKey.org_id == org_id, cls._whose(user_id),
                                          OrgDataKey.destroyed_at.is_(None))
                 .order_by(OrgDataKey.created_at.desc(), OrgDataKey.id.desc()).limit(1))
        row: OrgDataKey | None = (await session.execute(query)).scalar_one_or_none()
        return row

    async def rotate(self, org_id: str, user_id: str | None = None) -> DataKey:
        """A new data key for the org (or the person): new blobs use it from now on. Older keys stay
        live, so everything they encrypt stays readable (no downtime); ``BlobStore.reencrypt`` moves
        old blobs to the new key, after which :meth:`retire` may destroy the old ones."""
        async with self._sessions() as session, session.begin():
            key = await self._create(session, org_id, user_id)
        log.warning("rotated the data key of %s of org %s: new key %s",
                    "the org" if user_id is None else f"user {user_id}", org_id, key.id)
        return key

    async def retire(self, org_id: str, user_id: str | None = None, *, min_age: timedelta = timedelta(0)) -> int:
        """Destroy the live keys of the org (or person) that no blob uses any more, except the newest
        (the active key) and keys younger than ``min_age``. Returns how many were destroyed.

        Safe against a blob written meanwhile: the candidate keys are locked first (``FOR UPDATE``),
        then one conditional ``UPDATE ... WHERE NOT EXISTS (a blob under the key)``, a statement of
        its own (PostgreSQL takes a new snapshot for it: a blob committed while the lock was awaited
        is seen; SQLite runs it under its single writer lock). A writer that still holds a key it
        was given as active checks, under the same lock, that the key is live before its row
        commits (:meth:`live_keys`), and re-encrypts under the active keys if not.
        """
        now = utcnow()
        async with self._sessions() as session, session.begin():
            newest = await self._newest_live(session, org_id, user_id)
            if newest is None:
                return 0
            candidates = list((await session.execute(
                select(OrgDataKey.id).where(OrgDataKey.org_id == org_id, self._whose(user_id),
                                            OrgDataKey.id != newest.id, OrgDataKey.wrapped_key.is_not(None),
                                            OrgDataKey.created_at <= now - min_age)
                .order_by(OrgDataKey.id).with_for_update())).scalars())
            if not candidates:
                return 0
            used = select(Blob.id).where(or_(Blob.key_id == OrgDataKey.id,
                                             Blob.extra_key_ids.contains(OrgDataKey.id))).exists()
            destroyed = set((await session.execute(
                update(OrgDataKey).where(OrgDataKey.id.in_(candidates), OrgDataKey.wrapped_key.is_not(None), ~used)
                .values(wrapped_key=None, destroyed_at=now).returning(OrgDataKey.id)
                .execution_options(synchronize_session=False))).scalars())
        self._forget(lambda k: k.id in destroyed)
        if destroyed:
            log.warning("retired %d old data key(s) of %s of org %s", len(destroyed),
                        "the org" if user_id is None else f"user {user_id}", org_id)
        return len(destroyed)

    @staticmethod
    async def live_keys(session: AsyncSession, key_ids: Iterable[str]) -> set[str]:
        """Which of ``key_ids`` are live, locked (``FOR SHARE``) until ``session`` commits: a blob row
        inserted in the same transaction can then never end up under a key :meth:`retire` destroys."""
        ids = sorted(set(key_ids))
        rows = (await session.execute(select(OrgDataKey.id).where(
            OrgDataKey.id.in_(ids), OrgDataKey.wrapped_key.is_not(None)).with_for_update(read=True))).scalars()
        return set(rows)

    async def newest_keys(self) -> list[tuple[str, str | None, datetime, int]]:
        """Per owner with a live key, every org: (org id, user id or None, creation of the newest
        live key, how many live keys). For the key epoch job."""
        async with self._sessions() as session:
            rows = (await session.execute(
                select(OrgDataKey.org_id, OrgDataKey.user_id, func.max(OrgDataKey.created_at), func.count())
                .where(OrgDataKey.wrapped_key.is_not(None))
                .group_by(OrgDataKey.org_id, OrgDataKey.user_id)
                .order_by(OrgDataKey.org_id, OrgDataKey.user_id))).all()
        return [(org_id, user_id, newest, int(count)) for org_id, user_id, newest, count in rows]

    def _forget(self, which: Callable[[DataKey], bool]) -> None:
        for key_id in [k for k, v in self._cache.items() if which(v)]:
            del self._cache[key_id]

    async def key(self, org_id: str, key_id: str) -> DataKey:
        """The data key ``key_id`` of ``org_id``; the row is read every time so a destroy is seen."""
        async with self._sessions() as session:
            row = (await session.execute(select(OrgDataKey).where(
                OrgDataKey.id == key_id, OrgDataKey.org_id == org_id))).scalar_one_or_none()
        if row is None:
            raise KeyDestroyed("this item's key no longer exists", {"org_id": org_id, "key_id": key_id})
        return self._from_row(row)

    async def rewrap(self, new_master: MasterKey) -> int:
        """Re-wrap every live data key under ``new_master`` in one transaction (master key rotation).

        All or nothing: a key that does not unwrap under the current master key aborts it with
        WrongMasterKey. Afterwards this ring uses ``new_master``; other processes need it too.
        """
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(select(OrgDataKey).where(OrgDataKey.wrapped_key.is_not(None))
                                          .with_for_update())).scalars().all()
            for row in rows:
                secret = unwrap(self._master, row)
                row.wrapped_key = wrap(new_master, row.org_id, secret, row.user_id)
                row.master_key_id = new_master.key_id
        self._master = new_master
        log.warning("re-wrapped %d data key(s) under master key %s", len(rows), new_master.key_id)
        return len(rows)

    async def destroy(self, org_id: str) -> int:
        """Crypto-shred the org: erase every wrapped data key it has. Returns how many were live."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(OrgDataKey).where(OrgDataKey.org_id == org_id, OrgDataKey.wrapped_key.is_not(None))
                .values(wrapped_key=None, destroyed_at=utcnow()).execution_options(synchronize_session=False))
        self._forget(lambda k: k.org_id == org_id)
        count: int = result.rowcount
        log.warning("destroyed %d data key(s) of org %s: its encrypted blobs are unreadable", count, org_id)
        return count

    def forget_org(self, org_id: str) -> None:
        """Drop every unwrapped key of ``org_id`` from this ring's cache, once their destruction committed
        in a transaction of the caller's (the purge of a closed organization)."""
        self._forget(lambda k: k.org_id == org_id)

    def forget_person(self, org_id: str, user_id: str) -> None:
        """Drop the person's unwrapped keys from this ring's cache, once their destruction committed
        in a transaction of the caller's (the erasure destroys them together with the person's rows)."""
        self._forget(lambda k: k.org_id == org_id and k.user_id == user_id)

    async def destroy_person(self, org_id: str, user_id: str) -> int:
        """Crypto-shred one person: erase every wrapped data key of ``user_id`` in ``org_id``.

        Their media (and every recording they were a party to) never decrypts again, from any copy.
        The org's own key and other people's keys are untouched. Returns how many were live.
        """
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(OrgDataKey).where(OrgDataKey.org_id == org_id, OrgDataKey.user_id == user_id,
                                         OrgDataKey.wrapped_key.is_not(None))
                .values(wrapped_key=None, destroyed_at=utcnow()).execution_options(synchronize_session=False))
        self._forget(lambda k: k.org_id == org_id and k.user_id == user_id)
        count: int = result.rowcount
        log.warning("destroyed %d data key(s) of user %s of org %s", count, user_id, org_id)
        return count
