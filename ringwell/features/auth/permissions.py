"""Roles and permissions, decided in one place.

A permission is a dotted name (``calls.read``). Every role holds a fixed set; an API key holds
the scopes it was given (never more than its creator had). Org roles act inside their own
organization only. Staff roles belong to users of the operator organization (``OrgKind.OPERATOR``)
and act *across* organizations: every such use on another org's data is an audit event.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "OPERATOR_PERMISSIONS",
    "ORG_PERMISSIONS",
    "Role",
    "grants",
    "is_staff",
    "permissions_of",
]


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    # operator staff
    SUPPORT = "support"
    BILLING = "billing"
    PRIVACY = "privacy"
    AUDITOR = "auditor"


# What exists inside an organization (what an org's own roles and API keys can hold).
ORG_PERMISSIONS: frozenset[str] = frozenset({
    "org.read", "org.update",
    "users.read", "users.write", "users.roles",
    "extensions.credentials",  # rotate a SIP password (shown once)
    "registrations.read",
    "numbers.read", "numbers.write",
    "billing.read", "billing.topup",
    "rates.read",
    "calls.read", "calls.export",
    "voicemail.read", "voicemail.write",  # a member: their own mailbox; owner/admin: every mailbox
    "recordings.read", "recordings.control",  # a member: the calls they are on; owner/admin: every call
    "recordings.write", "recordings.policy",  # delete recordings; set who is recorded
    "apikeys.manage",
    "webhooks.manage",
    "audit.read",
})

# What only the operator's staff can do (the operator console).
OPERATOR_PERMISSIONS: frozenset[str] = frozenset({
    "operator.orgs.read",
    "operator.orgs.close",  # close an organization (its data goes 90 days later) or reopen it before
    "operator.trunks.manage",
    "operator.ratedecks.manage",
    "operator.numbers.manage",
    "operator.billing.adjust",
    "operator.audit.read",
    "operator.privacy.requests",  # the queue of people's privacy requests (issue 8)
    "operator.privacy.manage",  # legal holds and the retention engine's runs (issue 8)
    "operator.privacy.incidents",  # record breaches, send their notices, tick their checklist (issue 8)
    "operator.privacy.incidents.read",  # read the breach register (privacy staff and auditors)
})

_MEMBER = frozenset({"org.read", "users.read", "numbers.read", "billing.read", "rates.read", "calls.read",
                     "calls.export", "voicemail.read", "voicemail.write", "recordings.read", "recordings.control"})
_ADMIN = ORG_PERMISSIONS - {"users.roles", "billing.topup"} | _MEMBER
_OWNER = ORG_PERMISSIONS

_ROLES: dict[Role, frozenset[str]] = {
    Role.MEMBER: _MEMBER,
    Role.ADMIN: _ADMIN,
    Role.OWNER: _OWNER,
    # Staff read what their job needs, in any org; what they read of an org is audited.
    Role.SUPPORT: frozenset({"operator.orgs.read", "org.read", "users.read", "registrations.read", "numbers.read",
                             "calls.read", "rates.read", "operator.numbers.manage"}),
    Role.BILLING: frozenset({"operator.orgs.read", "operator.orgs.close", "org.read", "billing.read", "rates.read",
                             "operator.billing.adjust", "operator.ratedecks.manage", "operator.trunks.manage",
                             "operator.numbers.manage"}),
    Role.PRIVACY: frozenset({"operator.orgs.read", "org.read", "users.read", "calls.read", "calls.export",
                             "audit.read", "operator.audit.read",
                             "operator.privacy.requests", "operator.privacy.manage",
                             "operator.privacy.incidents", "operator.privacy.incidents.read"}),
    Role.AUDITOR: frozenset({"operator.orgs.read", "org.read", "audit.read", "operator.audit.read",
                             "operator.privacy.incidents.read"}),
}

_STAFF = frozenset({Role.SUPPORT, Role.BILLING, Role.PRIVACY, Role.AUDITOR})


def is_staff(role: str) -> bool:
    return role in _STAFF


def permissions_of(role: str, *, operator_org: bool = False) -> frozenset[str]:
    """What ``role`` may do. An owner or admin of the operator org holds every operator permission."""
    try:
        granted = _ROLES[Role(role)]
    except ValueError:
        return frozenset()
    if operator_org and role in (Role.OWNER, Role.ADMIN):
        return granted | OPERATOR_PERMISSIONS
    return granted


def grants(held: frozenset[str], permission: str) -> bool:
    """Whether ``held`` includes ``permission`` (the only check; no wildcards, no hierarchy)."""
    if permission not in ORG_PERMISSIONS and permission not in OPERATOR_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return permission in held
