"""Errors of the CDR slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Invalid

__all__ = ["InvalidCallQuery"]


class InvalidCallQuery(Invalid):
    error_id = "invalid_call_query"
