"""Where a message came from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Source"]


@dataclass(frozen=True, slots=True)
class Source:
    """Transport ('udp', 'tcp', 'tls'), address and port a message arrived from."""

    transport: str
    host: str
    port: int
