"""People's privacy requests: receive, queue, move through their statuses, carry out.

validate → persist → audit, the tenant (the person's org and user) explicit. Carrying out:

- access / export: :meth:`RequestsService.export` streams the zip (``export.PersonExport``) and
  closes the request when the last byte is out;
- correction: name (through ``AccountsService.update_user``), email and phone of the person's
  ``users`` rows, audited with the old and new values' field names (never the values);
- deletion: ``ErasureService.erase_person`` of the keys part, once per ``users`` row; its receipt
  (what was deleted, what was kept, why, until when) becomes the request's outcome;
- restriction / objection: sets ``users.processing_restricted_at``, which stops optional
  processing (voicemail transcripts today; marketing and analytics when they exist).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.blobs.store import BlobStore
from ringwell.features.accounts.models import User
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.privacy.export import ExportSummary, PersonExport, Progress, Subject
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.register import Register
from ringwell.features.privacy.requests import Kind, Law, Source, Status, can_move, due_date, is_overdue
from ringwell.features.privacy.requests_errors import (
    ErasureUnavailable,
    InvalidRequest,
    InvalidTransition,
    RequestNotFound,
)
from ringwell.storage.base import utcnow

__all__ = ["PORTAL_VERIFICATION", "Correction", "Eraser", "QueueItem", "RequestsService", "find_subjects"]

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


async def find_subjects(session: AsyncSession, email: str) -> list[Subject]:
    """The ``users`` rows of the person with this address (login email or an org's user email)."""
    wanted = email.strip().lower()
    rows = (await session.execute(
        select(User.org_id, User.id).where(or_(User.login_email == wanted, func.lower(User.email) == wanted))
        .order_by(User.created_at, User.id))).all()
    return [Subject(org_id, user_id) for org_id, user_id in rows]


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
                 blobs: BlobStore, register: Register, *, eraser: Eraser | None = None) -> None:
        self._sessions = sessions
        self._audit = audit
        self._accounts = accounts
        self._blobs = blobs
        self._register = register
        self._eraser = eraser

    # -- receiving -----------------------------------------------------------------------------------
    async def create(self, *, kind: str, law: str, source: str, subject_email: str, identity_verified: str,
                     actor: Actor, details: str | None = None, org_id: str | None = None,
                     user_id: str | None = None, received_at: datetime | None = None) -> DataRequest:
        """Record a request; its due date is fixed now. A staff request names the person by email
        (their ``users`` row is found when there is exactly one); a portal one by their login."""
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
            if user_id is None:
                found = await find_subjects(session, email)
                if len(found) == 1:
                    org_id, user_id = found[0].org_id, found[0].user_id
            row = DataRequest(org_id=org_id, user_id=user_id, subject_email=email, kind=kind_.value, law=law_.value,
                              source=source_.value, details=details, received_at=received,
                              due_at=due_date(law_, received), status=Status.OPEN.value,
                              identity_verified=("staff: " + verified if source_ is Source.STAFF
                                                 and not verified.startswith("staff:") else verified)[:255])
            session.add(row)
            await session.flush()
            await self._audit.record("privacy.request.create", actor, org_id=org_id, target_type="data_request",
                                     target_id=row.id, session=session,
                                     details={"kind": kind_.value, "law": law_.value, "source": source_.value,
                                              "due_at": row.due_at.isoformat()})
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
                merged = dict(row.outcome or {})
                merged.update(_jsonable(outcome or {}))
                if reason is not None:
                    merged["reason"] = reason
                row.outcome = merged
            await self._audit.record("privacy.request.update", actor, org_id=row.org_id,
                                     target_type="data_request", target_id=row.id, reason=reason,
                                     details={"status": [current.value, target.value]}, session=session)
        return row

    async def note(self, request_id: str, outcome: dict[str, Any]) -> DataRequest:
        """Add to a request's outcome without moving it (e.g. why a deletion waits for staff)."""
        async with self._sessions() as session, session.begin():
            row: DataRequest | None = await session.get(DataRequest, request_id, with_for_update=True)
            if row is None:
                raise RequestNotFound("no such privacy request", {"request_id": request_id})
            row.outcome = {**(row.outcome or {}), **_jsonable(outcome)}
        return row

    async def _subjects(self, row: DataRequest) -> list[Subject]:
        if row.user_id is not None and row.org_id is not None:
            return [Subject(row.org_id, row.user_id)]
        async with self._sessions() as session:
            return await find_subjects(session, row.subject_email)

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
        subjects = await self._subjects(row)
        if not subjects:
            raise InvalidRequest("nobody with this email address has data here", {"subject_email": row.subject_email})
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
        subjects = await self._subjects(row)
        if not subjects:
            raise InvalidRequest("nobody with this email address has data here", {"subject_email": row.subject_email})
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
            values: dict[str, Any] = {}
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
        subjects = await self._subjects(row)
        if not subjects:
            raise InvalidRequest("nobody with this email address has data here", {"subject_email": row.subject_email})
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
        """Deletion: the keys part's erasure for every ``users`` row of the person; receipts in the outcome."""
        row = await self._open(request_id, (Kind.DELETION,))
        eraser = self._eraser or self._default_eraser()
        subjects = await self._subjects(row)
        if not subjects:
            raise InvalidRequest("nobody with this email address has data here", {"subject_email": row.subject_email})
        if row.status == Status.OPEN.value:
            await self.transition(row.id, Status.IN_PROGRESS.value, actor=actor)
        receipts = [_jsonable(_receipt_json(await eraser.erase_person(s.org_id, s.user_id, actor=actor)))
                    for s in subjects]
        return await self.transition(row.id, Status.DONE.value, actor=actor, outcome={"receipts": receipts})
