"""WebRTC benchmark: N concurrent browser calls (aiortc) through Ringwell to plain RTP peers, and
the same calls through rtpengine as the reference.

    .venv/bin/python -m bench.webrtc [--only ringwell|rtpengine] [--modes passthrough,opus]
                                     [--passthrough-sizes 10,20,...] [--opus-sizes 5,10,...]
                                     [--max-calls N] [--clients 2] [--warmup-seconds S]
                                     [--measure-seconds S] [--budget-seconds S] [--no-record] [--keep]

What runs, all on loopback:

* ``ringwell serve`` (``tests.peers.server``): scratch data dir (SQLite), org ``bench`` with a
  caller ``webbench`` (extension 1000) and the callee ``benchuas`` (2000);
  ``RINGWELL_WEBRTC_ICE_ADDRESSES=127.0.0.1`` and an RTP range below the kernel's ephemeral range
  (aiortc's ICE sockets take ephemeral ports);
* the plain peer: SIPp ``bench/sipp/uas_call.xml`` registered as ``benchuas`` over UDP, answering
  every call with PCMU and echoing every RTP packet to its sender (``-rtp_echo``);
* the browsers: ``bench.webrtc_load`` processes (``--clients``, 2 by default), each one SIP-over-
  WebSocket connection to ``/ws`` carrying its share of the calls, each call an aiortc peer
  connection (ICE, DTLS-SRTP) sending one RTP packet every 20 ms from pre-encoded payloads and
  counting the echoes (see that module);
* the reference: ``rtpengine`` (userspace ``--table=-1``, ``--num-threads=1``, as in bench-media)
  doing the same DTLS-SRTP ⇄ RTP bridging (and Opus ⇄ PCMU transcoding), set up by the same
  clients over NG (offer/answer/delete per call, no SIP), towards the same kind of SIPp echo.

Every call is browser ⇄ (DTLS-SRTP) ⇄ Ringwell's WebRTC leg ⇄ relay ⇄ SIPp echo, and back the same
way: per call Ringwell handles 50 packets/s from the browser and 50 to it, each twice through
the relay. Two modes: **passthrough** (the browser offers Opus, PCMU and PCMA, as Chromium does:
PCMU is relayed untouched) and **opus** (the browser offers Opus only: each packet is decoded to
G.711 and the echo encoded back to Opus).

Per server and mode, a ladder of sizes N. Per step: N calls set up (not measured), warm-up, then a
measured window: the clients count packets sent and echoes received per call (client view: loss =
not echoed, or, with pass-through, echoed more than 100 ms after sending) and the server's CPU
time is read (/proc utime+stime of ``ringwell serve`` or ``rtpengine``, all threads); then every
call is hung up, and for Ringwell the call records give the server's view (``ringwell admin calls
--json``: sequence gaps seen by the relay, both sides, and by the WebRTC leg from the browser,
over the whole call). A step is clean with < 1 % loss, every call set up and none dropped, and
the clients on their 20 ms schedule (p99 lag ≤ 20 ms). A step that is not clean is run once more
(the machine is shared); the ladder stops after a second failure, when the server is at 95 % of a
core, or when a client process or the SIPp echo is at 90 % of one (then the load, not the server,
is the limit: the figure is a lower bound, "≥").

Per core = N / (the server's CPU seconds / wall seconds) at the largest clean step: the calls one
core would carry at that step's cost per call. Both servers do this work on one thread (Ringwell's
event loop; rtpengine's one media thread), so a step near a whole core measures the real limit,
a lighter one extrapolates linearly.

Last lines:

    webrtc ratio_rtpengine passthrough=<Ringwell per core / rtpengine's> opus=<...>
    webrtc passthrough_per_core=<n> opus_per_core=<m>

and the run is appended to bench/RESULTS.md. Clients, SIPp and the server share the machine's
cores (on 2 cores the clients' SRTP work is about half of Ringwell's per call): compare the
servers only within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from bench.calls import CALLEE, CALLEE_EXTENSION, CALLEE_PASSWORD, UAS_XML, Uas
from bench.media import Rtpengine
from bench.ports import free_block
from bench.register import SIPP_LOAD_ARGS, _first_line, git_commit, machine
from bench.results import append_run
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess, tree_cpu_seconds
from tests.peers.scratch import scratch_dir
from tests.peers.server import RingwellServer

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"

PEERS = ("ringwell", "rtpengine")
MODES = ("passthrough", "opus")
SIZES = {
    "passthrough": (10, 20, 40, 60, 80, 100, 130, 160, 200, 250, 300, 400),
    "opus": (5, 10, 20, 30, 40, 50, 60, 80, 100),
}
CALLER, CALLER_PASSWORD, CALLER_EXTENSION = "webbench", "webbench-secret-1", "1000"
WARMUP_SECONDS = 3.0
MEASURE_SECONDS = 8.0
FLUSH_SECONDS = 0.5  # after the window: the last echoes come back
MAX_LOSS = 0.01
SATURATED = 0.95  # Ringwell's share of one core from which it runs flat out
CLIENT_SATURATED = 0.90  # a client's share of one core from which its figures are its own limit
MAX_LAG_P99_MS = 20.0  # a client more than one packet interval behind its schedule
SETUP_PARALLEL = 6  # call set-ups in flight per client
PORTS_PER_CALL = 6  # relay: an RTP/RTCP pair per side; the WebRTC leg's plain pair
TOTAL_BUDGET_SECONDS = 900.0


# --- processes --------------------------------------------------------------------------


class LoadClient:
    """One ``bench.webrtc_load`` process, driven by JSON lines over its stdin and stdout."""

    def __init__(self, log_path: Path, target_args: list[str], codec: str, seconds: float) -> None:
        self.name = log_path.stem
        self._log = log_path.open("wb")
        cmd = [sys.executable, "-m", "bench.webrtc_load", *target_args, "--codec", codec, "--address", LOOPBACK]
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        self.proc = subprocess.Popen(
            ["timeout", "-s", "KILL", f"{seconds:g}", *cmd],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=REPO, env=env, process_group=0,
        )  # fmt: skip
        self._buf = b""
        try:
            ready = self.read(30)
            if not ready.get("ready"):
                raise RuntimeError(f"{self.name}: not ready: {ready}")
        except (RuntimeError, TimeoutError, ValueError):
            self.stop()
            raise

    def send(self, **request: Any) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(request).encode() + b"\n")
        stdin.flush()

    def read(self, timeout: float) -> dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        fd = stdout.fileno()
        os.set_blocking(fd, False)
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no answer in {timeout:g} s; log: {self.log_tail()}")
            readable, _, _ = select.select([fd], [], [], min(left, 1.0))
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited (rc {self.proc.poll()}): {self.log_tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def request(self, timeout: float, **request: Any) -> dict[str, Any]:
        self.send(**request)
        return self.read(timeout)

    def log_tail(self) -> str:
        self._log.flush()
        with contextlib.suppress(OSError):
            return Path(self._log.name).read_text(errors="replace")[-800:]
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, RuntimeError, TimeoutError):
                self.request(20, op="quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.proc.poll() is None:
            # the group timeout(1) leads: the client and nothing else
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._log.close()


def all_request(clients: Sequence[LoadClient], timeout: float,
                requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One request to each client at once, then each one's answer."""
    for client, request in zip(clients, requests, strict=True):
        client.send(**request)
    return [client.read(timeout) for client in clients]


class EchoUas(Uas):
    """The SIPp UAS of bench-calls, echoing every RTP packet back to its sender."""

    def start(self) -> None:
        self.media_port = free_port(4)
        cmd = [
            "sipp", "-sf", str(UAS_XML),
            "-i", LOOPBACK, "-p", str(self.port),
            "-mi", LOOPBACK, "-mp", str(self.media_port), "-rtp_echo", "-cp", str(free_port()),
            "-nostdin", "-timeout", f"{self.seconds:g}s",
            "-trace_err", "-error_file", "errors.log", *SIPP_LOAD_ARGS,
        ]  # fmt: skip
        self.proc = BoundedProcess(cmd, seconds=self.seconds + 10, log_path=self.workdir / "uas.log", cwd=self.workdir)
        time.sleep(0.5)
        if not self.proc.running():
            raise RuntimeError(f"the SIPp UAS exited: {self.proc.log_text()[-500:]}")

    def pid(self) -> int:
        if self.proc is None or (pid := self.proc.main_pid()) is None:
            raise RuntimeError("the SIPp UAS is not running")
        return pid


# --- measurements -----------------------------------------------------------------------


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True)
class WebRtcStep:
    peer: str
    mode: str
    calls: int
    client: dict[str, Any]  # the clients' window figures, summed
    server_cpu: float
    wall: float
    client_shares: tuple[float, ...]
    uas_share: float
    machine_busy: float  # all CPUs, share of the machine
    server: dict[str, Any] | None  # Ringwell's call records; None for rtpengine
    setup: str
    setup_failed: int
    retry: bool = False

    @property
    def loss(self) -> float:
        sent = int(self.client["sent"])
        return (int(self.client["lost"]) + int(self.client["late"])) / sent if sent else 1.0

    @property
    def cpu_share(self) -> float:
        return self.server_cpu / self.wall if self.wall else 0.0

    @property
    def cores_used(self) -> float:
        """Ours: the server, the clients and the SIPp echo, in cores."""
        return self.cpu_share + sum(self.client_shares) + self.uas_share

    @property
    def per_core(self) -> int:
        return int(self.calls / self.cpu_share) if self.cpu_share > 0 else 0

    @property
    def clients_saturated(self) -> bool:
        lag = float(self.client["lag_ms"]["p99"])
        return any(s >= CLIENT_SATURATED for s in self.client_shares) or lag > MAX_LAG_P99_MS

    @property
    def echo_saturated(self) -> bool:
        return self.uas_share >= CLIENT_SATURATED

    @property
    def machine_full(self) -> bool:
        """Ours alone kept the machine's cores busy: loss may be the machine's, not the server's."""
        return self.cores_used >= 0.9 * (os.cpu_count() or 1)

    @property
    def generator_saturated(self) -> bool:
        """The load (clients or the echo), not the server, was at its limit: a larger N says nothing."""
        return self.clients_saturated or self.echo_saturated

    @property
    def clean(self) -> bool:
        return (
            self.loss < MAX_LOSS and self.setup_failed == 0 and int(self.client["ended"]) == 0
            and int(self.client["calls"]) == self.calls and float(self.client["lag_ms"]["p99"]) <= MAX_LAG_P99_MS
        )

    def server_text(self) -> str:
        s = self.server
        if s is None:
            return "server view: -"
        return (f"server view: relay loss {100 * s['relay_loss']:.3f} %, leg loss {100 * s['leg_loss']:.3f} % "
                f"({s['records']} records)")

    def line(self) -> str:
        c = self.client
        flags = ""
        if self.cpu_share >= SATURATED:
            flags += f" {self.peer.upper()} SATURATED"
        if self.clients_saturated:
            flags += " CLIENT SATURATED"
        if self.echo_saturated:
            flags += " ECHO SATURATED"
        if self.machine_full:
            flags += " MACHINE FULL"
        if self.setup_failed:
            flags += f" {self.setup_failed} SET-UPS FAILED"
        if int(c["ended"]):
            flags += f" {c['ended']} CALLS DROPPED ({', '.join(c['ended_why'])})"
        if int(c["calls"]) != self.calls:
            flags += f" ONLY {c['calls']} CALLS MEASURED"
        shares = "+".join(f"{100 * x:.0f}" for x in self.client_shares)
        return (
            f"{self.calls:>4} calls: loss {100 * self.loss:.3f} % ({c['lost']} lost + {c['late']} late of "
            f"{c['sent']}, {c['lossy_calls']} calls) rtt p50/p99 {c['rtt_ms']['p50']}/{c['rtt_ms']['p99']} ms; "
            f"{self.peer} {100 * self.cpu_share:.0f} % of a core = {self.per_core} calls/core; "
            f"{self.server_text()}; clients {shares} % cpu, lag p99 {c['lag_ms']['p99']} ms; "
            f"sipp {100 * self.uas_share:.0f} %; machine {100 * self.machine_busy:.0f} % busy; set-up {self.setup}"
            + flags + (" (retry)" if self.retry else "")
        )


class Target(Protocol):
    """What the browsers call through: Ringwell, or rtpengine as the reference."""

    name: str
    version: str

    def client_args(self) -> list[str]: ...
    def pid(self) -> int: ...
    def after_hangup(self, call_ids: set[str]) -> dict[str, Any] | None:
        """Wait until every call is gone; the server's view of them, when it has one."""
        ...


class RingwellTarget:
    """``ringwell serve``; the SIPp echo registered as the callee; the call records as the server's view."""

    name = "ringwell"

    def __init__(self, server: RingwellServer) -> None:
        self.server = server
        self.version = _first_line([str(REPO / ".venv/bin/ringwell"), "--version"])

    def client_args(self) -> list[str]:
        return ["--ws", f"ws://{LOOPBACK}:{self.server.http_port}/ws", "--user", CALLER,
                "--password", CALLER_PASSWORD, "--to", CALLEE_EXTENSION]

    def pid(self) -> int:
        return self.server.main_pid()

    def after_hangup(self, call_ids: set[str]) -> dict[str, Any] | None:
        deadline = time.monotonic() + 20
        while (health := self.server.health()).get("calls") or health.get("media_sessions"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"calls still up 20 s after hanging up: {health}")
            time.sleep(0.3)
        return server_view(self.server, call_ids)


class RtpengineTarget:
    """rtpengine (userspace, one thread) set up over NG by the clients; the SIPp echo as the far end."""

    name = "rtpengine"

    def __init__(self, rtpengine: Rtpengine, echo_port: int) -> None:
        self.rtpengine = rtpengine
        self.echo_port = echo_port
        self.version = rtpengine.version

    def client_args(self) -> list[str]:
        return ["--ng", str(self.rtpengine.ng_port), "--echo", str(self.echo_port)]

    def pid(self) -> int:
        return self.rtpengine.pid()

    def after_hangup(self, call_ids: set[str]) -> dict[str, Any] | None:
        return None  # NG "delete" answered before the clients returned: the calls are gone


def server_view(server: RingwellServer, call_ids: set[str]) -> dict[str, Any]:
    """The relay's and the WebRTC legs' counters from the call records of ``call_ids``."""
    view: dict[str, Any] = {"records": 0, "relay_loss": 0.0, "leg_loss": 0.0, "to_browser": 0, "from_browser": 0}
    records: list[dict[str, Any]] = []
    for _ in range(5):
        text = server.admin("calls", "--json", "--limit", str(min(10_000, len(call_ids) + 50)), timeout=60)
        records = [r for r in json.loads(text) if r.get("sip_call_id") in call_ids and r.get("ended_at")]
        if len(records) >= len(call_ids):
            break
        time.sleep(1.0)
    relay_lost = relay_received = leg_lost = leg_received = 0
    for record in records:
        media = record.get("media") or {}
        for side in ("a", "b"):
            part = media.get(side) or {}
            relay_lost += int(part.get("lost") or 0)
            relay_received += int(part.get("packets_received") or 0)
        leg = (media.get("a") or {}).get("webrtc") or {}
        leg_lost += int(leg.get("lost") or 0)
        leg_received += int(leg.get("from_browser") or 0)
        view["to_browser"] += int(leg.get("to_browser") or 0)
        view["from_browser"] += int(leg.get("from_browser") or 0)
    view["records"] = len(records)
    view["relay_loss"] = relay_lost / (relay_received + relay_lost) if relay_received + relay_lost else 0.0
    view["leg_loss"] = leg_lost / (leg_received + leg_lost) if leg_received + leg_lost else 0.0
    return view


def share(n: int, parts: int) -> list[int]:
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_step(target: Target, uas: EchoUas, clients: Sequence[LoadClient], mode: str, n: int,
             warmup: float, measure: float, *, retry: bool = False) -> WebRtcStep:
    pid = target.pid()
    uas_pid = uas.pid()
    per_client = share(n, len(clients))
    t_setup = time.monotonic()
    answers = all_request(clients, 30 + 2.0 * max(per_client),
                          [{"op": "setup", "n": k, "parallel": SETUP_PARALLEL} for k in per_client])
    setup_seconds = time.monotonic() - t_setup
    failed = sum(int(a["failed"]) for a in answers)
    errors = [e for a in answers for e in a["errors"]]
    setup = f"{setup_seconds:.1f} s" + (f" [{errors[0]}]" if errors else "")
    try:
        time.sleep(warmup)
        marks0 = all_request(clients, 10, [{"op": "mark"}] * len(clients))
        cpu0, uas0, busy0, t0 = tree_cpu_seconds(pid), tree_cpu_seconds(uas_pid), machine_busy(), time.monotonic()
        time.sleep(measure)
        marks1 = all_request(clients, 10, [{"op": "mark"}] * len(clients))
        cpu1, uas1, busy1, t1 = tree_cpu_seconds(pid), tree_cpu_seconds(uas_pid), machine_busy(), time.monotonic()
        time.sleep(FLUSH_SECONDS)
        windows = all_request(clients, 30, [{"op": "window"}] * len(clients))
    finally:
        hung = all_request(clients, 60 + 0.5 * n, [{"op": "hangup"}] * len(clients))
    server = target.after_hangup({cid for h in hung for cid in h["call_ids"]})
    client_shares = tuple((m1["cpu"] - m0["cpu"]) / max(m1["t"] - m0["t"], 1e-9)
                          for m0, m1 in zip(marks0, marks1, strict=True))
    return WebRtcStep(
        peer=target.name, mode=mode, calls=n, client=merge_windows(windows), server_cpu=cpu1 - cpu0, wall=t1 - t0,
        client_shares=client_shares, uas_share=(uas1 - uas0) / (t1 - t0),
        machine_busy=(busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1),
        server=server, setup=setup, setup_failed=failed, retry=retry,
    )


def merge_windows(windows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("calls", "sent", "echoed", "late", "lost", "lossy_calls", "ended", "send_errors"):
        out[key] = sum(int(w[key]) for w in windows)
    out["ended_why"] = sorted({why for w in windows for why in w["ended_why"]})
    # the percentiles of the worst client (those of all packets together are not kept)
    out["rtt_ms"] = max((w["rtt_ms"] for w in windows), key=lambda p: p["p99"])
    out["lag_ms"] = max((w["lag_ms"] for w in windows), key=lambda p: p["p99"])
    return out


# --- ladder -----------------------------------------------------------------------------


@dataclass
class ModeRun:
    peer: str
    mode: str
    steps: list[WebRtcStep] = field(default_factory=list)
    note: str = ""
    lower_bound: bool = False  # stopped by the clients or the ladder's end, not by the server

    @property
    def best(self) -> WebRtcStep | None:
        clean = [s for s in self.steps if s.clean]
        return max(clean, key=lambda s: s.calls) if clean else None

    @property
    def per_core(self) -> int:
        best = self.best
        return best.per_core if best else 0

    @property
    def label(self) -> str:
        return f"{self.peer} {self.mode}"


def run_ladder(run: ModeRun, target: Target, uas: EchoUas, workdir: Path, sizes: Sequence[int], n_clients: int,
               warmup: float, measure: float, deadline: float) -> None:
    codec = "opus" if run.mode == "opus" else "pcmu"
    seconds = deadline - time.monotonic() + 120
    clients: list[LoadClient] = []
    try:
        for i in range(n_clients):
            clients.append(LoadClient(workdir / f"{run.peer}-{run.mode}-client{i}.log", target.client_args(), codec,
                                      seconds))
        for n in sizes:
            cost = 15 + warmup + measure + 0.05 * n
            if time.monotonic() + cost > deadline:
                run.note = f"stopped before {n} calls: time budget"
                run.lower_bound = True
                print(f"  {run.note}", flush=True)
                return
            step = run_step(target, uas, clients, run.mode, n, warmup, measure)
            run.steps.append(step)
            print(f"  {run.label:<21} {step.line()}", flush=True)
            if not step.clean and not step.generator_saturated and time.monotonic() + cost < deadline:
                # the machine is shared: one burst of someone else's work can sink a step
                step = run_step(target, uas, clients, run.mode, n, warmup, measure, retry=True)
                run.steps.append(step)
                print(f"  {run.label:<21} {step.line()}", flush=True)
            if step.generator_saturated:
                who = "a client process" if step.clients_saturated else "the SIPp echo"
                run.note = f"stopped at {n} calls: {who} at its limit (the figure is a lower bound)"
                run.lower_bound = True
                return
            if not step.clean:
                run.note = f"stopped at {n} calls: {100 * step.loss:.3f} % loss"
                if step.machine_full:
                    run.note += f", with the machine's {os.cpu_count()} cores full (server, clients, echo)"
                return
            if step.cpu_share >= SATURATED:
                run.note = f"stopped at {n} calls: {run.peer} at {100 * step.cpu_share:.0f} % of a core"
                return
        run.note = "all sizes clean"
        run.lower_bound = True
    finally:
        for client in clients:
            client.stop()


def ladders(runs: list[ModeRun], target: Target, uas: EchoUas, work: Path, sizes: dict[str, list[int]],
            n_clients: int, warmup: float, measure: float, deadline: float, left: int) -> None:
    """The ladder of each mode against one target; ``left`` ladders (these included) share the time."""
    for i, mode in enumerate(sizes):
        run = ModeRun(target.name, mode)
        runs.append(run)
        share_deadline = time.monotonic() + (deadline - time.monotonic()) / (left - i)
        try:
            run_ladder(run, target, uas, work, sizes[mode], n_clients, warmup, measure, share_deadline)
        except (RuntimeError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            print(f"  {run.label} failed: {reason}", flush=True)
            run.note = f"error: {reason}"


def bench_ringwell(runs: list[ModeRun], work: Path, sizes: dict[str, list[int]], n_clients: int, warmup: float,
                   measure: float, deadline: float, left: int) -> None:
    low, high = port_block(sizes)
    seconds = deadline - time.monotonic() + 120
    (work / "ringwell").mkdir()
    server = RingwellServer(
        work / "ringwell", rtp_port_count=2, seconds=seconds,
        extra_env={"RINGWELL_RTP_PORTS": f"{low}-{high}", "RINGWELL_WEBRTC_ICE_ADDRESSES": LOOPBACK},
    )  # fmt: skip
    print(f"== ringwell: RTP ports {low}-{high} ({(high - low + 1) // PORTS_PER_CALL} calls)", flush=True)
    server.create_org("bench")
    server.create_user("bench", f"{CALLER}@bench.example", CALLER_EXTENSION, CALLER, CALLER_PASSWORD)
    server.create_user("bench", f"{CALLEE}@bench.example", CALLEE_EXTENSION, CALLEE, CALLEE_PASSWORD)
    uas = EchoUas(work / "ringwell-uas", seconds)
    server.start()
    try:
        uas.register(server.sip_port)
        uas.start()
        ladders(runs, RingwellTarget(server), uas, work, sizes, n_clients, warmup, measure, deadline, left)
    finally:
        uas.stop()
        server.stop()


def bench_rtpengine(runs: list[ModeRun], work: Path, sizes: dict[str, list[int]], n_clients: int, warmup: float,
                    measure: float, deadline: float, left: int) -> None:
    low, high = port_block(sizes)
    seconds = deadline - time.monotonic() + 120
    print(f"== rtpengine: ports {low}-{high}", flush=True)
    rtpengine = Rtpengine(work / "rtpengine", (low, high), seconds, pin=False)
    uas = EchoUas(work / "rtpengine-uas", seconds)  # the echo only: no registration, no SIP
    rtpengine.start()
    try:
        uas.start()
        target = RtpengineTarget(rtpengine, uas.media_port)
        ladders(runs, target, uas, work, sizes, n_clients, warmup, measure, deadline, left)
    finally:
        uas.stop()
        rtpengine.stop()


def port_block(sizes: dict[str, list[int]]) -> tuple[int, int]:
    most = max(max(s) for s in sizes.values())
    least = min(min(s) for s in sizes.values())
    return free_block(most * PORTS_PER_CALL + 64, minimum=least * PORTS_PER_CALL + 16)


# --- report -----------------------------------------------------------------------------


def table(run: ModeRun) -> list[str]:
    out = [f"{run.label}: calls | {run.peer} CPU | cores used (server+clients+echo) | loss (client) | relay loss "
           "| per core"]
    for s in run.steps:
        relay = "-" if s.server is None else f"{100 * s.server['relay_loss']:.3f} %"
        out.append(
            f"  {s.calls:>5} | {100 * s.cpu_share:>5.1f} % | {s.cores_used:>4.2f} "
            f"| {100 * s.loss:>6.3f} % | {relay:>8} | {s.per_core}"
            + ("" if s.clean else " (not clean)") + (" (retry)" if s.retry else "")
        )
    return out


def summary(run: ModeRun) -> str:
    best = run.best
    if best is None:
        return f"{run.label}: 0 calls per core, no clean step ({run.note})"
    bound = "≥ " if run.lower_bound else ""
    return (
        f"{run.label}: {bound}{best.per_core} calls per core ({best.calls} calls at "
        f"{100 * best.cpu_share:.0f} % of a core, {1e6 * best.cpu_share / best.calls:.0f} µs CPU per call-second, "
        f"loss {100 * best.loss:.3f} %) ({run.note})"
    )


def _find(runs: Sequence[ModeRun], peer: str, mode: str) -> ModeRun | None:
    return next((r for r in runs if r.peer == peer and r.mode == mode), None)


def ratio_line(runs: Sequence[ModeRun]) -> str:
    def ratio(mode: str) -> str:
        ring, ref = _find(runs, "ringwell", mode), _find(runs, "rtpengine", mode)
        if ring is None or ref is None or ref.per_core <= 0:
            return "n/a"
        return f"{ring.per_core / ref.per_core:.3f}"

    return f"webrtc ratio_rtpengine passthrough={ratio('passthrough')} opus={ratio('opus')}"


def final_line(runs: Sequence[ModeRun]) -> str:
    def figure(mode: str) -> str:
        run = _find(runs, "ringwell", mode)
        return "n/a" if run is None else str(run.per_core)

    return f"webrtc passthrough_per_core={figure('passthrough')} opus_per_core={figure('opus')}"


HEADING = "## `webrtc` (`make bench-webrtc`, `python -m bench.webrtc`)"
INTRO = """
N concurrent WebRTC calls: aiortc "browsers" (`bench/webrtc_load.py`, pre-encoded payloads, one RTP
packet per call every 20 ms, SRTP over ICE on loopback) call through `ringwell serve` over
SIP-over-WebSocket to a SIPp UAS that echoes RTP (`-rtp_echo`); Ringwell terminates DTLS-SRTP and
bridges to its relay. The same browsers and echo through rtpengine (userspace, one thread, NG
offer/answer per call, no SIP) are the reference. Modes: PCMU pass-through (the browser offers
Opus, PCMU, PCMA) and Opus ⇄ G.711 transcoding (Opus only). Per step: loss as the browsers see it
(packets sent − echoes received over a measured window after a warm-up; with pass-through, echoes
more than 100 ms after sending count as lost too), for Ringwell also the relay's and the leg's
sequence gaps from the call records (server view, whole calls), and the server's CPU; per core =
N / the server's share of a core at the largest step with < 1 % loss.
"""


def record(runs: Sequence[ModeRun], argv: Sequence[str], started: dt.datetime, host: str, versions: str,
           n_clients: int, warmup: float, measure: float) -> None:
    out = [
        f"\n### webrtc, {started:%Y-%m-%d %H:%M} UTC\n",
        f"* commit: {git_commit()}",
        f"* machine: {host}",
        f"* peers: {versions}",
        f"* command: `python -m bench.webrtc {' '.join(argv)}`",
        f"* {n_clients} client processes, warm-up {warmup:g} s, measured {measure:g} s per step, "
        f"clean below {100 * MAX_LOSS:.0f} % loss",
        "",
        "```",
    ]
    for run in runs:
        out += [f"{run.label:<21} {s.line()}" for s in run.steps]
    for run in runs:
        out += table(run)
    out += [*(summary(r) for r in runs), ratio_line(runs), final_line(runs), "```", ""]
    append_run(RESULTS, HEADING, INTRO, "\n".join(out))


# --- main -------------------------------------------------------------------------------


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def versions(peers: Sequence[str]) -> str:
    import aiortc  # noqa: PLC0415

    found = [_first_line([str(REPO / ".venv/bin/ringwell"), "--version"]), f"aiortc {aiortc.__version__}",
             _first_line(["sipp", "-v"]).split(" built")[0].strip().rstrip(".")]
    if "rtpengine" in peers:
        found.append("rtpengine " + _first_line(["rtpengine", "--version"]).removeprefix("Version: "))
    return "; ".join(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=PEERS, help="benchmark one server only")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of %(default)s")
    for mode in MODES:
        parser.add_argument(f"--{mode}-sizes", default=",".join(map(str, SIZES[mode])),
                            help=f"{mode}: comma-separated call counts (%(default)s)")
    parser.add_argument("--max-calls", type=int, help="drop sizes above this")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes (%(default)s)")
    parser.add_argument("--warmup-seconds", type=float, default=WARMUP_SECONDS)
    parser.add_argument("--measure-seconds", type=float, default=MEASURE_SECONDS)
    parser.add_argument("--budget-seconds", type=float, default=TOTAL_BUDGET_SECONDS, help="the whole run")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep logs and the data dir")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: of {', '.join(MODES)}")
    sizes: dict[str, list[int]] = {}
    for mode in modes:
        sizes[mode] = sorted(int(s) for s in getattr(args, f"{mode}_sizes").split(",") if s.strip())
        if args.max_calls is not None:
            sizes[mode] = [s for s in sizes[mode] if s <= args.max_calls]
        if not sizes[mode]:
            parser.error(f"no sizes for {mode}")
    peers = [args.only] if args.only else list(PEERS)
    raise_open_files()
    started = dt.datetime.now(dt.UTC)
    host = machine()
    peer_versions = versions(peers)
    deadline = time.monotonic() + args.budget_seconds
    print(f"webrtc: {', '.join(peers)}; modes {', '.join(modes)}; {args.clients} client processes; "
          f"{args.measure_seconds:g} s windows", flush=True)
    runs: list[ModeRun] = []
    benches = {"ringwell": bench_ringwell, "rtpengine": bench_rtpengine}
    with scratch_dir("ringwell-bench-webrtc-", args.keep) as work:
        for i, peer in enumerate(peers):
            left = len(modes) * (len(peers) - i)
            try:
                benches[peer](runs, work, sizes, args.clients, args.warmup_seconds, args.measure_seconds, deadline,
                              left)
            except (RuntimeError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
                reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                print(f"  {peer} failed: {reason}", flush=True)
                runs += [ModeRun(peer, mode, note=f"error: {reason}") for mode in modes
                         if _find(runs, peer, mode) is None]
    print()
    for run in runs:
        for line in table(run):
            print(line)
    for run in runs:
        print(summary(run))
    if not args.no_record:
        record(runs, sys.argv[1:] if argv is None else list(argv), started, host, peer_versions, args.clients,
               args.warmup_seconds, args.measure_seconds)
        print(f"(recorded in {RESULTS.relative_to(REPO)})")
    print(ratio_line(runs))
    print(final_line(runs), flush=True)
    return 0 if runs and all(r.best is not None for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
