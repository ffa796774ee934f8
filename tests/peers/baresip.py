"""baresip (Debian ``baresip-core`` 1.0.0) driven through its ``ctrl_tcp`` module.

One instance = one config dir (``-f DIR``: ``config`` + ``accounts``) with its own
SIP port (baresip also binds SIP+1 for TLS), ctrl_tcp port and RTP range, all on
127.0.0.1. The account registers at start-up; ``wait_registered`` polls ``reginfo``
because events sent before the ctrl connection exist are lost.

ctrl_tcp speaks JSON in netstrings: ``b'<len>:<json>,'``; a request is
``{"command", "params", "token"}`` and its response carries ``"response": true``
and the same token. Everything else on the socket is an event (``"event": true``).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess

__all__ = [
    "Baresip",
    "BaresipAccount",
    "CtrlTcpClient",
    "SipTraceEntry",
    "Transport",
    "parse_sip_trace",
]

Transport = Literal["udp", "tcp", "tls"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MODULES = ("g711.so", "aufile.so", "alsa.so", "sndfile.so", "ctrl_tcp.so")


@dataclass(frozen=True)
class BaresipAccount:
    """One ``accounts`` line: ``<sip:USER@HOST:PORT;transport=T>;auth_pass=..;regint=N``.

    The registrar is the AOR's host:port; ``;transport=`` inside ``<>`` selects the
    transport of the REGISTER (and so of the binding).
    """

    user: str
    password: str
    registrar_port: int
    transport: Transport = "udp"
    host: str = LOOPBACK
    regint: int = 600
    extra: tuple[str, ...] = ("mwi=no", "pubint=0")

    @property
    def uri(self) -> str:
        """The account URI, with the transport parameter."""
        return f"sip:{self.user}@{self.host}:{self.registrar_port};transport={self.transport}"

    @property
    def aor(self) -> str:
        """The AOR as baresip names the UA (``reginfo``, ``uafind``, ``uadel``): no params."""
        return f"sip:{self.user}@{self.host}:{self.registrar_port}"

    def line(self) -> str:
        params = [f"auth_pass={self.password}", f"regint={self.regint}", *self.extra]
        return f"<{self.uri}>;" + ";".join(params)


class CtrlTcpClient:
    """Netstring JSON client for baresip's ctrl_tcp (connects with retries)."""

    def __init__(self, port: int, *, host: str = LOOPBACK, connect_timeout: float = 10.0) -> None:
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self._sock = socket.create_connection((host, port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._sock.close()

    def _read_one(self, timeout: float) -> dict[str, Any]:
        self._sock.settimeout(max(timeout, 0.01))
        while True:
            head, sep, rest = self._buf.partition(b":")
            if sep:
                size = int(head)
                if len(rest) >= size + 1:  # body + trailing ","
                    self._buf = rest[size + 1 :]
                    msg: dict[str, Any] = json.loads(rest[:size])
                    return msg
            chunk = self._sock.recv(65536)
            if not chunk:
                raise EOFError("baresip closed the ctrl_tcp connection")
            self._buf += chunk

    def command(self, name: str, params: str = "", *, timeout: float = 5.0) -> dict[str, Any]:
        """Run a menu command; returns the response (``ok``, ``data``)."""
        token = str(time.monotonic_ns())
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._sock.sendall(b"%d:%s," % (len(body), body))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response to ctrl_tcp command {name!r}")
            try:
                msg = self._read_one(remaining)
            except TimeoutError:
                continue
            if msg.get("response") and msg.get("token") == token:
                return msg
            self.events.append(msg)

    def wait_event(self, event_type: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Next event of ``type`` (e.g. ``CALL_ESTABLISHED``), including already queued ones."""
        for i, msg in enumerate(self.events):
            if msg.get("type") == event_type:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = self._read_one(remaining)
            except TimeoutError:
                break
            if msg.get("type") == event_type:
                return msg
            self.events.append(msg)
        raise TimeoutError(f"no {event_type} event within {timeout} s")


@dataclass(frozen=True)
class SipTraceEntry:
    """One message of baresip's ``-s`` SIP trace."""

    transport: str  # "UDP", "TCP", "TLS"
    source: str
    destination: str
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\r\n" if "\r\n" in self.text else "\n", 1)[0]

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3}) ", self.start_line)
        return int(m.group(1)) if m else None

    @property
    def method(self) -> str | None:
        return None if self.start_line.startswith("SIP/2.0") else self.start_line.split(" ", 1)[0]

    @property
    def cseq(self) -> str | None:
        m = re.search(r"^CSeq:\s*(\d+ \w+)", self.text, re.MULTILINE | re.IGNORECASE)
        return m.group(1) if m else None

    @property
    def is_unregister(self) -> bool:
        return self.method == "REGISTER" and bool(
            re.search(r";\s*expires=0\b|^Expires:\s*0\s*$", self.text, re.M | re.I)
        )


_TRACE_HEAD = re.compile(r"^(UDP|TCP|TLS|WS|WSS) (\S+) -> (\S+)$", re.MULTILINE)


def parse_sip_trace(log: str) -> list[SipTraceEntry]:
    """Split a baresip log written with ``-s`` into SIP messages.

    Each message is ``#`` / ``PROTO SRC -> DST`` / the message, in ANSI colour codes.
    """
    plain = _ANSI.sub("", log)
    heads = list(_TRACE_HEAD.finditer(plain))
    entries = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(plain)
        body = plain[head.end() + 1 : end].rstrip("\n#").strip("\n")
        entries.append(SipTraceEntry(head.group(1), head.group(2), head.group(3), body))
    return entries


@dataclass
class _Ports:
    sip: int = field(default_factory=lambda: free_port(2))  # SIP and TLS (SIP+1)
    ctrl: int = field(default_factory=free_port)
    rtp: int = field(default_factory=lambda: free_port(20))


class Baresip:
    """A baresip process with one account, driven over ctrl_tcp.

    TLS: baresip 1.0.0 has no ``sip_verify_server`` key (later versions do), and with
    Debian's libre 1.1.0 it does not verify the server certificate at all: it
    registered against a self-signed certificate without ``sip_cafile``, with an
    unrelated CA in ``sip_cafile``, and with a certificate for another name. So no
    setting is needed; ``ca_file`` (``sip_cafile``) is written only when given.
    """

    def __init__(
        self,
        workdir: Path,
        account: BaresipAccount,
        *,
        audio_source: Path | None = None,
        ca_file: Path | None = None,
        seconds: float = 120.0,
    ) -> None:
        self.dir = workdir
        self.account = account
        self.ports = _Ports()
        self.audio_source = audio_source
        self.ca_file = ca_file
        self.seconds = seconds
        self.proc: BoundedProcess | None = None
        self._ctrl: CtrlTcpClient | None = None

    @property
    def sip_port(self) -> int:
        return self.ports.sip

    @property
    def tls_port(self) -> int:
        return self.ports.sip + 1

    @property
    def log_path(self) -> Path:
        return self.dir / "baresip.log"

    def write_config(self) -> None:
        rec = self.dir / "rec"
        rec.mkdir(parents=True, exist_ok=True)
        p = self.ports
        lines = [
            ("poll_method", "epoll"),
            ("sip_listen", f"{LOOPBACK}:{p.sip}"),
            ("net_interface", LOOPBACK),  # "lo" fails: no IPv4 address by name
            ("dns_server", f"{LOOPBACK}:53"),
            ("call_local_timeout", "120"),
            ("call_max_calls", "4"),
            ("audio_player", "alsa,null"),
            ("audio_alert", "alsa,null"),
            ("audio_level", "no"),
            ("ausrc_format", "s16"),
            ("auplay_format", "s16"),
            ("rtp_ports", f"{p.rtp}-{p.rtp + 19}"),
            ("rtp_timeout", "0"),
            ("rtcp_mux", "no"),
            ("module_path", "/usr/lib/baresip/modules"),
            *(("module", m) for m in _MODULES),
            ("module_tmp", "account.so"),
            ("module_app", "menu.so"),
            ("ctrl_tcp_listen", f"{LOOPBACK}:{p.ctrl}"),
            ("snd_path", str(rec)),
        ]
        if self.audio_source is not None:
            # mono s16 at the codec rate (8 kHz for PCMU); the call ends at EOF
            lines.append(("audio_source", f"aufile,{self.audio_source}"))
        if self.ca_file is not None:
            lines.append(("sip_cafile", str(self.ca_file)))
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config").write_text("".join(f"{k}\t\t{v}\n" for k, v in lines))
        (self.dir / "accounts").write_text(self.account.line() + "\n")

    def start(self) -> None:
        self.write_config()
        # -s: SIP trace in the log; unregister() reads it, and it explains failures
        cmd = ["baresip", "-4", "-s", "-f", str(self.dir)]
        self.proc = BoundedProcess(cmd, seconds=self.seconds, log_path=self.log_path)
        try:
            self._ctrl = CtrlTcpClient(self.ports.ctrl)
        except OSError as exc:
            log = self.proc.log_text()
            self.proc.terminate()
            raise RuntimeError(f"baresip ctrl_tcp not reachable; log:\n{log}") from exc

    @property
    def ctrl(self) -> CtrlTcpClient:
        if self._ctrl is None:
            raise RuntimeError("baresip not started")
        return self._ctrl

    def command(self, name: str, params: str = "", *, timeout: float = 5.0) -> dict[str, Any]:
        return self.ctrl.command(name, params, timeout=timeout)

    def reginfo(self) -> str:
        data: str = self.command("reginfo").get("data", "")
        return data

    def wait_registered(self, timeout: float = 10.0) -> str:
        """Poll ``reginfo`` until the account shows ``OK``; returns that text."""
        deadline = time.monotonic() + timeout
        info = ""
        while time.monotonic() < deadline:
            info = _ANSI.sub("", self.reginfo())
            if re.search(r"\sOK\s", info):
                return info
            time.sleep(0.2)
        raise TimeoutError(f"baresip not registered after {timeout} s: {info!r}")

    def dial(self, uri: str) -> dict[str, Any]:
        return self.command("dial", uri)

    def wait_event(self, event_type: str, *, timeout: float = 10.0) -> dict[str, Any]:
        return self.ctrl.wait_event(event_type, timeout=timeout)

    def recordings(self) -> tuple[Path, Path]:
        """The ``sndfile`` dumps of the last call: (what it heard: ``-dec.wav``, what it sent: ``-enc.wav``)."""
        rec = self.dir / "rec"
        dec = sorted(rec.glob("dump-*-dec.wav"))
        enc = sorted(rec.glob("dump-*-enc.wav"))
        if not dec or not enc:
            raise FileNotFoundError(f"no call recordings in {rec}: {sorted(p.name for p in rec.iterdir())}")
        return dec[-1], enc[-1]

    def sip_trace(self) -> list[SipTraceEntry]:
        """The SIP messages baresip logged (it always runs with ``-s``), oldest first."""
        return parse_sip_trace(self.proc.log_text() if self.proc else "")

    def unregister(self, timeout: float = 5.0) -> SipTraceEntry:
        """Remove the binding: ``uadel <aor>``, then wait for the un-REGISTER's 200.

        baresip 1.0 has no command that re-registers with expires 0 (``uareg`` came
        later). Deleting the UA destroys its registration client, and libre sends a
        last REGISTER with ``Contact: <...>;expires=0`` (a Contact parameter, no
        ``Expires`` header), answering a digest challenge if one comes. ``quit``
        (``stop()``) does the same for every UA. Returns the un-REGISTER sent.
        """
        before = len(self.sip_trace())
        response = self.command("uadel", self.account.aor)
        if not response.get("ok"):
            raise RuntimeError(f"uadel {self.account.aor} failed: {response.get('data')!r}")
        deadline = time.monotonic() + timeout
        while True:
            trace = self.sip_trace()[before:]
            unreg = [e for e in trace if e.is_unregister]
            if unreg:
                cseq = unreg[-1].cseq
                if any(e.status == 200 and e.cseq == cseq for e in trace):
                    return unreg[-1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no 200 for an un-REGISTER within {timeout} s")
            time.sleep(0.1)

    def stop(self, grace: float = 5.0) -> int | None:
        """``quit`` over ctrl_tcp (baresip unregisters the remaining UAs), then SIGTERM."""
        if self.proc is None:
            return None
        if self._ctrl is not None:
            # quitting may close the socket before or instead of answering
            with contextlib.suppress(OSError, EOFError, TimeoutError):
                self._ctrl.command("quit", timeout=1.0)
            self._ctrl.close()
            self._ctrl = None
        # baresip waits for the un-REGISTERs before exiting; terminate() escalates
        with contextlib.suppress(TimeoutError):
            self.proc.wait(grace)
        return self.proc.terminate(grace)
