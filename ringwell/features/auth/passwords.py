"""Login passwords: Argon2id (argon2-cffi's RFC 9106 low-memory profile), never stored in clear."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

__all__ = ["MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "hash_password", "needs_rehash", "verify_password"]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200  # Argon2 takes any length; a bound keeps a login request cheap to refuse

_HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
# A hash of nothing anyone knows: verifying against it when there is no such account makes an
# unknown email take as long as a wrong password.
_DUMMY = _HASHER.hash("ringwell-no-such-account")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant-work check; ``stored`` None (no login) still costs one Argon2 verification."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
