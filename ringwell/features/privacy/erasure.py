"""Erasure of a person (GDPR art. 17, CCPA deletion): everything deleted or anonymised, except
the documented exceptions, which the receipt lists (what was kept, why, until when).

``ErasureService.erase_person(org_id, user_id, actor=...)`` does, in one database transaction:

- refuses while the person or their organization is under a legal hold (``legal_holds``), and
  for the organization's last owner (``LastOwner``, the accounts rule);
- deletes the person's rows: their voicemails (and blind-index terms), recordings of calls they
  were a party to, mailbox (PIN, greeting), SIP credentials (and registrations), browser sessions,
  email tokens, recovery codes, caller-ID verifications, recording policy, webhook deliveries
  that mention them, and the ``users`` row;
- anonymises what stays for the organization: their side of call detail records (user id,
  extension, number), the caller name and number of messages they left in others' mailboxes,
  API keys they created (``created_by``), numbers routed to them (``route_user_id``), dialled
  numbers in ledger descriptions (``ledger_transactions``);
- records one audit event naming only ids and counts (never the email, name or numbers).

- destroys the person's data keys (crypto-shredding: ``wrapped_key`` NULL, ``destroyed_at`` set):
  their media, and every recording they were on, is unreadable from any copy, backups included.
  Inside the transaction, so that no crash can leave the person erased with their keys live.

After the commit it drops the keys from the key ring's cache and deletes the blob files (a crash
before that leaves files nobody can decrypt; deleting them again is harmless).

Which columns are kept, and why, comes from the data register (``Erasure.KEEP`` columns,
``ringwell.features.privacy.catalog.REGISTER``); until when, from the retention policy the
retention run applies (``retention.policy_from_settings``, given by the composition root).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.blobs.models import OrgDataKey
from ringwell.blobs.store import BlobStore
from ringwell.errors import Conflict
from ringwell.features.accounts.errors import LastOwner, UserNotFound
from ringwell.features.accounts.models import SipCredential, User
from ringwell.features.accounts.service import AuditHook
from ringwell.features.audit.service import SYSTEM, Actor, AuditLog
from ringwell.features.auth.models import ApiKey, EmailToken, RecoveryCode, WebSession
from ringwell.features.auth.permissions import Role
from ringwell.features.auth.repository import rowcount
from ringwell.features.billing.models import LedgerTransaction
from ringwell.features.cdr.models import CallRecord
from ringwell.features.numbers.models import CallerIdVerification, PhoneNumber
from ringwell.features.privacy import holds as legal_holds
from ringwell.features.privacy.models_consent import ConsentRecord
from ringwell.features.privacy.register import Erasure, Register
from ringwell.features.privacy.retention import RetentionPolicy, scrub_ledger_description
from ringwell.features.recordings.models import Recording, RecordingPolicy
from ringwell.features.voicemail.mailbox_models import MailboxRow
from ringwell.features.voicemail.models import Voicemail
from ringwell.features.webhooks.models import WebhookDelivery
from ringwell.storage.base import utcnow

__all__ = ["ANONYMISED", "ErasureRefused", "ErasureService", "Kept", "Receipt", "kept_columns", "scrub_text"]

log = logging.getLogger(__name__)

ANONYMISED = "anonymised"
"""What replaces a number or name that must stay non-empty (a CDR's dialled number)."""

ACTION = "privacy.erase_person"

_NUMBER_EXCEPTION = ("the phone number routed to the person is the organization's (it rents it); it stays in "
                     "the organization's inventory, no longer routed to the person")


class ErasureRefused(Conflict):
    """The person or their organization is under a legal hold: nothing is erased until it is released."""

    error_id = "erasure_legal_hold"


@dataclass(frozen=True, slots=True)
class Kept:
    """One column kept under an exception after the erasure: what, why, until when (None: while
    the organization exists)."""

    table: str
    column: str
    why: str
    until: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "column": self.column, "why": self.why,
                "until": self.until.isoformat() if self.until else None}


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an erasure did; given to the person. Counts are rows (files for ``files_deleted``)."""

    org_id: str
    user_id: str
    erased_at: datetime
    deleted: Mapping[str, int]
    anonymised: Mapping[str, int]
    files_deleted: int
    keys_destroyed: int
    kept: tuple[Kept, ...] = field(default=())

    def keeps(self, table: str, column: str) -> bool:
        """Whether ``table.column`` is one of the receipt's exceptions."""
        return any(k.table == table and k.column == column for k in self.kept)

    def as_dict(self) -> dict[str, Any]:
        return {"org_id": self.org_id, "user_id": self.user_id, "erased_at": self.erased_at.isoformat(),
                "deleted": dict(self.deleted), "anonymised": dict(self.anonymised),
                "files_deleted": self.files_deleted, "keys_destroyed": self.keys_destroyed,
                "kept": [k.as_dict() for k in self.kept]}


def kept_columns(register: Register, now: datetime, tables: Sequence[str] | None = None, *,
                 policy: RetentionPolicy | None = None) -> tuple[Kept, ...]:
    """Every column the register keeps under an exception (of ``tables``, when given); ``until`` =
    ``now`` + the period of the column's class under ``policy`` (the retention run's; default: the
    default periods)."""
    policy = policy if policy is not None else RetentionPolicy()
    out: list[Kept] = []
    for table in register.values():
        if tables is not None and table.name not in tables:
            continue
        for column in table.columns:
            if column.erasure is Erasure.KEEP:
                days = policy.period_days(column.retention)
                out.append(Kept(table.name, column.name, column.exception or "",
                                None if days is None else now + timedelta(days=days)))
    return tuple(out)


def scrub_text(text: str, secrets_: Sequence[str]) -> str:
    """``text`` with every occurrence of each of ``secrets_`` replaced by ``ANONYMISED``
    (longest first, so a number is not half-replaced by a shorter one it contains)."""
    for value in sorted({s for s in secrets_ if s}, key=len, reverse=True):
        text = text.replace(value, ANONYMISED)
    return text


def _scrub_ledger(description: str, identifiers: Sequence[str]) -> str:
    return scrub_text(scrub_ledger_description(description), identifiers)


@dataclass(slots=True)
class _Person:
    user: User
    identifiers: list[str]  # strings that identify the person: email, name, numbers, SIP usernames
    numbers: list[str]  # their phone numbers (contact phone, DIDs routed to them, numbers on their calls)
    extension: str  # read before the row goes


class ErasureService:
    """Erases people; the tenant (org) is always explicit."""

    def __init__(self, sessions: async_sessionmaker[Any], blobs: BlobStore, *, audit: AuditLog | None = None,
                 register: Register | None = None, policy: RetentionPolicy | None = None) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._audit = audit if audit is not None else AuditLog(sessions)
        self._register = register
        # The receipt's "kept until" dates: the retention run's own periods (policy_from_settings).
        self._policy = policy if policy is not None else RetentionPolicy()
        # Told (credential id, SIP username) of each deleted SIP credential once committed (the SIP
        # side forgets its HA1 and registrations); set by the composition root.
        self.credentials_changed: Callable[[str, str], None] | None = None

    @property
    def register(self) -> Register:
        if self._register is None:
            from ringwell.features.privacy.catalog import REGISTER  # noqa: PLC0415 - assembled at first use
            self._register = REGISTER
        return self._register

    def erase_hook(self) -> Callable[[str, str, AuditHook | None], Awaitable[Receipt]]:
        """What ``AccountsService.erase`` is set to (by the server and the admin commands alike):
        deleting a user erases the person, by the system, audited through the accounts' hook."""
        async def erase(org_id: str, user_id: str, audit: AuditHook | None) -> Receipt:
            return await self.erase_person(org_id, user_id, actor=SYSTEM, audit=audit)

        return erase

    async def erase_person(self, org_id: str, user_id: str, *, actor: Actor, reason: str | None = None,
                           allow_last_owner: bool = False, audit: AuditHook | None = None) -> Receipt:
        """Erase ``user_id`` of ``org_id`` (module docstring). Raises UserNotFound, ErasureRefused
        (legal hold) or LastOwner (unless ``allow_last_owner``: the org itself is being closed).

        The audit event is ``privacy.erase_person`` by ``actor``; with ``audit`` (the hook of
        ``AccountsService.delete_user``) that hook records it instead, inside the same transaction.
        Its details name ids and counts only (and the extension and role for ``users.delete``).
        """
        now = utcnow()
        deleted: dict[str, int] = {}
        anonymised: dict[str, int] = {}
        async with self._sessions() as session, session.begin():
            user = (await session.execute(select(User).where(User.id == user_id, User.org_id == org_id)
                                          .with_for_update())).scalar_one_or_none()
            if user is None:
                raise UserNotFound("no such user", {"user_id": user_id})
            await self._check_hold(session, org_id, user_id)
            if user.role == Role.OWNER.value and not allow_last_owner:
                others = (await session.execute(select(func.count()).select_from(User).where(
                    User.org_id == org_id, User.role == Role.OWNER.value, User.id != user_id))).scalar_one()
                if not others:
                    raise LastOwner("you cannot erase the organization's only owner: make someone else owner "
                                    "first, or close the organization", {"user_id": user_id})
            person = await self._person(session, user)
            credentials = [(row[0], row[1]) for row in (await session.execute(
                select(SipCredential.id, SipCredential.username).where(SipCredential.user_id == user_id))).all()]
            # Anonymise first: deleting the user sets the foreign keys that name them to NULL, after
            # which their side of a call could no longer be told apart.
            await self._anonymise(session, person, anonymised)
            files = await self._delete_rows(session, person, deleted)
            # Consent records are proof of what the person chose: kept, but their current ones end
            # now, so the retention run purges them a year from today (the register's exception).
            ended = (await session.execute(update(ConsentRecord).where(
                ConsentRecord.org_id == org_id, ConsentRecord.user_id == user_id,
                ConsentRecord.superseded_at.is_(None)).values(superseded_at=now).execution_options(
                synchronize_session=False))).rowcount or 0
            # Crypto-shredding in the same transaction: committed together with the erasure or not at all.
            keys = rowcount(await session.execute(update(OrgDataKey).where(
                OrgDataKey.org_id == org_id, OrgDataKey.user_id == user_id, OrgDataKey.wrapped_key.is_not(None))
                .values(wrapped_key=None, destroyed_at=now).execution_options(synchronize_session=False)))
            details: dict[str, Any] = {"role": user.role, "deleted": deleted, "anonymised": anonymised,
                                       "files_deleted": len(files), "keys_destroyed": keys}
            if audit is not None:
                await audit(session, user_id, {"extension": person.extension, **details})
            else:
                await self._audit.record(ACTION, actor, org_id=org_id, target_type="user", target_id=user_id,
                                         reason=reason, session=session, details=details)
        await self.compact()
        if self.credentials_changed is not None:
            for credential_id, username in credentials:
                self.credentials_changed(credential_id, username)
        self._blobs.keys.forget_person(org_id, user_id)
        files_deleted = 0
        for blob_id in files:
            files_deleted += await self._blobs.delete(org_id, blob_id)
        touched = [name for name, count in {**deleted, **anonymised}.items() if count] + ["audit_events"]
        if ended:
            touched.append("consent_records")
        kept = self._kept(now, touched)
        if anonymised.get("phone_numbers") and not any(k.table == "phone_numbers" for k in kept):
            kept += (Kept("phone_numbers", "e164", _NUMBER_EXCEPTION, None),)
        receipt = Receipt(org_id=org_id, user_id=user_id, erased_at=now, deleted=deleted, anonymised=anonymised,
                          files_deleted=files_deleted, keys_destroyed=keys, kept=kept)
        log.warning("erased user %s of org %s: %d rows deleted, %d anonymised, %d files, %d keys destroyed",
                    user_id, org_id, sum(deleted.values()), sum(anonymised.values()), files_deleted, keys)
        return receipt

    async def compact(self) -> None:
        """SQLite: move the write-ahead log into the database and truncate it, so the old versions of
        the pages a deletion changed do not linger in the ``-wal`` file (the database itself runs
        with ``secure_delete``, which zeroes what is deleted)."""
        async with self._sessions() as session:
            if session.get_bind().dialect.name == "sqlite":
                await session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    def _kept(self, now: datetime, touched: list[str]) -> tuple[Kept, ...]:
        register = self.register
        # Tables the register keeps something of whose rows this erasure could not see (a later
        # part's table): listed too, so the receipt never under-states what may remain.
        unhandled = [name for name in register if name not in _HANDLED]
        return kept_columns(register, now, [*touched, *unhandled], policy=self._policy)

    @staticmethod
    async def _check_hold(session: AsyncSession, org_id: str, user_id: str) -> None:
        if await legal_holds.held(session, org_id, user_id):
            raise ErasureRefused("this person (or their organization) is under a legal hold: their data cannot be "
                                 "erased until the hold is released", {"user_id": user_id})

    @staticmethod
    async def _person(session: AsyncSession, user: User) -> _Person:
        uid = user.id
        numbers: set[str] = {user.phone} if user.phone else set()
        numbers |= set((await session.execute(select(PhoneNumber.e164).where(
            PhoneNumber.org_id == user.org_id, PhoneNumber.route_user_id == uid))).scalars())
        numbers |= {n for n in (await session.execute(select(CallRecord.caller_number).where(
            CallRecord.org_id == user.org_id, CallRecord.caller_user_id == uid))).scalars() if n}
        numbers |= {n for n in (await session.execute(select(CallRecord.callee_number).where(
            CallRecord.org_id == user.org_id, CallRecord.callee_user_id == uid))).scalars() if n}
        numbers.discard(ANONYMISED)
        usernames = list((await session.execute(select(SipCredential.username).where(
            SipCredential.user_id == uid))).scalars())
        identifiers = [user.email, *([user.login_email] if user.login_email else []),
                       *([user.name] if user.name else []), *numbers, *usernames]
        return _Person(user, identifiers, sorted(numbers), user.extension)

    async def _delete_rows(self, session: AsyncSession, person: _Person, deleted: dict[str, int]) -> list[str]:
        """Delete the person's rows; returns the blob ids whose files go after the commit."""
        uid, org_id = person.user.id, person.user.org_id
        party = or_(Recording.caller_user_id == uid, Recording.callee_user_id == uid)
        files: list[str] = list((await session.execute(select(Recording.blob_id).where(
            Recording.org_id == org_id, party))).scalars())
        for audio, transcript in (await session.execute(select(Voicemail.audio_blob_id, Voicemail.transcript_blob_id)
                                                        .where(Voicemail.user_id == uid))).all():
            files += [audio] + ([transcript] if transcript else [])
        files += [g for g in (await session.execute(select(MailboxRow.greeting_blob_id).where(
            MailboxRow.user_id == uid))).scalars() if g]

        async def gone(table: str, statement: Any) -> None:
            deleted[table] = deleted.get(table, 0) + rowcount(await session.execute(
                statement.execution_options(synchronize_session=False)))

        await gone("recordings", delete(Recording).where(Recording.org_id == org_id, party))
        await gone("voicemails", delete(Voicemail).where(Voicemail.user_id == uid))  # terms go by cascade
        await gone("mailboxes", delete(MailboxRow).where(MailboxRow.user_id == uid))
        await gone("sip_credentials", delete(SipCredential).where(SipCredential.user_id == uid))  # + bindings
        await gone("web_sessions", delete(WebSession).where(WebSession.user_id == uid))
        await gone("email_tokens", delete(EmailToken).where(EmailToken.user_id == uid))
        await gone("recovery_codes", delete(RecoveryCode).where(RecoveryCode.user_id == uid))
        await gone("caller_id_verifications", delete(CallerIdVerification).where(CallerIdVerification.user_id == uid))
        await gone("recording_policies", delete(RecordingPolicy).where(
            RecordingPolicy.org_id == org_id, RecordingPolicy.scope == f"user:{uid}"))
        mentions = [WebhookDelivery.payload.contains(value) for value in [uid, *person.identifiers]]
        await gone("webhook_deliveries", delete(WebhookDelivery).where(WebhookDelivery.org_id == org_id,
                                                                        or_(*mentions)))
        await gone("users", delete(User).where(User.id == uid, User.org_id == org_id))
        return files

    async def _anonymise(self, session: AsyncSession, person: _Person, anonymised: dict[str, int]) -> None:
        uid, org_id = person.user.id, person.user.org_id

        async def changed(table: str, statement: Any) -> None:
            anonymised[table] = anonymised.get(table, 0) + rowcount(await session.execute(
                statement.execution_options(synchronize_session=False)))

        # Who they called and who called them (outside the org) goes first, while the rows still
        # name them: a call's other party says as much about the person as their own number.
        await changed("call_records", update(CallRecord).where(
            CallRecord.org_id == org_id, CallRecord.caller_user_id == uid, CallRecord.callee_user_id.is_(None))
            .values(callee_number=ANONYMISED, callee_extension=None))
        await changed("call_records", update(CallRecord).where(
            CallRecord.org_id == org_id, CallRecord.callee_user_id == uid, CallRecord.caller_user_id.is_(None))
            .values(caller_number=None, caller_extension=None))
        await changed("call_records", update(CallRecord).where(CallRecord.org_id == org_id,
                                                                CallRecord.caller_user_id == uid)
                      .values(caller_user_id=None, caller_extension=None, caller_number=None,
                              sip_call_id=ANONYMISED, media=None))
        await changed("call_records", update(CallRecord).where(CallRecord.org_id == org_id,
                                                                CallRecord.callee_user_id == uid)
                      .values(callee_user_id=None, callee_extension=None, callee_number=ANONYMISED,
                              sip_call_id=ANONYMISED, media=None))
        if person.numbers:
            # Calls of others with the person's number on them (a call to their DID that nobody
            # answered as them, a forwarded call): the number goes, the rest stays for the org's books.
            await changed("call_records", update(CallRecord).where(CallRecord.org_id == org_id,
                                                                    CallRecord.caller_number.in_(person.numbers))
                          .values(caller_number=None))
            await changed("call_records", update(CallRecord).where(CallRecord.org_id == org_id,
                                                                    CallRecord.callee_number.in_(person.numbers))
                          .values(callee_number=ANONYMISED))
            await changed("voicemails", update(Voicemail).where(Voicemail.org_id == org_id,
                                                                 Voicemail.caller_number.in_(person.numbers))
                          .values(caller_number=ANONYMISED, caller_name=None))
        if person.user.name:
            await changed("voicemails", update(Voicemail).where(Voicemail.org_id == org_id,
                                                                 Voicemail.caller_name == person.user.name)
                          .values(caller_name=None))
        await changed("api_keys", update(ApiKey).where(ApiKey.org_id == org_id, ApiKey.created_by == uid)
                      .values(created_by=None))
        await changed("phone_numbers", update(PhoneNumber).where(PhoneNumber.route_user_id == uid)
                      .values(route_user_id=None))
        await self._scrub_ledger(session, person, anonymised)

    @staticmethod
    async def _scrub_ledger(session: AsyncSession, person: _Person, anonymised: dict[str, int]) -> None:
        """Ledger lines keep their amounts for the legal period, without the person's numbers."""
        org_id = person.user.org_id
        mentions: list[ColumnElement[bool]] = [LedgerTransaction.description.contains(n) for n in person.numbers]
        mentions.append(func.lower(LedgerTransaction.description).like("call to %"))  # any case, as the retention run
        rows = (await session.execute(select(LedgerTransaction).where(
            LedgerTransaction.org_id == org_id, or_(*mentions)))).scalars().all()
        count = 0
        for row in rows:
            scrubbed = _scrub_ledger(row.description, person.numbers)
            if scrubbed != row.description:
                row.description = scrubbed
                count += 1
        await session.flush()
        anonymised["ledger_transactions"] = count


# Tables whose rows the erasure looks at itself (the rest, if the register keeps columns of them,
# are listed in every receipt).
_HANDLED = frozenset({
    "users", "sip_credentials", "bindings", "web_sessions", "email_tokens", "recovery_codes", "api_keys",
    "call_records", "voicemails", "voicemail_terms", "mailboxes", "recordings", "recording_policies",
    "caller_id_verifications", "phone_numbers", "ledger_transactions", "webhook_deliveries", "webhook_attempts",
    "blobs", "org_data_keys",
})
