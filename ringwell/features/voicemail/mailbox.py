"""Mailbox access: the PIN a user dials ``*97`` with, its lockout, and the custom greeting.

Theory of operation
-------------------
* **PIN.** 4–10 digits, refused when trivially guessable (one digit repeated, a run up or down
  such as ``1234`` or ``987654``). Stored only as an Argon2id hash (the password hasher's
  RFC 9106 low-memory profile) in the user's ``mailboxes`` row; never logged, never returned.
  Setting a PIN clears the failure counter and any lockout.
* **Lockout.** ``check_pin`` verifies outside any transaction (Argon2 is slow on purpose, in a
  thread), then counts in the database under a row lock: a wrong PIN adds one to
  ``failed_pin_attempts``; the ``max_attempts``-th consecutive one sets ``locked_until`` to now +
  ``lockout``. The counter survives calls (a caller cannot hang up and retry forever). A right PIN
  resets it. A lock that has run out is forgotten at the next check, counter included. Every
  wrong PIN is a ``voicemail.pin_failed`` audit event, every lock a ``voicemail.locked`` one.
* **Greeting.** An uploaded WAV/MP3 (:func:`ringwell.media.prompts.convert_upload`) or one recorded
  from the phone is stored as an encrypted ``greeting`` blob (16-bit 8 kHz mono WAV); the row holds
  its id. Replacing or deleting it deletes the old file after the row no longer names it.
* **Messages for the phone menu.** ``messages(folder)`` lists a mailbox oldest first and
  ``message_pcm`` returns a message's audio as PCM; reading and deleting go through
  :class:`VoicemailService` so the lamps follow (its ``on_change``).

validate → persist → emit, the organization always passed explicitly.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging
import wave
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.errors import Invalid, NotFound
from ringwell.features.accounts.models import User
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.voicemail.mailbox_models import MailboxRow
from ringwell.features.voicemail.models import Folder
from ringwell.features.voicemail.service import SAMPLE_RATE, VoicemailService, pcm_to_wav
from ringwell.media.prompts import UploadError, convert_upload

__all__ = [
    "GREETING_MAX_SECONDS",
    "MAX_PIN_LENGTH",
    "MIN_PIN_LENGTH",
    "GreetingNotFound",
    "GreetingTooLarge",
    "InvalidGreeting",
    "InvalidPin",
    "MailboxMessage",
    "MailboxService",
    "MailboxState",
    "MailboxUserNotFound",
    "PinCheck",
    "UnsupportedGreetingType",
    "pin_problem",
]

log = logging.getLogger(__name__)

MIN_PIN_LENGTH = 4
MAX_PIN_LENGTH = 10
MAX_ATTEMPTS = 3
GREETING_MAX_SECONDS = 120.0
_WAV_TYPE = "audio/wav"
_HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
_DIGITS = "0123456789"


class InvalidPin(Invalid):
    error_id = "invalid_pin"


class InvalidGreeting(Invalid):
    error_id = "invalid_greeting"


class GreetingTooLarge(Invalid):
    error_id = "greeting_too_large"
    status = 413


class UnsupportedGreetingType(Invalid):
    error_id = "unsupported_media_type"
    status = 415


class GreetingNotFound(NotFound):
    error_id = "greeting_not_found"


class MailboxUserNotFound(NotFound):
    """No such user in the organization (also: a member asking about another member's mailbox)."""

    error_id = "user_not_found"


class PinCheck(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # locked now (already, or by this wrong PIN)
    NO_PIN = "no_pin"


@dataclass(frozen=True, slots=True)
class MailboxState:
    """What the API shows about a mailbox (never the PIN or its hash)."""

    user_id: str
    pin_set: bool
    failed_pin_attempts: int
    locked_until: datetime | None
    custom_greeting: bool

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True, slots=True)
class MailboxMessage:
    """A message as the phone menu announces it."""

    id: str
    caller_number: str
    received_at: datetime
    folder: Folder


def pin_problem(pin: str) -> str | None:
    """Why ``pin`` is not acceptable, or None."""
    if not (pin.isascii() and pin.isdigit()) or not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
        return f"a PIN is {MIN_PIN_LENGTH}-{MAX_PIN_LENGTH} digits"
    if len(set(pin)) == 1:
        return "a PIN of one digit repeated is too easy to guess"
    if pin in _DIGITS or pin in _DIGITS[::-1] or pin in "1234567890" or pin in "0987654321":
        return "a run of consecutive digits is too easy to guess"
    return None


def _hash(pin: str) -> str:
    return _HASHER.hash(pin)


def _verify(stored: str, pin: str) -> bool:
    try:
        return _HASHER.verify(stored, pin)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _wav_pcm(data: bytes) -> bytes:
    with wave.open(io.BytesIO(data), "rb") as wav:
        if (wav.getsampwidth(), wav.getframerate(), wav.getnchannels()) != (2, SAMPLE_RATE, 1):
            raise ValueError("not 16-bit 8 kHz mono PCM")
        return wav.readframes(wav.getnframes())


class MailboxService:
    """PINs, lockouts and greetings of every org's mailboxes (see the module docstring)."""

    def __init__(self, sessions: async_sessionmaker[Any], voicemail: VoicemailService, *,
                 audit: AuditLog | None = None, lockout_minutes: float = 15.0,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        if lockout_minutes <= 0 or max_attempts < 1:
            raise ValueError("lockout_minutes must be positive and max_attempts at least 1")
        self._sessions = sessions
        self.voicemail = voicemail
        self._blobs = voicemail.blobs
        self._audit = audit
        self.lockout = timedelta(minutes=lockout_minutes)
        self.max_attempts = max_attempts

    async def _user(self, session: AsyncSession, org_id: str, user_id: str) -> None:
        found = (await session.execute(select(User.id).where(User.id == user_id, User.org_id == org_id))
                 ).scalar_one_or_none()
        if found is None:
            raise MailboxUserNotFound("no such user", {"user_id": user_id})

    async def _row(self, session: AsyncSession, org_id: str, user_id: str, *, lock: bool = False,
                   create: bool = False) -> MailboxRow | None:
        query = select(MailboxRow).where(MailboxRow.org_id == org_id, MailboxRow.user_id == user_id)
        if lock:
            query = query.with_for_update()
        row: MailboxRow | None = (await session.execute(query)).scalar_one_or_none()
        if row is None and create:
            await self._user(session, org_id, user_id)
            row = MailboxRow(org_id=org_id, user_id=user_id, pin_hash=None, failed_pin_attempts=0,
                             locked_until=None, greeting_blob_id=None, updated_at=datetime.now(UTC))
            session.add(row)
        return row

    # -- state --------------------------------------------------------------------------------
    async def state(self, org_id: str, user_id: str) -> MailboxState:
        async with self._sessions() as session:
            await self._user(session, org_id, user_id)
            row = await self._row(session, org_id, user_id)
        if row is None:
            return MailboxState(user_id, False, 0, None, False)
        return MailboxState(user_id, row.pin_hash is not None, row.failed_pin_attempts, row.locked_until,
                            row.greeting_blob_id is not None)

    # -- PIN ----------------------------------------------------------------------------------
    async def set_pin(self, org_id: str, user_id: str, pin: str) -> MailboxState:
        """Set (or replace) the PIN; clears the failure counter and any lockout."""
        problem = pin_problem(pin)
        if problem is not None:
            raise InvalidPin(problem, {"min_length": MIN_PIN_LENGTH, "max_length": MAX_PIN_LENGTH})
        hashed = await asyncio.to_thread(_hash, pin)
        async with self._sessions() as session, session.begin():
            row = await self._row(session, org_id, user_id, lock=True, create=True)
            assert row is not None
            row.pin_hash = hashed
            row.failed_pin_attempts = 0
            row.locked_until = None
            row.updated_at = datetime.now(UTC)
        log.info("voicemail PIN set for user %s", user_id)
        return await self.state(org_id, user_id)

    async def check_pin(self, org_id: str, user_id: str, pin: str, *, actor: Actor | None = None,
                        now: datetime | None = None) -> PinCheck:
        """Verify a PIN typed on the phone, counting failures (see the module docstring)."""
        now = now or datetime.now(UTC)
        async with self._sessions() as session:
            row = await self._row(session, org_id, user_id)
        if row is None or row.pin_hash is None:
            return PinCheck.NO_PIN
        if row.locked_until is not None and row.locked_until > now:
            return PinCheck.LOCKED
        good = await asyncio.to_thread(_verify, row.pin_hash, pin[:64])
        actor = actor or Actor(user_id=user_id, org_id=org_id)
        async with self._sessions() as session, session.begin():
            current = await self._row(session, org_id, user_id, lock=True)
            if current is None or current.pin_hash is None:
                return PinCheck.NO_PIN
            if current.pin_hash != row.pin_hash:  # the PIN was changed meanwhile: verify that one
                good = await asyncio.to_thread(_verify, current.pin_hash, pin[:64])
            if current.locked_until is not None:
                if current.locked_until > now:
                    return PinCheck.LOCKED
                current.locked_until = None  # the lock ran out: a fresh start
                current.failed_pin_attempts = 0
            if good:
                current.failed_pin_attempts = 0
                current.updated_at = now
                return PinCheck.OK
            current.failed_pin_attempts += 1
            current.updated_at = now
            attempts = current.failed_pin_attempts
            locked = attempts >= self.max_attempts
            if locked:
                current.locked_until = now + self.lockout
            if self._audit is not None:
                await self._audit.record("voicemail.pin_failed", actor, org_id=org_id, target_type="mailbox",
                                         target_id=user_id, outcome="denied",
                                         details={"failed_pin_attempts": attempts}, session=session)
                if locked:
                    await self._audit.record("voicemail.locked", actor, org_id=org_id, target_type="mailbox",
                                             target_id=user_id, details={
                                                 "failed_pin_attempts": attempts,
                                                 "locked_until": (now + self.lockout).isoformat()},
                                             session=session)
        log.info("wrong voicemail PIN for user %s (%d in a row)%s", user_id, attempts,
                 ": mailbox locked" if locked else "")
        return PinCheck.LOCKED if locked else PinCheck.WRONG

    # -- greeting -----------------------------------------------------------------------------
    async def greeting(self, org_id: str, user_id: str) -> bytes | None:
        """The custom greeting as 16-bit 8 kHz mono PCM, or None (the default greeting)."""
        async with self._sessions() as session:
            row = await self._row(session, org_id, user_id)
        if row is None or row.greeting_blob_id is None:
            return None
        return _wav_pcm(await self._blobs.read_all(org_id, row.greeting_blob_id))

    async def greeting_wav(self, org_id: str, user_id: str) -> bytes:
        async with self._sessions() as session:
            await self._user(session, org_id, user_id)
            row = await self._row(session, org_id, user_id)
        if row is None or row.greeting_blob_id is None:
            raise GreetingNotFound("this mailbox uses the default greeting", {"user_id": user_id})
        return await self._blobs.read_all(org_id, row.greeting_blob_id)

    async def upload_greeting(self, org_id: str, user_id: str, data: bytes) -> MailboxState:
        """An uploaded WAV or MP3 as the greeting (converted to 8 kHz mono)."""
        try:
            pcm = await convert_upload(data, max_seconds=GREETING_MAX_SECONDS)
        except UploadError as exc:
            raise InvalidGreeting(str(exc), {"formats": ["audio/wav", "audio/mpeg"],
                                             "max_seconds": GREETING_MAX_SECONDS}) from exc
        return await self.set_greeting_pcm(org_id, user_id, pcm)

    async def set_greeting_pcm(self, org_id: str, user_id: str, pcm: bytes) -> MailboxState:
        if not pcm or len(pcm) % 2 or len(pcm) > GREETING_MAX_SECONDS * SAMPLE_RATE * 2:
            raise InvalidGreeting("a greeting is 16-bit PCM of at most "
                                  f"{GREETING_MAX_SECONDS:g} seconds", {"bytes": len(pcm)})
        async with self._sessions() as session:
            await self._user(session, org_id, user_id)
        ref = await self._blobs.put(org_id, "greeting", pcm_to_wav(pcm), content_type=_WAV_TYPE, owners=(user_id,))
        try:
            async with self._sessions() as session, session.begin():
                row = await self._row(session, org_id, user_id, lock=True, create=True)
                assert row is not None
                old, row.greeting_blob_id = row.greeting_blob_id, ref.id
                row.updated_at = datetime.now(UTC)
        except BaseException:
            await self._blobs.delete(org_id, ref.id)  # no file without its row
            raise
        if old is not None:
            await self._blobs.delete(org_id, old)
        log.info("custom voicemail greeting (%.1f s) for user %s", len(pcm) / 2 / SAMPLE_RATE, user_id)
        return await self.state(org_id, user_id)

    async def delete_greeting(self, org_id: str, user_id: str) -> MailboxState:
        """Back to the default greeting; GreetingNotFound when there was no custom one."""
        async with self._sessions() as session, session.begin():
            await self._user(session, org_id, user_id)
            row = await self._row(session, org_id, user_id, lock=True)
            if row is None or row.greeting_blob_id is None:
                raise GreetingNotFound("this mailbox uses the default greeting", {"user_id": user_id})
            old, row.greeting_blob_id = row.greeting_blob_id, None
            row.updated_at = datetime.now(UTC)
        await self._blobs.delete(org_id, old)
        return await self.state(org_id, user_id)

    # -- messages, for the phone menu -------------------------------------------------------------
    async def messages(self, org_id: str, user_id: str, folder: Folder) -> list[MailboxMessage]:
        """One folder of the mailbox, oldest first."""
        rows = await self.voicemail.list(org_id, user_id, folder)
        return [MailboxMessage(r.id, r.caller_number, r.received_at, Folder(r.folder)) for r in reversed(rows)]

    async def counts(self, user_id: str) -> tuple[int, int]:
        return await self.voicemail.counts(user_id)

    async def message_pcm(self, org_id: str, voicemail_id: str) -> bytes:
        return _wav_pcm(await self.voicemail.audio(org_id, voicemail_id))

    async def mark_read(self, org_id: str, voicemail_id: str) -> None:
        await self.voicemail.mark_read(org_id, voicemail_id)

    async def delete_message(self, org_id: str, voicemail_id: str) -> None:
        await self.voicemail.delete(org_id, voicemail_id)
