"""Peer processes bounded by timeout(1) and stopped by their own process id.

Every peer runs as ``timeout -s TERM SECONDS cmd ...``. GNU timeout makes itself the
leader of a new process group and forwards SIGTERM/SIGINT to its child, so:

* ``terminate()`` sends SIGTERM to timeout (forwarded to the peer), waits, and only
  then SIGKILLs the process group that timeout leads (the peer and its workers);
* ``kill()`` SIGKILLs that process group at once (crash / restart tests).

Nothing here signals a process it did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import weakref
from pathlib import Path
from typing import IO, Any

__all__ = ["BoundedProcess", "descendants", "tree_cpu_seconds"]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren, ...), not ``pid`` itself."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its live descendants, plus what their reaped children used.

    /proc/PID/stat fields 14-17: utime, stime, cutime, cstime (clock ticks).
    """
    ticks = 0
    for p in [pid, *descendants(pid)]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def _kill_group_if_running(popen: subprocess.Popen[bytes]) -> None:
    if popen.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(5)


class BoundedProcess:
    """``cmd`` under ``timeout -s TERM seconds``, output to ``log_path``."""

    def __init__(
        self,
        cmd: list[str],
        *,
        seconds: float,
        log_path: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen: subprocess.Popen[bytes] = subprocess.Popen(
            ["timeout", "-s", "TERM", f"{seconds:g}", *cmd],
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # the group exists from the start (timeout's own setpgid comes later)
            process_group=0,
        )
        # a driver that is never stopped (a crashed test, a script that forgot) must
        # not leave its peer running: kill the group when this object or Python ends
        weakref.finalize(self, _kill_group_if_running, self.popen)

    @property
    def pid(self) -> int:
        """Pid of timeout(1), also the process group id of the peer."""
        return self.popen.pid

    def main_pid(self) -> int | None:
        """Pid of the peer itself (timeout's child), None once it has gone."""
        kids = _children(self.popen.pid)
        return kids[0] if kids else None

    def running(self) -> bool:
        return not self._exited()

    def wait(self, timeout: float) -> None:
        """Wait until the peer (timeout(1)) has exited; raise TimeoutError otherwise.

        The process is not reaped here, so its pid keeps naming its process group
        until ``terminate()``/``kill()`` clean up.
        """
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.cmd[0]} still running after {timeout} s")
            time.sleep(0.05)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def terminate(self, grace: float = 5.0) -> int:
        """SIGTERM (forwarded by timeout), then SIGKILL the group after ``grace`` s."""
        if not self._exited():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                self.wait(grace)
        return self._finish()

    def kill(self) -> int:
        """SIGKILL the peer's process group (timeout, the peer and its workers)."""
        return self._finish()

    def _exited(self) -> bool:
        if self.popen.returncode is not None:
            return True
        # WNOWAIT: look without reaping, so the pid (= process group id) stays ours
        info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None

    def _finish(self) -> int:
        if self.popen.returncode is None:
            # the group leader is alive or a zombie: its pid cannot be reused yet,
            # so this reaches only the peer and whatever it forked
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        rc = self.popen.wait(10)
        self._log.close()
        return rc
