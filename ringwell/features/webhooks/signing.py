"""Webhook signatures: HMAC-SHA256 over a timestamp and the exact body (pure; no I/O, no clock).

Every delivery carries ``Ringwell-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
``HMAC-SHA256(key=secret, msg=f"{t}." + body)`` and ``secret`` is the endpoint's whole signing
secret (``whsec_...``) as UTF-8. The timestamp is inside the signed text, so a captured delivery
cannot be re-sent later with a new timestamp; receivers refuse timestamps older than
:data:`DEFAULT_TOLERANCE` seconds. During a secret rotation a header may carry several ``v1``
values; any one matching is enough (receivers must also ignore schemes they do not know).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = [
    "DEFAULT_TOLERANCE",
    "SCHEME",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "SignatureError",
    "new_secret",
    "parse_header",
    "sign",
    "signature",
    "verify",
]

SIGNATURE_HEADER = "Ringwell-Signature"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE = 300  # seconds a receiver accepts a signature's timestamp either side of its clock


class SignatureError(ValueError):
    """The header is malformed, no signature matches, or the timestamp is outside the tolerance."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` followed by ``body``, keyed by ``secret``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Ringwell-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={signature(secret, body, timestamp)}"


def parse_header(header: str) -> tuple[int, list[str]]:
    """``(timestamp, [v1 signatures])`` of a header value; :class:`SignatureError` if malformed."""
    timestamp: int | None = None
    found: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed signature header element {part.strip()!r}")
        if key == "t":
            if not value.isascii() or not value.isdigit():
                raise SignatureError("the timestamp t= is not a whole number of seconds")
            timestamp = int(value)
        elif key == SCHEME:
            found.append(value)
    if timestamp is None:
        raise SignatureError("no timestamp t= in the signature header")
    if not found:
        raise SignatureError(f"no {SCHEME}= signature in the signature header")
    return timestamp, found


def verify(secret: str, body: bytes, header: str, *, now: float, tolerance: float = DEFAULT_TOLERANCE) -> int:
    """Check a received delivery; returns its timestamp.

    Raises :class:`SignatureError` when the header is malformed, when its timestamp is more
    than ``tolerance`` seconds away from ``now`` (a replay), or when no ``v1`` signature is
    the HMAC of this body at that timestamp (a tampered body or timestamp, or a wrong secret).
    """
    timestamp, candidates = parse_header(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"the timestamp is {now - timestamp:.0f} s away from now (tolerance {tolerance:.0f} s)")
    expected = signature(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("no signature matches the body")
    return timestamp
