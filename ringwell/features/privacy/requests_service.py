"""People's privacy requests: receive, queue, move through their statuses, carry out.

validate → persist → audit, the tenant (the person's org and user) explicit.

Who a request is about is fixed when it is received (``data_requests.subjects``), and only those
accounts are acted on, however the ``users`` table changes later:

- a portal request: the person's own ``users`` row, nothing else;
- a staff request by email: the verified login with that address (``login_email``, unique on the
  server), and, only when staff name the organization, that organization's user whose (unverified)
  user ``email`` it is. An address typed into some org's user list proves nothing about who owns it.

Carrying out:

- access / export: :meth:`RequestsService.export` streams the zip (``export.PersonExport``) and
  closes the request when the last byte is out;
- correction: name (through ``AccountsService.update_user``), email and phone of the person's
  ``users`` rows, audited with the old and new values' field names (never the values);
- deletion: ``ErasureService.erase_person`` (the server's, whose hook makes the SIP side forget
  the person's logins) once per subject; each receipt (what was deleted, what was kept, why, until
  when) is saved in the outcome as it is produced, and a failure is recorded there (``failed``)
  with the request left in progress, so running it again erases only who is left;
- restriction / objection: sets ``users.processing_restricted_at``, which stops optional
  processing (voicemail transcripts today; marketing and analytics when they exist).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.blobs.store import BlobStore
from ringwell.errors import DomainError
from ringwell.features.accounts.errors import UserNotFound
from ringwell.features.accounts.models import Organization, User
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.privacy.export import ExportSummary, PersonExport, Progress, Subject
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.register import Register
from ringwell.features.privacy.requests import (
    Kind,
    Law,
    Source,
    Status,
    can_move,
    due_date,
    is_overdue,
    receipt_text,
)
from ringwell.features.privacy.requests_errors import (
    ErasureUnavailable,
    InvalidRequest,
    InvalidTransition,
    RequestNotFound,
)
from ringwell.mail import Mailer, MailError
from ringwell.storage.base import utcnow

__all__ = ["PORTAL_VERIFICATION", "Correction", "Eraser", "Match", "QueueItem", "RequestsService", "find_subjects"]

log = logging.getLogger(__name__)

PORTAL_VERIFICATION = "portal login + MFA"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class Eraser(Protocol):
    """The keys part's ``ErasureService`` as this module uses it."""

    async def erase_person(self, org_id: str, user_id: str, *, actor: Actor) -> Any: ...


@dataclass(frozen=True, slots=True)
class QueueItem:
    request: DataRequest
    overdue: bool


@dataclass(frozen=True, slots=True)
class Correction:
    """New values for the person's account data; None leaves a field as it is."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """One account a request is about, as found when it was received (stored in ``subjects``)."""

    org_id: str
    org: str  # the organization's name, for staff to see whose account it is
    user_id: str
    matched_by: str  # "portal" (the person's own) | "login_email" (a verified login) | "email" (in a named org)

    @property
    def subject(self) -> Subject:
        return Subject(self.org_id, self.user_id)

    def as_json(self) -> dict[str, str]:
        return {"org_id": self.org_id, "org": self.org, "user_id": self.user_id, "matched_by": self.matched_by}


async def find_subjects(session: AsyncSession, email: str, *, org: str | None = None) -> list[Match]:
    """The accounts an address names: the verified login with it (``login_email`` is unique on the
    server) and, only within the organization ``org`` (its name) when given, the user whose user
    ``email`` it is. Raises :class:`InvalidRequest` when ``org`` names no organization."""
    wanted = email.strip().lower()
    found: list[Match] = []
    login = (await session.execute(
        select(User.org_id, Organization.name, User.id).join(Organization, Organization.id == User.org_id)
        .where(User.login_email == wanted, User.email_verified_at.is_not(None)))).first()
    if login is not None:
        found.append(Match(login[0], login[1], login[2], "login_email"))
    if org is not None and org.strip():
        named = (await session.execute(select(Organization.id, Organization.name).where(
            Organization.name == org.strip()))).first()
        if named is None:
            raise InvalidRequest(f"there is no organization named {org.strip()!r}", {"field": "org"})
        rows = (await session.execute(select(User.id).where(User.org_id == named[0],
                                                            func.lower(User.email) == wanted)
                                      .order_by(User.created_at, User.id))).scalars().all()
        found += [Match(named[0], named[1], user_id, "email") for user_id in rows
                  if all(m.user_id != user_id for m in found)]
    return found


async def _own_row(session: AsyncSession, org_id: str | None, user_id: str) -> Match:
    """A portal request's subject: the person's own ``users`` row, nothing else."""
    row = (await session.execute(
        select(User.org_id, Organization.name).join(Organization, Organization.id == User.org_id)
        .where(User.id == user_id))).first()
    if row is None or (org_id is not None and row[0] != org_id):
        raise InvalidRequest("no such person", {"user_id": user_id})
    return Match(row[0], row[1], user_id, "portal")


def _merged(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``old`` updated with ``new`` (made JSON-ready); a None value removes the key."""
    merged = dict(old or {})
    for key, value in _jsonable(new).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _receipt_json(receipt: Any) -> Any:
    """The erasure receipt as JSON: its ``as_dict()`` when it has one, else its dataclass fields."""
    as_dict = getattr(receipt, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    if dataclasses.is_dataclass(receipt) and not isinstance(receipt, type):
        return dataclasses.asdict(receipt)
    return str(receipt)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class RequestsService:
    def __init__(self, sessions: async_sessionmaker[Any], audit: AuditLog, accounts: AccountsService,
                 blobs: BlobStore, register: Register, *, eraser: Eraser | None = None,
                 mailer: Mailer | None = None) -> None:
        self._sessions = sessions
        self._mailer = mailer  # the deletion receipt goes to the request's address
        self._audit = audit
        self._accounts = accounts
        self._blobs = blobs
        self._register = register
        self._eraser = eraser

    # -- receiving -----------------------------------------------------------------------------------
    async def create(self, *, kind: str, law: str, source: str, subject_email: str, identity_verified: str,
                     actor: Actor, details: str | None = None, org_id: str | None = None,
                     user_id: str | None = None, received_at: datetime | None = None,
                     org: str | None = None) -> DataRequest:
        """Record a request; its due date and its subjects are fixed now (module docstring).

        A portal request passes the person's ``user_id`` (that row is its only subject); a staff
        one names the person by email, and the organization (``org``, its name) to match a user
        email there. A request matching nobody is still recorded: staff answer it (refuse it, or
        tell the person no data is held)."""
        try:
            kind_, law_, source_ = Kind(kind), Law(law), Source(source)
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"kinds": [k.value for k in Kind], "laws": [v.value for v in Law]}) from None
        email = subject_email.strip().lower()
        if not _EMAIL_RE.match(email) or len(email) > 320:
            raise InvalidRequest("the person's email address is not valid", {"field": "subject_email"})
        verified = identity_verified.strip()
        if not verified:
            raise InvalidRequest("say how the person's identity was verified", {"field": "identity_verified"})
        details = (details or "").strip() or None
        if details is not None and len(details) > 4000:
            raise InvalidRequest("details must be at most 4000 characters", {"field": "details"})
        if kind_ is Kind.CORRECTION and details is None:
            raise InvalidRequest("say what should be corrected", {"field": "details"})
        received = received_at or utcnow()
        async with self._sessions() as session, session.begin():
            found = [await _own_row(session, org_id, user_id)] if user_id is not None else await find_subjects(
                session, email, org=org)
            if len(found) == 1:
                org_id, user_id = found[0].org_id, found[0].user_id
            row = DataRequest(org_id=org_id, user_id=user_id, subject_email=email, kind=kind_.value, law=law_.value,
                              subjects=[m.as_json() for m in found], source=source_.value, details=details,
                              received_at=received,
                              due_at=due_date(law_, received), status=Status.OPEN.value,
                              identity_verified=("staff: " + verified if source_ is Source.STAFF
                                                 and not verified.startswith("staff:") else verified)[:255])
            session.add(row)
            await session.flush()
            await self._audit.record("privacy.request.create", actor, org_id=org_id, target_type="data_request",
                                     target_id=row.id, session=session,
                                     details={"kind": kind_.value, "law": law_.value, "source": source_.value,
                                              "due_at": row.due_at.isoformat(), "subjects": len(found)})
        return row

    # -- reading -------------------------------------------------------------------------------------
    async def get(self, request_id: str) -> DataRequest:
        async with self._sessions() as session:
            row: DataRequest | None = await session.get(DataRequest, request_id)
        if row is None:
            raise RequestNotFound("no such privacy request", {"request_id": request_id})
        return row

    async def of_user(self, user_id: str) -> list[DataRequest]:
        """The person's own requests, newest first (the portal's privacy page)."""
        async with self._sessions() as session:
            rows = (await session.execute(select(DataRequest).where(DataRequest.user_id == user_id)
                                          .order_by(DataRequest.received_at.desc()))).scalars().all()
        return list(rows)

    async def queue(self, *, now: datetime | None = None, closed: bool = False, limit: int = 200) -> list[QueueItem]:
        """The staff queue: unanswered requests, overdue first, then by due date (``closed``: the answered)."""
        now = now or utcnow()
        wanted = [Status.DONE.value, Status.REFUSED.value] if closed else [Status.OPEN.value,
                                                                             Status.IN_PROGRESS.value]
        async with self._sessions() as session:
            rows = (await session.execute(select(DataRequest).where(DataRequest.status.in_(wanted))
                                          .order_by(DataRequest.due_at, DataRequest.id).limit(limit))).scalars().all()
        items = [QueueItem(row, is_overdue(Status(row.status), row.due_at, now)) for row in rows]
        return sorted(items, key=lambda item: (not item.overdue, item.request.due_at))

    # -- moving --------------------------------------------------------------------------------------
    async def transition(self, request_id: str, status: str, *, actor: Actor, reason: str | None = None,
                         outcome: dict[str, Any] | None = None) -> DataRequest:
        """Move a request on (``TRANSITIONS``); refusing needs a reason, which the person is told."""
        try:
            target = Status(status)
        except ValueError:
            raise InvalidRequest(f"unknown status {status!r}", {"statuses": [s.value for s in Status]}) from None
        reason = (reason or "").strip() or None
        if target is Status.REFUSED and reason is None:
            raise InvalidRequest("say why the request is refused (the person is told)", {"field": "reason"})
        async with self._sessions() as session, session.begin():
            row: DataRequest | None = await session.get(DataRequest, request_id, with_for_update=True)
            if row is None:
                raise RequestNotFound("no such privacy request", {"request_id": request_id})
            current = Status(row.status)
            if not can_move(current, target):
                raise InvalidTransition(f"a request that is {current.value} cannot become {target.value}",
                                        {"status": current.value})
            row.status = target.value
            if actor.user_id is not None and actor.org_id != row.org_id:
                row.handled_by = actor.user_id
            if target in (Status.DONE, Status.REFUSED):
                row.closed_at = utcnow()
                row.outcome = _merged(row.outcome, {**(outcome or {}), "reason": reason})
            await self._audit.record("privacy.request.update", actor, org_id=row.org_id,
                                     target_type="data_request", target_id=row.id, reason=reason,
                                     details={"status": [current.value, target.value]}, session=session)
        return row

    async def note(self, request_id: str, outcome: dict[str, Any]) -> DataRequest:
        """Add to a request's outcome without moving it (e.g. why a deletion waits for staff); a
        None value removes that key."""
        async with self._sessions() as session, session.begin():
            row: DataRequest | None = await session.get(DataRequest, request_id, with_for_update=True)
            if row is None:
                raise RequestNotFound("no such privacy request", {"request_id": request_id})
            row.outcome = _merged(row.outcome, outcome)
        return row

    @staticmethod
    def _subjects(row: DataRequest) -> list[Subject]:
        """The accounts fixed when the request was received; never looked up again by email."""
        if row.subjects is not None:
            return [Subject(str(s["org_id"]), str(s["user_id"])) for s in row.subjects]
        if row.user_id is not None and row.org_id is not None:  # received before subjects were stored
            return [Subject(row.org_id, row.user_id)]
        return []

    @staticmethod
    def _nobody(row: DataRequest) -> InvalidRequest:
        return InvalidRequest("the request names no account here: refuse it (no data is held under this address), "
                              "or enter it again naming the organization", {"subject_email": row.subject_email})

    async def _open(self, request_id: str, kinds: Sequence[Kind], *, done_too: bool = False) -> DataRequest:
        row = await self.get(request_id)
        if Kind(row.kind) not in kinds:
            raise InvalidRequest(f"this is a {row.kind} request", {"kind": row.kind})
        allowed = (Status.OPEN, Status.IN_PROGRESS, Status.DONE) if done_too else (Status.OPEN, Status.IN_PROGRESS)
        if Status(row.status) not in allowed:
            raise InvalidTransition(f"the request is already {row.status}", {"status": row.status})
        return row

    # -- carrying out --------------------------------------------------------------------------------
    async def export(self, request_id: str, *, actor: Actor, progress: Progress | None = None) -> AsyncIterator[bytes]:
        """The zip of an access or export request; the request is done once the zip is complete.

        A done request can be downloaded again (a broken download is not a lost request; each
        download is audited); a refused one cannot. Checks happen before the first byte, so an
        HTTP handler can still answer an error."""
        row = await self._open(request_id, (Kind.ACCESS, Kind.EXPORT), done_too=True)
        subjects = self._subjects(row)
        if not subjects:
            raise self._nobody(row)
        return self._export_stream(row, subjects, actor, progress)

    async def _export_stream(self, row: DataRequest, subjects: list[Subject], actor: Actor,
                             progress: Progress | None) -> AsyncIterator[bytes]:
        summary = ExportSummary()
        exporter = PersonExport(self._sessions, self._blobs, self._register)
        async for piece in exporter.chunks(subjects, progress=progress, summary=summary):
            yield piece
        await self._audit.record("privacy.export", actor, org_id=row.org_id, target_type="user",
                                 target_id=row.user_id or row.subject_email,
                                 details={"request_id": row.id, "rows": summary.rows,
                                          "media_files": summary.media_files, "zip_bytes": summary.zip_bytes})
        if row.status != Status.DONE.value:
            await self.transition(row.id, Status.DONE.value, actor=actor, outcome={
                "exported_rows": summary.rows, "media_files": summary.media_files, "zip_bytes": summary.zip_bytes})

    async def correct(self, request_id: str, correction: Correction, *, actor: Actor) -> DataRequest:
        """Apply a correction request to every ``users`` row of the person, then close it."""
        row = await self._open(request_id, (Kind.CORRECTION,))
        subjects = self._subjects(row)
        if not subjects:
            raise self._nobody(row)
        email = correction.email.strip().lower() if correction.email else None
        phone = correction.phone.strip() if correction.phone else None
        if email is not None and not _EMAIL_RE.match(email):
            raise InvalidRequest("the new email address is not valid", {"field": "email"})
        if phone is not None and not _PHONE_RE.match(phone):
            raise InvalidRequest("the new phone number must be in E.164 (+ and 7-15 digits)", {"field": "phone"})
        changed: set[str] = set()
        for subject in subjects:
            if correction.name is not None:
                async def audit(session: AsyncSession, target_id: str, details: dict[str, Any],
                                org_id: str = subject.org_id) -> None:
                    await self._audit.record("users.update", actor, org_id=org_id, target_type="user",
                                             target_id=target_id, session=session,
                                             details={"fields": sorted(details.get("changes", {})),
                                                      "request_id": row.id})

                await self._accounts.update_user(subject.org_id, subject.user_id, granter_role="owner",
                                                 name=correction.name, audit=audit)
                changed.add("name")
            values: dict[str, Any] = {}  # this subject's: a login address moves only where there is one
            if email is not None:
                values["email"] = email
            if phone is not None:
                values["phone"] = phone
            if values:
                try:
                    async with self._sessions() as session, session.begin():
                        user = await session.get(User, subject.user_id, with_for_update=True)
                        if user is None:
                            continue
                        if email is not None and user.login_email is not None:
                            values["login_email"] = email
                        await session.execute(update(User).where(User.id == subject.user_id).values(**values))
                        await self._audit.record("users.update", actor, org_id=subject.org_id, target_type="user",
                                                 target_id=subject.user_id, session=session,
                                                 details={"fields": sorted(values), "request_id": row.id})
                except IntegrityError:
                    raise InvalidRequest("another account already uses this email address",
                                         {"field": "email"}) from None
                changed.update(k for k in values if k != "login_email")
        return await self.transition(row.id, Status.DONE.value, actor=actor,
                                     outcome={"corrected": sorted(changed)})

    async def restrict(self, request_id: str, *, actor: Actor) -> DataRequest:
        """Restriction or objection: stop optional processing of the person's data from now on."""
        row = await self._open(request_id, (Kind.RESTRICTION, Kind.OBJECTION))
        subjects = self._subjects(row)
        if not subjects:
            raise self._nobody(row)
        now = utcnow()
        async with self._sessions() as session, session.begin():
            for subject in subjects:
                await session.execute(update(User).where(User.id == subject.user_id,
                                                         User.processing_restricted_at.is_(None))
                                      .values(processing_restricted_at=now))
                await self._audit.record("privacy.restrict", actor, org_id=subject.org_id, target_type="user",
                                         target_id=subject.user_id, session=session, details={"request_id": row.id})
        return await self.transition(row.id, Status.DONE.value, actor=actor, outcome={
            "processing_restricted_at": now.isoformat(),
            "stopped": ["voicemail transcripts", "marketing", "analytics"]})

    def _default_eraser(self) -> Eraser:
        """The keys part's ErasureService, composed on first use (imported lazily: it imports the register)."""
        try:
            from ringwell.features.privacy.erasure import ErasureService  # noqa: PLC0415
        except ImportError as exc:
            raise ErasureUnavailable("erasure is not available on this server; the request stays open") from exc
        self._eraser = ErasureService(self._sessions, self._blobs, audit=self._audit, register=self._register)
        return self._eraser

    async def erase(self, request_id: str, *, actor: Actor) -> DataRequest:
        """Deletion: the erasure of every subject of the request, each receipt saved as it comes.

        When one fails (a legal hold, the org's last owner), the receipts so far stay in the
        outcome with ``failed`` (whose, and why), the request stays in progress and the error is
        raised; running it again skips the subjects already erased. A subject whose ``users`` row
        is already gone (deleted meanwhile, itself an erasure) is noted ``already_deleted``."""
        row = await self._open(request_id, (Kind.DELETION,))
        eraser = self._eraser or self._default_eraser()
        subjects = self._subjects(row)
        if not subjects:
            raise self._nobody(row)
        if row.status == Status.OPEN.value:
            await self.transition(row.id, Status.IN_PROGRESS.value, actor=actor)
        receipts: list[Any] = list((row.outcome or {}).get("receipts") or [])
        erased = {r.get("user_id") for r in receipts if isinstance(r, dict)}
        for subject in subjects:
            if subject.user_id in erased:
                continue
            try:
                receipt = _jsonable(_receipt_json(await eraser.erase_person(subject.org_id, subject.user_id,
                                                                            actor=actor)))
            except UserNotFound:
                receipt = {"org_id": subject.org_id, "user_id": subject.user_id, "already_deleted": True}
            except Exception as exc:
                failed = {"org_id": subject.org_id, "user_id": subject.user_id,
                          "error_id": exc.error_id if isinstance(exc, DomainError) else "erasure_failed",
                          "message": exc.message if isinstance(exc, DomainError) else "the erasure failed: try again"}
                await self.note(row.id, {"receipts": receipts, "failed": failed})
                raise
            receipts.append(receipt)
            await self.note(row.id, {"receipts": receipts})
        done = await self.transition(row.id, Status.DONE.value, actor=actor,
                                     outcome={"receipts": receipts, "failed": None, "waiting": None,
                                              "error_id": None})
        return await self._send_receipt(done, receipts)

    async def _send_receipt(self, row: DataRequest, receipts: list[Any]) -> DataRequest:
        """Email the receipt to the address the request came from; whether it went is noted on the
        request (a mail failure does not undo an erasure: staff see it and send it again)."""
        if self._mailer is None:
            return row
        try:
            await self._mailer.send(row.subject_email, "Your data was deleted: your receipt", receipt_text(receipts))
        except MailError as exc:
            log.warning("the receipt of privacy request %s was not sent: %s", row.id, exc)
            return await self.note(row.id, {"receipt_emailed": False})
        return await self.note(row.id, {"receipt_emailed": True})
