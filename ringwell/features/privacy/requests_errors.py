"""Errors of people's privacy requests (stable ``error_id``s for the API)."""

from __future__ import annotations

from ringwell.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

__all__ = ["ErasureUnavailable", "InvalidRequest", "InvalidTransition", "MfaNotEnabled", "RequestNotFound"]


class RequestNotFound(NotFound):
    error_id = "privacy_request_not_found"


class InvalidRequest(Invalid):
    error_id = "invalid_privacy_request"


class InvalidTransition(Conflict):
    error_id = "privacy_request_transition"


class MfaNotEnabled(Forbidden):
    """Privacy requests from the portal need two-step verification turned on (and passed at login)."""

    error_id = "mfa_not_enabled"


class ErasureUnavailable(DomainError):
    """The erasure service is not part of this build yet: the request stays open for staff."""

    error_id = "erasure_unavailable"
    status = 503
