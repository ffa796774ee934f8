"""Errors of the rating slice (stable ``error_id`` values).

```
DomainError
├── Invalid → RateImportError ("invalid_rate_deck": a CSV line, with its number)
│           → InvalidRatingData ("invalid_rating_data": a deck name, a currency, a number)
├── NotFound → RateDeckNotFound ("rate_deck_not_found") | NoRate ("no_rate")
└── Conflict → CurrencyMismatch ("currency_mismatch") | DeckImportConflict ("rate_deck_busy")
```
"""

from __future__ import annotations

from typing import Any

from ringwell.errors import Conflict, Invalid, NotFound

__all__ = [
    "CurrencyMismatch",
    "DeckImportConflict",
    "InvalidRatingData",
    "NoRate",
    "RateDeckNotFound",
    "RateImportError",
]


class RateImportError(Invalid):
    """A rate deck CSV was refused as a whole: ``"line N: reason"``, details ``{"line": N}``
    (lines count from 1, the header is line 1)."""

    error_id = "invalid_rate_deck"

    def __init__(self, line: int, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"line {line}: {reason}", {**(details or {}), "line": line})
        self.line = line
        self.reason = reason


class InvalidRatingData(Invalid):
    error_id = "invalid_rating_data"


class RateDeckNotFound(NotFound):
    error_id = "rate_deck_not_found"


class NoRate(NotFound):
    """No prefix of the number has a rate in effect in the deck."""

    error_id = "no_rate"


class CurrencyMismatch(Conflict):
    """An organization pays in one currency only: its sell deck must be priced in it."""

    error_id = "currency_mismatch"


class DeckImportConflict(Conflict):
    """Two imports created the same new deck at once; the later one is refused (nothing imported)."""

    error_id = "rate_deck_busy"
