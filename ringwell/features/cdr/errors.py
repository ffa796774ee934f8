"""Errors of the CDR slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Invalid, NotFound

__all__ = ["CallNotFound", "InvalidCallQuery"]


class InvalidCallQuery(Invalid):
    error_id = "invalid_call_query"


class CallNotFound(NotFound):
    """No such call in the organization (also: another organization's call)."""

    error_id = "call_not_found"
