"""Brute-force protection for SIP authentication, and the security log fail2ban reads.

Failures are counted in a sliding window per source address and per username. Past a limit
the source (or the username) is blocked for a while: its requests are refused without
checking credentials. Each failure and each block is one line of the security log; the
format is documented in docs/security-log.md with a fail2ban filter in contrib/fail2ban/.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AuthGuard", "GuardLimits", "open_security_log"]

security_log = logging.getLogger("ringwell.security")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+\-]")


def _safe(text: str) -> str:
    """Attacker-chosen text made safe for a log line that fail2ban parses."""
    return _UNSAFE.sub("?", text)[:64]


def open_security_log(path: Path) -> logging.Handler:
    """Attach the security log file (UTC timestamps) and return its handler."""
    handler = logging.FileHandler(path)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ ringwell: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = __import__("time").gmtime
    handler.setFormatter(formatter)
    security_log.addHandler(handler)
    security_log.setLevel(logging.INFO)
    security_log.propagate = False
    return handler


@dataclass(frozen=True, slots=True)
class GuardLimits:
    per_source: int = 20
    per_user: int = 10
    window: float = 60.0
    block_seconds: float = 300.0


@dataclass(slots=True)
class _Counter:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class AuthGuard:
    """Counts authentication failures and decides who is temporarily blocked."""

    def __init__(self, limits: GuardLimits, max_tracked: int = 100_000) -> None:
        self.limits = limits
        self._sources: dict[str, _Counter] = {}
        self._users: dict[str, _Counter] = {}
        self._max_tracked = max_tracked

    def blocked(self, source: str, username: str | None, now: float) -> bool:
        counter = self._sources.get(source)
        if counter is not None and counter.blocked_until > now:
            return True
        if username is not None:
            counter = self._users.get(username)
            if counter is not None and counter.blocked_until > now:
                return True
        return False

    def failure(self, source: str, port: int, transport: str, username: str, method: str, now: float) -> None:
        """Record one failed authentication; logs it and any block it triggers."""
        security_log.warning(
            "auth-failure src=%s port=%d transport=%s user=%s method=%s",
            source, port, transport, _safe(username), _safe(method),
        )
        if self._count(self._sources, source, self.limits.per_source, now):
            security_log.warning(
                "blocked src=%s seconds=%d reason=failures-from-source", source, int(self.limits.block_seconds)
            )
        if self._count(self._users, username, self.limits.per_user, now):
            security_log.warning(
                "blocked-user user=%s last-src=%s seconds=%d reason=failures-for-user",
                _safe(username), source, int(self.limits.block_seconds),
            )

    def success(self, source: str, username: str) -> None:
        self._users.pop(username, None)

    def _count(self, table: dict[str, _Counter], key: str, limit: int, now: float) -> bool:
        if len(table) >= self._max_tracked and key not in table:
            self._prune(table, now)
        counter = table.setdefault(key, _Counter())
        failures = counter.failures
        failures.append(now)
        while failures and failures[0] < now - self.limits.window:
            failures.popleft()
        if len(failures) >= limit and counter.blocked_until <= now:
            counter.blocked_until = now + self.limits.block_seconds
            failures.clear()
            return True
        return False

    def _prune(self, table: dict[str, _Counter], now: float) -> None:
        horizon = now - self.limits.window
        stale = [
            key
            for key, c in table.items()
            if c.blocked_until <= now and (not c.failures or c.failures[-1] < horizon)
        ]
        for key in stale:
            del table[key]
        if len(table) >= self._max_tracked:
            # Still full: forget counters that are not blocking anyone; never lift a block.
            for key in [k for k, c in table.items() if c.blocked_until <= now][: self._max_tracked // 2]:
                del table[key]
