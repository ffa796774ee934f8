"""Due dates and statuses of people's privacy requests (pure rules, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ringwell.features.privacy.requests import (
    Gate,
    Law,
    Status,
    can_move,
    due_date,
    gate,
    is_overdue,
    law_deadline,
    one_month_after,
    receipt_lines,
    receipt_text,
)


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(("received", "month_later"), [
    (at(2026, 1, 15), at(2026, 2, 15)),
    (at(2026, 1, 31), at(2026, 2, 28)),  # no 31 February: the month's last day
    (at(2028, 1, 31), at(2028, 2, 29)),  # leap year
    (at(2026, 3, 31), at(2026, 4, 30)),
    (at(2026, 12, 20), at(2027, 1, 20)),  # across the year
])
def test_gdpr_month_is_a_calendar_month(received, month_later):
    assert one_month_after(received) == month_later
    assert law_deadline(Law.GDPR, received) == month_later


def test_gdpr_due_date_is_the_month_when_it_is_shorter_than_30_days():
    assert due_date(Law.GDPR, at(2026, 2, 1)) == at(2026, 3, 1)  # 28 days
    assert due_date(Law.GDPR, at(2026, 1, 31)) == at(2026, 2, 28)  # 28 days


def test_never_later_than_the_30_days_the_policy_promises():
    assert due_date(Law.GDPR, at(2026, 1, 15)) == at(2026, 2, 14)  # a 31-day month: capped
    assert due_date(Law.GDPR, at(2026, 4, 10)) == at(2026, 5, 10)  # a 30-day month: the same day
    assert law_deadline(Law.CCPA, at(2026, 1, 1)) == at(2026, 2, 15)  # 45 days ...
    assert due_date(Law.CCPA, at(2026, 1, 1)) == at(2026, 1, 31)  # ... capped at 30
    for day in range(1, 366):
        received = at(2026, 1, 1) + timedelta(days=day)
        for law in Law:
            assert due_date(law, received) - received <= timedelta(days=30)


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        due_date(Law.GDPR, datetime(2026, 1, 1))  # naive: the error under test


def test_overdue_only_while_unanswered():
    due = at(2026, 2, 1)
    assert is_overdue(Status.OPEN, due, due + timedelta(seconds=1))
    assert is_overdue(Status.IN_PROGRESS, due, due + timedelta(days=3))
    assert not is_overdue(Status.OPEN, due, due)
    assert not is_overdue(Status.DONE, due, due + timedelta(days=3))
    assert not is_overdue(Status.REFUSED, due, due + timedelta(days=3))


def test_statuses_move_forward_only():
    assert can_move(Status.OPEN, Status.IN_PROGRESS) and can_move(Status.IN_PROGRESS, Status.DONE)
    assert can_move(Status.OPEN, Status.REFUSED)
    assert not can_move(Status.DONE, Status.OPEN)
    assert not can_move(Status.REFUSED, Status.DONE)
    assert not can_move(Status.IN_PROGRESS, Status.OPEN)


def test_portal_requests_need_mfa_and_a_login_of_the_last_ten_minutes():
    now = at(2026, 5, 1)
    fresh = now - timedelta(minutes=9)
    assert gate(authenticated_at=fresh, mfa_enabled=True, mfa_pending=False, now=now) is Gate.OK
    assert gate(authenticated_at=fresh, mfa_enabled=False, mfa_pending=False, now=now) is Gate.MFA_SETUP
    assert gate(authenticated_at=fresh, mfa_enabled=True, mfa_pending=True, now=now) is Gate.STALE
    assert gate(authenticated_at=now - timedelta(minutes=11), mfa_enabled=True, mfa_pending=False,
                now=now) is Gate.STALE
    assert gate(authenticated_at=None, mfa_enabled=True, mfa_pending=False, now=now) is Gate.STALE


def test_a_receipt_reads_one_line_per_table_and_reason():
    receipts = [{"deleted": {"voicemails": 2, "users": 1}, "anonymised": {"call_records": 3}, "files_deleted": 4,
                 "kept": [{"table": "call_records", "column": "started_at", "why": "the org's books",
                           "until": "2027-12-07T10:00:00+00:00"},
                          {"table": "call_records", "column": "charge_minor", "why": "the org's books",
                           "until": "2027-12-07T10:00:00+00:00"},
                          {"table": "phone_numbers", "column": "e164", "why": "the org's number", "until": None}]}]
    assert receipt_lines(receipts) == [
        ("call_records (charge_minor, started_at)", "the org's books", "until 2027-12-07"),
        ("phone_numbers (e164)", "the org's number", "while your organization has its account")]
    text = receipt_text(receipts)
    assert "Deleted: 3 records and 4 files" in text and "Anonymised: 3 records" in text
    assert "- call_records (charge_minor, started_at): the org's books (until 2027-12-07)" in text
    assert "- nothing" in receipt_text([{"deleted": {}, "anonymised": {}, "files_deleted": 0, "kept": []}])
