"""Tables of the voicemail slice: one row per message; its audio and transcript are blobs.

The audio (a WAV) and the transcript (UTF-8 text) are encrypted files of the blob store
(:mod:`ringwell.blobs`); the row holds their ids, never their content.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id

__all__ = ["Folder", "TranscriptStatus", "Voicemail", "VoicemailTerm"]


class Folder(StrEnum):
    NEW = "new"  # not yet listened to: lights the phone's message lamp
    SAVED = "saved"  # listened to (or saved from the phone)


class TranscriptStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Voicemail(Base):
    """One message in ``user_id``'s mailbox. Times in UTC."""

    __tablename__ = "voicemails"
    # A mailbox newest first, and the retention purge.
    __table_args__ = (Index("ix_voicemails_org_user_received", "org_id", "user_id", "received_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    caller_number: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(128))
    call_record_id: Mapped[str | None] = mapped_column(ForeignKey("call_records.id", ondelete="SET NULL"))
    received_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    audio_blob_id: Mapped[str] = mapped_column(String(36))
    transcript_blob_id: Mapped[str | None] = mapped_column(String(36))
    transcript_status: Mapped[str] = mapped_column(String(8), default=TranscriptStatus.PENDING.value)
    folder: Mapped[str] = mapped_column(String(8), default=Folder.NEW.value)
    read_at: Mapped[datetime | None]
    retention_until: Mapped[datetime] = mapped_column(index=True)


class VoicemailTerm(Base):
    """One word of a message's transcript, as a keyed hash (blind index, ``voicemail.search``).

    ``term`` is hex HMAC-SHA256 under the org's search key: equal words give equal hashes within
    one org, and nothing of the word is stored. Goes with its message (cascade).
    """

    __tablename__ = "voicemail_terms"
    __table_args__ = (Index("ix_voicemail_terms_org_term", "org_id", "term"),)

    voicemail_id: Mapped[str] = mapped_column(ForeignKey("voicemails.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
