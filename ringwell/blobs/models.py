"""Tables of encrypted blob storage: wrapped per-org data keys and blob metadata.

The blob bytes live in files under ``<data_dir>/blobs/<org_id>/<blob_id>``, never in the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["Blob", "OrgDataKey"]


class OrgDataKey(Base):
    """An org's data key, AES-256-GCM-wrapped under the master key with the org id as associated data.

    Destroying it (``wrapped_key`` set to NULL, ``destroyed_at`` set) crypto-shreds every blob
    encrypted under it. An org may hold several keys over time; new blobs use the newest live one.
    """

    __tablename__ = "org_data_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # version | nonce | ciphertext+tag
    master_key_id: Mapped[str] = mapped_column(String(16))  # fingerprint of the wrapping master key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    destroyed_at: Mapped[datetime | None]


class Blob(Base):
    """One encrypted item (voicemail audio, recording, transcript, greeting, hold music)."""

    __tablename__ = "blobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("org_data_keys.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)  # plaintext bytes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retention_until: Mapped[datetime | None] = mapped_column(index=True)  # UTC; None: kept until deleted
