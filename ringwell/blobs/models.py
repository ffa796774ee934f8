"""Tables of encrypted blob storage: wrapped per-org data keys and blob metadata.

The blob bytes live in files under ``<data_dir>/blobs/<org_id>/<blob_id>``, never in the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["Blob", "OrgDataKey"]


class OrgDataKey(Base):
    """An org's data key, AES-256-GCM-wrapped under the master key with the org id as associated data.

    A person's data key (``user_id`` set) is wrapped with the org id *and* the user id as associated
    data, so a wrapped key copied to another person's row or another org fails to unwrap.

    Destroying it (``wrapped_key`` set to NULL, ``destroyed_at`` set) crypto-shreds every blob
    encrypted under it. An org may hold several keys over time; new blobs use the newest live one.
    """

    __tablename__ = "org_data_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    # The person whose media the key encrypts; None: the org's own key. No foreign key on purpose: the
    # destroyed key's row (no key material left) outlives the person as the record of the shredding.
    user_id: Mapped[str | None] = mapped_column(String(36), index=True)
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
    # A blob of several people (a recording of a call between two users): the other owners' data key
    # ids, space-separated, in derivation order after ``key_id``. None: one key. Destroying any of them
    # makes the blob unreadable.
    extra_key_ids: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)  # plaintext bytes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retention_until: Mapped[datetime | None] = mapped_column(index=True)  # UTC; None: kept until deleted
