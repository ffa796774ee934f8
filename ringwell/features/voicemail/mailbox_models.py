"""The table of mailbox access: one row per user with a PIN, its lockout and a custom greeting.

The PIN is kept only as an Argon2id hash; the greeting is an encrypted ``greeting`` blob
(:mod:`ringwell.blobs`) whose id the row holds. A user without a row has no PIN and the default
greeting.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base

__all__ = ["MailboxRow"]


class MailboxRow(Base):
    """``user_id``'s mailbox access. Times in UTC."""

    __tablename__ = "mailboxes"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    failed_pin_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    greeting_blob_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime]
