"""The breach register's service: record an incident, send its notices, tick its checklist, close it.

Used by the operator's privacy staff (permission ``operator.privacy.incidents``; auditors read with
``operator.privacy.incidents.read``). Every change is an audit event written in the change's own
transaction (``incidents.create``, ``incidents.update``, ``incidents.notice``,
``incidents.checklist``, ``incidents.note``, ``incidents.close``), so neither exists without the
other. The clocks and the checklist are computed by the pure rules of ``incidents.py`` at ``now``.

A closed incident is a record: its facts, notices and checklist no longer change; a note can
still be added (what was learnt later). Closing is refused while a notice the law requires has
not been sent — mark it sent (with the date it really went) first, or correct the facts
(``personal_data``, ``cpni``, ``severity``) if the assessment found it does not apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from ringwell.features.accounts.models import Organization
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.privacy.incidents import (
    ChecklistItem,
    ChecklistKey,
    ClockKind,
    Clocks,
    IncidentFacts,
    Severity,
    Tick,
    checklist,
    clocks,
)
from ringwell.features.privacy.incidents_errors import (
    IncidentClosed,
    IncidentNotFound,
    InvalidIncident,
    NoticeAlreadySent,
    NoticesPending,
)
from ringwell.features.privacy.models_incidents import Incident, IncidentNote
from ringwell.storage.base import utcnow

__all__ = ["EDITABLE", "MAX_NOTE", "IncidentSpec", "IncidentView", "IncidentsService", "facts_of", "view_of"]

# What PATCH may change (the notices and the checklist have their own operations: they are audited
# as what they are).
EDITABLE = frozenset({"title", "description", "severity", "personal_data", "cpni", "detected_at", "determined_at",
                      "org_ids", "people_affected", "law_enforcement_delay_until"})
MAX_TITLE = 200
MAX_DESCRIPTION = 20_000
MAX_NOTE = 5_000
MAX_ORGS = 1_000
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # older is a typo (and out of the calendar arithmetic's range)
_NOT_NULL = frozenset({"title", "severity", "personal_data", "cpni", "detected_at", "org_ids"})
_SKEW = timedelta(minutes=5)  # a browser clock a little ahead of the server's is not "in the future"
_NOTICE_COLUMN = {ClockKind.AUTHORITY: "authority_notified_at",
                  ClockKind.LAW_ENFORCEMENT: "law_enforcement_notified_at",
                  ClockKind.CUSTOMERS: "customers_notified_at"}
_REFERENCE_COLUMN = {ClockKind.AUTHORITY: "authority_reference",
                     ClockKind.LAW_ENFORCEMENT: "law_enforcement_reference"}
_NOTIFY_ITEM = {ChecklistKey.NOTIFY_AUTHORITY: ClockKind.AUTHORITY,
                ChecklistKey.NOTIFY_LAW_ENFORCEMENT: ClockKind.LAW_ENFORCEMENT,
                ChecklistKey.NOTIFY_CUSTOMERS: ClockKind.CUSTOMERS}


@dataclass(frozen=True, slots=True)
class IncidentSpec:
    title: str
    detected_at: datetime
    personal_data: bool
    cpni: bool
    severity: Severity = Severity.MEDIUM
    description: str = ""
    determined_at: datetime | None = None
    org_ids: tuple[str, ...] = ()
    people_affected: int | None = None


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident with its clocks and checklist at ``now``."""

    incident: Incident
    clocks: Clocks
    checklist: tuple[ChecklistItem, ...]
    notes: tuple[IncidentNote, ...] = field(default=())

    @property
    def open(self) -> bool:
        return self.incident.closed_at is None


def facts_of(incident: Incident) -> IncidentFacts:
    return IncidentFacts(
        detected_at=incident.detected_at, personal_data=incident.personal_data, cpni=incident.cpni,
        severity=Severity(incident.severity), determined_at=incident.determined_at,
        authority_notified_at=incident.authority_notified_at,
        law_enforcement_notified_at=incident.law_enforcement_notified_at,
        customers_notified_at=incident.customers_notified_at,
        law_enforcement_delay_until=incident.law_enforcement_delay_until,
    )


def _ticks(stored: Mapping[str, Any]) -> dict[str, Tick]:
    ticks = {}
    for key, value in stored.items():
        if isinstance(value, dict) and isinstance(value.get("done_at"), str):
            ticks[key] = Tick(datetime.fromisoformat(value["done_at"]), value.get("by"))
    return ticks


def view_of(incident: Incident, now: datetime, notes: tuple[IncidentNote, ...] = ()) -> IncidentView:
    facts = facts_of(incident)
    return IncidentView(incident, clocks(facts, now), checklist(facts, _ticks(incident.checklist or {}), now), notes)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidIncident(f"{name}: give a time zone (e.g. 2026-12-07T09:30:00Z)", {"field": name})
    return value


def _check_time(value: datetime | None, name: str, now: datetime, *, not_before: datetime | None = None,
                before_name: str = "detected_at") -> None:
    if value is None:
        return
    _aware(value, name)
    if value < _EARLIEST:
        raise InvalidIncident(f"{name} is before {_EARLIEST.year}", {"field": name})
    if value > now + _SKEW:
        raise InvalidIncident(f"{name} is in the future", {"field": name})
    if not_before is not None and value < not_before:
        raise InvalidIncident(f"{name} is before {before_name}: nobody acts on a breach before becoming aware of it",
                              {"field": name})


def _printable(value: str, name: str) -> None:
    """Text is stored as given, but NUL is refused (PostgreSQL cannot store it)."""
    if "\x00" in value:
        raise InvalidIncident(f"{name} contains a NUL character", {"field": name})


def _validate(values: Mapping[str, Any], now: datetime) -> None:
    """The facts of an incident (after a change) are consistent; raises :class:`InvalidIncident`."""
    for name in ("title", "description"):
        _printable(values[name], name)
    title = values["title"]
    if not title or len(title) > MAX_TITLE:
        raise InvalidIncident(f"give a title of 1 to {MAX_TITLE} characters", {"field": "title"})
    if len(values["description"]) > MAX_DESCRIPTION:
        raise InvalidIncident(f"the description is longer than {MAX_DESCRIPTION} characters",
                              {"field": "description"})
    if values["severity"] not in {s.value for s in Severity}:
        raise InvalidIncident("severity is one of low, medium, high, critical", {"field": "severity"})
    people = values["people_affected"]
    if people is not None and people < 0:
        raise InvalidIncident("people_affected cannot be negative", {"field": "people_affected"})
    if len(values["org_ids"]) > MAX_ORGS:
        raise InvalidIncident(f"at most {MAX_ORGS} organizations", {"field": "org_ids"})
    detected = _aware(values["detected_at"], "detected_at")
    _check_time(detected, "detected_at", now)
    _check_time(values["determined_at"], "determined_at", now, not_before=detected)
    delay = values["law_enforcement_delay_until"]
    if delay is not None:
        _aware(delay, "law_enforcement_delay_until")
        if delay < detected:
            raise InvalidIncident("law_enforcement_delay_until is before detected_at",
                                  {"field": "law_enforcement_delay_until"})


class IncidentsService:
    """The breach register. ``now`` defaults to the wall clock (tests pass it or freeze time)."""

    def __init__(self, sessions: async_sessionmaker[Any], audit: AuditLog) -> None:
        self._sessions = sessions
        self._audit = audit

    # -- reading ---------------------------------------------------------------------------------
    async def listing(self, *, include_closed: bool = True, limit: int = 200,
                   now: datetime | None = None) -> list[IncidentView]:
        """Every open incident (the most urgent clock first), then the latest ``limit`` closed ones."""
        now = now or utcnow()
        newest = Incident.detected_at.desc()
        async with self._sessions() as session:
            rows = list((await session.execute(select(Incident).where(Incident.closed_at.is_(None))
                                               .order_by(newest))).scalars().all())
            if include_closed:
                closed = select(Incident).where(Incident.closed_at.is_not(None)).order_by(newest).limit(limit)
                rows += (await session.execute(closed)).scalars().all()
        views = [view_of(incident, now) for incident in rows]
        far = datetime.max.replace(tzinfo=now.tzinfo)

        def urgency(view: IncidentView) -> tuple[int, datetime, float]:
            due = min((c.due_at for c in view.clocks.pending if c.due_at is not None), default=far)
            return (0 if view.open else 1, due if view.open else far, -view.incident.detected_at.timestamp())

        return sorted(views, key=urgency)

    async def get(self, incident_id: str, *, now: datetime | None = None) -> IncidentView:
        async with self._sessions() as session:
            incident = await self._load(session, incident_id)
        return view_of(incident, now or utcnow(), tuple(incident.notes))

    # -- changing --------------------------------------------------------------------------------
    async def create(self, spec: IncidentSpec, *, actor: Actor, now: datetime | None = None) -> IncidentView:
        now = now or utcnow()
        values: dict[str, Any] = {
            "title": spec.title.strip(), "description": spec.description.strip(), "severity": str(spec.severity),
            "personal_data": spec.personal_data, "cpni": spec.cpni, "detected_at": spec.detected_at,
            "determined_at": spec.determined_at, "org_ids": list(dict.fromkeys(spec.org_ids)),
            "people_affected": spec.people_affected, "law_enforcement_delay_until": None,
        }
        _validate(values, now)
        async with self._sessions() as session, session.begin():
            await self._check_orgs(session, values["org_ids"])
            incident = Incident(**values, created_by=actor.user_id, created_at=now, checklist={})
            session.add(incident)
            await session.flush()
            await self._audit.record("incidents.create", actor, org_id=actor.org_id, target_type="incident",
                                     target_id=incident.id, details=_audit_facts(values), session=session)
        return view_of(incident, now)

    async def update(self, incident_id: str, changes: Mapping[str, Any], *, actor: Actor,
                     now: datetime | None = None) -> IncidentView:
        """Correct or complete the facts (``EDITABLE`` names only)."""
        now = now or utcnow()
        unknown = set(changes) - EDITABLE
        if unknown:
            raise InvalidIncident(f"these cannot be changed here: {', '.join(sorted(unknown))}",
                                  {"fields": sorted(unknown)})
        nulls = sorted(name for name in _NOT_NULL if name in changes and changes[name] is None)
        if nulls:
            raise InvalidIncident(f"these cannot be emptied: {', '.join(nulls)}", {"fields": nulls})
        values = dict(changes)
        if "title" in values:
            values["title"] = (values["title"] or "").strip()
        if "description" in values:
            values["description"] = (values["description"] or "").strip()
        if "severity" in values:
            values["severity"] = str(values["severity"])
        if "org_ids" in values:
            values["org_ids"] = list(dict.fromkeys(values["org_ids"]))
        async with self._sessions() as session, session.begin():
            incident = await self._open(session, incident_id)
            merged = {name: getattr(incident, name) for name in EDITABLE} | values
            _validate(merged, now)
            if "org_ids" in values:
                await self._check_orgs(session, values["org_ids"])
            changed = {name: value for name, value in values.items() if getattr(incident, name) != value}
            for name, value in changed.items():
                setattr(incident, name, value)
            if changed:
                await self._audit.record("incidents.update", actor, org_id=actor.org_id, target_type="incident",
                                         target_id=incident.id, details=_audit_facts(changed), session=session)
        return view_of(incident, now, tuple(incident.notes))

    async def mark_notice(self, incident_id: str, kind: ClockKind, *, actor: Actor, at: datetime | None = None,
                          reference: str | None = None, now: datetime | None = None) -> IncidentView:
        """Record that a notice was sent (``at``: when it really went, default now). Stops its clock and
        ticks its checklist item."""
        now = now or utcnow()
        sent = at or now
        reference = (reference or "").strip() or None
        if reference is not None:
            _printable(reference, "reference")
            if len(reference) > 200:
                raise InvalidIncident("the reference is longer than 200 characters", {"field": "reference"})
        async with self._sessions() as session, session.begin():
            incident = await self._open(session, incident_id)
            _check_time(sent, "at", now, not_before=incident.detected_at)
            if getattr(incident, _NOTICE_COLUMN[kind]) is not None:
                raise NoticeAlreadySent(f"the {kind.value.replace('_', ' ')} notice is already recorded as sent",
                                     {"notice": kind.value})
            setattr(incident, _NOTICE_COLUMN[kind], sent)
            if reference is not None and kind in _REFERENCE_COLUMN:
                setattr(incident, _REFERENCE_COLUMN[kind], reference)
            item = next(key for key, clock in _NOTIFY_ITEM.items() if clock is kind)
            incident.checklist = {**(incident.checklist or {}),
                                  item.value: {"done_at": sent.isoformat(), "by": actor.user_id}}
            await self._audit.record("incidents.notice", actor, org_id=actor.org_id, target_type="incident",
                                     target_id=incident.id, session=session,
                                     details={"notice": kind.value, "at": sent.isoformat(), "reference": reference})
        return view_of(incident, now, tuple(incident.notes))

    async def tick(self, incident_id: str, item: ChecklistKey, *, actor: Actor, done: bool = True,
                   now: datetime | None = None) -> IncidentView:
        """Tick (or untick) a checklist item. A ``notify_*`` item is ticked by marking its notice sent (now)."""
        now = now or utcnow()
        if item in _NOTIFY_ITEM:
            if not done:
                raise InvalidIncident("a notice that was sent cannot be unsent", {"field": "item"})
            return await self.mark_notice(incident_id, _NOTIFY_ITEM[item], actor=actor, now=now)
        async with self._sessions() as session, session.begin():
            incident = await self._open(session, incident_id)
            stored = dict(incident.checklist or {})
            if done:
                stored[item.value] = {"done_at": now.isoformat(), "by": actor.user_id}
            else:
                stored.pop(item.value, None)
            incident.checklist = stored
            await self._audit.record("incidents.checklist", actor, org_id=actor.org_id, target_type="incident",
                                     target_id=incident.id, details={"item": item.value, "done": done},
                                     session=session)
        return view_of(incident, now, tuple(incident.notes))

    async def add_note(self, incident_id: str, text: str, *, actor: Actor, now: datetime | None = None) -> IncidentView:
        """Append to the timeline (allowed on a closed incident too: what was learnt later)."""
        now = now or utcnow()
        text = text.strip()
        _printable(text, "text")
        if not text or len(text) > MAX_NOTE:
            raise InvalidIncident(f"write a note of 1 to {MAX_NOTE} characters", {"field": "text"})
        async with self._sessions() as session, session.begin():
            incident = await self._load(session, incident_id)
            note = IncidentNote(incident_id=incident.id, at=now, by=actor.user_id, text=text)
            incident.notes.append(note)
            await session.flush()
            # The text may name people or systems: the audit event says a note was added, not what it says.
            await self._audit.record("incidents.note", actor, org_id=actor.org_id, target_type="incident",
                                     target_id=incident.id, details={"note_id": note.id}, session=session)
        return view_of(incident, now, tuple(incident.notes))

    async def close(self, incident_id: str, *, actor: Actor, now: datetime | None = None) -> IncidentView:
        """Close it; refused (``incident_notices_pending``) while a notice the law requires is unsent."""
        now = now or utcnow()
        async with self._sessions() as session, session.begin():
            incident = await self._open(session, incident_id)
            pending = view_of(incident, now).clocks.pending
            if pending:
                names = [clock.kind.value for clock in pending]
                raise NoticesPending(f"these notices have not been sent: {', '.join(names)}", {"notices": names})
            incident.closed_at = now
            incident.closed_by = actor.user_id
            await self._audit.record("incidents.close", actor, org_id=actor.org_id, target_type="incident",
                                     target_id=incident.id, session=session)
        return view_of(incident, now, tuple(incident.notes))

    # -- helpers ---------------------------------------------------------------------------------
    async def _load(self, session: AsyncSession, incident_id: str) -> Incident:
        incident = None
        if len(incident_id) <= 36 and "\x00" not in incident_id:
            query = select(Incident).where(Incident.id == incident_id).options(selectinload(Incident.notes))
            incident = (await session.execute(query)).scalar_one_or_none()
        if incident is None:
            raise IncidentNotFound("no such incident", {"incident_id": incident_id})
        return incident

    async def _open(self, session: AsyncSession, incident_id: str) -> Incident:
        incident = await self._load(session, incident_id)
        if incident.closed_at is not None:
            raise IncidentClosed("the incident is closed: add a note to record what was learnt since",
                                 {"incident_id": incident_id})
        return incident

    async def _check_orgs(self, session: AsyncSession, org_ids: list[str]) -> None:
        if not org_ids:
            return
        if any(len(org_id) > 36 or "\x00" in org_id for org_id in org_ids):
            raise InvalidIncident("org_ids: not organization ids", {"field": "org_ids"})
        found = set((await session.execute(select(Organization.id).where(Organization.id.in_(org_ids)))).scalars())
        missing = [org_id for org_id in org_ids if org_id not in found]
        if missing:
            raise InvalidIncident("org_ids: no such organization", {"field": "org_ids", "org_ids": missing})


def _audit_facts(values: Mapping[str, Any]) -> dict[str, Any]:
    """The facts for the audit event: JSON values, the free text left out (it may name people)."""
    details: dict[str, Any] = {}
    for name, value in values.items():
        if name == "description":
            details[name] = "changed"
        elif isinstance(value, datetime):
            details[name] = value.isoformat()
        else:
            details[name] = value
    return details
