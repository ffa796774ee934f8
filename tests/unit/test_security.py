"""Brute-force protection and the security log fail2ban reads."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from ringwell.pbx.security import AuthGuard, GuardLimits, open_security_log

ROOT = Path(__file__).resolve().parents[2]


def test_source_is_blocked_after_repeated_failures_then_released():
    guard = AuthGuard(GuardLimits(per_source=3, per_user=100, window=60, block_seconds=300))
    for i in range(2):
        guard.failure("192.0.2.1", 5060, "udp", f"user{i}", "REGISTER", 10.0 + i)
    assert not guard.blocked("192.0.2.1", None, 12.0)
    guard.failure("192.0.2.1", 5060, "udp", "user9", "REGISTER", 12.0)
    assert guard.blocked("192.0.2.1", "anyone", 13.0)
    assert not guard.blocked("192.0.2.2", "anyone", 13.0)
    assert not guard.blocked("192.0.2.1", "anyone", 313.0)


def test_user_is_blocked_whatever_the_source():
    guard = AuthGuard(GuardLimits(per_source=100, per_user=3))
    for i in range(3):
        guard.failure(f"192.0.2.{i}", 5060, "udp", "alice", "REGISTER", 1.0)
    assert guard.blocked("198.51.100.7", "alice", 2.0)
    assert not guard.blocked("198.51.100.7", "bob", 2.0)


def test_failures_outside_the_window_do_not_count():
    guard = AuthGuard(GuardLimits(per_source=3, per_user=100, window=10))
    for t in (0.0, 20.0, 40.0):
        guard.failure("192.0.2.1", 5060, "udp", "u", "REGISTER", t)
    assert not guard.blocked("192.0.2.1", None, 41.0)


def test_security_log_lines_are_matched_by_the_fail2ban_filter(tmp_path):
    log_file = tmp_path / "security.log"
    handler = open_security_log(log_file)
    try:
        guard = AuthGuard(GuardLimits(per_source=2, per_user=100))
        guard.failure("203.0.113.9", 5060, "udp", 'evil"\nuser', "REGISTER", 1.0)
        guard.failure("203.0.113.9", 5060, "udp", "alice", "REGISTER", 2.0)
    finally:
        logging.getLogger("ringwell.security").removeHandler(handler)
        handler.close()
    lines = log_file.read_text().splitlines()
    assert len(lines) == 3  # two failures and one block; the newline in the username was neutralised
    assert "user=evil??user" in lines[0]
    if shutil.which("fail2ban-regex") is None:
        pytest.fail("fail2ban-regex is missing: run 'make peers'")
    result = subprocess.run(
        ["fail2ban-regex", str(log_file), str(ROOT / "contrib" / "fail2ban" / "filter.d" / "ringwell.conf")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failregex: 2 total" in result.stdout, result.stdout
    assert "203.0.113.9" in result.stdout or "matched: 2" in result.stdout.lower()
