"""linphonec (Debian ``linphone-cli`` 5.1.65) driven over stdin.

Each instance gets its own ``HOME`` (with ``.local/share/linphone``: without it the
SQLite DB cannot be opened and the core never starts, silently) and its own rc
file, regenerated on every start because linphonec rewrites it on exit.

Commands go to stdin (``linphonecsh``/``--pipe`` use one fixed unix socket per uid);
answers are read back from stdout, which goes to a log file.

Transports: the proxy is ``sip:HOST:PORT;transport=udp|tcp|tls``, and only the
matching local transport is enabled in ``[sip]`` (``sip_port`` / ``sip_tcp_port`` /
``sip_tls_port``). For TLS with a self-signed server certificate,
``[sip] verify_server_certs=0`` and ``verify_server_cn=0`` turn verification off.
Or pass ``root_ca`` (the server's certificate) to verify the chain against it; the
name check stays off then, because belle-sip reports "CN-mismatch" for 127.0.0.1
even when the certificate's CN and IP SAN are 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from pathlib import Path
from typing import IO, Literal

from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess

__all__ = ["Linphone", "RegistrationStatus", "Transport"]

Transport = Literal["udp", "tcp", "tls"]

_STATUS = re.compile(r"^(?:linphonec> )?(registered, identity=\S+ duration=\d+|registered=-?\d+)\s*$", re.M)

_CODECS = (
    ("PCMU", 8000, 1, 1),
    ("PCMA", 8000, 1, 1),
    ("opus", 48000, 2, 0),  # listed first by default: disabled so calls use G.711
    ("speex", 16000, 1, 0),
    ("speex", 8000, 1, 0),
    ("G729", 8000, 1, 0),
)


class RegistrationStatus(str):
    """A ``status register`` line: ``registered, identity=... duration=N`` or ``registered=N``."""

    @property
    def registered(self) -> bool:
        return self.startswith("registered, identity=")


class Linphone:
    """One linphonec process; ``register()`` adds a proxy config from the command line."""

    def __init__(
        self,
        workdir: Path,
        name: str = "linphone",
        *,
        transport: Transport = "udp",
        root_ca: Path | None = None,
        seconds: float = 120.0,
        debug_log: bool = True,
    ) -> None:
        self.dir = workdir
        self.name = name
        self.transport = transport
        self.root_ca = root_ca
        self.seconds = seconds
        self.debug_log = debug_log
        self.sip_port = free_port()
        self.rtp_port = free_port(20)
        self.home = workdir / "home"
        self.rc_path = workdir / f"{name}.rc"
        self.proc: BoundedProcess | None = None
        self._stdin: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def debug_log_path(self) -> Path:
        """liblinphone's own log (``-l``, level 6): holds the SIP messages it sent."""
        return self.dir / f"{self.name}.debug.log"

    def write_rc(self) -> None:
        ports = {"udp": -1, "tcp": -1, "tls": -1}
        ports[self.transport] = self.sip_port
        sip = [
            f"sip_port={ports['udp']}",
            f"sip_tcp_port={ports['tcp']}",
            f"sip_tls_port={ports['tls']}",
            f"bind_address={LOOPBACK}",
            "use_ipv6=0",
            "ipv6_migration_done=1",
            "guess_hostname=0",
            f'contact="{self.name}" <sip:{self.name}@{LOOPBACK}>',
            # no "gruu": a pub-gruu Contact has no port, in-dialog requests then miss
            "supported=replaces, outbound",
            "ping_with_options=0",
            "use_rfc2833=1",
            "use_info=0",
        ]
        if self.root_ca is not None:
            # the chain is checked against root_ca, the name is not: belle-sip (mbedtls)
            # flags "CN-mismatch" for 127.0.0.1 even with CN and IP SAN = 127.0.0.1
            sip += [f"root_ca={self.root_ca}", "verify_server_certs=1", "verify_server_cn=0"]
        else:
            sip += ["verify_server_certs=0", "verify_server_cn=0"]
        sections = {
            "sip": sip,
            "rtp": [f"audio_rtp_port={self.rtp_port}-{self.rtp_port + 19}", f"bind_address={LOOPBACK}"],
            "net": ["firewall_policy=0"],
            "sound": ["echocancellation=0"],
            "video": ["enabled=0", "capture=0", "display=0"],
            "lime": ["enabled=0"],
        }
        for i, (mime, rate, channels, enabled) in enumerate(_CODECS):
            sections[f"audio_codec_{i}"] = [
                f"mime={mime}", f"rate={rate}", f"channels={channels}", f"enabled={enabled}",
            ]  # fmt: skip
        text = "".join(f"[{k}]\n" + "".join(f"{line}\n" for line in v) for k, v in sections.items())
        self.rc_path.write_text(text)

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.write_rc()
        cmd = ["linphonec", "-c", str(self.rc_path)]
        if self.debug_log:
            cmd += ["-d", "6", "-l", str(self.debug_log_path)]
        else:
            cmd += ["-d", "0"]
        # libpulse (sound card probing) makes /tmp/pulse-* unless it has a runtime dir
        runtime = self.dir / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = {
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(runtime),
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        # stdbuf: linphonec's stdout is a file, keep it line-buffered for the readers
        self.proc = BoundedProcess(
            ["stdbuf", "-oL", *cmd],
            seconds=self.seconds,
            log_path=self.log_path,
            cwd=self.dir,
            env=env,
            stdin=subprocess.PIPE,
        )
        self._stdin = self.proc.popen.stdin
        self.wait_output(r"^linphonec> ", timeout=10.0)

    def send(self, line: str) -> int:
        """Write one command line; returns the log offset before it (for ``wait_output``)."""
        if self._stdin is None or self.proc is None:
            raise RuntimeError("linphonec not started")
        offset = len(self.proc.log_text())
        self._stdin.write(line.encode() + b"\n")
        self._stdin.flush()
        return offset

    def output(self) -> str:
        return self.proc.log_text() if self.proc else ""

    def wait_output(self, pattern: str, *, since: int = 0, timeout: float = 10.0) -> re.Match[str]:
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            if m := regex.search(self.output(), since):
                return m
            if self.proc is not None and not self.proc.running():
                raise RuntimeError(f"linphonec exited:\n{self.output()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern!r} from linphonec within {timeout} s")
            time.sleep(0.1)

    def register(self, user: str, password: str, host: str, port: int) -> None:
        """``register sip:USER@HOST sip:HOST:PORT;transport=T PASSWORD``."""
        proxy = f"sip:{host}:{port};transport={self.transport}"
        self.send(f"register sip:{user}@{host} {proxy} {password}")

    def status(self) -> RegistrationStatus:
        since = self.send("status register")
        return RegistrationStatus(self.wait_output(_STATUS.pattern, since=since).group(1))

    def wait_registered(self, timeout: float = 10.0) -> RegistrationStatus:
        """Poll ``status register`` until it reports ``registered, identity=...``."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.registered:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"linphonec not registered after {timeout} s: {status}")
            time.sleep(0.3)

    def prepare_media(self, play: Path, record: Path, *, autoanswer: bool = False) -> None:
        """Use files as the sound card: ``play`` is looped as the microphone, what is heard goes to ``record``."""
        self.send("soundcard use files")
        self.send(f"play {play}")
        self.send(f"record {record}")
        if autoanswer:
            self.send("autoanswer enable")

    def unregister(self, timeout: float = 10.0) -> RegistrationStatus:
        """``unregister``: the default proxy sends REGISTER with ``Expires: 0``.

        Waits until ``status register`` no longer says ``registered, ...``.
        """
        self.send("unregister")
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if not status.registered:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"linphonec still registered after {timeout} s: {status}")
            time.sleep(0.3)

    def stop(self, grace: float = 5.0) -> int | None:
        if self.proc is None:
            return None
        if self._stdin is not None and self.proc.running():
            try:
                self.send("quit")
                self._stdin.close()
            except (BrokenPipeError, OSError):
                pass
            self._stdin = None
        with contextlib.suppress(TimeoutError):
            self.proc.wait(grace)
        return self.proc.terminate(grace)
