"""Consent: what people agreed to, refused or were told, with the words and the time (issue 8, deliverable 4).

Contract
--------
* ``record()`` writes one ``ConsentRecord`` and marks the subject's previous current record of the
  same purpose superseded (its one-year retention starts then); rows are never otherwise changed.
* ``current()`` is the newest non-superseded choice, else ``DEFAULTS``: every purpose is off until
  the person opts in — CPNI use for marketing is opt-in (47 CFR 64.2007(b) allows opt-out for
  some uses; Ringwell asks for the stricter opt-in for all), marketing email and analytics too.
* ``choose()`` records a choice with the standard words of ``TEXTS`` only when it changes the current one,
  so the history reads as "what changed and when".
* A recording announcement (``announced()``) is a notice played in one call, not a standing choice:
  its records are superseded the moment they are written, so they are purged a year after the call.
* ``purge(now)`` deletes the records ``purge_due`` says are due: superseded longer ago than the policy's
  ``CONSENT`` period (the retention class of the data register), and never less than one calendar year
  (``consent_cutoff``). The daily retention run counts and deletes with the same predicate.
  ``end_person()`` supersedes every current record of a person being erased, so their proof of consent
  goes with it a period later too.

Subjects are a person of an org (``Subject.person``) or an anonymous browser of the portal
(``Subject.visitor``: the random id kept in the essential ``rw_consent`` cookie). A row written for a
logged-in browser carries both, and counts for both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.errors import Invalid
from ringwell.features.privacy.models_consent import ConsentRecord, Purpose, Source
from ringwell.features.privacy.register import Retention
from ringwell.features.privacy.retention import RetentionPolicy
from ringwell.features.recordings.service import CallParties

__all__ = [
    "CHOOSABLE",
    "DEFAULTS",
    "GPC_TEXT",
    "TEXTS",
    "ConsentService",
    "ConsentText",
    "Current",
    "InvalidConsent",
    "Subject",
    "consent_cutoff",
    "one_year_before",
    "purge_due",
    "recording_announced",
]

log = logging.getLogger(__name__)


class InvalidConsent(Invalid):
    error_id = "invalid_consent"


@dataclass(frozen=True, slots=True)
class ConsentText:
    """The exact words shown for a choice, and their version (a new wording is a new version)."""

    version: str
    text: str


# Off until opted in (see the module docstring).
DEFAULTS: Mapping[Purpose, bool] = MappingProxyType({purpose: False for purpose in Purpose})

# What a person may choose themselves (the portal and ``PUT /api/v1/me/consents``); analytics cookies
# are a browser's choice (the cookie banner), announcements are notices.
CHOOSABLE: tuple[Purpose, ...] = (Purpose.CPNI_MARKETING, Purpose.MARKETING_EMAIL)

TEXTS: Mapping[Purpose, ConsentText] = MappingProxyType({
    Purpose.CPNI_MARKETING: ConsentText("cpni-1", (
        "Your call detail — who you call and who calls you, when, for how long and how often, and which of "
        "our services you use — is Customer Proprietary Network Information (CPNI). US federal law "
        "(47 CFR 64.2007–64.2008) gives you the right to decide whether we may use it to offer you other "
        "services. If you say yes, only we and our agents, bound to keep it confidential, look at it, only to "
        "tell you about communications services that may interest you; it is never sold or given to anyone "
        "else. Saying no changes nothing about the service you get. Your choice stays until you change it, "
        "which you can do here at any time.")),
    Purpose.MARKETING_EMAIL: ConsentText("email-1", (
        "Send me occasional email about new features and offers. I can stop it at any time, here or from a "
        "link in any such email.")),
    Purpose.ANALYTICS_COOKIES: ConsentText("cookies-1", (
        "Allow an analytics cookie (rw_analytics): an anonymous random id that lets us count visits and "
        "improve the portal. It expires after 13 months at most, and you can remove it at any time from "
        "Cookie choices. Essential cookies (your login and the protection of forms) are always set.")),
})

GPC_TEXT = ConsentText("gpc-1", "The browser sent Global Privacy Control (Sec-GPC: 1): analytics cookies are off.")


def one_year_before(now: datetime) -> datetime:
    """The same instant one calendar year earlier (29 February becomes 28 February)."""
    try:
        return now.replace(year=now.year - 1)
    except ValueError:
        return now.replace(year=now.year - 1, day=28)


def consent_cutoff(now: datetime, days: int | None) -> datetime | None:
    """Records superseded before the result are due for deletion; None: never by age.

    ``days`` is the policy's ``CONSENT`` period; whatever it says, a record outlives its change by at
    least one calendar year (the minimum the register promises).
    """
    if days is None:
        return None
    return min(one_year_before(now), now - timedelta(days=days))


def purge_due(now: datetime, policy: RetentionPolicy) -> ColumnElement[bool] | None:
    """SQL "this consent record is due for deletion at ``now``" (current records never are); None: none is.

    The one rule of ``ConsentService.purge`` and of the retention run's ``consent_records`` class.
    """
    cutoff = consent_cutoff(now, policy.period_days(Retention.CONSENT))
    if cutoff is None:
        return None
    return and_(ConsentRecord.superseded_at.is_not(None), ConsentRecord.superseded_at < cutoff)


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose choice: a person of an org, or an anonymous browser (``visitor_id``), or both at once."""

    org_id: str | None = None
    user_id: str | None = None
    visitor_id: str | None = None

    def __post_init__(self) -> None:
        if self.user_id is None and self.visitor_id is None:
            raise ValueError("a consent subject is a person (org and user) or a visitor")
        if self.user_id is not None and self.org_id is None:
            raise ValueError("a person's consent is recorded with their org")

    @classmethod
    def person(cls, org_id: str, user_id: str, visitor_id: str | None = None) -> Subject:
        return cls(org_id, user_id, visitor_id)

    @classmethod
    def visitor(cls, visitor_id: str) -> Subject:
        return cls(None, None, visitor_id)

    def matches(self) -> ColumnElement[bool]:
        """The rows that are this subject's: the person's when it is one, else the browser's."""
        if self.user_id is not None:
            return and_(ConsentRecord.org_id == self.org_id, ConsentRecord.user_id == self.user_id)
        return ConsentRecord.visitor_id == self.visitor_id


@dataclass(frozen=True, slots=True)
class Current:
    """A purpose's current state for a subject: the default when ``since`` is None."""

    purpose: Purpose
    granted: bool
    source: str | None = None
    since: datetime | None = None

    @property
    def is_default(self) -> bool:
        return self.since is None


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


class ConsentService:
    """Consent records of every org; the subject is always passed explicitly (tenant-scoped).

    ``policy`` gives the ``CONSENT`` period ``purge`` applies (default: the default policy).
    """

    def __init__(self, sessions: async_sessionmaker[Any], *, policy: RetentionPolicy | None = None) -> None:
        self._sessions = sessions
        self.policy = policy if policy is not None else RetentionPolicy()

    async def record(self, subject: Subject, purpose: Purpose, granted: bool, source: Source, text: str, *,
                     text_version: str, now: datetime | None = None, call_record_id: str | None = None,
                     session: AsyncSession | None = None) -> ConsentRecord:
        """Write a choice (module docstring); in ``session`` when given (the caller commits), else its own."""
        if not text.strip():
            raise InvalidConsent("a consent record keeps the words that were shown", {"purpose": purpose.value})
        at = _now(now)
        row = ConsentRecord(org_id=subject.org_id, user_id=subject.user_id, visitor_id=subject.visitor_id,
                            purpose=purpose.value, granted=granted, source=source.value, text_shown=text,
                            text_version=text_version[:32], call_record_id=call_record_id, at=at,
                            superseded_at=at if purpose is Purpose.RECORDING_ANNOUNCEMENT else None)
        if session is None:
            async with self._sessions() as own, own.begin():
                await self._write(own, subject, row)
        else:
            await self._write(session, subject, row)
        log.info("consent %s=%s (%s) recorded for %s", purpose.value, granted, source.value,
                 "a person" if subject.user_id else "a visitor")
        return row

    @staticmethod
    async def _write(session: AsyncSession, subject: Subject, row: ConsentRecord) -> None:
        if row.superseded_at is None:
            await session.execute(update(ConsentRecord).where(
                subject.matches(), ConsentRecord.purpose == row.purpose, ConsentRecord.superseded_at.is_(None),
            ).values(superseded_at=row.at).execution_options(synchronize_session=False))
        session.add(row)

    async def _latest(self, session: AsyncSession, subject: Subject, purpose: Purpose) -> ConsentRecord | None:
        row: ConsentRecord | None = (await session.execute(select(ConsentRecord).where(
            subject.matches(), ConsentRecord.purpose == purpose.value, ConsentRecord.superseded_at.is_(None),
        ).order_by(ConsentRecord.at.desc(), ConsentRecord.id.desc()).limit(1))).scalar_one_or_none()
        return row

    async def current(self, subject: Subject, purpose: Purpose) -> bool:
        """The subject's current choice for ``purpose``, else its default (off)."""
        return (await self.state(subject, [purpose]))[purpose].granted

    async def state(self, subject: Subject, purposes: Iterable[Purpose] = tuple(Purpose)) -> dict[Purpose, Current]:
        """Each purpose's current choice (with since when and how), or its default."""
        out: dict[Purpose, Current] = {}
        async with self._sessions() as session:
            for purpose in purposes:
                row = await self._latest(session, subject, purpose)
                out[purpose] = (Current(purpose, DEFAULTS[purpose]) if row is None else
                                Current(purpose, row.granted, row.source, row.at))
        return out

    async def choose(self, subject: Subject, purpose: Purpose, granted: bool, source: Source, *,
                     now: datetime | None = None) -> ConsentRecord | None:
        """Record a choice with the standard words of ``TEXTS`` — only when it changes the current one
        (None otherwise)."""
        text = TEXTS.get(purpose)
        if text is None:
            raise InvalidConsent("this is not a choice a person makes", {"purpose": purpose.value})
        async with self._sessions() as session, session.begin():
            row = await self._latest(session, subject, purpose)
            if (DEFAULTS[purpose] if row is None else row.granted) == granted:
                return None  # declining what was never given, or confirming the current choice, changes nothing
            return await self.record(subject, purpose, granted, source, text.text, text_version=text.version,
                                     now=now, session=session)

    async def honour_gpc(self, subject: Subject, *, now: datetime | None = None) -> bool:
        """Record the browser's Global Privacy Control as an analytics opt-out, unless the current
        record already is one; whether a record was written."""
        async with self._sessions() as session, session.begin():
            row = await self._latest(session, subject, Purpose.ANALYTICS_COOKIES)
            if row is not None and row.source == Source.GPC.value and not row.granted:
                return False
            await self.record(subject, Purpose.ANALYTICS_COOKIES, False, Source.GPC, GPC_TEXT.text,
                              text_version=GPC_TEXT.version, now=now, session=session)
        return True

    async def announced(self, org_id: str, user_ids: Iterable[str | None], text: str, *, call_record_id: str,
                        version: str = "announcement-1", now: datetime | None = None) -> int:
        """The recording announcement ``text`` was played in a call: one record per user of the org on
        it (none for outside parties: they are not the org's people), or one for the org alone."""
        users = sorted({u for u in user_ids if u})
        at = _now(now)
        async with self._sessions() as session, session.begin():
            if not users:
                session.add(ConsentRecord(org_id=org_id, purpose=Purpose.RECORDING_ANNOUNCEMENT.value, granted=True,
                                          source=Source.ANNOUNCEMENT.value, text_shown=text, text_version=version,
                                          call_record_id=call_record_id, at=at, superseded_at=at))
            for user_id in users:
                await self.record(Subject.person(org_id, user_id), Purpose.RECORDING_ANNOUNCEMENT, True,
                                  Source.ANNOUNCEMENT, text, text_version=version, now=at,
                                  call_record_id=call_record_id, session=session)
        return max(len(users), 1)

    async def history(self, subject: Subject, *, purposes: Sequence[Purpose] | None = None,
                      limit: int = 200) -> Sequence[ConsentRecord]:
        """The subject's records, newest first."""
        query = select(ConsentRecord).where(subject.matches())
        if purposes is not None:
            query = query.where(ConsentRecord.purpose.in_([p.value for p in purposes]))
        query = query.order_by(ConsentRecord.at.desc(), ConsentRecord.id.desc()).limit(min(max(limit, 1), 1000))
        async with self._sessions() as session:
            rows: Sequence[ConsentRecord] = (await session.execute(query)).scalars().all()
        return rows

    async def end_person(self, org_id: str, user_id: str, *, now: datetime | None = None) -> int:
        """A person is erased: their current records are superseded now (purged a year later)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(update(ConsentRecord).where(
                ConsentRecord.org_id == org_id, ConsentRecord.user_id == user_id,
                ConsentRecord.superseded_at.is_(None)).values(superseded_at=_now(now)).execution_options(
                synchronize_session=False))
        return int(result.rowcount or 0)

    async def purge(self, now: datetime, *, dry_run: bool = False) -> int:
        """Delete the records ``purge_due`` says are due at ``now``; how many went (a dry run: would go)."""
        due = purge_due(now, self.policy)
        if due is None:
            return 0
        async with self._sessions() as session, session.begin():
            if dry_run:
                return int((await session.execute(select(func.count()).select_from(ConsentRecord)
                                                  .where(due))).scalar_one())
            result = await session.execute(delete(ConsentRecord).where(due).execution_options(
                synchronize_session=False))
        purged = int(result.rowcount or 0)
        if purged:
            log.info("purged %d consent record(s) past their retention period", purged)
        return purged


def recording_announced(service: ConsentService) -> Callable[[CallParties, str, str], Awaitable[None]]:
    """The hook ``pbx.recording.CallRecordings(on_announced=...)`` calls once every party of a call heard
    the recording announcement: one record per user of the org on the call (``ConsentService.announced``)."""

    async def hook(parties: CallParties, call_id: str, text: str) -> None:
        await service.announced(parties.org_id, (parties.caller_user_id, parties.callee_user_id), text,
                                call_record_id=call_id)

    return hook
