"""Errors of the trunks slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Conflict, Invalid, NotFound

__all__ = ["DuplicateTrunk", "InvalidTrunk", "TrunkNotFound"]


class InvalidTrunk(Invalid):
    error_id = "invalid_trunk"


class DuplicateTrunk(Conflict):
    error_id = "duplicate_trunk"


class TrunkNotFound(NotFound):
    error_id = "trunk_not_found"
