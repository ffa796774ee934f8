"""Transcribing voicemail in the background, on this machine only (``ringwell.transcribe``).

A deposited message is queued; one worker transcribes one message at a time (the model decodes
on one thread, off the event loop) and stores the text with the message — encrypted, like the
audio. A failure marks the transcript failed; the message itself is kept. The model is loaded on
the first message, not at start-up. The queue is bounded: when it is full the message keeps a
``pending`` transcript (logged), rather than the server holding unbounded audio in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ringwell.features.voicemail.service import VoicemailService
from ringwell.transcribe.engine import Transcriber

__all__ = ["TranscriptionJobs"]

log = logging.getLogger(__name__)


class TranscriptionJobs:
    def __init__(self, service: VoicemailService, *, transcriber: Callable[[], Transcriber] = Transcriber,
                 queue_size: int = 100, on_done: Callable[[str, str], Awaitable[object]] | None = None) -> None:
        self._service = service
        self._on_done = on_done  # (org_id, voicemail_id), once the transcript is stored or has failed
        self._make = transcriber
        self._transcriber: Transcriber | None = None
        self._queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self.done = 0
        self.failed = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="voicemail-transcripts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
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

    async def _run(self) -> None:
        while True:
            org_id, voicemail_id, pcm = await self._queue.get()
            try:
                if self._transcriber is None:
                    self._transcriber = await asyncio.to_thread(self._make)
                transcript = await self._transcriber.transcribe(pcm)
                await self._service.set_transcript(org_id, voicemail_id, transcript.text)
                self.done += 1
            except asyncio.CancelledError:
                raise
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
