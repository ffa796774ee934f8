"""Kamailio 5.6 (Debian package) as a stand-in loopback registrar.

Uses ``bench/kamailio/register.cfg`` (digest auth, users in the ``users`` htable,
user0000..user0999 with password ``benchNNNNpw`` preloaded). Ports, control socket and
TLS files reach the config through the environment (``#!defenv``).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.peers.certs import ServerCert
from tests.peers.ports import free_port
from tests.peers.proc import BoundedProcess

__all__ = ["REGISTER_CFG", "Kamailio", "bench_password"]

REGISTER_CFG = Path(__file__).resolve().parents[2] / "bench" / "kamailio" / "register.cfg"


def bench_password(index: int) -> str:
    """Password of ``user{index:04d}`` as the config's start-up loop sets it."""
    return f"bench{index:04d}pw"


class Kamailio:
    """``kamailio -DD -E`` (foreground, forked workers) bounded by timeout."""

    def __init__(
        self,
        workdir: Path,
        *,
        cfg: Path = REGISTER_CFG,
        tls: ServerCert | None = None,
        seconds: float = 600.0,
        shm_mb: int = 1024,
    ) -> None:
        self.dir = workdir
        self.cfg = cfg
        self.tls = tls
        self.seconds = seconds
        self.shm_mb = shm_mb
        self.sip_port = free_port()
        self.tls_port = free_port() if tls is not None else None
        self.ctl_sock = f"unix:{workdir / 'kamailio_ctl'}"
        self.proc: BoundedProcess | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAM_SIP_PORT=str(self.sip_port),
            KAM_CTL_SOCK=self.ctl_sock,
            KAM_FIFO=str(self.dir / "kamailio_rpc.fifo"),
        )
        if self.tls is not None:
            env.update(
                KAM_TLS_PORT=str(self.tls_port),
                KAM_TLS_CERT=str(self.tls.cert),
                KAM_TLS_KEY=str(self.tls.key),
            )
        return env

    def start(self, ready_timeout: float = 15.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "kamailio", "-f", str(self.cfg), "-DD", "-E",
            "-m", str(self.shm_mb), "-M", "32",
            # relative paths would resolve against "/": keep them absolute
            "-P", str(self.dir / "kamailio.pid"), "-Y", str(self.dir), "-w", str(self.dir),
        ]  # fmt: skip
        if self.tls is not None:
            cmd += ["-A", "WITH_TLS"]
        self.proc = BoundedProcess(cmd, seconds=self.seconds, log_path=self.dir / "kamailio.log", env=self._env())
        deadline = time.monotonic() + ready_timeout
        while True:
            if not self.proc.running():
                raise RuntimeError(f"kamailio exited:\n{self.proc.log_text()[-3000:]}")
            try:
                self.kamcmd("core.version")
                # the htable start-up loop runs in mod_init: present once RPC answers
                if bench_password(999) in self.kamcmd("htable.get", "users", "user0999"):
                    return
            except subprocess.CalledProcessError:
                pass
            if time.monotonic() > deadline:
                log = self.proc.log_text()[-3000:]
                self.stop()
                raise RuntimeError(f"kamailio not ready after {ready_timeout} s:\n{log}")
            time.sleep(0.2)

    def kamcmd(self, *args: str) -> str:
        out = subprocess.run(
            ["timeout", "10", "kamcmd", "-s", self.ctl_sock, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=15,
        )
        return out.stdout

    def add_user(self, username: str, password: str) -> None:
        self.kamcmd("htable.sets", "users", username, password)

    def ul_dump(self) -> str:
        return self.kamcmd("ul.dump")

    def contacts(self, username: str) -> str:
        """``ul.lookup`` output for one AOR ('' when it has no binding)."""
        try:
            return self.kamcmd("ul.lookup", "location", username)
        except subprocess.CalledProcessError:
            return ""  # "404 AOR not found"

    def main_pid(self) -> int:
        if self.proc is None or (pid := self.proc.main_pid()) is None:
            raise RuntimeError("kamailio not running")
        return pid

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        rc = self.proc.terminate(grace=5.0)
        self.proc = None
        return rc
