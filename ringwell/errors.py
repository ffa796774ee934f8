"""The root of Ringwell's exception tree (see STYLE.md §4).

```
RingwellError
├── sip.SipError → ProtocolError(status_hint) → LocalProtocolError | RemoteProtocolError
│                → TransactionTimeout
├── ConfigError
└── DomainError(error_id, message, details) → NotFound | Conflict | Invalid
```
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError", "Conflict", "DomainError", "Invalid", "NotFound", "RingwellError"]


class RingwellError(Exception):
    """Base of every error Ringwell raises on purpose."""


class ConfigError(RingwellError):
    """A setting is missing or invalid; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class DomainError(RingwellError):
    """An error a user can act on, with a stable machine-readable ``error_id``."""

    error_id = "domain_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(DomainError):
    error_id = "not_found"


class Conflict(DomainError):
    error_id = "conflict"


class Invalid(DomainError):
    error_id = "invalid"
