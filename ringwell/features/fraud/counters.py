"""Per-organization call counters of one server: calls up now and calls started in the last minute.

One ``CallCounters`` per server (the composition root owns it; no globals). Time is an argument
(monotonic seconds), so the window is tested on a fake clock. Nothing here awaits: call
``usage()``, ``policy.decide()`` and ``started()`` without an ``await`` in between and two
INVITEs arriving together cannot both take the last free slot.

The "last minute" is a sliding window of ``window`` seconds kept in one-second buckets (a ring
of ``window + 1`` counters per org): a call counts for at least ``window`` and at most
``window + 1`` seconds after it started — never less, so the rate cap is never looser than
stated. Memory is a fixed ring per org with activity in the last minute plus one entry per call
up; orgs gone idle are dropped (checked on every look-up and swept once a window). Every
operation is O(1) amortized.

Counters are per node: with several nodes behind a dispatcher each enforces the caps on its
own share (DESIGN.md: shared limits move to Redis at that scale).
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_WINDOW", "CallCounters"]

DEFAULT_WINDOW = 60  # seconds


class _OrgCounts:
    __slots__ = ("buckets", "concurrent", "second", "total")

    def __init__(self, size: int, second: int) -> None:
        self.concurrent = 0
        self.buckets = [0] * size
        self.second = second  # the newest second the ring has been advanced to
        self.total = 0  # sum of the buckets

    def advance(self, second: int) -> None:
        """Forget the starts that fell out of the window by ``second``."""
        gap = second - self.second
        if gap <= 0:
            return  # same second (or a clock that stood still)
        size = len(self.buckets)
        if gap >= size:
            self.buckets = [0] * size
            self.total = 0
        else:
            for passed in range(self.second + 1, second + 1):
                index = passed % size
                self.total -= self.buckets[index]
                self.buckets[index] = 0
        self.second = second

    @property
    def idle(self) -> bool:
        return self.concurrent == 0 and self.total == 0


class CallCounters:
    """Concurrent calls and call starts per org on this server."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 second")
        self._size = window + 1
        self._window = window
        self._orgs: dict[str, _OrgCounts] = {}
        self._calls: dict[str, str] = {}  # call key → org id, for calls up
        self._next_sweep: float = -math.inf

    def started(self, org_id: str, call_key: str, now: float) -> bool:
        """Count a call that was allowed and is going out. Idempotent per ``call_key``: a key
        already counted changes nothing (returns False)."""
        if call_key in self._calls:
            return False
        second = math.floor(now)
        counts = self._orgs.get(org_id)
        if counts is None:
            counts = self._orgs[org_id] = _OrgCounts(self._size, second)
        counts.advance(second)
        counts.concurrent += 1
        counts.buckets[second % self._size] += 1
        counts.total += 1
        self._calls[call_key] = org_id
        if now >= self._next_sweep:
            self._sweep(second)
            self._next_sweep = now + self._window
        return True

    def ended(self, call_key: str) -> None:
        """The call is over (answered or not). Unknown or already ended keys are ignored."""
        org_id = self._calls.pop(call_key, None)
        if org_id is None:
            return
        counts = self._orgs.get(org_id)
        if counts is not None and counts.concurrent > 0:
            counts.concurrent -= 1

    def usage(self, org_id: str, now: float) -> tuple[int, int]:
        """``(calls up, calls started in the last window)`` of ``org_id`` at ``now``."""
        counts = self._orgs.get(org_id)
        if counts is None:
            return (0, 0)
        counts.advance(math.floor(now))
        if counts.idle:
            del self._orgs[org_id]
            return (0, 0)
        return (counts.concurrent, counts.total)

    @property
    def tracked_orgs(self) -> int:
        """How many orgs have state here (for metrics and the memory-bound test)."""
        return len(self._orgs)

    @property
    def calls_up(self) -> int:
        return len(self._calls)

    def _sweep(self, second: int) -> None:
        for org_id in [org_id for org_id, counts in self._orgs.items() if counts.concurrent == 0]:
            counts = self._orgs[org_id]
            counts.advance(second)
            if counts.idle:
                del self._orgs[org_id]
