"""Hold music: one uploaded tune per organization, kept as an encrypted ``hold_music`` blob.

The upload (WAV or MP3, up to ten minutes) is converted once to 16-bit 8 kHz mono PCM
(:func:`ringwell.media.prompts.convert_upload`) and stored as a WAV blob of the org; the newest
such blob is the org's hold music, and storing one deletes the older ones (so at most one stays
once the upload finishes). No table: the blob store is the record. ``hold_music(org_id)`` is what
the call path plays (``MediaEndpoint.play``); None means the org uploaded none.
"""

from __future__ import annotations

import io
import logging
import wave

from ringwell.blobs import BlobKind, BlobStore
from ringwell.errors import Invalid, NotFound
from ringwell.features.voicemail.service import SAMPLE_RATE, pcm_to_wav
from ringwell.media.prompts import UploadError, convert_upload

__all__ = ["HOLD_MUSIC_MAX_SECONDS", "HoldMusicNotFound", "HoldMusicService", "InvalidHoldMusic"]

log = logging.getLogger(__name__)

HOLD_MUSIC_MAX_SECONDS = 600.0
_WAV_TYPE = "audio/wav"


class InvalidHoldMusic(Invalid):
    error_id = "invalid_hold_music"


class HoldMusicNotFound(NotFound):
    error_id = "hold_music_not_found"


class HoldMusicService:
    """Every org's hold music (the org passed explicitly)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def _current(self, org_id: str) -> str | None:
        refs = await self._blobs.list(org_id, BlobKind.HOLD_MUSIC, limit=1)
        return refs[0].id if refs else None

    async def upload(self, org_id: str, data: bytes) -> float:
        """Store an uploaded WAV or MP3 as the org's hold music; returns its length in seconds."""
        try:
            pcm = await convert_upload(data, max_seconds=HOLD_MUSIC_MAX_SECONDS)
        except UploadError as exc:
            raise InvalidHoldMusic(str(exc), {"formats": ["audio/wav", "audio/mpeg"],
                                              "max_seconds": HOLD_MUSIC_MAX_SECONDS}) from exc
        ref = await self._blobs.put(org_id, BlobKind.HOLD_MUSIC, pcm_to_wav(pcm), content_type=_WAV_TYPE)
        for old in await self._blobs.list(org_id, BlobKind.HOLD_MUSIC, limit=100):
            if old.created_at < ref.created_at:
                await self._blobs.delete(org_id, old.id)
        seconds = len(pcm) / 2 / SAMPLE_RATE
        log.info("hold music of org %s: %.1f s", org_id, seconds)
        return seconds

    async def wav(self, org_id: str) -> bytes:
        blob_id = await self._current(org_id)
        if blob_id is None:
            raise HoldMusicNotFound("this organization has no hold music")
        return await self._blobs.read_all(org_id, blob_id)

    async def hold_music(self, org_id: str) -> bytes | None:
        """The org's hold music as 16-bit 8 kHz mono PCM, or None."""
        blob_id = await self._current(org_id)
        if blob_id is None:
            return None
        with wave.open(io.BytesIO(await self._blobs.read_all(org_id, blob_id)), "rb") as wav:
            return wav.readframes(wav.getnframes())

    async def delete(self, org_id: str) -> None:
        """Remove the org's hold music; HoldMusicNotFound when there is none."""
        refs = await self._blobs.list(org_id, BlobKind.HOLD_MUSIC, limit=100)
        if not refs:
            raise HoldMusicNotFound("this organization has no hold music")
        for ref in refs:
            await self._blobs.delete(org_id, ref.id)
