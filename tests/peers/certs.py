"""A throw-away self-signed server certificate for TLS tests (CN and SAN = 127.0.0.1)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerCert", "make_self_signed"]


@dataclass(frozen=True)
class ServerCert:
    cert: Path
    key: Path


def make_self_signed(directory: Path, name: str = "server") -> ServerCert:
    """Write ``NAME.crt``/``NAME.key`` (RSA 2048, 2 days) with openssl(1)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["timeout", "30", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=40,
    )  # fmt: skip
    return ServerCert(cert=cert, key=key)
