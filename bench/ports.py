"""Large blocks of free loopback UDP ports for the media relays under benchmark.

``tests.peers.ports.free_port(count)`` draws a random base and wants the whole block
free; for thousands of ports (a relay allocates two per call side) that rarely
succeeds below the ephemeral range, where other programs on the machine hold a few
fixed ports. This scans the range once and returns the longest free run instead.
"""

from __future__ import annotations

import socket

from tests.peers.ports import LOOPBACK, LOW, ephemeral_low

__all__ = ["free_block"]


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_block(want: int, *, minimum: int = 100, avoid: frozenset[int] = frozenset()) -> tuple[int, int]:
    """``(low, high)``: the longest run of free UDP ports below the ephemeral range.

    Capped at ``want`` ports; an even ``low`` so RTP/RTCP pairs line up. Raises
    RuntimeError when the longest run is shorter than ``minimum``. Nothing is
    reserved: start the relay promptly (relays skip a port taken meanwhile).
    """
    best_low, best_len = 0, 0
    run_low, run_len = 0, 0
    for port in range(LOW, ephemeral_low()):
        if port not in avoid and _udp_free(port):
            if run_len == 0:
                run_low = port
            run_len += 1
            if run_len > best_len:
                best_low, best_len = run_low, run_len
            if best_len >= want + 1:
                break
        else:
            run_len = 0
    if best_low % 2:
        best_low, best_len = best_low + 1, best_len - 1
    count = min(want, best_len)
    if count < minimum:
        raise RuntimeError(f"no run of {minimum} free UDP ports on {LOOPBACK} (longest: {best_len})")
    return best_low, best_low + count - 1
