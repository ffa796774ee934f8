"""The voicemail service: deposit a message, list it, play it, transcribe it, read it, delete it.

validate → persist → emit: every change of a mailbox's counts calls ``on_change(user_id)`` after
the commit (the server wires it to the MWI lamp, RFC 3842). The audio is stored as a 16-bit 8 kHz
mono WAV in a ``voicemail`` blob, the transcript as UTF-8 text in a ``transcript`` blob, both
encrypted at rest and both carrying the message's retention deadline. Deleting a message removes
its files, then its row; afterwards it is not found.
"""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.blobs import BlobKind, BlobNotFound, BlobStore, KeyDestroyed, OpenBlob
from ringwell.features.accounts.models import Organization, User
from ringwell.features.voicemail import repository as repo
from ringwell.features.voicemail.errors import InvalidVoicemail, TranscriptNotReady, VoicemailNotFound
from ringwell.features.voicemail.models import Folder, TranscriptStatus, Voicemail, VoicemailTerm
from ringwell.features.voicemail.search import (
    MAX_QUERY_TERMS,
    hashed,
    matching,
    query_terms,
    replace_terms,
    terms_of,
)

__all__ = ["MIN_SECONDS", "SAMPLE_RATE", "VoicemailService", "pcm_to_wav"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000  # Hz; 16-bit signed little-endian mono, as the media path records it
MIN_SECONDS = 1.0  # a message under one second is discarded (a hang-up after the beep)
MAX_LIST = 500
_WAV_TYPE = "audio/wav"
_TEXT_TYPE = "text/plain; charset=utf-8"


def pcm_to_wav(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """A RIFF/WAVE file around 16-bit mono PCM."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


class VoicemailService:
    """Mailboxes of every org; the org is always passed explicitly (tenant-scoped queries)."""

    def __init__(self, sessions: async_sessionmaker[Any], blobs: BlobStore, *,
                 on_change: Callable[[str], None] | None = None, retention_days: int = 90) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self._sessions = sessions
        self._blobs = blobs
        self.on_change = on_change
        self._retention = timedelta(days=retention_days)

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    def _changed(self, user_id: str) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(user_id)
        except Exception:  # a lamp that does not update must not lose or undo the message
            log.exception("mailbox change notification for user %s failed", user_id)

    async def deposit(self, org_id: str, user_id: str, caller_number: str, caller_name: str | None,
                      pcm: bytes, call_record_id: str | None = None) -> Voicemail | None:
        """Store a message recorded for ``user_id`` (``pcm``: 16-bit 8 kHz mono). None when under 1 s."""
        if len(pcm) % 2:
            raise InvalidVoicemail("the audio is 16-bit PCM: an even number of bytes", {"bytes": len(pcm)})
        duration = len(pcm) / (2 * SAMPLE_RATE)
        if duration < MIN_SECONDS:
            log.info("discarded a %.2f s voicemail for user %s", duration, user_id)
            return None
        async with self._sessions() as session:
            owner_row = (await session.execute(select(User.id, User.processing_restricted_at).where(
                User.id == user_id, User.org_id == org_id))).one_or_none()
            owner = owner_row[0] if owner_row is not None else None
            # A person who restricted or objected to processing (privacy requests) gets no transcript.
            restricted = owner_row is not None and owner_row[1] is not None
            days = (await session.execute(select(Organization.voicemail_retention_days).where(
                Organization.id == org_id))).scalar_one_or_none()
        if owner is None:
            raise InvalidVoicemail("no such user in the organization", {"user_id": user_id})
        now = datetime.now(UTC)
        retention_until = now + (timedelta(days=days) if days else self._retention)  # the org's, else the server's
        audio = await self._blobs.put(org_id, BlobKind.VOICEMAIL, pcm_to_wav(pcm), content_type=_WAV_TYPE,
                                      retention_until=retention_until, owners=(user_id,))
        row = Voicemail(org_id=org_id, user_id=user_id, caller_number=caller_number[:64],
                        caller_name=caller_name[:128] if caller_name else None, call_record_id=call_record_id,
                        received_at=now, duration_s=round(duration, 3), audio_blob_id=audio.id,
                        transcript_blob_id=None,
                        transcript_status=(TranscriptStatus.FAILED if restricted else TranscriptStatus.PENDING).value,
                        folder=Folder.NEW.value, read_at=None, retention_until=retention_until)
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except BaseException:
            await self._blobs.delete(org_id, audio.id)  # no file without its row
            raise
        log.info("voicemail %s (%.1f s) for user %s", row.id, duration, user_id)
        self._changed(user_id)
        return row

    async def counts(self, user_id: str) -> tuple[int, int]:
        """(new, old) messages in the mailbox: the MWI ``Voice-Message`` counts."""
        async with self._sessions() as session:
            counts = await repo.count_by_folder(session, user_id)
        return counts.get(Folder.NEW.value, 0), counts.get(Folder.SAVED.value, 0)

    async def list(self, org_id: str, user_id: str | None = None, folder: Folder | None = None, *,
                   limit: int = MAX_LIST, query: str | None = None) -> Sequence[Voicemail]:
        """The org's messages (or one mailbox's), newest first; with ``query``, only those whose
        transcript has every word of it (through the blind index, ``voicemail.search``)."""
        only = None
        if query is not None:
            terms = query_terms(query)
            if not terms:
                raise InvalidVoicemail("the search has no words or digits", {"field": "q"})
            if len(terms) > MAX_QUERY_TERMS:
                raise InvalidVoicemail(f"search for at most {MAX_QUERY_TERMS} words", {"field": "q"})
            only = matching(org_id, hashed(await self._blobs.search_key(org_id), terms))
        async with self._sessions() as session:
            return await repo.list_messages(session, org_id, user_id, folder, min(max(limit, 1), MAX_LIST),
                                            only=only)

    async def get(self, org_id: str, voicemail_id: str) -> Voicemail:
        async with self._sessions() as session:
            row = await repo.get(session, org_id, voicemail_id)
        if row is None:
            raise VoicemailNotFound("no such voicemail", {"voicemail_id": voicemail_id})
        return row

    async def open_audio(self, org_id: str, voicemail_id: str) -> tuple[Voicemail, OpenBlob]:
        """The message and its WAV, decrypted as it is read (for streaming; close the blob)."""
        row = await self.get(org_id, voicemail_id)
        return row, await self._blobs.open(org_id, row.audio_blob_id)

    async def audio(self, org_id: str, voicemail_id: str) -> bytes:
        """The message as a WAV file."""
        row = await self.get(org_id, voicemail_id)
        return await self._blobs.read_all(org_id, row.audio_blob_id)

    async def transcript(self, org_id: str, voicemail_id: str) -> str:
        """The transcript's text; TranscriptNotReady while pending or after a failure."""
        row = await self.get(org_id, voicemail_id)
        if row.transcript_status != TranscriptStatus.DONE.value or row.transcript_blob_id is None:
            raise TranscriptNotReady(f"the transcript is {row.transcript_status}",
                                     {"voicemail_id": voicemail_id, "transcript_status": row.transcript_status})
        return (await self._blobs.read_all(org_id, row.transcript_blob_id)).decode("utf-8")

    async def reindex(self, org_id: str) -> int:
        """Re-hash the blind index of every transcript of the org under its current search key.

        The search key derives from the org's active data key, so after that key rotates (the key
        epoch job, ``ringwell.blobs.rotation``) the old hashes match nothing until this has run.
        Returns how many messages were re-indexed.
        """
        key = await self._blobs.search_key(org_id)
        async with self._sessions() as session:
            rows = (await session.execute(select(Voicemail.id, Voicemail.transcript_blob_id).where(
                Voicemail.org_id == org_id, Voicemail.transcript_status == TranscriptStatus.DONE.value,
                Voicemail.transcript_blob_id.is_not(None)))).all()
        done = 0
        for voicemail_id, blob_id in rows:
            try:
                text = (await self._blobs.read_all(org_id, blob_id)).decode("utf-8")
            except (BlobNotFound, KeyDestroyed):  # deleted, or its owner erased, meanwhile
                continue
            async with self._sessions() as session, session.begin():
                current = await repo.get(session, org_id, voicemail_id)
                if current is None or current.transcript_blob_id != blob_id:
                    continue
                await replace_terms(session, org_id, voicemail_id, hashed(key, terms_of(text)))
            done += 1
        return done

    async def set_transcript(self, org_id: str, voicemail_id: str, text: str | None) -> Voicemail:
        """Store the transcription's result (None: it failed) and its words' blind index."""
        row = await self.get(org_id, voicemail_id)
        old_blob = row.transcript_blob_id
        blob_id: str | None = None
        hashes: set[str] = set()
        if text is not None:
            hashes = hashed(await self._blobs.search_key(org_id), terms_of(text))
            ref = await self._blobs.put(org_id, BlobKind.TRANSCRIPT, text.encode("utf-8"), content_type=_TEXT_TYPE,
                                        retention_until=row.retention_until, owners=(row.user_id,))
            blob_id = ref.id
        async with self._sessions() as session, session.begin():
            current = await repo.get(session, org_id, voicemail_id)
            if current is None:  # deleted meanwhile: drop what was just written
                if blob_id is not None:
                    await self._blobs.delete(org_id, blob_id)
                raise VoicemailNotFound("no such voicemail", {"voicemail_id": voicemail_id})
            current.transcript_blob_id = blob_id
            current.transcript_status = (TranscriptStatus.FAILED if text is None else TranscriptStatus.DONE).value
            await replace_terms(session, org_id, voicemail_id, hashes)
            row = current
        if old_blob is not None and old_blob != blob_id:
            await self._blobs.delete(org_id, old_blob)
        return row

    async def mark_read(self, org_id: str, voicemail_id: str) -> Voicemail:
        """Move the message to the saved folder (its lamp goes out when no new message is left)."""
        async with self._sessions() as session, session.begin():
            row = await repo.get(session, org_id, voicemail_id)
            if row is None:
                raise VoicemailNotFound("no such voicemail", {"voicemail_id": voicemail_id})
            changed = row.folder != Folder.SAVED.value
            row.folder = Folder.SAVED.value
            if row.read_at is None:
                row.read_at = datetime.now(UTC)
        if changed:
            self._changed(row.user_id)
        return row

    async def delete(self, org_id: str, voicemail_id: str) -> None:
        """Remove the message's files, then its search terms and row. A second delete is VoicemailNotFound."""
        row = await self.get(org_id, voicemail_id)
        for blob_id in (row.audio_blob_id, row.transcript_blob_id):
            if blob_id is not None:
                await self._blobs.delete(org_id, blob_id)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(VoicemailTerm).where(
                VoicemailTerm.org_id == org_id, VoicemailTerm.voicemail_id == voicemail_id).execution_options(
                synchronize_session=False))
            result = await session.execute(delete(Voicemail).where(
                Voicemail.org_id == org_id, Voicemail.id == voicemail_id).execution_options(
                synchronize_session=False))
        if not result.rowcount:
            raise VoicemailNotFound("no such voicemail", {"voicemail_id": voicemail_id})
        log.info("voicemail %s of user %s deleted", voicemail_id, row.user_id)
        self._changed(row.user_id)

    async def pending_transcripts(self, received_before: datetime, *, after: tuple[datetime, str] | None = None,
                                  limit: int = 100) -> Sequence[Voicemail]:
        """Messages of every org still waiting for a transcript, oldest first, received before
        ``received_before``; ``after`` is the (received_at, id) of the previous page's last one."""
        query = select(Voicemail).where(Voicemail.transcript_status == TranscriptStatus.PENDING.value,
                                        Voicemail.received_at < received_before,
                                        # restricted processing (privacy requests): left untranscribed
                                        Voicemail.user_id.not_in(select(User.id).where(
                                            User.processing_restricted_at.is_not(None))))
        if after is not None:
            query = query.where(tuple_(Voicemail.received_at, Voicemail.id) > tuple_(*after))
        query = query.order_by(Voicemail.received_at, Voicemail.id).limit(limit)
        async with self._sessions() as session:
            rows: Sequence[Voicemail] = (await session.execute(query)).scalars().all()
        return rows
