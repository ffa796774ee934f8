"""Breach notification clocks (pure rules): GDPR 72 h, 7 US business days for CPNI, customer notice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ringwell.features.privacy.incidents import (
    ChecklistKey,
    ClockState,
    IncidentFacts,
    Severity,
    Tick,
    add_business_days,
    checklist,
    clocks,
    is_business_day,
    us_federal_holidays,
)

ET = ZoneInfo("America/New_York")


def et(*args: int) -> datetime:
    return datetime(*args, tzinfo=ET).astimezone(UTC)  # type: ignore[misc]


def test_authority_is_due_exactly_72_hours_after_awareness():
    aware = datetime(2026, 12, 4, 17, 30, tzinfo=UTC)  # a Friday: weekends do not stop the GDPR clock
    facts = IncidentFacts(detected_at=aware, personal_data=True, cpni=False)
    due = datetime(2026, 12, 7, 17, 30, tzinfo=UTC)
    assert clocks(facts, aware).authority.due_at == due
    assert clocks(facts, due - timedelta(hours=24, seconds=1)).authority.state is ClockState.PENDING
    assert clocks(facts, due - timedelta(hours=23, minutes=59)).authority.state is ClockState.DUE_SOON
    assert clocks(facts, due).authority.state is ClockState.DUE_SOON  # at 72:00:00 it is still on time
    assert clocks(facts, due + timedelta(seconds=1)).authority.state is ClockState.OVERDUE
    assert clocks(facts, due).authority.time_left(due + timedelta(hours=2)) == timedelta(hours=-2)
    sent = IncidentFacts(detected_at=aware, personal_data=True, cpni=False, authority_notified_at=due)
    done = clocks(sent, due + timedelta(days=9)).authority
    assert (done.state, done.done_at, done.time_left(due)) == (ClockState.DONE, due, None)


def test_no_personal_data_no_authority_clock_and_no_cpni_no_law_enforcement_clock():
    facts = IncidentFacts(detected_at=datetime(2026, 12, 1, tzinfo=UTC), personal_data=False, cpni=False)
    running = clocks(facts, datetime(2027, 1, 1, tzinfo=UTC))
    assert [c.state for c in running] == [ClockState.NOT_APPLICABLE] * 3
    assert not running.overdue and running.pending == ()


def test_seven_business_days_skip_the_weekend():
    determined = et(2026, 11, 12, 10, 0)  # Thursday 10:00 in Washington
    # Fri 13 (1), Mon 16 .. Fri 20 (2-6), Mon 23 (7)
    assert add_business_days(determined, 7) == et(2026, 11, 23, 10, 0)
    facts = IncidentFacts(detected_at=et(2026, 11, 11, 9, 0), determined_at=determined, personal_data=False,
                          cpni=True)
    clock = clocks(facts, et(2026, 11, 23, 9, 59)).law_enforcement
    assert (clock.due_at, clock.state) == (et(2026, 11, 23, 10, 0), ClockState.DUE_SOON)
    assert clocks(facts, et(2026, 11, 23, 10, 1)).law_enforcement.state is ClockState.OVERDUE


def test_seven_business_days_skip_thanksgiving():
    assert date(2026, 11, 26) in us_federal_holidays(2026)  # the 4th Thursday of November
    determined = et(2026, 11, 23, 15, 0)  # Monday
    # Tue 24, Wed 25, (Thu 26 Thanksgiving), Fri 27, Mon 30, Tue 1, Wed 2, Thu 3
    assert add_business_days(determined, 7) == et(2026, 12, 3, 15, 0)


def test_saturday_independence_day_is_observed_on_friday():
    assert date(2026, 7, 4).weekday() == 5
    assert date(2026, 7, 3) in us_federal_holidays(2026) and not is_business_day(date(2026, 7, 3))
    determined = et(2026, 6, 30, 8, 0)  # Tuesday
    # Wed 1, Thu 2, (Fri 3 observed, Sat 4, Sun 5), Mon 6, Tue 7, Wed 8, Thu 9, Fri 10
    assert add_business_days(determined, 7) == et(2026, 7, 10, 8, 0)


def test_federal_holidays_with_observance_shifts():
    assert us_federal_holidays(2026) == {
        date(2026, 1, 1), date(2026, 1, 19), date(2026, 2, 16), date(2026, 5, 25), date(2026, 6, 19),
        date(2026, 7, 3), date(2026, 9, 7), date(2026, 10, 12), date(2026, 11, 11), date(2026, 11, 26),
        date(2026, 12, 25)}
    # 2027: Juneteenth and Christmas on Saturday (observed Friday); New Year 2028 on Saturday, observed
    # on Friday 31 December 2027; July 4th on Sunday, observed Monday the 5th.
    holidays_2027 = us_federal_holidays(2027)
    assert {date(2027, 6, 18), date(2027, 12, 24), date(2027, 12, 31), date(2027, 7, 5)} <= holidays_2027
    assert date(2027, 7, 4) not in holidays_2027 and date(2027, 12, 25) not in holidays_2027
    assert date(2022, 1, 1) not in us_federal_holidays(2022)  # observed on 31 December 2021
    assert date(2021, 12, 31) in us_federal_holidays(2021)
    assert date(2020, 6, 19) not in us_federal_holidays(2020)  # Juneteenth became a holiday in 2021


def test_business_days_across_new_year_observed_in_the_year_before():
    determined = et(2027, 12, 23, 12, 0)  # Thursday
    # (Fri 24 Christmas observed), Mon 27, Tue 28, Wed 29, Thu 30, (Fri 31 New Year observed), Mon 3, Tue 4, Wed 5
    assert add_business_days(determined, 7) == et(2028, 1, 5, 12, 0)


def test_business_days_count_on_washington_dates():
    # 02:00 UTC on a Saturday is still Friday evening in Washington: Friday is day 0.
    friday_evening = datetime(2026, 11, 14, 2, 0, tzinfo=UTC)
    assert add_business_days(friday_evening, 1) == datetime(2026, 11, 17, 2, 0, tzinfo=UTC)  # Monday 21:00 ET
    with pytest.raises(ValueError):
        add_business_days(datetime(2026, 11, 14), 1)


def test_law_enforcement_clock_starts_at_awareness_until_a_determination_is_recorded():
    aware = et(2026, 11, 12, 10, 0)
    undetermined = IncidentFacts(detected_at=aware, personal_data=False, cpni=True)
    assert clocks(undetermined, aware).law_enforcement.due_at == et(2026, 11, 23, 10, 0)


def test_customer_clock_follows_law_enforcement_notice_and_its_requested_delay():
    determined = et(2026, 11, 12, 10, 0)
    facts = IncidentFacts(detected_at=determined, determined_at=determined, personal_data=False, cpni=True)
    # Law enforcement not notified yet: 7 business days after its deadline (Mon 23 Nov -> Thu 3 Dec, Thanksgiving).
    assert clocks(facts, determined).customers.due_at == et(2026, 12, 3, 10, 0)
    notified = IncidentFacts(detected_at=determined, determined_at=determined, personal_data=False, cpni=True,
                             law_enforcement_notified_at=et(2026, 11, 13, 16, 0))
    assert clocks(notified, determined).customers.due_at == et(2026, 11, 24, 16, 0)
    delayed = IncidentFacts(detected_at=determined, determined_at=determined, personal_data=False, cpni=True,
                            law_enforcement_notified_at=et(2026, 11, 13, 16, 0),
                            law_enforcement_delay_until=et(2026, 12, 14, 0, 0))
    clock = clocks(delayed, et(2026, 12, 1, 0, 0)).customers
    assert (clock.due_at, clock.state) == (et(2026, 12, 14, 0, 0), ClockState.PENDING)
    sent = IncidentFacts(detected_at=determined, determined_at=determined, personal_data=False, cpni=True,
                         customers_notified_at=et(2026, 11, 20, 9, 0))
    assert clocks(sent, et(2027, 1, 1, 0, 0)).customers.state is ClockState.DONE


def test_customer_clock_for_a_high_risk_personal_data_breach():
    aware = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    low = IncidentFacts(detected_at=aware, personal_data=True, cpni=False, severity=Severity.LOW)
    assert clocks(low, aware).customers.state is ClockState.NOT_APPLICABLE
    high = IncidentFacts(detected_at=aware, personal_data=True, cpni=False, severity=Severity.HIGH)
    assert clocks(high, aware).customers.due_at == aware + timedelta(hours=144)  # authority due + 72 h
    told = IncidentFacts(detected_at=aware, personal_data=True, cpni=False, severity=Severity.CRITICAL,
                         authority_notified_at=aware + timedelta(hours=20))
    assert clocks(told, aware).customers.due_at == aware + timedelta(hours=92)
    # Both laws: the earlier target wins.
    both = IncidentFacts(detected_at=aware, determined_at=aware, personal_data=True, cpni=True,
                         severity=Severity.HIGH)
    assert clocks(both, aware).customers.due_at == aware + timedelta(hours=144)


def test_checklist_notify_items_follow_their_clocks():
    aware = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    sent = aware + timedelta(hours=30)
    facts = IncidentFacts(detected_at=aware, personal_data=True, cpni=False, authority_notified_at=sent)
    ticks = {"contain": Tick(aware + timedelta(hours=1), "staff-1"), "notify_authority": Tick(sent, "staff-2")}
    items = {item.key: item for item in checklist(facts, ticks, aware + timedelta(days=2))}
    assert [key.value for key in items] == ["contain", "assess_scope", "preserve_evidence", "notify_authority",
                                            "notify_law_enforcement", "notify_customers", "document", "review"]
    assert items[ChecklistKey.CONTAIN].done and items[ChecklistKey.CONTAIN].by == "staff-1"
    assert not items[ChecklistKey.ASSESS_SCOPE].done
    assert (items[ChecklistKey.NOTIFY_AUTHORITY].done_at, items[ChecklistKey.NOTIFY_AUTHORITY].by) == (sent, "staff-2")
    assert not items[ChecklistKey.NOTIFY_LAW_ENFORCEMENT].applicable
    assert not items[ChecklistKey.NOTIFY_CUSTOMERS].applicable  # medium severity, no CPNI
    # A stored tick without the notice sent does not make the item done: the clock decides.
    unsent = IncidentFacts(detected_at=aware, personal_data=True, cpni=False)
    assert not {i.key: i for i in checklist(unsent, ticks, aware)}[ChecklistKey.NOTIFY_AUTHORITY].done
