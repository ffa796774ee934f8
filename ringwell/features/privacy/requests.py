"""Pure rules of people's privacy requests: kinds, laws, deadlines and the status machine.

Deadlines (fixed when the request is received):

- GDPR art. 12(3): "within one month of receipt of the request" — a calendar month: the same day
  of the next month, or that month's last day when it has no such day (received 31 January, due
  28/29 February);
- CCPA (Cal. Civ. Code § 1798.130(a)(2)): 45 calendar days;
- and never later than 30 days, the promise of Ringwell's privacy policy: the due date is the
  earlier of the law's deadline and ``received + 30 days``.

Status machine: open → in_progress → done | refused; open → done | refused directly as well.
A missing transition is the error (:class:`InvalidTransition` from the service).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "FRESH_LOGIN",
    "POLICY_DAYS",
    "TRANSITIONS",
    "Gate",
    "Kind",
    "Law",
    "Source",
    "Status",
    "can_move",
    "due_date",
    "gate",
    "is_overdue",
    "law_deadline",
    "one_month_after",
    "receipt_lines",
    "receipt_text",
]

POLICY_DAYS = 30  # the privacy policy's promise: no request waits longer
FRESH_LOGIN = timedelta(minutes=10)  # a portal request needs a password (and MFA) entered this recently
CCPA_DAYS = 45


class Kind(StrEnum):
    ACCESS = "access"  # art. 15: a copy of the data (the export zip)
    EXPORT = "export"  # art. 20: portability (the same zip: JSON and CSV are machine-readable)
    CORRECTION = "correction"  # art. 16
    DELETION = "deletion"  # art. 17; CCPA right to delete
    RESTRICTION = "restriction"  # art. 18
    OBJECTION = "objection"  # art. 21; CCPA opt-out of sale/sharing


class Law(StrEnum):
    GDPR = "gdpr"
    CCPA = "ccpa"


class Source(StrEnum):
    PORTAL = "portal"  # the person, logged in (fresh login and MFA)
    STAFF = "staff"  # received by email or post, entered by privacy staff after checking identity


class Status(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    REFUSED = "refused"  # with a reason (e.g. identity could not be verified; manifestly unfounded)


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.IN_PROGRESS, Status.DONE, Status.REFUSED}),
    Status.IN_PROGRESS: frozenset({Status.DONE, Status.REFUSED}),
    Status.DONE: frozenset(),
    Status.REFUSED: frozenset(),
}


def can_move(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def one_month_after(moment: datetime) -> datetime:
    """The same day and time one calendar month later, clamped to the last day of a shorter month."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def law_deadline(law: Law, received_at: datetime) -> datetime:
    """The deadline the law itself sets."""
    if law is Law.GDPR:
        return one_month_after(received_at)
    return received_at + timedelta(days=CCPA_DAYS)


def due_date(law: Law, received_at: datetime) -> datetime:
    """When the answer is due: the law's deadline, never later than the policy's 30 days."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware (UTC)")
    return min(law_deadline(law, received_at), received_at + timedelta(days=POLICY_DAYS))


def is_overdue(status: Status, due_at: datetime, now: datetime) -> bool:
    """An unanswered request past its due date."""
    return status in (Status.OPEN, Status.IN_PROGRESS) and now > due_at


class Gate(StrEnum):
    """Whether a logged-in person may make a privacy request from the portal now."""

    OK = "ok"
    MFA_SETUP = "mfa_setup"  # two-step verification is off: turn it on first
    STALE = "stale"  # the login is older than FRESH_LOGIN: log in again (password + code)


def gate(*, authenticated_at: datetime | None, mfa_enabled: bool, mfa_pending: bool, now: datetime,
         window: timedelta = FRESH_LOGIN) -> Gate:
    """Fresh login and MFA first: a stolen, long-lived session must not export or delete a person."""
    if not mfa_enabled:
        return Gate.MFA_SETUP
    if mfa_pending or authenticated_at is None or now - authenticated_at > window or authenticated_at > now:
        return Gate.STALE
    return Gate.OK


def receipt_lines(receipts: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """What a deletion kept, from its receipts (``Receipt.as_dict`` of each account), one line per
    table and reason: (what — the table and its kept columns, why, until when). Columns kept for
    the same reason until the same day are one line: that is how a person reads it."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for receipt in receipts:
        for kept in receipt.get("kept") or ():
            until = kept.get("until")
            day = f"until {str(until)[:10]}" if until else "while your organization has its account"
            grouped.setdefault((str(kept["table"]), str(kept["why"]), day), []).append(str(kept["column"]))
    return [(f"{table} ({', '.join(sorted(set(columns)))})", why, day)
            for (table, why, day), columns in sorted(grouped.items())]


def receipt_text(receipts: Sequence[Mapping[str, Any]]) -> str:
    """The receipt as the plain-text email the person gets."""
    deleted = sum(sum((r.get("deleted") or {}).values()) for r in receipts)
    anonymised = sum(sum((r.get("anonymised") or {}).values()) for r in receipts)
    files = sum(int(r.get("files_deleted") or 0) for r in receipts)
    out = ["Your account and data were deleted.", "",
           f"Deleted: {deleted} records and {files} files (voicemail, recordings, greetings); their encryption "
           "keys were destroyed, so copies in backups cannot be read.",
           f"Anonymised: {anonymised} records your organization keeps for its books (who was on a call is removed).",
           "", "Kept, why, and until when:"]
    out += [f"- {what}: {why} ({until})" for what, why, until in receipt_lines(receipts)] or ["- nothing"]
    return "\n".join(out) + "\n"
