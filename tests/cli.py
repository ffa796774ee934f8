"""Running the ``ringwell`` command as an operator does: a child process, its output and exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["RINGWELL", "run"]

RINGWELL = [sys.executable, "-m", "ringwell"]


def run(data_dir: Path, *args: str, ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``ringwell ARGS --data-dir DATA_DIR``; with ``ok`` (the default) it must exit 0."""
    result = subprocess.run([*RINGWELL, *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                            timeout=timeout)
    if ok:
        assert result.returncode == 0, result.stderr
    return result
