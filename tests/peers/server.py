"""Run ``ringwell serve`` on loopback for interop tests and benchmarks.

Contract with the server (``ringwell serve --data-dir DIR``), everything through the
environment:

    RINGWELL_DATA_DIR   the data directory (also passed as --data-dir)
    RINGWELL_SIP_PORT   SIP over UDP and TCP
    RINGWELL_TLS_PORT   SIP over TLS
    RINGWELL_HTTP_PORT  HTTP API; GET /healthz answers 200 once the server is ready
    RINGWELL_RTP_PORTS  "LOW-HIGH" media range
    RINGWELL_BIND       127.0.0.1

and with the admin CLI (``ringwell admin ... --data-dir DIR``):

    create-org --name NAME                                   prints the org id
    create-user --org NAME --email E --extension X --sip-username U --sip-password P
    registrations --json                                     JSON list of objects with
        at least username, contact, expires_at, transport, user_agent

Ports are chosen once per ``RingwellServer`` and kept across restarts, so peers that
registered before a restart can re-register with the same registrar address.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess

__all__ = ["DemoLogins", "RingwellServer", "ringwell_executable"]

REPO = Path(__file__).resolve().parents[2]


def ringwell_executable() -> Path:
    """``.venv/bin/ringwell`` of the repo, else the one next to this interpreter."""
    venv = REPO / ".venv" / "bin" / "ringwell"
    return venv if venv.exists() else Path(sys.executable).parent / "ringwell"


@dataclass(frozen=True)
class DemoLogins:
    email: str
    password: str
    sip_passwords: dict[str, str]  # extension -> SIP password


class RingwellServer:
    """``ringwell serve`` bounded by timeout(1), with its own ports and data dir.

    Use as a context manager (starts on enter, stops on exit) or call ``start()`` /
    ``stop()``. ``kill()`` + ``start()`` is a crash and restart on the same data.
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        data_dir: Path | None = None,
        rtp_port_count: int = 100,
        seconds: float = 900.0,
        ready_timeout: float = 30.0,
        extra_env: dict[str, str] | None = None,
        host: str = LOOPBACK,
        https: bool = False,
    ) -> None:
        self.tmp_path = tmp_path
        self.host = host  # the address it binds (a veth address of a test's own namespace, at most)
        self.https = https  # the HTTP port serves HTTPS (its self-signed certificate is not checked)
        self.data_dir = data_dir if data_dir is not None else tmp_path / "ringwell-data"
        self.sip_port = free_port()
        self.tls_port = free_port()
        self.http_port = free_port()
        self.rtp_low = free_port(rtp_port_count)
        self.rtp_high = self.rtp_low + rtp_port_count - 1
        self.seconds = seconds
        self.ready_timeout = ready_timeout
        self.extra_env = dict(extra_env or {})
        self.executable = ringwell_executable()
        self.proc: BoundedProcess | None = None
        self._starts = 0

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            env.pop(key, None)
        env.update(
            RINGWELL_DATA_DIR=str(self.data_dir),
            RINGWELL_SIP_PORT=str(self.sip_port),
            RINGWELL_TLS_PORT=str(self.tls_port),
            RINGWELL_HTTP_PORT=str(self.http_port),
            RINGWELL_RTP_PORTS=f"{self.rtp_low}-{self.rtp_high}",
            RINGWELL_BIND=self.host,
        )
        if self.https:
            env["RINGWELL_HTTP_TLS"] = "true"
        env.update(self.extra_env)
        return env

    @property
    def log_path(self) -> Path:
        return self.tmp_path / f"ringwell-serve-{self._starts}.log"

    def start(self) -> RingwellServer:
        if self.proc is not None and self.proc.running():
            raise RuntimeError("ringwell already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._starts += 1
        self.proc = BoundedProcess(
            [str(self.executable), "serve", "--data-dir", str(self.data_dir)],
            seconds=self.seconds,
            log_path=self.log_path,
            cwd=self.tmp_path,
            env=self.env,
        )
        self._wait_healthy()
        return self

    @property
    def base_url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host}:{self.http_port}"

    def _opener(self) -> urllib.request.OpenerDirector:
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if self.https:
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE  # the server's own self-signed certificate, on a test address
            handlers.append(urllib.request.HTTPSHandler(context=insecure))
        return urllib.request.build_opener(*handlers)

    def health(self) -> dict[str, Any]:
        """The JSON of ``/healthz``: registrations, transactions, calls, media sessions."""
        with self._opener().open(f"{self.base_url}/healthz", timeout=5.0) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        opener = self._opener()
        url = f"{self.base_url}/healthz"
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while True:
            if not self.proc.running():
                self.proc.terminate()
                raise RuntimeError(f"ringwell serve exited before {url} answered; log:\n{self.log_tail()}")
            try:
                with opener.open(url, timeout=1.0) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                self.proc.terminate()  # the log stays readable
                raise RuntimeError(f"{url} not 200 after {self.ready_timeout} s ({last}); log:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, chars: int = 5000) -> str:
        return self.proc.log_text()[-chars:] if self.proc else ""

    def main_pid(self) -> int:
        """Pid of ``ringwell serve`` itself (for /proc CPU accounting)."""
        if self.proc is None or (pid := self.proc.main_pid()) is None:
            raise RuntimeError("ringwell not running")
        return pid

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``grace`` s); returns the exit status."""
        if self.proc is None:
            return None
        rc = self.proc.terminate(grace)
        self.proc = None
        return rc

    def kill(self) -> int | None:
        """SIGKILL the server (no clean shutdown), for crash/restart tests."""
        if self.proc is None:
            return None
        rc = self.proc.kill()
        self.proc = None
        return rc

    def restart(self, *, crash: bool = False) -> RingwellServer:
        """Stop (or kill) and start again on the same data dir and ports."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def __enter__(self) -> RingwellServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- admin CLI ---------------------------------------------------------------------

    def setup_demo(self, timeout: float = 120.0) -> DemoLogins:
        """``ringwell setup-demo`` on this server's data: the owner's portal login and the SIP
        passwords of the demo extensions, as it prints them (once)."""
        out = subprocess.run([str(self.executable), "setup-demo", "--data-dir", str(self.data_dir)], env=self.env,
                             cwd=self.tmp_path, capture_output=True, text=True, timeout=timeout, check=True).stdout
        login = re.search(r"portal login (\S+)\s+password (\S+)", out)
        sip = dict(re.findall(r"extension (\d+): SIP username \S+\s+password (\S+)", out))
        if login is None or not sip:
            raise RuntimeError(f"setup-demo printed no logins (already set up?):\n{out}")
        return DemoLogins(login[1], login[2], sip)

    def admin(self, *args: str, timeout: float = 60.0) -> str:
        """``ringwell admin ARGS --data-dir DIR``; returns stdout, raises on failure."""
        cmd = [str(self.executable), "admin", *args, "--data-dir", str(self.data_dir)]
        try:
            out = subprocess.run(
                ["timeout", "-s", "KILL", f"{timeout:g}", *cmd],
                cwd=self.tmp_path,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout + 5,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{' '.join(cmd)}: no answer in {timeout} s") from exc
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed (rc {out.returncode}):\n{out.stderr}{out.stdout}")
        return out.stdout

    def create_org(self, name: str) -> str:
        return self.admin("create-org", "--name", name).strip()

    def create_user(self, org: str, email: str, extension: str, sip_username: str, sip_password: str) -> str:
        return self.admin(
            "create-user", "--org", org, "--email", email, "--extension", extension,
            "--sip-username", sip_username, "--sip-password", sip_password,
        )  # fmt: skip

    def add_users(self, org: str, users: dict[str, str], password: Callable[[str], str]) -> None:
        """Create ``org`` with one user per ``{sip_username: extension}`` (``bulk-users``)."""
        self.admin("create-org", "--name", org)
        path = self.tmp_path / f"users-{org}.csv"
        path.write_text("email,extension,sip_username,sip_password\n" + "".join(
            f"{user}@example.com,{extension},{user},{password(user)}\n" for user, extension in users.items()))
        self.admin("bulk-users", "--org", org, "--csv", str(path))

    def registrations(self) -> list[dict[str, Any]]:
        data = json.loads(self.admin("registrations", "--json"))
        if not isinstance(data, list):
            raise RuntimeError(f"registrations --json did not print a list: {data!r}")
        return data

    def wait_registration(self, username: str, *, present: bool = True, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll ``registrations`` until ``username`` has (or has no) binding."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [r for r in self.registrations() if r.get("username") == username]
            if bool(mine) == present:
                return mine
            if time.monotonic() > deadline:
                state = "no binding" if present else f"still bound: {mine}"
                raise TimeoutError(f"{username}: {state} after {timeout} s")
            time.sleep(0.2)
