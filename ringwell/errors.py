"""The root of Ringwell's exception tree (see STYLE.md §4).

```
RingwellError
├── sip.SipError → ProtocolError(status_hint) → LocalProtocolError | RemoteProtocolError
│                → TransactionTimeout
├── ConfigError
└── DomainError(error_id, message, details) → NotFound | Conflict | Invalid | Unauthorized | Forbidden
                                              | RateLimited
```
Each domain error carries the HTTP ``status`` the API answers it with.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "Conflict",
    "DomainError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RateLimited",
    "RingwellError",
    "Unauthorized",
]


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
    status = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(DomainError):
    error_id = "not_found"
    status = 404


class Conflict(DomainError):
    error_id = "conflict"
    status = 409


class Invalid(DomainError):
    error_id = "invalid"
    status = 422


class Unauthorized(DomainError):
    """No valid credentials (or a session that still owes its second factor)."""

    error_id = "unauthorized"
    status = 401


class Forbidden(DomainError):
    """Authenticated, but the role or key lacks the permission (inside the caller's own org)."""

    error_id = "forbidden"
    status = 403


class RateLimited(DomainError):
    error_id = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int, details: dict[str, object] | None = None) -> None:
        super().__init__(message, {"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after
