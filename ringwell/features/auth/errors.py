"""Errors of the auth slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized

__all__ = [
    "AccountDisabled",
    "ApiKeyNotFound",
    "BadCredentials",
    "EmailNotVerified",
    "FreshLoginRequired",
    "InvalidAuthData",
    "InvalidCursor",
    "InvalidScopes",
    "InvalidToken",
    "LoginExists",
    "LoginRequired",
    "MfaAlreadyEnabled",
    "MfaNotEnabled",
    "MfaRequired",
    "PermissionDenied",
    "SignupClosed",
]


class LoginRequired(Unauthorized):
    error_id = "login_required"


class BadCredentials(Unauthorized):
    """Wrong email, password, TOTP or recovery code — deliberately not saying which."""

    error_id = "bad_credentials"


class MfaRequired(Unauthorized):
    error_id = "mfa_required"


class FreshLoginRequired(Unauthorized):
    error_id = "fresh_login_required"


class EmailNotVerified(Forbidden):
    error_id = "email_not_verified"


class PermissionDenied(Forbidden):
    error_id = "permission_denied"


class InvalidToken(Invalid):
    """An email link that is unknown, used or expired."""

    error_id = "invalid_token"


class InvalidAuthData(Invalid):
    error_id = "invalid_auth_data"


class InvalidCursor(Invalid):
    error_id = "invalid_cursor"


class InvalidScopes(Invalid):
    error_id = "invalid_scopes"


class MfaAlreadyEnabled(Conflict):
    error_id = "mfa_already_enabled"


class ApiKeyNotFound(NotFound):
    error_id = "api_key_not_found"


class AccountDisabled(Forbidden):
    """The password was right, but the account was disabled by its organization."""

    error_id = "account_disabled"


class SignupClosed(Forbidden):
    error_id = "signup_closed"


class LoginExists(Conflict):
    """An invited user's email already logs in (as someone else) on this server."""

    error_id = "login_exists"


class MfaNotEnabled(Conflict):
    error_id = "mfa_not_enabled"
