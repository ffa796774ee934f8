"""Encrypted storage at rest for recordings, voicemail audio, transcripts and greetings.

Key hierarchy (docs/encryption.md): master key (env or file) → per-org data key (wrapped in
``org_data_keys``) → per-file key (HKDF) → AES-256-GCM chunks under ``<data_dir>/blobs/``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.blobs.errors import BlobCorrupt, BlobError, BlobNotFound, KeyDestroyed, WrongMasterKey
from ringwell.blobs.keys import DataKey, KeyRing, MasterKey, load_master_key
from ringwell.blobs.store import BlobKind, BlobRef, BlobStore, OpenBlob
from ringwell.settings import Settings

__all__ = [
    "BlobCorrupt",
    "BlobError",
    "BlobKind",
    "BlobNotFound",
    "BlobRef",
    "BlobStore",
    "DataKey",
    "KeyDestroyed",
    "KeyRing",
    "MasterKey",
    "OpenBlob",
    "WrongMasterKey",
    "blob_store",
    "load_master_key",
]


def blob_store(settings: Settings, sessions: async_sessionmaker[Any]) -> BlobStore:
    """The composition root's helper: master key from the settings, files under ``<data_dir>/blobs``."""
    return BlobStore(sessions, KeyRing(sessions, load_master_key(settings)), settings.data_dir / "blobs")
