"""Closing an organization, and purging its data the account-data period later (issue 8).

``ClosureService.close(org_id, actor=..., reason=...)`` does, in one transaction:

- sets ``organizations.closed_at``; nothing new can be added (users, numbers: ``OrganizationClosed``);
- disables every user (``disabled_at``) and ends their browser sessions and pending email links;
- deletes every SIP credential (devices and web phones) with their registrations: no phone of
  the org registers or calls any more (the SIP side is told, ``credentials_changed``);
- revokes every API key; disables every webhook endpoint and gives up its pending deliveries;
- deletes its caller-ID verifications (no verification call is placed on the org's behalf any more);
- releases every rented number into quarantine (as ``release`` does; nothing is refunded);
- records ``orgs.close`` in the audit trail (counts only).

Calls in progress at that moment are not cut: they end as they would have.

Its data stays for ``closed_account_retention_days`` (90), time for people to ask for their
export. ``reopen`` (an operator's mistake, a customer who comes back) undoes what it can before
then — not once the purge is due: the org is open and the users it disabled can sign in again;
keys, numbers, webhooks and SIP passwords are new ones.

``purge(org_id)`` (the retention run's ``closed_organizations`` class) then, unless a legal hold
covers the org or anyone in it, or a data request of the org or anyone in it is still open (it is
answered first: an export asked for on day 85 is not lost):

- erases every person through the one erasure path (``ErasureService.erase_person``, the last
  owner included): rows, files, their keys destroyed, their traces anonymised;
- deletes what the org itself still has: call records, voicemail and recordings not tied to a
  person, mailboxes, webhooks, API keys, recording policies, fraud and rate settings, hold music
  and every other file, in one transaction together with the destruction of every data key of
  the org (crypto-shredding: copies of its files in backups never decrypt);
- anonymises the org's name and keeps the row, its ledger and payments for the ledger's legal
  period (accounting law), its consent records for their period and the audit trail;
- records ``privacy.purge_org`` with counts only.

The retention run deletes the org row itself (with its ledger) once the ledger period has passed
since the closure and the ledger has no entry left (``organizations`` class).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.blobs.store import BlobStore
from ringwell.errors import Conflict, Invalid
from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.models import Organization, OrgKind, SipCredential, User
from ringwell.features.audit.service import SYSTEM, Actor, AuditLog
from ringwell.features.auth.models import ApiKey, EmailToken, WebSession
from ringwell.features.auth.repository import rowcount
from ringwell.features.billing.models import CreditReservation
from ringwell.features.cdr.models import CallRecord
from ringwell.features.fraud.models import DestinationPermission, FraudSettings
from ringwell.features.numbers import repository as numbers_repo
from ringwell.features.numbers.models import CallerIdVerification, NumberState, PhoneNumber
from ringwell.features.privacy import holds as legal_holds
from ringwell.features.privacy.erasure import ErasureRefused, ErasureService
from ringwell.features.privacy.models_consent import ConsentRecord
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.privacy.retention import policy_from_settings
from ringwell.features.rating.models import OrgRateDeck
from ringwell.features.recordings.models import Recording, RecordingPolicy
from ringwell.features.registrations.models import BindingRow
from ringwell.features.voicemail.mailbox_models import MailboxRow
from ringwell.features.voicemail.models import Voicemail, VoicemailTerm
from ringwell.features.webhooks import repository as webhooks_repo
from ringwell.features.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ringwell.storage.base import utcnow

__all__ = [
    "Closure",
    "ClosureService",
    "InvalidClosure",
    "OrgNotClosed",
    "OrgPurge",
    "OrgPurged",
    "PurgeInterrupted",
    "anonymised_name",
    "kept_by",
]

log = logging.getLogger(__name__)


class OrgNotClosed(Conflict):
    """Reopening or purging an organization that is not closed; closing the operator's own."""

    error_id = "organization_not_closed"


class OrgPurged(Conflict):
    """The closed organization's data is deleted (or due for deletion): it cannot be reopened."""

    error_id = "organization_purged"


class PurgeInterrupted(Conflict):
    """The purge stopped: the org was reopened, or a user added, while its people were erased."""

    error_id = "organization_purge_interrupted"


def anonymised_name(org_id: str) -> str:
    """What a purged organization is called (names are unique; the id is not personal)."""
    return f"closed organization {org_id}"


@dataclass(frozen=True, slots=True)
class Closure:
    """What closing (or reopening) did: counts, and when the data goes."""

    org_id: str
    closed_at: datetime | None
    purge_after: datetime | None
    users_disabled: int = 0
    users_enabled: int = 0
    sessions_ended: int = 0
    credentials_deleted: int = 0
    api_keys_revoked: int = 0
    numbers_released: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"org_id": self.org_id, "closed_at": self.closed_at.isoformat() if self.closed_at else None,
                "purge_after": self.purge_after.isoformat() if self.purge_after else None,
                "users_disabled": self.users_disabled, "users_enabled": self.users_enabled,
                "sessions_ended": self.sessions_ended, "credentials_deleted": self.credentials_deleted,
                "api_keys_revoked": self.api_keys_revoked, "numbers_released": list(self.numbers_released)}


@dataclass(frozen=True, slots=True)
class OrgPurge:
    """What the purge of a closed organization did (rows per table, files, keys)."""

    org_id: str
    purged_at: datetime
    people_erased: int
    deleted: dict[str, int] = field(default_factory=dict)
    files_deleted: int = 0
    keys_destroyed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"org_id": self.org_id, "purged_at": self.purged_at.isoformat(), "people_erased": self.people_erased,
                "deleted": dict(self.deleted), "files_deleted": self.files_deleted,
                "keys_destroyed": self.keys_destroyed}


HOLD = "a legal hold"
OPEN_REQUEST = "an open data request"


async def kept_by(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, str]:
    """Of ``org_ids``, those whose purge waits, and why (``HOLD`` or ``OPEN_REQUEST``), in a few queries.

    A hold on the org, or on anyone in it, keeps the whole org: its shared records (calls,
    recordings) are part of what a hold on one person preserves. A data request still open (about
    the org, or of anyone in it) is answered first: an export asked for on day 85 is not lost.
    """
    if not org_ids:
        return {}
    ids = sorted(set(org_ids))
    holds = await legal_holds.active_holds(session)
    held = holds.orgs & set(ids)
    if holds.users:
        held |= set((await session.execute(select(User.org_id).where(
            User.id.in_(sorted(holds.users)), User.org_id.in_(ids)))).scalars())
    still_open = DataRequest.closed_at.is_(None)
    requested: set[str] = {org_id for org_id in (await session.execute(select(DataRequest.org_id).where(
        still_open, DataRequest.org_id.in_(ids)))).scalars() if org_id is not None}
    requested |= set((await session.execute(select(User.org_id).join(DataRequest, DataRequest.user_id == User.id)
                                            .where(still_open, User.org_id.in_(ids)))).scalars())
    return {org_id: HOLD if org_id in held else OPEN_REQUEST for org_id in held | requested}


class InvalidClosure(Invalid):
    """Closing or reopening without a reason (3-500 characters)."""

    error_id = "invalid_closure"


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        raise InvalidClosure("say why, in 3-500 characters (it goes to the audit trail)", {"field": "reason"})
    return reason


class ClosureService:
    """Closes, reopens and purges organizations (the operator's decisions; the retention run's purge)."""

    def __init__(self, sessions: async_sessionmaker[Any], blobs: BlobStore, erasure: ErasureService, *,
                 audit: AuditLog | None = None, retention_days: int | None = 90, quarantine_days: int = 30) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._erasure = erasure
        self._audit = audit if audit is not None else AuditLog(sessions)
        self._retention = None if retention_days is None else timedelta(days=retention_days)
        self._quarantine = timedelta(days=quarantine_days)
        # Told (credential id, SIP username) of each deleted SIP credential once committed.
        self.credentials_changed: Callable[[str, str], None] | None = None
        self.api_keys_changed: Callable[[], None] | None = None  # the API key resolver forgets its cache

    @classmethod
    def from_settings(cls, settings: Any, sessions: async_sessionmaker[Any], blobs: BlobStore,
                      erasure: ErasureService | None = None, audit: AuditLog | None = None) -> ClosureService:
        """The service as the settings describe it (closed-account period, number quarantine); an
        ``ErasureService`` of its own unless the composition root gives its (which tells the SIP side)."""
        audit = audit if audit is not None else AuditLog(sessions)
        erasure = erasure or ErasureService(sessions, blobs, audit=audit, policy=policy_from_settings(settings))
        return cls(sessions, blobs, erasure, audit=audit, retention_days=settings.closed_account_retention_days,
                   quarantine_days=settings.number_quarantine_days)

    def _purge_after(self, closed_at: datetime | None) -> datetime | None:
        return None if closed_at is None or self._retention is None else closed_at + self._retention

    def _is_due(self, closed_at: datetime | None, now: datetime) -> bool:
        return closed_at is not None and self._retention is not None and closed_at < now - self._retention

    async def _org(self, session: AsyncSession, org_id: str) -> Organization:
        org = (await session.execute(select(Organization).where(Organization.id == org_id)
                                     .with_for_update())).scalar_one_or_none()
        if org is None:
            raise OrganizationNotFound("no such organization", {"org_id": org_id})
        return org

    async def close(self, org_id: str, *, actor: Actor, reason: str) -> Closure:
        """Close the org (module docstring). Closing a closed org changes nothing and says so
        (its ``Closure`` counts are zero); the operator's own organization cannot be closed."""
        reason = _reason(reason)
        now = utcnow()
        async with self._sessions() as session, session.begin():
            org = await self._org(session, org_id)
            if org.kind == OrgKind.OPERATOR.value:
                raise OrgNotClosed("the operator's own organization cannot be closed", {"org_id": org_id})
            if org.closed_at is not None:
                return Closure(org_id, org.closed_at, self._purge_after(org.closed_at))
            org.closed_at = now
            user_ids = select(User.id).where(User.org_id == org_id).scalar_subquery()
            disabled = rowcount(await session.execute(update(User).where(
                User.org_id == org_id, User.disabled_at.is_(None)).values(disabled_at=now)
                .execution_options(synchronize_session=False)))
            ended = rowcount(await session.execute(delete(WebSession).where(WebSession.org_id == org_id)
                                                   .execution_options(synchronize_session=False)))
            await session.execute(delete(EmailToken).where(EmailToken.user_id.in_(user_ids))
                                  .execution_options(synchronize_session=False))
            credentials = [(row[0], row[1]) for row in (await session.execute(
                select(SipCredential.id, SipCredential.username).where(SipCredential.org_id == org_id))).all()]
            await session.execute(delete(BindingRow).where(BindingRow.org_id == org_id)
                                  .execution_options(synchronize_session=False))
            await session.execute(delete(SipCredential).where(SipCredential.org_id == org_id)
                                  .execution_options(synchronize_session=False))
            revoked = rowcount(await session.execute(update(ApiKey).where(
                ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
                .execution_options(synchronize_session=False)))
            endpoints = list((await session.execute(select(WebhookEndpoint.id).where(
                WebhookEndpoint.org_id == org_id, WebhookEndpoint.enabled.is_(True)))).scalars())
            for endpoint_id in endpoints:
                await webhooks_repo.fail_pending(session, endpoint_id, "the organization was closed")
            await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id).values(
                enabled=False, disabled_reason="the organization was closed")
                .execution_options(synchronize_session=False))
            await session.execute(delete(CallerIdVerification).where(CallerIdVerification.org_id == org_id)
                                  .execution_options(synchronize_session=False))
            numbers = list((await session.execute(select(PhoneNumber.e164).where(
                PhoneNumber.org_id == org_id, PhoneNumber.state == NumberState.RENTED.value)
                .order_by(PhoneNumber.e164))).scalars())
            for e164 in numbers:
                await numbers_repo.release(session, org_id, e164, now + self._quarantine)
            closure = Closure(org_id, now, self._purge_after(now), users_disabled=disabled, sessions_ended=ended,
                              credentials_deleted=len(credentials), api_keys_revoked=revoked,
                              numbers_released=tuple(numbers))
            details: dict[str, Any] = {**closure.as_dict(), "numbers_released": len(numbers),
                                       "webhooks_disabled": len(endpoints)}
            details.pop("org_id")
            await self._audit.record("orgs.close", actor, org_id=org_id, target_type="organization", target_id=org_id,
                                     reason=reason, details=details, session=session)
        self._told(credentials, revoked)
        log.warning("closed organization %s: %d users disabled, %d numbers released; its data goes after %s",
                    org_id, disabled, len(numbers), closure.purge_after)
        return closure

    def _told(self, credentials: list[tuple[str, str]], revoked: int) -> None:
        if self.credentials_changed is not None:
            for credential_id, username in credentials:
                self.credentials_changed(credential_id, username)
        if revoked and self.api_keys_changed is not None:
            self.api_keys_changed()

    async def reopen(self, org_id: str, *, actor: Actor, reason: str) -> Closure:
        """Open a closed org again, before its purge: the users its closure disabled are enabled
        (those disabled before stay so). Its numbers, API keys and SIP passwords are not restored."""
        reason = _reason(reason)
        async with self._sessions() as session, session.begin():
            org = await self._org(session, org_id)
            if org.purged_at is not None:
                raise OrgPurged("the organization's data was deleted after its closure: it cannot be reopened",
                                {"org_id": org_id})
            if org.closed_at is None:
                raise OrgNotClosed("the organization is not closed", {"org_id": org_id})
            if self._is_due(org.closed_at, utcnow()):
                raise OrgPurged("the organization's data is due for deletion: it cannot be reopened any more",
                                {"org_id": org_id})
            closed_at = org.closed_at
            enabled = rowcount(await session.execute(update(User).where(
                User.org_id == org_id, User.disabled_at == closed_at).values(disabled_at=None)
                .execution_options(synchronize_session=False)))
            org.closed_at = None
            await self._audit.record("orgs.reopen", actor, org_id=org_id, target_type="organization",
                                     target_id=org_id, reason=reason,
                                     details={"closed_at": closed_at.isoformat(), "users_enabled": enabled},
                                     session=session)
        log.warning("reopened organization %s: %d users enabled", org_id, enabled)
        return Closure(org_id, None, None, users_enabled=enabled)

    async def due(self, now: datetime) -> list[tuple[str, bool]]:
        """Closed orgs whose data is due for deletion at ``now``: (org id, kept by a hold or an open request)."""
        if self._retention is None:
            return []
        async with self._sessions() as session:
            org_ids = list((await session.execute(select(Organization.id).where(
                Organization.closed_at.is_not(None), Organization.purged_at.is_(None),
                Organization.closed_at < now - self._retention).order_by(Organization.closed_at))).scalars())
            kept = await kept_by(session, org_ids)
        return [(org_id, org_id in kept) for org_id in org_ids]

    @staticmethod
    async def _held(session: AsyncSession, org_id: str) -> bool:
        return org_id in await kept_by(session, [org_id])

    async def purge(self, org_id: str) -> OrgPurge:
        """Delete the closed org's data (module docstring). Raises ``OrgNotClosed`` for an open org,
        ``ErasureRefused`` under a legal hold. Safe to run again after a crash: it continues."""
        now = utcnow()
        async with self._sessions() as session:
            org = (await session.execute(select(Organization).where(Organization.id == org_id))).scalar_one_or_none()
            if org is None:
                raise OrganizationNotFound("no such organization", {"org_id": org_id})
            if org.closed_at is None:
                raise OrgNotClosed("only a closed organization's data is purged", {"org_id": org_id})
            if not self._is_due(org.closed_at, now):
                raise OrgNotClosed("the organization's data is kept until the closed-account period has passed",
                                   {"org_id": org_id, "purge_after": str(self._purge_after(org.closed_at))})
            if await self._held(session, org_id):
                raise ErasureRefused("the organization, or someone in it, is under a legal hold or has a data "
                                     "request open: its data is kept until then", {"org_id": org_id})
            people = list((await session.execute(select(User.id).where(User.org_id == org_id)
                                                 .order_by(User.created_at, User.id))).scalars())
        reason = "the organization was closed: its account data is deleted"
        for user_id in people:  # one transaction each: a crash leaves the rest for the next run
            async with self._sessions() as session:  # reopened meanwhile (a clock behind)? stop
                closed_at = (await session.execute(select(Organization.closed_at).where(
                    Organization.id == org_id))).scalar()
            if closed_at is None:
                raise PurgeInterrupted("the organization was reopened while its data was deleted", {"org_id": org_id})
            await self._erasure.erase_person(org_id, user_id, actor=SYSTEM, reason=reason, allow_last_owner=True)
        deleted: dict[str, int] = {}
        async with self._sessions() as session, session.begin():
            org = await self._org(session, org_id)
            if not self._is_due(org.closed_at, now):
                raise PurgeInterrupted("the organization was reopened while its data was deleted", {"org_id": org_id})
            if await self._held(session, org_id):  # placed while the people were erased
                raise ErasureRefused("the organization came under a legal hold while it was purged",
                                     {"org_id": org_id})
            files = list((await session.execute(select(Blob.id).where(Blob.org_id == org_id))).scalars())
            left = (await session.execute(select(User.id).where(User.org_id == org_id))).scalars().first()
            if left is not None:  # added while the people were erased: the next run erases them first
                raise PurgeInterrupted("a user was added to the organization while it was purged",
                                       {"user_id": left})
            for table, model in _ORG_ROWS:
                condition = model.org_id == org_id
                if model is CreditReservation:  # an open one still holds credit: the ledger's business
                    condition = condition & CreditReservation.closed_at.is_not(None)
                deleted[table] = rowcount(await session.execute(delete(model).where(condition)
                                                                .execution_options(synchronize_session=False)))
            await session.execute(update(ConsentRecord).where(
                ConsentRecord.org_id == org_id, ConsentRecord.superseded_at.is_(None)).values(superseded_at=now)
                .execution_options(synchronize_session=False))
            keys = rowcount(await session.execute(update(OrgDataKey).where(
                OrgDataKey.org_id == org_id, OrgDataKey.wrapped_key.is_not(None))
                .values(wrapped_key=None, destroyed_at=now).execution_options(synchronize_session=False)))
            org.name = anonymised_name(org_id)
            org.low_balance_minor = None
            org.low_balance_alerted_at = None
            org.purged_at = now
            result = OrgPurge(org_id, now, len(people), {k: v for k, v in deleted.items() if v}, len(files), keys)
            details = result.as_dict()
            details.pop("org_id")
            await self._audit.record("privacy.purge_org", SYSTEM, org_id=org_id, target_type="organization",
                                     target_id=org_id, reason=reason, details=details, session=session)
        await self._erasure.compact()
        self._blobs.keys.forget_org(org_id)
        await self._remove_files(org_id)
        log.warning("purged closed organization %s: %d people erased, %d files, %d keys destroyed",
                    org_id, len(people), len(files), keys)
        return result

    async def _remove_files(self, org_id: str) -> None:
        """The org's directory in the blob store, whatever is in it (every key is destroyed already)."""
        directory = self._blobs.path(org_id, org_id).parent
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)

    async def remove_leftover_files(self) -> int:
        """The blob directories of purged orgs still on disk (a crash after the purge committed);
        how many were removed. Run by every retention run."""
        async with self._sessions() as session:
            purged = list((await session.execute(select(Organization.id).where(
                Organization.purged_at.is_not(None)))).scalars())
        removed = 0
        for org_id in purged:
            if await asyncio.to_thread(self._blobs.path(org_id, org_id).parent.exists):
                await self._remove_files(org_id)
                removed += 1
        return removed


# What the purge deletes of the org itself, children first (the people are erased before).
_ORG_ROWS: tuple[tuple[str, Any], ...] = (
    ("webhook_attempts", WebhookAttempt),
    ("webhook_deliveries", WebhookDelivery),
    ("webhook_endpoints", WebhookEndpoint),
    ("voicemail_terms", VoicemailTerm),
    ("voicemails", Voicemail),
    ("mailboxes", MailboxRow),
    ("recordings", Recording),
    ("recording_policies", RecordingPolicy),
    ("call_records", CallRecord),
    ("bindings", BindingRow),
    ("sip_credentials", SipCredential),
    ("caller_id_verifications", CallerIdVerification),
    ("web_sessions", WebSession),
    ("api_keys", ApiKey),
    ("fraud_settings", FraudSettings),
    ("destination_permissions", DestinationPermission),
    ("org_rate_decks", OrgRateDeck),
    ("credit_reservations", CreditReservation),
    ("blobs", Blob),
)
