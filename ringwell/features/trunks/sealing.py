"""Sealing a trunk's SIP password: AES-256-GCM under a key derived from the server secret.

The password must be usable (a carrier's digest challenge names its realm only when it
challenges, so an HA1 cannot be precomputed), but it is never stored in clear. The key is
HKDF-SHA256 of ``secret_key`` with a purpose label, so it is not the secret itself.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Sealer"]

_LABEL = b"ringwell trunk passwords v1"


class Sealer:
    def __init__(self, secret_key: str, label: bytes = _LABEL) -> None:
        """``label`` separates purposes: each gets its own key from the same secret."""
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret_key.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        """The plaintext; ``ValueError`` when the secret changed or the value was altered."""
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise ValueError("sealed value cannot be opened with this server's secret") from exc
