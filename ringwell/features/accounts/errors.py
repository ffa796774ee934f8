"""Errors of the accounts slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Conflict, Forbidden, Invalid, NotFound

__all__ = [
    "CannotRemoveSelf",
    "DuplicateName",
    "InvalidAccountData",
    "InvalidCursor",
    "LastOwner",
    "OrganizationClosed",
    "OrganizationNotFound",
    "RoleNotAllowed",
    "SipUsernameTaken",
    "UserNotFound",
]


class OrganizationNotFound(NotFound):
    error_id = "organization_not_found"


class OrganizationClosed(Conflict):
    """The organization is closed (``organizations.closed_at``): nothing new is added to it."""

    error_id = "organization_closed"


class UserNotFound(NotFound):
    error_id = "user_not_found"


class DuplicateName(Conflict):
    error_id = "duplicate"


class SipUsernameTaken(Conflict):
    error_id = "sip_username_taken"


class InvalidAccountData(Invalid):
    error_id = "invalid_account_data"


class InvalidCursor(Invalid):
    """A pagination cursor this API did not hand out."""

    error_id = "invalid_cursor"


class LastOwner(Conflict):
    """The change would leave the organization without an owner."""

    error_id = "last_owner"


class CannotRemoveSelf(Conflict):
    """A user cannot delete their own account through user management."""

    error_id = "cannot_remove_self"


class RoleNotAllowed(Forbidden):
    """Granting (or taking away) a role above the granter's own."""

    error_id = "role_not_allowed"
