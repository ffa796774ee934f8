"""Recording calls as they happen: the announcement, the recorder, the phone's and the API's controls.

Theory of operation
-------------------
``CallManager`` tells ``CallRecordings`` when a call is answered (its media session, the codec
and who is on it) and when it ends. On answer the org's policies are asked (``RecordingService
.decide``); a call that may never be recorded costs nothing more. Otherwise the session's tap is
taken to watch both legs' RFC 4733 telephone-events for the phone codes, and — when the policy
records the call — recording starts at once:

1. **announcement** — every party hears "This call is being recorded" (``media.announce``:
   the relay stops forwarding meanwhile, so nobody is recorded before they were told);
2. **recording** — a ``CallRecorder`` (left = caller, right = callee) hands stereo PCM to an
   ``OggOpusWriter`` whose pages go straight into an encrypted blob upload
   (``RecordingService.begin``): nothing plain reaches the disk;
3. **stop** — on hang-up, ``*1`` again or the API: the writer is closed and the row stored with
   the call record's id (one call can have several recordings when started and stopped on demand).

Phone codes (RFC 4733 digits from either party, ``*`` then the digit within ``CODE_SECONDS``):
``*1`` starts (with the announcement) or stops a recording, ``*2`` pauses or resumes it — a
pause writes silence, e.g. while a card number is read out. The API does the same through
``control()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ringwell.features.recordings.errors import CallNotLive, RecordingNotAllowed, RecordingState
from ringwell.features.recordings.models import Action, Trigger
from ringwell.features.recordings.service import CallParties, Decision, RecordingService, Upload
from ringwell.media.announce import LegCodec, announce
from ringwell.media.apps import STATIC_PAYLOAD_TYPES, CallRecorder
from ringwell.media.dtmf import DtmfCollector, parse_telephone_event
from ringwell.media.oggopus import CONTENT_TYPE, OggOpusWriter
from ringwell.media.prompts import PromptCache
from ringwell.media.relay import MediaSession, Tap

__all__ = ["ANNOUNCEMENT", "CODE_SECONDS", "Action", "Announced", "CallRecordings"]

log = logging.getLogger(__name__)

ANNOUNCEMENT = "This call is being recorded."
CODE_SECONDS = 3.0
_AUDIO_PTS = frozenset({0, 8, 13})  # PCMU, PCMA, comfort noise: never telephone-events

# Told when every party heard the announcement and recording is about to begin: (parties, call id,
# the words played). The composition root records it as consent (features.privacy.consent).
Announced = Callable[[CallParties, str, str], Awaitable[None]]


@dataclass
class _Take:
    """One recording in progress."""

    recorder: CallRecorder
    writer: OggOpusWriter
    upload: Upload
    trigger: Trigger
    started_at: datetime


@dataclass
class _Live:
    call_id: str
    session: MediaSession
    legs: dict[str, LegCodec]
    parties: CallParties
    decision: Decision = field(default_factory=lambda: Decision(False, False))
    take: _Take | None = None
    announcing: bool = False
    ended: bool = False
    dtmf: dict[str, DtmfCollector] = field(default_factory=lambda: {"a": DtmfCollector(), "b": DtmfCollector()})
    star_at: dict[str, float] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    tap: Tap | None = None


class CallRecordings:
    """Live recordings of the calls of one ``CallManager`` (see the module docstring)."""

    def __init__(self, service: RecordingService, prompts: PromptCache, *, announcement: str = ANNOUNCEMENT,
                 on_announced: Announced | None = None) -> None:
        self.service = service
        self._prompts = prompts
        self.announcement = announcement
        self.on_announced = on_announced
        self._live: dict[str, _Live] = {}
        self._finishing: set[asyncio.Task[Any]] = set()
        self.stored = 0

    # -- from the call driver ----------------------------------------------------------------
    def answered(self, call_id: str, session: MediaSession, codec: str | None, parties: CallParties) -> None:
        """A call was answered: decide, and start recording if its policy says so (in a task)."""
        name = (codec or "").upper()
        if name not in STATIC_PAYLOAD_TYPES or call_id in self._live:
            return  # only G.711 is recorded (what the relay carries for phones and browsers alike)
        legs = {side: LegCodec(name, STATIC_PAYLOAD_TYPES[name]) for side in ("a", "b")}
        live = _Live(call_id, session, legs, parties)
        live.tap = self._make_tap(live)
        self._live[call_id] = live
        # Nobody hears anybody until the policy is known: a recorded call's parties hear the
        # announcement first, as the first audio their phones get (the decision is cached per org).
        session.muted = True
        self._spawn(live, self._on_answer(live))

    def ended(self, call_id: str) -> None:
        """The call is over (called before its media session closes): finish what is recording."""
        live = self._live.pop(call_id, None)
        if live is None:
            return
        live.ended = True
        for task in live.tasks:
            task.cancel()
        if live.session.tap is live.tap:
            live.session.tap = None
        if live.take is not None:
            take, live.take = live.take, None
            self._finish(live, take)

    def parties(self, call_id: str) -> CallParties | None:
        """Who is on a call in progress here (None: not live, or never recordable)."""
        live = self._live.get(call_id)
        return None if live is None else live.parties

    def recording(self, call_id: str) -> bool:
        live = self._live.get(call_id)
        return live is not None and live.take is not None

    async def control(self, call_id: str, action: Action, trigger: Trigger = Trigger.API) -> str:
        """Start, stop, pause or resume a call's recording; returns the state after it."""
        live = self._live.get(call_id)
        if live is None:
            raise CallNotLive("the call is not in progress here", {"call_id": call_id})
        if not live.decision.allowed:
            raise RecordingNotAllowed("recording is off for this call's parties", {"call_id": call_id})
        take = live.take
        if action is Action.START:
            if take is not None or live.announcing:
                raise RecordingState("the call is already being recorded", {"call_id": call_id})
            await self._start(live, trigger)
        elif take is None:
            raise RecordingState("the call is not being recorded", {"call_id": call_id})
        elif action is Action.STOP:
            live.take = None
            self._finish(live, take)
        elif action is Action.PAUSE:
            take.recorder.pause()
        else:
            take.recorder.resume()
        return self.state(call_id)

    def state(self, call_id: str) -> str:
        live = self._live.get(call_id)
        if live is None:
            return "ended"
        if live.announcing:
            return "announcing"
        if live.take is None:
            return "stopped"
        return "paused" if live.take.recorder.paused else "recording"

    async def stop(self) -> None:
        """Finish every recording (server shutdown): what was recorded is stored."""
        for call_id in list(self._live):
            self.ended(call_id)
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    # -- inside ----------------------------------------------------------------------------
    def _spawn(self, live: _Live, work: Any) -> None:
        task = asyncio.ensure_future(work)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)
        task.add_done_callback(self._retrieve)

    @staticmethod
    def _retrieve(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("call recording failed", exc_info=task.exception())

    async def _on_answer(self, live: _Live) -> None:
        try:
            live.decision = await self.service.decide(live.parties)
        finally:
            if not live.decision.record:
                live.session.muted = False
        if not live.decision.allowed or live.ended:
            return  # stays known (the API answers "not allowed"), untapped: nothing more per packet
        if live.session.tap is None:
            live.session.tap = live.tap
        if live.decision.record:
            await self._start(live, Trigger.POLICY)

    def _make_tap(self, live: _Live) -> Tap:
        """The session's tap while the call may be recorded: phone codes, and the recorder's packets."""

        def tap(side: str, payload_type: int, sequence: int, timestamp: int, payload: bytes) -> None:
            if payload_type not in _AUDIO_PTS and len(payload) == 4:
                self._event(live, side, timestamp, payload)
                return
            take = live.take
            if take is not None:
                take.recorder.tap(side, payload_type, sequence, timestamp, payload)

        return tap

    def _event(self, live: _Live, side: str, timestamp: int, payload: bytes) -> None:
        try:
            event = parse_telephone_event(payload)
        except ValueError:
            return
        for digit in live.dtmf[side].feed(timestamp, event):
            now = time.monotonic()
            if digit == "*":
                live.star_at[side] = now
                continue
            star = live.star_at.pop(side, None)
            if star is None or now - star > CODE_SECONDS or digit not in "12":
                continue
            action = self._phone_action(live, digit)
            if action is not None:
                log.info("call %s: recording %s from the phone (side %s)", live.call_id, action.value, side)
                self._spawn(live, self._quietly(self.control(live.call_id, action, Trigger.DTMF)))

    @staticmethod
    def _phone_action(live: _Live, digit: str) -> Action | None:
        take = live.take
        if digit == "1":
            return Action.START if take is None and not live.announcing else Action.STOP
        if take is None:
            return None
        return Action.RESUME if take.recorder.paused else Action.PAUSE

    @staticmethod
    async def _quietly(work: Any) -> None:
        with contextlib.suppress(RecordingState, RecordingNotAllowed, CallNotLive):
            await work

    async def _start(self, live: _Live, trigger: Trigger) -> None:
        live.announcing = True
        try:
            prompt = await self._prompts.render(self.announcement)
            if live.ended or not await announce(live.session, prompt.pcm, live.legs) or live.ended:
                return
        finally:
            live.announcing = False
        if self.on_announced is not None:
            try:
                await self.on_announced(live.parties, live.call_id, self.announcement)
            except Exception:
                # The parties were told; a lost proof of it must not also lose the recording.
                log.exception("call %s: the announcement could not be recorded as consent", live.call_id)
        if live.session.tap is None:
            live.session.tap = live.tap
        upload = await self.service.begin(live.parties.org_id, CONTENT_TYPE,  # under each party's key
                                          (live.parties.caller_user_id, live.parties.callee_user_id))
        if live.ended:  # hung up meanwhile
            upload.cancel()
            return
        writer = OggOpusWriter(upload.feed)
        recorder = CallRecorder(live.session, sink=writer.write)
        recorder.start(hook=False)
        live.take = _Take(recorder, writer, upload, trigger, datetime.now(UTC))
        log.info("call %s: recording (%s)", live.call_id, trigger.value)

    def _finish(self, live: _Live, take: _Take) -> None:
        take.recorder.stop()
        try:
            take.writer.close()
        except Exception:
            log.exception("call %s: the recording's encoder failed", live.call_id)
            take.upload.cancel()
            return
        parties = live.parties

        async def store() -> None:
            row = await self.service.finish(
                take.upload, org_id=parties.org_id, call_record_id=live.call_id,
                caller_user_id=parties.caller_user_id, callee_user_id=parties.callee_user_id, trigger=take.trigger,
                started_at=take.started_at, duration_s=take.recorder.seconds,
                paused_s=take.recorder.paused_seconds, content_type=CONTENT_TYPE)
            if row is not None:
                self.stored += 1

        task = asyncio.ensure_future(store())
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        task.add_done_callback(self._retrieve)
