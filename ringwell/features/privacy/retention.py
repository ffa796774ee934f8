"""Retention rules: how long each class of data is kept, and each org's choices within the operator's bounds.

Pure functions over plain values (no I/O, no clock: ``now`` is an argument), used by the daily
retention run (``retention_service``), by ``PATCH /orgs/{id}`` to validate an org's choice and by
the privacy notice. The defaults are the policies' promises:

==================  ==========================================================================
class               default period
==================  ==========================================================================
call_records        12 months; an org may choose within the operator's bound for its country
                    (e.g. up to 7 years in the US, 12 months elsewhere)
usage               12 months (sessions and sign-in traces, registrations, webhook deliveries)
media               12 months, or until the customer deletes them (each item stores its deadline)
account             while the account exists, then 90 days after it is closed (disabled)
ledger              its legal period: 7 years (dialled numbers are scrubbed from descriptions)
consent             at least a year after the consent changes
audit               3 years
privacy_records     3 years, 2 at least (closed data requests and incidents, released legal holds,
                    retention reports)
short_lived         until it expires (tokens, reservations)
configuration       while the organization exists (not personal)
==================  ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from ringwell.features.privacy.register import Retention

__all__ = [
    "DEFAULT_DAYS",
    "LEDGER_SCRUBBED_DESCRIPTION",
    "OrgRetention",
    "RetentionPolicy",
    "cutoff",
    "effective_call_record_days",
    "parse_country_bounds",
    "period",
    "policy_from_settings",
    "scrub_ledger_description",
]

# Days per class; None: not purged by age (kept while the organization exists).
DEFAULT_DAYS: Mapping[Retention, int | None] = MappingProxyType({
    Retention.CALL_RECORDS: 365,
    Retention.USAGE: 365,
    Retention.MEDIA: 365,
    Retention.ACCOUNT: 90,  # after closure
    Retention.LEDGER: 7 * 365 + 2,  # seven years, leap days included
    Retention.CONSENT: 365,  # a minimum: the record of a consent outlives its change by at least this
    Retention.AUDIT: 3 * 365 + 1,
    Retention.PRIVACY_RECORDS: 3 * 365 + 1,
    Retention.SHORT_LIVED: 0,  # until it expires
    Retention.CONFIGURATION: None,
})

LEDGER_SCRUBBED_DESCRIPTION = "call"
_COUNTRY_BOUND = re.compile(r"^([A-Z]{2})=([0-9]{1,5})$")
MAX_DAYS = 36500  # a hundred years: a typo guard, not a policy


def parse_country_bounds(entries: tuple[str, ...] | list[str]) -> dict[str, int]:
    """``("US=2555", "CA=730")`` -> ``{"US": 2555, "CA": 730}``.

    Raises ``ValueError`` naming the bad entry: not ``CC=days`` with an ISO 3166-1 alpha-2
    code in capitals, days outside 1-36500, or a country given twice.
    """
    bounds: dict[str, int] = {}
    for entry in entries:
        match = _COUNTRY_BOUND.match(entry.strip())
        if match is None:
            raise ValueError(f"{entry!r} is not COUNTRY=DAYS (e.g. US=2555)")
        country, days = match.group(1), int(match.group(2))
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"{entry!r}: days must be 1-{MAX_DAYS}")
        if country in bounds:
            raise ValueError(f"{country} is given twice")
        bounds[country] = days
    return bounds


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The operator's retention periods (from the settings) and the bounds of what an org may choose.

    ``days`` maps a class to its period (None: not purged by age); classes missing take
    ``DEFAULT_DAYS``. ``MEDIA`` is the call recordings' default period, ``voicemail_days`` the
    voicemail's (both settings of their own; each item stores its deadline). ``call_record_max_days``
    bounds an org's own call record period unless its country has a bound of its own in
    ``call_record_max_by_country``.
    """

    days: Mapping[Retention, int | None] = field(default_factory=lambda: dict(DEFAULT_DAYS))
    call_record_max_days: int = 365
    call_record_max_by_country: Mapping[str, int] = field(default_factory=lambda: {"US": 7 * 365 + 2})
    voicemail_days: int = 365

    def period_days(self, retention: Retention) -> int | None:
        return self.days.get(retention, DEFAULT_DAYS[retention])

    def call_record_bound(self, country: str) -> int:
        """The longest an org of ``country`` may keep its call records, in days."""
        return self.call_record_max_by_country.get(country.upper(), self.call_record_max_days)

    def check_call_record_days(self, days: int | None, country: str) -> str | None:
        """None when an org of ``country`` may choose ``days`` (None: the server's default), else why not."""
        if days is None:
            return None
        bound = self.call_record_bound(country)
        if isinstance(days, bool) or not 1 <= days <= bound:
            return f"call_record_retention_days must be 1-{bound} days for an organization in {country.upper()}"
        return None


@dataclass(frozen=True, slots=True)
class OrgRetention:
    """What an org chose (None: the server's default). ``media_days``: its voicemail or recording days,
    whichever the caller asks about."""

    country: str
    call_record_days: int | None = None
    media_days: int | None = None


def effective_call_record_days(org: OrgRetention, policy: RetentionPolicy) -> int:
    """The org's call record period: its own choice or the server's default, never beyond the bound for its
    country (a bound lowered after the org chose wins)."""
    default = policy.period_days(Retention.CALL_RECORDS)
    chosen = org.call_record_days if org.call_record_days is not None else default
    if chosen is None:  # an operator who keeps call records forever still cannot exceed the bound
        return policy.call_record_bound(org.country)
    return max(1, min(chosen, policy.call_record_bound(org.country)))


def period(retention: Retention, org: OrgRetention, policy: RetentionPolicy) -> timedelta | None:
    """How long data of ``retention`` is kept for ``org``; None: not purged by age."""
    if retention is Retention.CALL_RECORDS:
        return timedelta(days=effective_call_record_days(org, policy))
    if retention is Retention.MEDIA and org.media_days is not None:
        return timedelta(days=org.media_days)
    days = policy.period_days(retention)
    return None if days is None else timedelta(days=days)


def cutoff(retention: Retention, org: OrgRetention, policy: RetentionPolicy, now: datetime) -> datetime | None:
    """Data of ``retention`` dated before the result is due for deletion; None: never by age.

    The date compared is the class's own: a call's start, a session's expiry, a disabled user's
    ``disabled_at`` (account), a ledger entry's creation. ``now`` must be aware (UTC).
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")
    kept = period(retention, org, policy)
    return None if kept is None else now - kept


def scrub_ledger_description(description: str) -> str:
    """A ledger line without the dialled number: ``"call to +14155550100"`` -> ``"call"`` (in any case, as the
    retention run's ``lower(description) LIKE 'call to %'``)."""
    return LEDGER_SCRUBBED_DESCRIPTION if description.lower().startswith("call to ") else description


def policy_from_settings(settings: Any) -> RetentionPolicy:
    """The policy the settings describe (``ringwell.settings.Settings``, already validated)."""
    days: dict[Retention, int | None] = dict(DEFAULT_DAYS)
    days[Retention.CALL_RECORDS] = settings.call_record_retention_days
    days[Retention.USAGE] = settings.usage_retention_days
    days[Retention.MEDIA] = settings.recording_retention_days
    days[Retention.ACCOUNT] = settings.closed_account_retention_days
    days[Retention.LEDGER] = settings.ledger_retention_days
    days[Retention.AUDIT] = settings.audit_retention_days
    days[Retention.PRIVACY_RECORDS] = settings.privacy_records_retention_days
    return RetentionPolicy(days=MappingProxyType(days), call_record_max_days=settings.call_record_max_days,
                           call_record_max_by_country=MappingProxyType(
                               parse_country_bounds(settings.call_record_max_days_by_country)),
                           voicemail_days=settings.voicemail_retention_days)
