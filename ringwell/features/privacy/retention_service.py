"""The retention run: deletes what is past its retention period, rows and files together.

Once a day (``ringwell.server``) and on demand (``ringwell admin retention [--dry-run]``). For
each data class (``DATA_CLASSES``) it deletes what the rules of ``retention.py`` say is due and
counts what an active legal hold kept; a dry run counts the same without changing anything.
The report of each real run is stored (``retention_runs``, ``GET /operator/retention/runs``).

What it covers:

- call records: per org, older than its period (its own choice within the bound for its
  country, else the server's); held when the org, the caller or the callee is held;
- voicemails and recordings past their own deadline (``retention_until``): the encrypted file
  first, then the row (the slices' own ``delete``); held by org, mailbox owner, caller or callee;
- usage: expired web sessions, email tokens and registrations; webhook deliveries and attempts
  older than the usage period;
- closed organizations: the closed-account period after an org was closed, its people erased
  and its data deleted, its keys destroyed (``ClosureService.purge``); held whole when a hold
  covers the org or anyone in it. The org row itself (name anonymised) and its ledger stay for
  the ledger period, then the row goes once its ledger is empty (``organizations``);
- closed accounts: users disabled longer than the closed-account period (in orgs that are open),
  deleted through the accounts service so their files go too;
- the ledger: entries older than its legal period (an org under hold keeps them); and dialled
  numbers scrubbed from every entry's description (``"call to +1415…"`` -> ``"call"``, in any case);
- the audit trail: ``AuditLog.purge_before`` (which keeps the hash chain verifiable);
- consent records: ``consent.purge_due`` (the rule ``ConsentService.purge`` applies too);
- privacy records, older than their period (``privacy_records_retention_days``, at least two years):
  data requests closed that long ago (held with the person or org they are about), incidents closed
  that long ago with their notes (47 CFR 64.2011(d) keeps them two years at least), released legal
  holds and retention reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.blobs.store import BlobStore
from ringwell.errors import DomainError
from ringwell.features.accounts.models import Organization, SipCredential, User
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import SYSTEM, AuditLog
from ringwell.features.auth.models import EmailToken, WebSession
from ringwell.features.auth.permissions import Role
from ringwell.features.billing.models import LedgerTransaction
from ringwell.features.cdr.models import CallRecord
from ringwell.features.privacy import holds as legal_holds
from ringwell.features.privacy.closure import ClosureService
from ringwell.features.privacy.consent import purge_due as consent_purge_due
from ringwell.features.privacy.erasure import ErasureService
from ringwell.features.privacy.holds import ActiveHolds, active_holds
from ringwell.features.privacy.models_consent import ConsentRecord
from ringwell.features.privacy.models_holds import LegalHold, RetentionRun
from ringwell.features.privacy.models_incidents import Incident, IncidentNote
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.register import Retention
from ringwell.features.privacy.retention import (
    LEDGER_SCRUBBED_DESCRIPTION,
    OrgRetention,
    RetentionPolicy,
    effective_call_record_days,
)
from ringwell.features.recordings.errors import RecordingNotFound
from ringwell.features.recordings.models import Recording
from ringwell.features.recordings.service import RecordingService
from ringwell.features.registrations.models import BindingRow
from ringwell.features.voicemail.errors import VoicemailNotFound
from ringwell.features.voicemail.models import Voicemail
from ringwell.features.voicemail.service import VoicemailService
from ringwell.features.webhooks.models import WebhookAttempt, WebhookDelivery
from ringwell.storage.base import utcnow

__all__ = ["DATA_CLASSES", "ClassCount", "RetentionReport", "RetentionService", "recent_runs"]

log = logging.getLogger(__name__)

DATA_CLASSES = (
    "call_records", "voicemails", "recordings", "web_sessions", "email_tokens", "bindings", "webhook_attempts",
    "webhook_deliveries", "closed_organizations", "closed_accounts", "ledger_transactions", "organizations",
    "ledger_descriptions", "audit_events", "consent_records", "data_requests", "incidents", "incident_notes",
    "legal_holds", "retention_runs",
)
_IN_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True, slots=True)
class ClassCount:
    purged: int = 0  # deleted (or, for ledger_descriptions, scrubbed); a dry run: would be
    held: int = 0  # due, but kept because a legal hold covers it


@dataclass(frozen=True, slots=True)
class RetentionReport:
    started_at: datetime
    finished_at: datetime
    dry_run: bool
    counts: Mapping[str, ClassCount]  # every name of DATA_CLASSES, in that order
    notes: tuple[str, ...] = field(default=())

    @property
    def purged(self) -> int:
        return sum(c.purged for c in self.counts.values())

    @property
    def held(self) -> int:
        return sum(c.held for c in self.counts.values())

    def counts_json(self) -> dict[str, dict[str, int]]:
        return {name: {"purged": c.purged, "held": c.held} for name, c in self.counts.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
                "dry_run": self.dry_run, "counts": self.counts_json(), "notes": list(self.notes)}


async def recent_runs(sessions: async_sessionmaker[Any], limit: int = 30) -> Sequence[RetentionRun]:
    """The reports of the latest real runs, newest first."""
    async with sessions() as session:
        runs: Sequence[RetentionRun] = (await session.execute(select(RetentionRun).order_by(
            RetentionRun.started_at.desc(), RetentionRun.id.desc()).limit(limit))).scalars().all()
    return runs


def _held_clause(holds: ActiveHolds, org: Any, *users: Any, extra: ColumnElement[bool] | None = None
                 ) -> ColumnElement[bool] | None:
    """SQL "a hold covers this row", never NULL (a NULL column is simply not held); None: no hold applies."""
    parts: list[ColumnElement[bool]] = []
    if holds.orgs and org is not None:
        parts.append(org.in_(sorted(holds.orgs)))
    if holds.users:
        parts.extend(and_(column.is_not(None), column.in_(sorted(holds.users))) for column in users)
    if extra is not None:
        parts.append(extra)
    return or_(*parts) if parts else None


class RetentionService:
    """Applies the retention policy to the whole server (every org), honouring legal holds."""

    def __init__(self, sessions: async_sessionmaker[Any], *, policy: RetentionPolicy, blobs: BlobStore,
                 accounts: AccountsService, audit: AuditLog, voicemail: VoicemailService | None = None,
                 recordings: RecordingService | None = None, closure: ClosureService | None = None,
                 batch: int = 500) -> None:
        self._sessions = sessions
        self.policy = policy
        self._accounts = accounts
        self._audit = audit
        self._closure = closure or ClosureService(
            sessions, blobs, ErasureService(sessions, blobs, audit=audit, policy=policy), audit=audit,
            retention_days=policy.period_days(Retention.ACCOUNT))
        self._voicemail = voicemail or VoicemailService(sessions, blobs)
        self._recordings = recordings or RecordingService(sessions, blobs)
        self._batch = batch

    @staticmethod
    async def held(session: AsyncSession, org_id: str, user_id: str | None) -> bool:
        """Whether an active legal hold covers the org as a whole or the person ``user_id``."""
        return await legal_holds.held(session, org_id, user_id)

    async def run(self, now: datetime | None = None, *, dry_run: bool = False) -> RetentionReport:
        """Purge everything due at ``now`` (default: the clock); ``dry_run`` only counts.

        Each class is purged in its own transactions: a failure leaves what was done done, and
        the next run continues. A real run's report is stored in ``retention_runs``.
        """
        started = utcnow()
        now = now or started
        notes: list[str] = []
        async with self._sessions() as session:
            holds = await active_holds(session)
        counts: dict[str, ClassCount] = {}
        counts["call_records"] = await self._call_records(now, holds, dry_run)
        counts["voicemails"] = await self._voicemails(now, holds, dry_run)
        counts["recordings"] = await self._recordings_due(now, holds, dry_run)
        counts.update(await self._usage(now, holds, dry_run))
        counts["closed_organizations"] = await self._closed_orgs(now, dry_run, notes)
        counts["closed_accounts"] = await self._closed_accounts(now, holds, dry_run, notes)
        counts["ledger_transactions"], counts["ledger_descriptions"] = await self._ledger(now, holds, dry_run)
        counts["organizations"] = await self._org_rows(now, holds, dry_run)
        counts["audit_events"] = await self._audit_events(now, dry_run, notes)
        counts["consent_records"] = await self._consent_records(now, dry_run)
        counts.update(await self._privacy_records(now, holds, dry_run))
        finished = utcnow()
        report = RetentionReport(started, max(finished, started), dry_run,
                                 {name: counts[name] for name in DATA_CLASSES}, tuple(notes))
        if not dry_run:
            async with self._sessions() as session, session.begin():
                session.add(RetentionRun(started_at=report.started_at, finished_at=report.finished_at, dry_run=False,
                                         counts=report.counts_json()))
        log.info("retention%s: %d purged, %d kept under legal hold", " (dry run)" if dry_run else "",
                 report.purged, report.held)
        return report

    async def purge_voicemails(self, now: datetime) -> int:
        """Only voicemails past their deadline (the hourly job), legal holds honoured; how many went."""
        async with self._sessions() as session:
            holds = await active_holds(session)
        return (await self._voicemails(now, holds, False)).purged

    async def purge_recordings(self, now: datetime) -> int:
        """Only recordings past their deadline (the hourly job), legal holds honoured; how many went."""
        async with self._sessions() as session:
            holds = await active_holds(session)
        return (await self._recordings_due(now, holds, False)).purged

    # -- helpers ----------------------------------------------------------------------------------
    async def _count(self, session: AsyncSession, query: Select[Any]) -> int:
        return int((await session.execute(query)).scalar_one())

    async def _sweep(self, model: Any, due: ColumnElement[bool], held: ColumnElement[bool] | None,
                     dry_run: bool) -> ClassCount:
        """Delete (or count) rows of ``model`` that are ``due`` and not ``held``; count the held ones."""
        free = due if held is None else and_(due, not_(held))
        async with self._sessions() as session, session.begin():
            kept = await self._count(session, select(func.count()).select_from(model).where(due, held)) \
                if held is not None else 0
            if dry_run:
                purged = await self._count(session, select(func.count()).select_from(model).where(free))
            else:
                result = await session.execute(delete(model).where(free).execution_options(synchronize_session=False))
                purged = int(result.rowcount or 0)
        return ClassCount(purged, kept)

    # -- classes ----------------------------------------------------------------------------------
    async def _call_records(self, now: datetime, holds: ActiveHolds, dry_run: bool) -> ClassCount:
        """Per org period; orgs with the same period are swept together."""
        async with self._sessions() as session:
            orgs = (await session.execute(select(Organization.id, Organization.country,
                                                 Organization.call_record_retention_days))).all()
        by_days: dict[int, list[str]] = {}
        for org_id, country, days in orgs:
            effective = effective_call_record_days(OrgRetention(country or "", days), self.policy)
            by_days.setdefault(effective, []).append(org_id)
        held = _held_clause(holds, CallRecord.org_id, CallRecord.caller_user_id, CallRecord.callee_user_id)
        purged = kept = 0
        for days, org_ids in sorted(by_days.items()):
            cutoff = now - timedelta(days=days)
            for start in range(0, len(org_ids), _IN_CHUNK):
                due = and_(CallRecord.org_id.in_(org_ids[start:start + _IN_CHUNK]), CallRecord.started_at < cutoff)
                count = await self._sweep(CallRecord, due, held, dry_run)
                purged, kept = purged + count.purged, kept + count.held
        return ClassCount(purged, kept)

    async def _media(self, model: Any, due: ColumnElement[bool], held: ColumnElement[bool] | None, dry_run: bool,
                     remove: Any) -> ClassCount:
        """Items with a file: each through its slice's ``delete`` (file first, then row)."""
        free = due if held is None else and_(due, not_(held))
        async with self._sessions() as session:
            kept = await self._count(session, select(func.count()).select_from(model).where(due, held)) \
                if held is not None else 0
            if dry_run:
                return ClassCount(await self._count(session, select(func.count()).select_from(model).where(free)),
                                  kept)
        purged = 0
        while True:
            async with self._sessions() as session:
                batch = (await session.execute(select(model.org_id, model.id).where(free)
                                               .order_by(model.retention_until, model.id).limit(self._batch))).all()
            done = 0
            for org_id, item_id in batch:
                try:
                    await remove(org_id, item_id)
                except (VoicemailNotFound, RecordingNotFound):  # deleted meanwhile (its owner, the hourly purge)
                    continue
                done += 1
            purged += done
            if len(batch) < self._batch or done == 0:
                return ClassCount(purged, kept)

    async def _voicemails(self, now: datetime, holds: ActiveHolds, dry_run: bool) -> ClassCount:
        return await self._media(Voicemail, Voicemail.retention_until <= now,
                                 _held_clause(holds, Voicemail.org_id, Voicemail.user_id), dry_run,
                                 self._voicemail.delete)

    async def _recordings_due(self, now: datetime, holds: ActiveHolds, dry_run: bool) -> ClassCount:
        return await self._media(Recording, Recording.retention_until <= now,
                                 _held_clause(holds, Recording.org_id, Recording.caller_user_id,
                                              Recording.callee_user_id), dry_run, self._recordings.delete)

    async def _usage(self, now: datetime, holds: ActiveHolds, dry_run: bool) -> dict[str, ClassCount]:
        days = self.policy.period_days(Retention.USAGE)
        old = now - timedelta(days=days) if days is not None else None
        held_org_users = select(User.id).where(User.org_id.in_(sorted(holds.orgs)))
        counts = {
            "web_sessions": await self._sweep(WebSession, WebSession.expires_at < now,
                                              _held_clause(holds, WebSession.org_id, WebSession.user_id), dry_run),
            "email_tokens": await self._sweep(
                EmailToken, EmailToken.expires_at < now,
                _held_clause(holds, None, EmailToken.user_id,
                             extra=EmailToken.user_id.in_(held_org_users) if holds.orgs else None), dry_run),
            "bindings": await self._sweep(
                BindingRow, BindingRow.expires_at < now,
                _held_clause(holds, BindingRow.org_id, extra=BindingRow.credential_id.in_(
                    select(SipCredential.id).where(SipCredential.user_id.in_(sorted(holds.users))))
                    if holds.users else None), dry_run),
        }
        if old is None:
            counts["webhook_attempts"] = counts["webhook_deliveries"] = ClassCount()
            return counts
        counts["webhook_attempts"] = await self._sweep(WebhookAttempt, WebhookAttempt.at < old,
                                                       _held_clause(holds, WebhookAttempt.org_id), dry_run)
        counts["webhook_deliveries"] = await self._sweep(WebhookDelivery, WebhookDelivery.created_at < old,
                                                         _held_clause(holds, WebhookDelivery.org_id), dry_run)
        return counts

    async def _closed_accounts(self, now: datetime, holds: ActiveHolds, dry_run: bool,
                               notes: list[str]) -> ClassCount:
        days = self.policy.period_days(Retention.ACCOUNT)
        if days is None:
            return ClassCount()
        closed_orgs = select(Organization.id).where(Organization.closed_at.is_not(None))
        due = and_(User.disabled_at.is_not(None), User.disabled_at < now - timedelta(days=days),
                   User.org_id.not_in(closed_orgs))  # a closed org's people go with it (closed_organizations)
        async with self._sessions() as session:
            rows = (await session.execute(select(User.org_id, User.id).where(due).order_by(User.disabled_at))).all()
        kept = [row for row in rows if holds.covers(row[0], row[1])]
        free = [row for row in rows if not holds.covers(row[0], row[1])]
        if dry_run:
            return ClassCount(len(free), len(kept))
        purged = 0
        for org_id, user_id in free:
            try:
                await self._accounts.delete_user(org_id, user_id, granter_role=Role.OWNER.value, acting_user_id=None,
                                                 audit=self._user_deleted(days))
            except DomainError as exc:  # e.g. the org's last owner: left for the org to resolve
                notes.append(f"closed account {user_id} kept: {exc.message}")
                log.warning("retention: closed account %s of org %s kept: %s", user_id, org_id, exc.message)
                continue
            purged += 1
        return ClassCount(purged, len(kept))

    async def _closed_orgs(self, now: datetime, dry_run: bool, notes: list[str]) -> ClassCount:
        """Closed orgs past the closed-account period: purged one by one (each person erased, then the rest)."""
        due = await self._closure.due(now)
        held = sum(1 for _, is_held in due if is_held)
        free = [org_id for org_id, is_held in due if not is_held]
        if dry_run:
            return ClassCount(len(free), held)
        purged = 0
        for org_id in free:
            try:
                await self._closure.purge(org_id)
            except DomainError as exc:  # a hold placed meanwhile, a user added meanwhile: the next run
                notes.append(f"closed organization {org_id} kept: {exc.message}")
                log.warning("retention: closed organization %s kept: %s", org_id, exc.message)
                continue
            except Exception as exc:  # one org's failure must not stop the other classes
                notes.append(f"closed organization {org_id}: the purge failed ({type(exc).__name__}); "
                             "the next run continues it")
                log.exception("retention: the purge of closed organization %s failed", org_id)
                continue
            purged += 1
        removed = await self._closure.remove_leftover_files()
        if removed:
            notes.append(f"removed the files left by {removed} earlier purge(s)")
        return ClassCount(purged, held)

    async def _org_rows(self, now: datetime, holds: ActiveHolds, dry_run: bool) -> ClassCount:
        """The row of an org purged after its closure, once the ledger period has passed since the
        closure and its ledger has no entry left (its ledger accounts and payments go with it, by cascade)."""
        days = self.policy.period_days(Retention.LEDGER)
        if days is None:
            return ClassCount()
        cutoff = now - timedelta(days=days)
        # No ledger entry younger than the ledger period: the older ones went just before (a dry run
        # counts as if they had; an org under hold keeps both, and is counted held).
        due = and_(Organization.purged_at.is_not(None), Organization.closed_at < cutoff,
                   ~select(LedgerTransaction.id).where(LedgerTransaction.org_id == Organization.id,
                                                       LedgerTransaction.created_at >= cutoff).exists())
        return await self._sweep(Organization, due, _held_clause(holds, Organization.id), dry_run)

    def _user_deleted(self, days: int) -> Any:
        async def record(session: AsyncSession, user_id: str, details: dict[str, Any]) -> None:
            user = await session.get(User, user_id)
            await self._audit.record("users.delete", SYSTEM, org_id=user.org_id if user else None,
                                     target_type="user", target_id=user_id,
                                     reason=f"retention: disabled more than {days} days ago",
                                     details={"files_deleted": details.get("files_deleted", 0)}, session=session)

        return record

    async def _ledger(self, now: datetime, holds: ActiveHolds, dry_run: bool) -> tuple[ClassCount, ClassCount]:
        # Every entry, held or not: the amount is what the books need, the dialled number is not.
        # (Scrubbed before old entries go, so that a dry run counts the same as a real run.)
        # lower(): LIKE is case-insensitive on SQLite only, and "Call to +1…" must go on PostgreSQL too.
        dialled = func.lower(LedgerTransaction.description).like("call to %")
        async with self._sessions() as session, session.begin():
            if dry_run:
                scrubbed = await self._count(session, select(func.count()).select_from(LedgerTransaction)
                                             .where(dialled))
            else:
                result = await session.execute(update(LedgerTransaction).where(dialled).values(
                    description=LEDGER_SCRUBBED_DESCRIPTION).execution_options(synchronize_session=False))
                scrubbed = int(result.rowcount or 0)
        days = self.policy.period_days(Retention.LEDGER)
        entries = ClassCount() if days is None else await self._sweep(
            LedgerTransaction, LedgerTransaction.created_at < now - timedelta(days=days),
            _held_clause(holds, LedgerTransaction.org_id), dry_run)
        return entries, ClassCount(scrubbed, 0)

    async def _audit_events(self, now: datetime, dry_run: bool, notes: list[str]) -> ClassCount:
        days = self.policy.period_days(Retention.AUDIT)
        if days is None:
            return ClassCount()
        cutoff = now - timedelta(days=days)
        purge = getattr(self._audit, "purge_before", None)
        if purge is None:  # an audit log without a chain-keeping purge: its rows are append-only
            notes.append("audit events not purged: this audit log cannot purge")
            return ClassCount()
        if dry_run:
            async with self._sessions() as session:
                return ClassCount(await self._count(session, select(func.count()).select_from(AuditEvent)
                                                    .where(AuditEvent.at < cutoff)), 0)
        return ClassCount(int(await purge(cutoff)), 0)

    async def _consent_records(self, now: datetime, dry_run: bool) -> ClassCount:
        """Consent records past their period: ``consent.purge_due``, ConsentService.purge's own rule."""
        due = consent_purge_due(now, self.policy)
        return ClassCount() if due is None else await self._sweep(ConsentRecord, due, None, dry_run)

    async def _privacy_records(self, now: datetime, holds: ActiveHolds, dry_run: bool) -> dict[str, ClassCount]:
        names = ("data_requests", "incidents", "incident_notes", "legal_holds", "retention_runs")
        days = self.policy.period_days(Retention.PRIVACY_RECORDS)
        if days is None:
            return {name: ClassCount() for name in names}
        cutoff = now - timedelta(days=days)
        closed_incidents = and_(Incident.closed_at.is_not(None), Incident.closed_at < cutoff)
        held_org = and_(DataRequest.org_id.is_not(None),  # NULL once the org is gone: then not held as the org's
                        DataRequest.org_id.in_(sorted(holds.orgs))) if holds.orgs else None
        return {
            "data_requests": await self._sweep(
                DataRequest, and_(DataRequest.closed_at.is_not(None), DataRequest.closed_at < cutoff),
                _held_clause(holds, None, DataRequest.user_id, extra=held_org), dry_run),
            # The notes first (not left to ON DELETE CASCADE), so that they are counted, dry run or not.
            "incident_notes": await self._sweep(
                IncidentNote, IncidentNote.incident_id.in_(select(Incident.id).where(closed_incidents)), None, dry_run),
            "incidents": await self._sweep(Incident, closed_incidents, None, dry_run),
            "legal_holds": await self._sweep(LegalHold, and_(LegalHold.released_at.is_not(None),
                                                             LegalHold.released_at < cutoff), None, dry_run),
            "retention_runs": await self._sweep(RetentionRun, RetentionRun.started_at < cutoff, None, dry_run),
        }
