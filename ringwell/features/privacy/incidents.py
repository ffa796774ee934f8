"""Breach notification clocks and the incident checklist: pure rules, no I/O (issue 8, deliverable 7).

Three clocks start with a security incident:

``authority`` — GDPR art. 33(1): a personal data breach is notified to the supervisory authority
    "without undue delay and, where feasible, not later than 72 hours after having become aware of
    it". Applies when personal data is involved; starts at ``detected_at`` (awareness); due exactly
    72 hours later.

``law_enforcement`` — 47 CFR § 64.2011(b): a telecommunications carrier notifies the United States
    Secret Service and the FBI, through the FCC's central reporting facility, "as soon as
    practicable, but in no event later than seven (7) business days, after reasonable determination
    of the breach". Applies when customer proprietary network information (CPNI) is involved; starts
    at ``determined_at`` (or ``detected_at`` while no determination is recorded — the earlier start
    can only make the deadline earlier, never miss it). Business days skip Saturdays, Sundays and US
    federal holidays (5 U.S.C. § 6103, with the Saturday → Friday and Sunday → Monday observance
    shifts), counted on the calendar of Washington, DC (America/New_York). The deadline keeps the
    time of day of the start on the seventh business day: stricter than "by the end of the day",
    so a notice sent on time by this clock is on time by any reading.

``customers`` — the people affected. GDPR art. 34 asks for "without undue delay" when the breach is
    likely to result in a high risk to them (here: personal data with severity high or critical);
    the FCC's 2023 rule (§ 64.2011(c)) asks for "without unreasonable delay after notification to
    law enforcement" for CPNI breaches. Neither gives a number, so Ringwell sets targets:
    - GDPR: 72 hours after the authority was notified (or after the authority clock's due time
      while it has not been): the assessment made for the authority is what the notice says.
    - FCC: 7 business days after law enforcement was notified (or after the law-enforcement clock's
      due time while it has not been) — the waiting period of the rule before 2023, a generous
      reading of "without unreasonable delay".
    When both apply, the earlier target. When law enforcement asks to delay customer notice
    (§ 64.2011(b)(3); GDPR recital 88 allows the same), the target is never before the end of that
    delay (``law_enforcement_delay_until``).

Each clock has a state: ``pending`` (running, more than 24 hours left, or not started yet),
``due_soon`` (less than 24 hours left), ``overdue``, ``done`` (the notice was sent: ``done_at``) or
``not_applicable``.

The default checklist follows the usual incident response steps; its three ``notify_*`` items are
ticked by their clock's ``done_at`` (sending the notice *is* the item), the others by staff.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo

__all__ = [
    "AUTHORITY_WINDOW",
    "CHECKLIST",
    "DUE_SOON",
    "LAW_ENFORCEMENT_BUSINESS_DAYS",
    "ChecklistItem",
    "ChecklistKey",
    "Clock",
    "ClockKind",
    "ClockState",
    "Clocks",
    "IncidentFacts",
    "Severity",
    "Tick",
    "add_business_days",
    "checklist",
    "clocks",
    "customers_notice_applies",
    "is_business_day",
    "time_left",
    "us_federal_holidays",
]

AUTHORITY_WINDOW = timedelta(hours=72)  # GDPR art. 33(1)
LAW_ENFORCEMENT_BUSINESS_DAYS = 7  # 47 CFR § 64.2011(b)
CUSTOMER_GDPR_WINDOW = timedelta(hours=72)  # Ringwell's target for art. 34 "without undue delay"
CUSTOMER_FCC_BUSINESS_DAYS = 7  # Ringwell's target for § 64.2011(c) "without unreasonable delay"
DUE_SOON = timedelta(hours=24)
_DC = ZoneInfo("America/New_York")
_JUNETEENTH_FROM = 2021  # Juneteenth National Independence Day Act


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ClockKind(StrEnum):
    AUTHORITY = "authority"
    LAW_ENFORCEMENT = "law_enforcement"
    CUSTOMERS = "customers"


class ClockState(StrEnum):
    PENDING = "pending"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    DONE = "done"
    NOT_APPLICABLE = "not_applicable"


class ChecklistKey(StrEnum):
    CONTAIN = "contain"
    ASSESS_SCOPE = "assess_scope"
    PRESERVE_EVIDENCE = "preserve_evidence"
    NOTIFY_AUTHORITY = "notify_authority"
    NOTIFY_LAW_ENFORCEMENT = "notify_law_enforcement"
    NOTIFY_CUSTOMERS = "notify_customers"
    DOCUMENT = "document"
    REVIEW = "review"


# (key, label, the clock whose done_at ticks it — None: ticked by staff)
CHECKLIST: tuple[tuple[ChecklistKey, str, ClockKind | None], ...] = (
    (ChecklistKey.CONTAIN, "Contain the breach (stop the leak, revoke credentials)", None),
    (ChecklistKey.ASSESS_SCOPE, "Assess the scope: which data, which organizations, how many people", None),
    (ChecklistKey.PRESERVE_EVIDENCE, "Preserve evidence (logs, images, the audit trail)", None),
    (ChecklistKey.NOTIFY_AUTHORITY, "Notify the supervisory authority (GDPR art. 33)", ClockKind.AUTHORITY),
    (ChecklistKey.NOTIFY_LAW_ENFORCEMENT, "Notify USSS and FBI through the FCC reporting facility "
                                          "(47 CFR § 64.2011)", ClockKind.LAW_ENFORCEMENT),
    (ChecklistKey.NOTIFY_CUSTOMERS, "Notify the customers affected (GDPR art. 34, § 64.2011(c))",
     ClockKind.CUSTOMERS),
    (ChecklistKey.DOCUMENT, "Document it in the breach register (facts, effects, remedial action)", None),
    (ChecklistKey.REVIEW, "Review: causes, lessons, changes made", None),
)


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What the clocks depend on (all times aware UTC)."""

    detected_at: datetime
    personal_data: bool
    cpni: bool
    severity: Severity = Severity.MEDIUM
    determined_at: datetime | None = None
    authority_notified_at: datetime | None = None
    law_enforcement_notified_at: datetime | None = None
    customers_notified_at: datetime | None = None
    law_enforcement_delay_until: datetime | None = None  # law enforcement asked to hold customer notice


@dataclass(frozen=True, slots=True)
class Clock:
    kind: ClockKind
    state: ClockState
    due_at: datetime | None  # None: not applicable, or not started
    done_at: datetime | None

    def time_left(self, now: datetime) -> timedelta | None:
        """Until due (negative when overdue); None when done, not applicable or not started."""
        if self.due_at is None or self.state in (ClockState.DONE, ClockState.NOT_APPLICABLE):
            return None
        return self.due_at - now


@dataclass(frozen=True, slots=True)
class Clocks:
    authority: Clock
    law_enforcement: Clock
    customers: Clock

    def __iter__(self) -> Iterator[Clock]:
        return iter((self.authority, self.law_enforcement, self.customers))

    def of(self, kind: ClockKind) -> Clock:
        return {ClockKind.AUTHORITY: self.authority, ClockKind.LAW_ENFORCEMENT: self.law_enforcement,
                ClockKind.CUSTOMERS: self.customers}[kind]

    @property
    def overdue(self) -> bool:
        return any(clock.state is ClockState.OVERDUE for clock in self)

    @property
    def pending(self) -> tuple[Clock, ...]:
        """The applicable clocks whose notice has not been sent."""
        return tuple(c for c in self if c.state not in (ClockState.DONE, ClockState.NOT_APPLICABLE))


@dataclass(frozen=True, slots=True)
class Tick:
    """A checklist item ticked by staff: when and by whom."""

    done_at: datetime
    by: str | None


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    key: ChecklistKey
    label: str
    clock: ClockKind | None  # ticked by this clock's notice
    applicable: bool
    done_at: datetime | None
    by: str | None

    @property
    def done(self) -> bool:
        return self.done_at is not None


# -- US federal holidays and business days -------------------------------------------------------
def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` (Monday 0) of the month; ``n`` = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """5 U.S.C. § 6103(b) and E.O. 11582: a Saturday holiday is observed on Friday, a Sunday one on Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def _fixed_dates(year: int) -> list[date]:
    days = [date(year, 1, 1), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
    if year >= _JUNETEENTH_FROM:
        days.append(date(year, 6, 19))
    return days


@cache
def us_federal_holidays(year: int) -> frozenset[date]:
    """The days federal offices are closed in ``year`` (observed dates, 5 U.S.C. § 6103).

    New Year's Day, Birthday of Martin Luther King Jr. (3rd Monday of January), Washington's Birthday
    (3rd Monday of February), Memorial Day (last Monday of May), Juneteenth (June 19, from 2021),
    Independence Day, Labor Day (1st Monday of September), Columbus Day (2nd Monday of October),
    Veterans Day, Thanksgiving (4th Thursday of November), Christmas. A New Year's Day on a
    Saturday is observed on December 31 of the year before, so that year holds it.
    """
    monday, thursday = 0, 3
    days = {
        _nth_weekday(year, 1, monday, 3), _nth_weekday(year, 2, monday, 3), _nth_weekday(year, 5, monday, -1),
        _nth_weekday(year, 9, monday, 1), _nth_weekday(year, 10, monday, 2), _nth_weekday(year, 11, thursday, 4),
    }
    for fixed in _fixed_dates(year) + _fixed_dates(year + 1):
        observed = _observed(fixed)
        if observed.year == year:
            days.add(observed)
    return frozenset(days)


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in us_federal_holidays(day.year)


def add_business_days(start: datetime, days: int) -> datetime:
    """``days`` business days after ``start``, at the same wall-clock time in Washington, DC (UTC out).

    The start's own day does not count (it is day 0), whether or not it is a business day.
    """
    if start.tzinfo is None:
        raise ValueError("naive datetime: incident clocks run on UTC instants")
    local = start.astimezone(_DC)
    day = local.date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day):
            counted += 1
    due = datetime.combine(day, time(local.hour, local.minute, local.second, local.microsecond), tzinfo=_DC)
    return due.astimezone(UTC)


def _span(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"


def time_left(clock: Clock, now: datetime) -> str:
    """What a person reads: ``"2 d 5 h left"``, ``"overdue by 3 h 10 min"``, ``"sent 2026-12-07 09:30"``,
    ``"not applicable"`` (the console's badges and ``ringwell admin incidents``)."""
    if clock.state is ClockState.NOT_APPLICABLE:
        return "not applicable"
    if clock.state is ClockState.DONE and clock.done_at is not None:
        return f"sent {clock.done_at:%Y-%m-%d %H:%M}"
    left = clock.time_left(now)
    if left is None:
        return "not started"
    return f"overdue by {_span(left)}" if left < timedelta(0) else f"{_span(left)} left"


# -- the clocks ----------------------------------------------------------------------------------
def _state(due_at: datetime | None, done_at: datetime | None, now: datetime) -> ClockState:
    if done_at is not None:
        return ClockState.DONE
    if due_at is None:
        return ClockState.PENDING
    if now > due_at:
        return ClockState.OVERDUE
    if due_at - now < DUE_SOON:
        return ClockState.DUE_SOON
    return ClockState.PENDING


def _clock(kind: ClockKind, applies: bool, due_at: datetime | None, done_at: datetime | None,
           now: datetime) -> Clock:
    if not applies and done_at is None:
        return Clock(kind, ClockState.NOT_APPLICABLE, None, None)
    return Clock(kind, _state(due_at, done_at, now), due_at, done_at)


def customers_notice_applies(facts: IncidentFacts) -> bool:
    """FCC: every CPNI breach; GDPR art. 34: personal data with a high risk (severity high or critical)."""
    return facts.cpni or (facts.personal_data and facts.severity in (Severity.HIGH, Severity.CRITICAL))


def clocks(facts: IncidentFacts, now: datetime) -> Clocks:
    """The three notification clocks of an incident at ``now`` (see the module docstring for the rules)."""
    authority_due = facts.detected_at + AUTHORITY_WINDOW
    authority = _clock(ClockKind.AUTHORITY, facts.personal_data, authority_due, facts.authority_notified_at, now)

    le_start = facts.determined_at or facts.detected_at
    le_due = add_business_days(le_start, LAW_ENFORCEMENT_BUSINESS_DAYS)
    law_enforcement = _clock(ClockKind.LAW_ENFORCEMENT, facts.cpni, le_due, facts.law_enforcement_notified_at, now)

    targets: list[datetime] = []
    if facts.cpni:
        targets.append(add_business_days(facts.law_enforcement_notified_at or le_due, CUSTOMER_FCC_BUSINESS_DAYS))
    if facts.personal_data and facts.severity in (Severity.HIGH, Severity.CRITICAL):
        targets.append((facts.authority_notified_at or authority_due) + CUSTOMER_GDPR_WINDOW)
    customers_due = min(targets) if targets else None
    if customers_due is not None and facts.law_enforcement_delay_until is not None:
        customers_due = max(customers_due, facts.law_enforcement_delay_until)
    customers = _clock(ClockKind.CUSTOMERS, customers_notice_applies(facts), customers_due,
                       facts.customers_notified_at, now)
    return Clocks(authority, law_enforcement, customers)


def checklist(facts: IncidentFacts, ticks: Mapping[str, Tick], now: datetime) -> tuple[ChecklistItem, ...]:
    """The default checklist: staff ticks from ``ticks``; ``notify_*`` items from their clock's ``done_at``.

    A notify item whose clock does not apply is not applicable (and not needed to close).
    """
    running = clocks(facts, now)
    items = []
    for key, label, kind in CHECKLIST:
        if kind is None:
            tick = ticks.get(key.value)
            items.append(ChecklistItem(key, label, None, True, tick.done_at if tick else None,
                                       tick.by if tick else None))
            continue
        clock = running.of(kind)
        by = ticks[key.value].by if key.value in ticks else None
        items.append(ChecklistItem(key, label, kind, clock.state is not ClockState.NOT_APPLICABLE, clock.done_at,
                                   by if clock.done_at is not None else None))
    return tuple(items)
