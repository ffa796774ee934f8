"""The ``*97`` mailbox menu: what a user hears when they call their own voicemail.

Theory of operation
-------------------
A call from a user's own phone to ``*97`` is answered by a voicemail leg in *access* mode
(:mod:`ringwell.pbx.voicemail_box`); that leg's ``MediaEndpoint`` runs this script:

1. **PIN.** No PIN set: say so and hang up. Locked: say so and hang up. Otherwise "Please enter
   your PIN followed by the pound key", collect up to ten digits (``#`` ends, a pause times out)
   and check them (:meth:`MailboxService.check_pin`, which counts failures in the database across
   calls and locks the mailbox after three in a row). Wrong: "Incorrect PIN" and ask again.
2. **Summary.** "You have N new and M saved messages." Then every message, new ones first, oldest
   first within a folder: "Message 1, from 1 0 2, received …", the audio, then the options —
   ``1`` replay, ``2`` call back, ``7`` delete, ``9`` save, ``#`` next, ``*`` main menu. A new
   message played to its end is marked read (saved), so the lamp follows. *Call back* asks the
   user's own phone to place the call (a REFER, RFC 3515, from the box through the B2BUA): the
   new call is an ordinary call of that user — dial plan, caller ID, credit, fraud rules — and
   the phone ends the ``*97`` call; a phone that refuses REFER hears "Sorry, your phone cannot
   call back from here" and stays in the menu.
3. **Main menu.** ``1`` new messages, ``2`` saved messages, ``3`` record a greeting (beep, record
   until ``#`` or silence, play it back; ``1`` keep, ``2`` re-record, ``*`` cancel), ``4`` back to
   the default greeting. Nothing typed twice in a row: goodbye.

Prompts are spoken by espeak-ng through the ``PromptCache`` (cached per text), and any prompt
can be cut short by a key the next step accepts (type-ahead stays buffered in the endpoint).
The script never raises on a hang-up: every step checks ``StopReason.HANGUP`` / ``closed``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ringwell.features.audit.service import Actor
from ringwell.features.voicemail.errors import VoicemailNotFound
from ringwell.features.voicemail.mailbox import GreetingNotFound, MailboxMessage, MailboxService, PinCheck
from ringwell.features.voicemail.models import Folder
from ringwell.media.apps import MediaEndpoint, StopReason
from ringwell.media.prompts import PromptCache

__all__ = ["MailboxMenu", "Prompts"]

log = logging.getLogger(__name__)

DIGIT_TIMEOUT = 8.0  # seconds to wait for a key after a prompt
_REVIEW_KEYS = "1279#*"
_DIALLABLE = re.compile(r"\+?[0-9]{2,20}")  # an extension or a number: what "call back" can dial

CallBack = Callable[[str], Awaitable[bool]]
"""Ask the caller's phone to call a number (RFC 3515 REFER); True when the phone accepted."""
PIN_TIMEOUT = 12.0
GREETING_SILENCE = 3.0
MIN_GREETING_BYTES = 8000  # half a second of 8 kHz 16-bit PCM


class Prompts:
    """The menu's words (one place to change or translate them)."""

    ENTER_PIN = "Please enter your PIN followed by the pound key."
    WRONG_PIN = "Incorrect PIN."
    LOCKED = "This mailbox is locked. Please try again later. Goodbye."
    NO_PIN = "No PIN is set for this mailbox; set one in the portal. Goodbye."
    MAIN_MENU = ("Main menu. For new messages, press 1. For saved messages, press 2. "
                 "To record your greeting, press 3. To use the default greeting, press 4.")
    OPTIONS = ("To replay, press 1. To call back, press 2. To delete, press 7. To save, press 9. "
               "For the next message, press pound. For the main menu, press star.")
    NO_NUMBER = "The caller's number is unknown."
    CANNOT_CALL_BACK = "Sorry, your phone cannot call back from here."
    NO_MORE = "No more messages."
    DELETED = "Message deleted."
    SAVED = "Message saved."
    RECORD = "Record your greeting after the tone. Press pound when you are done."
    REVIEW = "To keep this greeting, press 1. To record it again, press 2. To cancel, press star."
    NOTHING_RECORDED = "Nothing was recorded."
    GREETING_KEPT = "Your greeting has been saved."
    DEFAULT_GREETING = "Callers will hear the default greeting."
    GOODBYE = "Goodbye."

    @staticmethod
    def summary(new: int, saved: int) -> str:
        return f"You have {new} new and {saved} saved {'message' if new + saved == 1 else 'messages'}."

    @staticmethod
    def calling_back(number: str) -> str:
        return f"Calling back {' '.join(number.lstrip('+'))}."

    @staticmethod
    def announce(number: int, message: MailboxMessage) -> str:
        caller = " ".join(message.caller_number) if message.caller_number.lstrip("+").isdigit() \
            else message.caller_number
        return f"Message {number}, from {caller}, received {_spoken_time(message.received_at)}."


def _spoken_time(when: datetime) -> str:
    return f"{when:%B} {when.day} at {when:%H:%M} UTC"


class MailboxMenu:
    """One caller in their mailbox (see the module docstring). ``run()`` returns when done or hung up."""

    def __init__(self, endpoint: MediaEndpoint, prompts: PromptCache, service: MailboxService, *,
                 org_id: str, user_id: str, actor: Actor | None = None, digit_timeout: float = DIGIT_TIMEOUT,
                 greeting_max_seconds: float = 60.0, call_back: CallBack | None = None) -> None:
        self.endpoint = endpoint
        self.prompts = prompts
        self.service = service
        self.org_id = org_id
        self.user_id = user_id
        self.actor = actor or Actor(user_id=user_id, org_id=org_id)
        self.digit_timeout = digit_timeout
        self.greeting_max_seconds = greeting_max_seconds
        self.call_back = call_back
        self.played: list[str] = []  # ids of the messages played, in order (for logs and tests)

    @property
    def gone(self) -> bool:
        return self.endpoint.closed

    async def say(self, text: str, *, stop_digits: str = "") -> StopReason:
        prompt = await self.prompts.render(text)
        return await self.endpoint.play(prompt.pcm, stop_digits=stop_digits)

    async def key(self) -> str | None:
        """One key (type-ahead first), or None on a timeout or a hang-up."""
        result = await self.endpoint.collect_digits(1, self.digit_timeout, terminators="")
        return result.digits or None

    async def run(self) -> None:
        if not await self._login():
            return
        new, saved = await self.service.counts(self.user_id)
        summary = await self.say(Prompts.summary(new, saved), stop_digits="0123456789*#")
        if summary is StopReason.HANGUP:
            return
        if summary is StopReason.FINISHED:  # a key during the summary goes straight to the menu
            messages = (await self.service.messages(self.org_id, self.user_id, Folder.NEW)
                        + await self.service.messages(self.org_id, self.user_id, Folder.SAVED))
            if messages and not await self._review(messages):
                return
        await self._main_menu()

    # -- 1. the PIN ------------------------------------------------------------------------------
    async def _login(self) -> bool:
        state = await self.service.state(self.org_id, self.user_id)
        if not state.pin_set:
            await self.say(Prompts.NO_PIN)
            return False
        if state.locked(datetime.now(UTC)):
            await self.say(Prompts.LOCKED)
            return False
        silent = 0
        while not self.gone:
            if await self.say(Prompts.ENTER_PIN, stop_digits="0123456789#") is StopReason.HANGUP:
                return False
            typed = await self.endpoint.collect_digits(16, PIN_TIMEOUT, terminators="#")
            if typed.reason is StopReason.HANGUP:
                return False
            if not typed.digits:
                silent += 1
                if silent >= 2:
                    await self.say(Prompts.GOODBYE)
                    return False
                continue
            silent = 0
            result = await self.service.check_pin(self.org_id, self.user_id, typed.digits, actor=self.actor)
            if result is PinCheck.OK:
                return True
            if result is PinCheck.NO_PIN:
                await self.say(Prompts.NO_PIN)
                return False
            if result is PinCheck.LOCKED:
                await self.say(Prompts.LOCKED)
                return False
            self.endpoint.flush_digits()
            if await self.say(Prompts.WRONG_PIN) is StopReason.HANGUP:
                return False
        return False

    # -- 2. listening to messages ----------------------------------------------------------------
    async def _review(self, messages: list[MailboxMessage]) -> bool:
        """Play ``messages`` in turn with their options. False: the caller hung up."""
        index = 0
        while index < len(messages):
            message = messages[index]
            played = await self.say(Prompts.announce(index + 1, message), stop_digits=_REVIEW_KEYS)
            if played is StopReason.HANGUP:
                return False
            if played is StopReason.FINISHED:  # a key during the announcement skips the audio
                try:
                    pcm = await self.service.message_pcm(self.org_id, message.id)
                except VoicemailNotFound:  # deleted meanwhile (the portal, another call)
                    index += 1
                    continue
                self.played.append(message.id)
                played = await self.endpoint.play(pcm, stop_digits=_REVIEW_KEYS)
                if played is StopReason.HANGUP:
                    return False
                if played is StopReason.FINISHED and message.folder is Folder.NEW:
                    with contextlib.suppress(VoicemailNotFound):
                        await self.service.mark_read(self.org_id, message.id)
            if (played is StopReason.FINISHED
                    and await self.say(Prompts.OPTIONS, stop_digits=_REVIEW_KEYS) is StopReason.HANGUP):
                return False
            choice = await self.key()
            if self.gone:
                return False
            if choice == "1":
                continue  # replay
            if choice == "2":
                if await self._call_back(message):
                    return False  # the phone places the call; this one is over
                continue
            if choice == "7":
                with contextlib.suppress(VoicemailNotFound):
                    await self.service.delete_message(self.org_id, message.id)
                if await self.say(Prompts.DELETED) is StopReason.HANGUP:
                    return False
            elif choice == "9":
                with contextlib.suppress(VoicemailNotFound):
                    await self.service.mark_read(self.org_id, message.id)
                if await self.say(Prompts.SAVED) is StopReason.HANGUP:
                    return False
            elif choice == "*":
                return True
            index += 1  # "#", another key or none: the next message
        return await self.say(Prompts.NO_MORE, stop_digits="0123456789*#") is not StopReason.HANGUP

    async def _call_back(self, message: MailboxMessage) -> bool:
        """Ask the phone to call the message's caller (True: it took it on)."""
        number = message.caller_number
        if not _DIALLABLE.fullmatch(number):
            await self.say(Prompts.NO_NUMBER)
            return False
        if self.call_back is None:
            await self.say(Prompts.CANNOT_CALL_BACK)
            return False
        if await self.say(Prompts.calling_back(number)) is StopReason.HANGUP:
            return True
        if await self.call_back(number):
            return True
        await self.say(Prompts.CANNOT_CALL_BACK)
        return False

    # -- 3. the main menu ------------------------------------------------------------------------
    async def _main_menu(self) -> None:
        idle = 0
        while not self.gone:
            if await self.say(Prompts.MAIN_MENU, stop_digits="0123456789*#") is StopReason.HANGUP:
                return
            choice = await self.key()
            if self.gone:
                return
            if choice is None:
                idle += 1
                if idle >= 2:
                    await self.say(Prompts.GOODBYE)
                    return
                continue
            idle = 0
            if choice in ("1", "2"):
                folder = Folder.NEW if choice == "1" else Folder.SAVED
                messages = await self.service.messages(self.org_id, self.user_id, folder)
                if not messages:
                    new, saved = await self.service.counts(self.user_id)
                    await self.say(Prompts.summary(new, saved))
                elif not await self._review(messages):
                    return
            elif choice == "3":
                if not await self._record_greeting():
                    return
            elif choice == "4":
                with contextlib.suppress(GreetingNotFound):  # already the default
                    await self.service.delete_greeting(self.org_id, self.user_id)
                await self.say(Prompts.DEFAULT_GREETING)

    async def _record_greeting(self) -> bool:
        """Record, review, keep. False: the caller hung up."""
        endpoint = self.endpoint
        while not self.gone:
            if await self.say(Prompts.RECORD) is StopReason.HANGUP or await endpoint.beep() is StopReason.HANGUP:
                return False
            recording = await endpoint.record(self.greeting_max_seconds, GREETING_SILENCE, stop_digits="#",
                                              initial_silence_seconds=10.0)
            if recording.reason is StopReason.HANGUP:
                return False
            if len(recording.pcm) < MIN_GREETING_BYTES:
                if await self.say(Prompts.NOTHING_RECORDED) is StopReason.HANGUP:
                    return False
                continue
            if await endpoint.play(recording.pcm, stop_digits="12*") is StopReason.HANGUP:
                return False
            choice: str | None = None
            for _ in range(2):
                if await self.say(Prompts.REVIEW, stop_digits="12*") is StopReason.HANGUP:
                    return False
                choice = await self.key()
                if choice in ("1", "2", "*") or self.gone:
                    break
            if self.gone:
                return False
            if choice == "1":
                await self.service.set_greeting_pcm(self.org_id, self.user_id, recording.pcm)
                return await self.say(Prompts.GREETING_KEPT) is not StopReason.HANGUP
            if choice != "2":
                return True  # cancelled (or nothing chosen): the old greeting stays
        return False
