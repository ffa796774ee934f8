"""SIPp (Debian ``sip-tester`` 3.6.1) scenarios and a foreground runner.

* ``reg.xml``: REGISTER; answers a 401 or 407 digest challenge, takes a direct 200.
  The Expires value is the generic parameter ``expires`` (``-key expires N``), so
  ``expires=0`` removes the binding. Credentials come from an injection CSV:
  ``SEQUENTIAL`` then ``user;[authentication username=user password=pw]`` per user.
* ``options.xml``: OPTIONS to the server, expects 200.

SIPp is always run in the foreground with ``-nostdin`` inside its own working
directory (3.6 writes its logs to the cwd), bound by ``timeout`` and by its own
``-timeout``, with its own SIP (-p), media (-mp) and control (-cp) ports.
The Debian build has no TLS: transports are UDP (``-t u1``) and TCP (``-t t1``).
Exit codes: 0 all calls ok, 1 some failed, 97/99 nothing run, 255 fatal or timeout.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.peers.ports import LOOPBACK, free_port

__all__ = [
    "SippResult",
    "Transport",
    "run_sipp",
    "sipp_command",
    "write_options_scenario",
    "write_register_scenario",
    "write_users_csv",
]

Transport = Literal["udp", "tcp"]
_TRANSPORT_MODE: dict[str, str] = {"udp": "u1", "tcp": "t1"}

# SIPp reads "[authentication username=... password=...]" up to blanks and "]",
# and splits CSV lines on ";".
_FORBIDDEN_IN_CREDENTIALS = set(" \t\r\n;[]")

_REGISTER_MESSAGE = """\
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
{auth}      Max-Forwards: 70
      Expires: [expires]
      User-Agent: SIPp
      Content-Length: 0
"""

_AUTH_LINE = "      [field1]\n"

REGISTER_XML = f"""\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- REGISTER with digest auth. field0 = user, field1 = [authentication ...] from -inf.
     Expires from the generic parameter: -key expires N (0 = unregister). -->
<scenario name="register">
  <send retrans="500">
    <![CDATA[

{_REGISTER_MESSAGE.format(cseq=1, auth="")}
    ]]>
  </send>

  <recv response="200" optional="true" rtd="true" next="done"/>
  <recv response="401" auth="true" optional="true" next="auth"/>
  <recv response="407" auth="true"/>

  <label id="auth"/>
  <send retrans="500">
    <![CDATA[

{_REGISTER_MESSAGE.format(cseq=2, auth=_AUTH_LINE)}
    ]]>
  </send>
  <recv response="200" rtd="true"/>

  <label id="done"/>
  <ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100, 200"/>
</scenario>
"""

OPTIONS_XML = """\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- OPTIONS to the server itself; any answer but 200 fails the call. -->
<scenario name="options">
  <send retrans="500">
    <![CDATA[

      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:ping@[local_ip]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="true"/>
</scenario>
"""


def write_register_scenario(directory: Path) -> Path:
    path = directory / "reg.xml"
    path.write_text(REGISTER_XML, encoding="ascii")
    return path


def write_options_scenario(directory: Path) -> Path:
    path = directory / "options.xml"
    path.write_text(OPTIONS_XML, encoding="ascii")
    return path


def write_users_csv(path: Path, users: Iterable[tuple[str, str]]) -> Path:
    """Injection file: one ``user;[authentication username=.. password=..]`` line per user."""
    lines = ["SEQUENTIAL"]
    for username, password in users:
        for value in (username, password):
            if not value or _FORBIDDEN_IN_CREDENTIALS & set(value):
                raise ValueError(f"SIPp cannot inject credential {value!r}")
        lines.append(f"{username};[authentication username={username} password={password}]")
    if len(lines) == 1:
        raise ValueError("no users")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class SippResult:
    """Outcome of one SIPp run (files live in ``workdir``)."""

    returncode: int
    errors: str
    messages: str
    stderr: str
    workdir: Path
    command: list[str] = field(repr=False)
    stat_csv: Path | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def stats(self) -> list[dict[str, str]]:
        """Rows of the -trace_stat CSV (``;``-separated), empty without -trace_stat."""
        if self.stat_csv is None or not self.stat_csv.exists():
            return []
        with self.stat_csv.open(newline="", encoding="latin-1") as f:
            return [row for row in csv.DictReader(f, delimiter=";") if row]


def sipp_command(
    port: int,
    scenario: Path,
    *,
    host: str = LOOPBACK,
    users_csv: Path | None = None,
    calls: int = 1,
    transport: Transport = "udp",
    expires: int = 3600,
    keys: Mapping[str, str] | None = None,
    sipp_timeout: float = 10.0,
    trace_msg: bool = True,
    trace_stat: bool = False,
    local_port: int | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The SIPp argument list (relative file names: run it in its own cwd)."""
    if local_port is None:
        local_port = free_port()
    cmd = [
        "sipp", f"{host}:{port}",
        "-sf", str(scenario),
        "-t", _TRANSPORT_MODE[transport],
        "-i", LOOPBACK, "-p", str(local_port),
        "-mi", LOOPBACK, "-mp", str(free_port(4)),
        "-cp", str(free_port()),
        "-m", str(calls),
        "-nostdin",
        "-timeout", f"{sipp_timeout:g}s", "-timeout_error",
        "-trace_err", "-error_file", "errors.log",
    ]  # fmt: skip
    if users_csv is not None:
        cmd += ["-inf", str(users_csv)]
    all_keys = dict(keys or {})
    all_keys.setdefault("expires", str(expires))
    for key, value in all_keys.items():
        cmd += ["-key", key, value]
    if trace_msg:
        cmd += ["-trace_msg", "-message_file", "messages.log"]
    if trace_stat:
        cmd += ["-trace_stat", "-stf", "stat.csv", "-fd", "1"]
    cmd += list(extra_args)
    return cmd


def run_sipp(
    port: int,
    scenario: Path,
    workdir: Path,
    *,
    host: str = LOOPBACK,
    users_csv: Path | None = None,
    calls: int = 1,
    transport: Transport = "udp",
    expires: int = 3600,
    keys: Mapping[str, str] | None = None,
    sipp_timeout: float = 10.0,
    trace_msg: bool = True,
    trace_stat: bool = False,
    local_port: int | None = None,
    extra_args: Sequence[str] = (),
) -> SippResult:
    """Run SIPp to completion in ``workdir`` (created if needed) and collect its logs.

    For reg.xml pass ``users_csv`` (see ``write_users_csv``); ``expires`` is the
    Expires of every REGISTER (0 unregisters); ``calls`` REGISTERs are sent, cycling
    through the users.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("errors.log", "messages.log", "stat.csv"):
        (workdir / name).unlink(missing_ok=True)
    cmd = sipp_command(
        port, scenario, host=host, users_csv=users_csv, calls=calls, transport=transport,
        expires=expires, keys=keys, sipp_timeout=sipp_timeout, trace_msg=trace_msg,
        trace_stat=trace_stat, local_port=local_port, extra_args=extra_args,
    )  # fmt: skip
    bound = sipp_timeout + 10
    try:
        proc = subprocess.run(
            ["timeout", "-s", "KILL", f"{bound:g}", *cmd],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=bound + 5,
            check=False,
        )
        returncode, stderr = proc.returncode, proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        returncode = 255
        stderr = (exc.stderr or b"").decode(errors="replace") + "\n[killed: python timeout]"

    def read(name: str) -> str:
        path = workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    return SippResult(
        returncode=returncode,
        errors=read("errors.log"),
        messages=read("messages.log"),
        stderr=stderr,
        workdir=workdir,
        command=cmd,
        stat_csv=workdir / "stat.csv" if trace_stat else None,
    )
