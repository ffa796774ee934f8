"""Errors of the numbers slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Conflict, Invalid, NotFound
from ringwell.features.billing.errors import InsufficientCredit  # one class for "the credit does not cover it"

__all__ = [
    "CurrencyMismatch",
    "InsufficientCredit",
    "InvalidNumber",
    "InvalidNumberImport",
    "NumberNotAvailable",
    "NumberNotFound",
    "NumberOwnedElsewhere",
    "TooManyVerifications",
]


class InvalidNumber(Invalid):
    """Not a possible phone number; the message says why."""

    error_id = "invalid_number"


class InvalidNumberImport(Invalid):
    """A bad line in an inventory CSV: ``details["line"]`` is its 1-based line number."""

    error_id = "invalid_number_import"


class NumberNotFound(NotFound):
    """Not in the inventory, or not rented by the organization that asks."""

    error_id = "number_not_found"


class NumberNotAvailable(Conflict):
    """Rented or in quarantine."""

    error_id = "number_not_available"


class NumberOwnedElsewhere(Conflict):
    """A caller-ID verification for a number of the inventory the organization does not rent."""

    error_id = "number_owned_elsewhere"


class TooManyVerifications(Conflict):
    """Too many caller-ID verifications started recently (each one makes Ringwell call out)."""

    error_id = "too_many_verifications"


class CurrencyMismatch(Conflict):
    """The number is priced in another currency than the organization's."""

    error_id = "currency_mismatch"
