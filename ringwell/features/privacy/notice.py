"""The public privacy notice and the machine-readable register, generated from the data register.

Nothing here is written by hand about a particular column: what the notice says we keep, why,
on which legal basis, for how long, whether a person's export contains it and what erasing the
person does is read from ``REGISTER`` (``catalog.py``), and the periods from the operator's
retention policy (``retention.py``). So the notice cannot promise what the software does not do.

Pure functions: the register and the policy in, plain frozen values (for the page) or a JSON-able
dict (``GET /api/v1/privacy/register``, also the format the person's export describes itself
with) out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ringwell.features.privacy.register import Basis, Category, Erasure, Retention, Table
from ringwell.features.privacy.retention import RetentionPolicy

__all__ = [
    "BASIS_WORDS",
    "CATEGORY_WORDS",
    "ERASURE_WORDS",
    "FORMAT_VERSION",
    "CategoryNotice",
    "Item",
    "Kept",
    "describe_period",
    "notice",
    "register_document",
]

FORMAT_VERSION = 1  # of register_document; bumped when a key changes meaning

# Personal categories in the order the notice shows them (NOT_PERSONAL is not shown).
CATEGORY_WORDS: Mapping[Category, tuple[str, str]] = {
    Category.ACCOUNT: ("Account", "who you are to us: your name, addresses, extension, sign-in and phone accounts"),
    Category.COMMUNICATIONS_METADATA: ("Call records and other communications metadata",
                                       "who called whom, when and for how long — not what was said"),
    Category.CONTENT: ("Content", "what was said: voicemail, call recordings and their transcripts"),
    Category.BILLING: ("Billing", "what calls and numbers cost and how they were paid"),
    Category.LOCATION: ("Location", "where you are"),
    Category.DEVICE: ("Devices", "your phones and browsers: their make, software and network address"),
    Category.USAGE: ("Usage and security", "when and from where you signed in, and what was done with your data"),
}

BASIS_WORDS: Mapping[Basis, str] = {
    Basis.CONTRACT: "needed to provide the service you or your organisation signed up for (GDPR art. 6(1)(b))",
    Basis.LEGAL_OBLIGATION: "required by law, e.g. accounting and telecom law (GDPR art. 6(1)(c))",
    Basis.LEGITIMATE_INTEREST: "our legitimate interest in security and fraud prevention (GDPR art. 6(1)(f))",
    Basis.CONSENT: "your consent, which you may withdraw at any time (GDPR art. 6(1)(a))",
}

ERASURE_WORDS: Mapping[Erasure, str] = {
    Erasure.DELETE: "deleted",
    Erasure.ANONYMISE: "anonymised: the record stays for your organisation's books, without who you are",
    Erasure.KEEP: "kept under an exception (listed in your deletion receipt)",
    Erasure.NONE: "not about you",
}

# What each class means, said before its period; the period comes from the operator's policy.
_RETENTION_WORDS: Mapping[Retention, str] = {
    Retention.CALL_RECORDS: "call records",
    Retention.USAGE: "sign-ins, sessions, phone registrations and event deliveries",
    Retention.MEDIA: "voicemail and call recordings",
    Retention.ACCOUNT: "while the account exists, then after it is closed",
    Retention.LEDGER: "the financial ledger, for the legal accounting period",
    Retention.CONSENT: "consent records, at least a year after the consent changes",
    Retention.AUDIT: "the security audit trail",
    Retention.PRIVACY_RECORDS: ("data requests and incident records after they are closed, and legal holds, as "
                                "proof of compliance"),
    Retention.SHORT_LIVED: "links, codes and reservations",
    Retention.CONFIGURATION: "settings",
}


def describe_period(retention: Retention, days: int | None) -> str:
    """How long, in words: ``365`` → "12 months", ``2557`` → "7 years", ``90`` → "90 days".

    ``None`` means not purged by age; ``0`` means until the item expires (short-lived classes).
    The account class counts from the account's closure.
    """
    if days is None:
        text = "as long as the organisation uses Ringwell"
    elif days == 0:
        text = "until it expires or is used"
    elif days % 365 in (0, 1, 2) and days >= 730:
        text = f"{days // 365} years"
    elif days % 365 in (0, 1) and days >= 365:
        text = "12 months"
    elif days % 30 == 0 and days >= 60 and days != 90:
        text = f"{days // 30} months"
    else:
        text = f"{days} days"
    if retention is Retention.ACCOUNT and days:
        return f"while the account exists, then {text} after it is closed"
    if retention is Retention.CONSENT and days:
        return f"at least {text} after the consent changes"
    return text


@dataclass(frozen=True, slots=True)
class Item:
    """What the notice says about one table within one category."""

    table: str
    what: str  # the table's description
    purposes: tuple[str, ...]  # the purposes of its columns of this category, deduplicated in order
    bases: tuple[str, ...]
    retention: str  # "call records: 12 months"
    exported: bool  # the person's export contains at least one of these columns
    erasure: str


@dataclass(frozen=True, slots=True)
class Kept:
    """An exception: data kept after a person's erasure, why, and until when."""

    what: str
    why: str
    until: str


@dataclass(frozen=True, slots=True)
class CategoryNotice:
    category: Category
    title: str
    summary: str
    items: tuple[Item, ...]
    exceptions: tuple[Kept, ...]

    @property
    def empty(self) -> bool:
        return not self.items


def _call_record_bounds(policy: RetentionPolicy) -> str:
    """"up to 7 years in US, 12 months elsewhere": what an org may choose, from the operator's bounds."""
    countries = [f"{describe_period(Retention.CALL_RECORDS, days)} in {country}"
                 for country, days in sorted(policy.call_record_max_by_country.items())]
    elsewhere = describe_period(Retention.CALL_RECORDS, policy.call_record_max_days)
    return "up to " + ", ".join([*countries, f"{elsewhere} elsewhere" if countries else elsewhere])


def _how_long(retention: Retention, policy: RetentionPolicy) -> str:
    if retention is Retention.CALL_RECORDS:  # the server's default, and what an org may choose instead
        return (f"{describe_period(retention, policy.period_days(retention))} by default; your organisation may "
                f"choose its own period, {_call_record_bounds(policy)}")
    if retention is Retention.MEDIA:  # each its own setting: voicemail_retention_days, recording_retention_days
        return (f"{describe_period(retention, policy.voicemail_days)} for voicemail, "
                f"{describe_period(retention, policy.period_days(retention))} for call recordings, by default (your "
                "organisation may choose another period, or delete them sooner)")
    return describe_period(retention, policy.period_days(retention))


def _period(retention: Retention, policy: RetentionPolicy) -> str:
    return f"{_RETENTION_WORDS[retention]}: {_how_long(retention, policy)}"


def _first(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def notice(register: Mapping[str, Table], policy: RetentionPolicy) -> tuple[CategoryNotice, ...]:
    """One section per personal category, each listing the tables that hold it (empty: we keep none)."""
    sections: list[CategoryNotice] = []
    for category, (title, summary) in CATEGORY_WORDS.items():
        items: list[Item] = []
        kept: dict[tuple[str, str], Kept] = {}
        for table in register.values():
            columns = [c for c in table.columns if c.category is category]
            if not columns:
                continue
            erasures = _first([ERASURE_WORDS[c.erasure] for c in columns])
            items.append(Item(
                table=table.name, what=table.description, purposes=_first([c.purpose for c in columns]),
                bases=_first([BASIS_WORDS[c.basis] for c in columns]),
                retention="; ".join(_first([_period(c.retention, policy) for c in columns])),
                exported=any(c.exported for c in columns), erasure="; ".join(erasures)))
            for column in columns:
                if column.erasure is Erasure.KEEP and column.exception:
                    key = (table.description, column.exception)
                    kept.setdefault(key, Kept(table.description, column.exception,
                                              _period(column.retention, policy)))
        sections.append(CategoryNotice(category, title, summary, tuple(items), tuple(kept.values())))
    return tuple(sections)


def _extra(retention: Retention, policy: RetentionPolicy) -> dict[str, Any]:
    if retention is Retention.MEDIA:
        return {"voicemail_days": policy.voicemail_days}
    if retention is Retention.CALL_RECORDS:
        return {"max_days": {**dict(sorted(policy.call_record_max_by_country.items())),
                             "*": policy.call_record_max_days}}
    return {}


def register_document(register: Mapping[str, Table], policy: RetentionPolicy) -> dict[str, Any]:
    """The whole register as JSON: every table and column, with the periods the operator configured.

    ``retention`` maps each class to ``{"days": int | null, "text": str}`` (for ``media``, ``days`` is the
    call recordings' and ``voicemail_days`` the voicemail's; for ``call_records``, ``days`` is the server's
    default and ``max_days`` the longest an org may choose: per country, ``"*"`` for any other); each column
    names its class. The export of a person uses the same table and column names.
    """
    return {
        "format": FORMAT_VERSION,
        "categories": {c.value: {"title": CATEGORY_WORDS[c][0], "summary": CATEGORY_WORDS[c][1]}
                       for c in CATEGORY_WORDS},
        "retention": {r.value: {"days": policy.period_days(r), "text": _period(r, policy), **_extra(r, policy)}
                      for r in Retention},
        "tables": {
            name: {
                "description": table.description,
                "subject": table.subject,
                "columns": {
                    c.name: {"category": c.category.value, "purpose": c.purpose, "basis": c.basis.value,
                             "retention": c.retention.value, "exported": c.exported, "erasure": c.erasure.value,
                             "exception": c.exception}
                    for c in table.columns
                },
            }
            for name, table in sorted(register.items())
        },
    }
