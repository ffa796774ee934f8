"""Errors of the accounts slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Conflict, Invalid, NotFound

__all__ = ["DuplicateName", "InvalidAccountData", "OrganizationNotFound", "SipUsernameTaken", "UserNotFound"]


class OrganizationNotFound(NotFound):
    error_id = "organization_not_found"


class UserNotFound(NotFound):
    error_id = "user_not_found"


class DuplicateName(Conflict):
    error_id = "duplicate"


class SipUsernameTaken(Conflict):
    error_id = "sip_username_taken"


class InvalidAccountData(Invalid):
    error_id = "invalid_account_data"
