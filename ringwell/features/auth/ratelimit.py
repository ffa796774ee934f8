"""Counting failed logins: a key (an account, a client address) that failed ``limit`` times within
``window`` seconds is refused until the oldest of those failures is ``window`` old.

Pure and in memory, with the clock as an argument (monotonic seconds), so it is tested without
sleeping. One limiter per server process: a deployment running several portal processes
multiplies the allowance by their number, which still bounds guessing to a handful of tries a
minute per account. Memory is bounded: at most ``limit`` timestamps per key and ``max_keys``
keys (the stalest keys are forgotten first).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

__all__ = ["FailureLimiter"]


class FailureLimiter:
    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: float) -> int | None:
        """Seconds (rounded up, at least 1) until ``key`` may try again; None when it may now."""
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, key: str, now: float) -> None:
        """Count one failure of ``key`` at ``now``."""
        times = self._recent(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (after it succeeded)."""
        self._failures.pop(key, None)
