"""Transcribing voicemail in the background, on this machine only (``ringwell.transcribe``).

A deposited message is queued; one worker transcribes one message at a time (the model decodes
on one thread, off the event loop) and stores the text with the message — encrypted, like the
audio. A failure marks the transcript failed; the message itself is kept. The model is loaded on
the first message, not at start-up. The queue is bounded: when it is full the message keeps a
``pending`` transcript (logged), rather than the server holding unbounded audio in memory.

Pending transcripts survive a restart: :meth:`TranscriptionJobs.start` also starts a one-off
*resume* task that pages through the messages still ``pending`` from before the start (oldest
first, at most ``resume_limit``) and queues them by id only — the worker reads the audio back
from its encrypted blob (WAV → PCM) when their turn comes, so waiting messages cost no memory.
The resume task fills at most half the queue, leaving room for messages deposited meanwhile; a
message it cannot read (its key shredded, its file gone) is marked failed like any other failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import wave
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ringwell.features.voicemail.errors import VoicemailNotFound
from ringwell.features.voicemail.service import SAMPLE_RATE, VoicemailService
from ringwell.transcribe.engine import Transcriber

__all__ = ["TranscriptionJobs", "wav_to_pcm"]

log = logging.getLogger(__name__)

_RESUME_PAGE = 50


def wav_to_pcm(data: bytes) -> tuple[bytes, int]:
    """(16-bit mono PCM, sample rate) of a stored message's WAV; ``wave.Error`` if it is not one."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise wave.Error(f"not 16-bit mono: {wav.getnchannels()} channel(s), {8 * wav.getsampwidth()} bits")
        return wav.readframes(wav.getnframes()), wav.getframerate()


class TranscriptionJobs:
    def __init__(self, service: VoicemailService, *, transcriber: Callable[[], Transcriber] = Transcriber,
                 queue_size: int = 100, on_done: Callable[[str, str], Awaitable[object]] | None = None,
                 resume_limit: int = 10_000) -> None:
        if queue_size < 2:
            raise ValueError("queue_size must be at least 2")
        self._service = service
        self._on_done = on_done  # (org_id, voicemail_id), once the transcript is stored or has failed
        self._make = transcriber
        self._transcriber: Transcriber | None = None
        # (org_id, voicemail_id, pcm); pcm None: read the message's audio back from its blob
        self._queue: asyncio.Queue[tuple[str, str, bytes | None]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._resume_task: asyncio.Task[None] | None = None
        self._resume_limit = resume_limit
        self._taken = asyncio.Event()  # set whenever the worker takes a message off the queue
        self.done = 0
        self.failed = 0
        self.resumed = 0  # pending messages from before the start that were queued again

    def start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="voicemail-transcripts")
            self._resume_task = loop.create_task(self._resume(datetime.now(UTC)), name="voicemail-transcripts-resume")

    async def stop(self) -> None:
        tasks = [t for t in (self._resume_task, self._task) if t is not None]
        self._task = self._resume_task = None
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def submit(self, org_id: str, voicemail_id: str, pcm: bytes) -> bool:
        """Queue a message's audio (16-bit 8 kHz mono); False when the queue is full."""
        try:
            self._queue.put_nowait((org_id, voicemail_id, pcm))
        except asyncio.QueueFull:
            log.warning("transcription queue full: voicemail %s stays without a transcript", voicemail_id)
            return False
        return True

    async def _resume(self, started: datetime) -> None:
        """Queue again the messages left pending before ``started`` (a restart), by id, bounded."""
        try:
            after: tuple[datetime, str] | None = None
            while self.resumed < self._resume_limit:
                page = await self._service.pending_transcripts(
                    started, after=after, limit=min(_RESUME_PAGE, self._resume_limit - self.resumed))
                if not page:
                    break
                for row in page:
                    while self._queue.qsize() >= self._queue.maxsize // 2:
                        self._taken.clear()
                        await self._taken.wait()
                    self._queue.put_nowait((row.org_id, row.id, None))
                    self.resumed += 1
                last = page[-1]
                after = (last.received_at, last.id)
            if self.resumed:
                log.info("queued %d voicemail(s) left without a transcript before the start", self.resumed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("queueing the pending voicemail transcripts failed; they wait for the next start")

    async def _pcm(self, org_id: str, voicemail_id: str) -> tuple[bytes, int]:
        wav = await self._service.audio(org_id, voicemail_id)
        return await asyncio.to_thread(wav_to_pcm, wav)

    async def _run(self) -> None:
        while True:
            org_id, voicemail_id, pcm = await self._queue.get()
            self._taken.set()
            try:
                rate = SAMPLE_RATE
                if pcm is None:
                    pcm, rate = await self._pcm(org_id, voicemail_id)
                if self._transcriber is None:
                    self._transcriber = await asyncio.to_thread(self._make)
                transcript = await self._transcriber.transcribe(pcm, rate)
                await self._service.set_transcript(org_id, voicemail_id, transcript.text)
                self.done += 1
            except asyncio.CancelledError:
                raise
            except VoicemailNotFound:  # deleted while it waited: nothing to store, nobody to tell
                log.info("voicemail %s was deleted before its transcript was done", voicemail_id)
                continue
            except Exception:
                self.failed += 1
                log.exception("transcribing voicemail %s failed", voicemail_id)
                with contextlib.suppress(Exception):
                    await self._service.set_transcript(org_id, voicemail_id, None)
            if self._on_done is not None:
                try:
                    await self._on_done(org_id, voicemail_id)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("after transcribing voicemail %s", voicemail_id)
