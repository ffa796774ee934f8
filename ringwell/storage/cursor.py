"""Opaque page cursors for keyset pagination: JSON, URL-safe base64 without padding.

Clients get them in ``next_cursor`` and send them back unchanged; anything else they send is
refused with the slice's own ``Invalid`` error (``bad``) — never a 500, never a query.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from ringwell.errors import DomainError

__all__ = ["MAX_CURSOR", "decode_cursor", "decode_position", "encode_cursor", "encode_position"]

MAX_CURSOR = 400  # characters; every cursor made here is far shorter


def encode_cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, bad: DomainError) -> Any:
    """The JSON value inside ``cursor``; raises ``bad`` for anything :func:`encode_cursor` did not make."""
    if not 1 <= len(cursor) <= MAX_CURSOR:
        raise bad
    try:
        return json.loads(base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc


def encode_position(at: datetime, row_id: str) -> str:
    """The most common position: a UTC timestamp and a row id (ties broken by id)."""
    return encode_cursor([at.astimezone(UTC).isoformat(), row_id])


def decode_position(cursor: str, bad: DomainError, *, max_id: int = 64) -> tuple[datetime, str]:
    value = decode_cursor(cursor, bad)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], str)
            and 1 <= len(value[1]) <= max_id and value[1].isprintable()):
        raise bad
    try:
        at = datetime.fromisoformat(value[0])
        if at.tzinfo is None or at.utcoffset() is None:
            raise bad
        return at.astimezone(UTC), value[1]
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 moved to UTC
        raise bad from exc
