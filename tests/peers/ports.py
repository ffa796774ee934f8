"""Free loopback ports for peers started by the tests.

Ports are drawn at random below the kernel's ephemeral range, so that they do not
collide with the source ports of outgoing TCP connections (SIPp, kamailio and
baresip all open some), and each candidate is checked by binding it for UDP *and*
TCP on 127.0.0.1. Other agents on the machine use fixed ports; the check skips them.
Under pytest-xdist each worker draws from its own slice of that range, so two workers never
hand the same block to their peers.
"""

from __future__ import annotations

import os
import random
import socket

__all__ = ["LOOPBACK", "LOW", "ephemeral_low", "free_port"]

LOOPBACK = "127.0.0.1"

LOW = 20000  # below this, ports belong to services; from ephemeral_low() up, to the kernel
_ATTEMPTS = 500
# Blocks already handed out by this process: a server binds its RTP range only call by call,
# so a later peer must not be given a port inside it just because it is not bound yet.
_handed: list[tuple[int, int]] = []


def ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _slice(low: int, high: int) -> tuple[int, int]:
    """This process's part of ``low .. high``: all of it, or worker N's N-th of it under pytest-xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if count <= 1 or not worker.startswith("gw"):
        return low, high
    index = int(worker[2:]) % count
    span = (high - low) // count
    return low + index * span, low + (index + 1) * span


def _is_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


def free_port(count: int = 1) -> int:
    """Return a base port such that base .. base+count-1 are free for UDP and TCP.

    Nothing is reserved: start the peer promptly. Raises RuntimeError when no block
    is found.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    low, high = _slice(LOW, ephemeral_low() - count)
    rng = random.SystemRandom()
    for _round in range(2):
        for _ in range(_ATTEMPTS):
            base = rng.randrange(low, high)
            if any(base < end and lo < base + count for lo, end in _handed):
                continue
            if all(_is_free(p) for p in range(base, base + count)):
                _handed.append((base, base + count))
                if len(_handed) > 2000:
                    del _handed[:1000]
                return base
        # After a long run the blocks handed out fragment the range: the oldest belong to peers
        # of tests long finished, so forget them and look again.
        del _handed[: len(_handed) // 2 + 1]
    raise RuntimeError(f"no block of {count} free UDP+TCP ports on {LOOPBACK}")
