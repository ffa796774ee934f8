"""TOTP second factor (RFC 6238) and recovery codes: pure functions, time as an argument.

A secret is 160 random bits (base32, what authenticator apps expect), stored sealed together
with the last time step a code was accepted for, so a code is never accepted twice (RFC 6238
§5.2) — not even by another server process, because the stored value is replaced only if it
is still the one that was read. Codes of the previous and next 30-second step are accepted
too (clock drift, §5.2's "one time step" allowance).

Recovery codes are 16 characters from an alphabet without look-alikes (about 79 bits), shown
once as ``xxxx-xxxx-xxxx-xxxx``; only their SHA-256 is stored and each works once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

import pyotp
import segno

from ringwell.features.trunks.sealing import Sealer

__all__ = [
    "ISSUER",
    "RECOVERY_CODE_COUNT",
    "TotpState",
    "code_kind",
    "matching_step",
    "new_recovery_codes",
    "new_secret",
    "normalize_recovery_code",
    "provisioning_uri",
    "qr_data_uri",
    "recovery_hash",
]

ISSUER = "Ringwell"
RECOVERY_CODE_COUNT = 10
STEP = 30  # seconds (RFC 6238 default; what every authenticator app uses)
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_TOTP_CODE = re.compile(r"[0-9]{6}")
_RECOVERY = re.compile(f"[{_ALPHABET}]{{16}}")


@dataclass(frozen=True, slots=True)
class TotpState:
    """What ``users.mfa_secret`` holds (sealed): the secret and the last step a code was used for."""

    secret: str
    last_step: int = 0

    def seal(self, sealer: Sealer, user_id: str) -> str:
        return sealer.seal(json.dumps({"s": self.secret, "t": self.last_step}), f"totp:{user_id}")

    @classmethod
    def open(cls, sealer: Sealer, user_id: str, sealed: str) -> TotpState:
        """``ValueError`` when the server secret changed or the value was altered."""
        data = json.loads(sealer.open(sealed, f"totp:{user_id}"))
        return cls(str(data["s"]), int(data["t"]))


def new_secret() -> str:
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans (issuer Ringwell, the login email as name)."""
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG ``data:`` URI (an ``<img>`` source the portal's CSP allows)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def code_kind(code: str) -> str:
    """``"totp"`` for six digits, ``"recovery"`` otherwise (after removing spaces)."""
    return "totp" if _TOTP_CODE.fullmatch(code.replace(" ", "")) else "recovery"


def matching_step(secret: str, code: str, now: float, last_step: int) -> int | None:
    """The time step ``code`` belongs to (now ±1 step), if it is later than ``last_step``; else None."""
    code = code.replace(" ", "")
    if not _TOTP_CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP)
    current = int(now) // STEP
    found: int | None = None
    for step in (current - 1, current, current + 1):
        # Compare every candidate (no early exit), so timing says nothing about which matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and step > last_step:
            found = step
    return found


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i:i + 4] for i in range(0, 16, 4)))
    return codes


def normalize_recovery_code(code: str) -> str | None:
    """The 16 significant characters of a typed recovery code, or None if it cannot be one."""
    cleaned = re.sub(r"[\s-]", "", code).lower()
    return cleaned if _RECOVERY.fullmatch(cleaned) else None


def recovery_hash(code: str) -> str:
    """SHA-256 of a recovery code as typed or shown (normalized first)."""
    cleaned = normalize_recovery_code(code) or ""
    return hashlib.sha256(cleaned.encode()).hexdigest()
