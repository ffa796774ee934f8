"""Call-flood benchmark: SIPp calls through Ringwell, Kamailio and the sippy B2BUA.

    .venv/bin/python -m bench.calls [--only ringwell|kamailio|sippy] [--no-record]
                                    [--max-rate N] [--steps 50,100,...] [--step-seconds S]

Every call is INVITE (SDP offer, no RTP) → 100/180/200 → ACK, held 1 s, BYE → 200,
from SIPp ``bench/sipp/uac_call.xml`` (1000 callers user0000..user0999, cycling, each
answering a digest challenge with its ``[authentication]`` field) to a SIPp
``bench/sipp/uas_call.xml`` that answers 180 + 200 with SDP and waits for ACK and
BYE. What sits in between:

* **ringwell**: ``ringwell serve`` (scratch data dir, own ports; org ``bench``, the
  callers and the callee ``benchuas`` / extension 2000 created with the admin CLI).
  The UAS registers as ``benchuas``; the UAC dials ``sip:benchuas@ringwell``.
  Ringwell challenges the INVITE (407) and, as a B2BUA, places a new outbound leg to
  the registered contact; the caller's ACK and BYE go to the Contact of Ringwell's 200.
* **kamailio**: ``bench/kamailio/calls.cfg``, a stateful (tm) record-routing (rr)
  proxy with usrloc; INVITEs are digest-challenged (407) like Ringwell's, the UAS
  registers as ``benchuas`` the same way.
* **sippy**: the sippy B2BUA (PyPI ``sippy``, its ``b2bua`` script) with a static
  route to the UAS, no RADIUS (``-u -A 0``). sippy can check INVITE digests only
  through RADIUS, so its calls carry **no 407 round trip**: it does less work per call
  than the other two (one INVITE transaction instead of two).

Per peer, after an unmeasured warm-up (one call per caller at 250 calls/s: a peer where
no call gets through stops here, with SIPp's reason), fixed-rate steps (default 50, 100,
200, 400, 800, 1200, 1600, 2000, 2500, 3000 calls/s, 6 s of call starts each) until the
first step with ≥ 1 % failed calls.
Per step: successful and failed calls (calls SIPp never finished count as failed),
retransmissions, achieved calls/s = successful calls / the step's length (or the time
until the last successful call ended − hold − 1 s, when a server that falls behind
stretches the run),
and the server's CPU (utime+stime of its whole process tree over the step) per
successful call. The best clean step is the highest achieved rate with < 1 % failures.
A peer that fails to start or to set up counts 0 calls/s, with the reason.

Last line:

    calls ratio_kamailio=<x> ratio_sippy=<y> ringwell=<n>cps

(ratio = Ringwell's best clean rate / the peer's), and the run is appended to
bench/RESULTS.md. SIPp, the SIPp UAS and the servers share the machine's cores:
compare only figures from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.ports import free_block
from bench.register import (
    MAX_FAILURE_RATE,
    SIPP_LOAD_ARGS,
    ServerRun,
    Step,
    _epoch,
    _first_line,
    git_commit,
    machine,
    provision_ringwell_users,
    users,
)
from bench.results import append_run
from tests.peers.kamailio import Kamailio
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess, tree_cpu_seconds
from tests.peers.scratch import scratch_dir
from tests.peers.server import RingwellServer
from tests.peers.sipp import SippResult, run_sipp, write_register_scenario, write_users_csv

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
UAC_XML = BENCH_DIR / "sipp" / "uac_call.xml"
UAS_XML = BENCH_DIR / "sipp" / "uas_call.xml"
CALLS_CFG = BENCH_DIR / "kamailio" / "calls.cfg"
SIPPY_VENV = BENCH_DIR / "out" / "sippy-venv"

CALLEE = "benchuas"
CALLEE_PASSWORD = "benchuaspw"  # as calls.cfg sets it
CALLEE_EXTENSION = "2000"  # the callers have 1000..1999
STEPS = (50, 100, 200, 400, 800, 1200, 1600, 2000, 2500, 3000)
STEP_SECONDS = 6
HOLD_MS = 1000
DRAIN_SECONDS = 15  # SIPp -timeout beyond the last call's end: retransmissions finish or fail
WARM_UP_RATE = 250  # one unmeasured call per caller before the first step
PAUSE_SECONDS = 2.0  # between steps: calls in the UAS's timewait and late retransmissions die out
TOTAL_BUDGET_SECONDS = 840.0  # the whole run stays under 15 min
RTP_PORTS = 8000  # Ringwell's media port range (it may anchor media of every call)

PEERS = ("ringwell", "kamailio", "sippy")


# --- measurements ---------------------------------------------------------------------


@dataclass(frozen=True)
class CallStep(Step):
    """A REGISTER step's figures, plus the step's length and what failed calls failed on."""

    seconds: int = 0
    reason: str = ""

    @property
    def achieved(self) -> float:
        """Successful calls per second of call starts.

        The window is the step's length, or the time until the last successful call
        ended less the hold and 1 s (set-up, BYE, SIPp's start) when that is longer: a
        server that falls behind stretches the run (SIPp's -l limit holds back new
        calls). A call that only times out does not.
        """
        window = max(self.seconds, self.elapsed - HOLD_MS / 1000 - 1.0)
        return self.ok / window if window > 0 else 0.0

    def line(self) -> str:
        text = (
            f"{self.target:>5} cps: ok={self.ok} failed={self.failed} "
            f"({100 * self.failure_rate:.2f} %) retrans={self.retransmissions} "
            f"achieved={self.achieved:.0f} cps cpu={self.cpu_seconds:.2f} s "
            f"({self.cpu_us_per_op:.0f} µs/call, {100 * self.cpu_share:.0f} % of a core) sipp rc={self.returncode}"
        )
        return f"{text} [{self.reason}]" if self.reason and not self.clean else text


@dataclass
class PeerRun(ServerRun):
    @property
    def best_rate(self) -> float:
        best = self.best
        return best.achieved if best else 0.0


_CALL_ID = re.compile(r"Call-Id '[^']*'")
_STAMP = re.compile(r"^'?\d{4}-\d\d-\d\d\s+\S+\s+\S+:\s*")  # SIPp's "date<TAB>time<TAB>epoch: "


def first_error(result: SippResult) -> str:
    """A one-line reason from SIPp's error log (or stderr): what the calls failed on."""
    for line in result.errors.splitlines():
        if "jumping to label" in line:
            continue  # the 100 ms wait for a late 180 (uac_call.xml), not a failure
        if "Aborting call" in line or "unexpected" in line.lower() or "timeout" in line.lower():
            return _CALL_ID.sub("Call-Id …", _STAMP.sub("", line.strip()))[:200]
    for line in result.stderr.splitlines():
        if line.strip() and "Resolving" not in line:
            return _STAMP.sub("", line.strip())[:200]
    return ""


def step_from_sipp(target: int, seconds: int, result: SippResult, cpu: float, wall: float) -> CallStep:
    rows = result.stats()
    if not rows:
        reason = first_error(result) or f"SIPp rc {result.returncode}"
        raise RuntimeError(f"SIPp wrote no statistics: {reason}")
    last = rows[-1]
    ok = int(last["SuccessfulCall(C)"])
    calls = target * seconds
    # the first statistics row (one a second) that counts every successful call
    done = next(row for row in rows if int(row["SuccessfulCall(C)"]) >= ok)
    return CallStep(
        target=target,
        seconds=seconds,
        calls=calls,
        ok=ok,
        failed=max(int(last["FailedCall(C)"]), calls - ok),
        retransmissions=int(last["Retransmissions(C)"]),
        elapsed=_epoch(done["CurrentTime"]) - _epoch(done["StartTime"]),
        cpu_seconds=cpu,
        wall_seconds=wall,
        returncode=result.returncode,
        reason=first_error(result) if ok < calls else "",
    )


# --- SIPp: the UAS and the flood ------------------------------------------------------


class Uas:
    """The SIPp UAS (uas_call.xml) on its own port, optionally registered as CALLEE."""

    def __init__(self, workdir: Path, seconds: float) -> None:
        self.workdir = workdir
        self.seconds = seconds
        self.port = free_port()
        self.proc: BoundedProcess | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def register(self, registrar_port: int) -> None:
        """REGISTER benchuas from the UAS's own port (before the UAS binds it)."""
        scenario = write_register_scenario(self.workdir)
        users_csv = write_users_csv(self.workdir / "uas.csv", [(CALLEE, CALLEE_PASSWORD)])
        result = run_sipp(
            registrar_port, scenario, self.workdir / "register", users_csv=users_csv,
            calls=1, local_port=self.port, sipp_timeout=10,
        )  # fmt: skip
        if not result.ok:
            raise RuntimeError(f"the UAS could not register as {CALLEE}: {first_error(result) or result.returncode}")

    def start(self) -> None:
        cmd = [
            "sipp", "-sf", str(UAS_XML),
            "-i", LOOPBACK, "-p", str(self.port),
            "-mi", LOOPBACK, "-mp", str(free_port(4)), "-cp", str(free_port()),
            "-nostdin", "-timeout", f"{self.seconds:g}s",
            "-trace_err", "-error_file", "errors.log", *SIPP_LOAD_ARGS,
        ]  # fmt: skip
        self.proc = BoundedProcess(cmd, seconds=self.seconds + 10, log_path=self.workdir / "uas.log", cwd=self.workdir)
        time.sleep(0.5)
        if not self.proc.running():
            raise RuntimeError(f"the SIPp UAS exited: {self.proc.log_text()[-500:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate(grace=3.0)
            self.proc = None


class Flood:
    """SIPp uac_call.xml runs against one server, from one fixed local port."""

    def __init__(self, workdir: Path, port: int, server_pid: Callable[[], int], step_seconds: int) -> None:
        self.workdir = workdir
        self.port = port
        self.server_pid = server_pid
        self.step_seconds = step_seconds
        workdir.mkdir(parents=True, exist_ok=True)
        self.users_csv = write_users_csv(workdir / "users.csv", users())
        self.local_port = free_port()

    def warm_up(self) -> str:
        """One call per caller at WARM_UP_RATE, not measured: caches (Ringwell's credentials
        from its database) are filled before the first step, as Kamailio's htable is."""
        calls = len(users())
        result = run_sipp(
            self.port, UAC_XML, self.workdir / "warm-up", users_csv=self.users_csv,
            calls=calls, trace_msg=False, trace_stat=True,
            sipp_timeout=calls / WARM_UP_RATE + HOLD_MS / 1000 + DRAIN_SECONDS, local_port=self.local_port,
            extra_args=["-s", CALLEE, "-r", str(WARM_UP_RATE), "-d", str(HOLD_MS), *SIPP_LOAD_ARGS],
        )  # fmt: skip
        rows = result.stats()
        ok = int(rows[-1]["SuccessfulCall(C)"]) if rows else 0
        if ok == 0:
            raise RuntimeError(f"warm-up: no call got through: {first_error(result) or f'SIPp rc {result.returncode}'}")
        return f"warm-up: {ok}/{calls} calls at {WARM_UP_RATE} cps"

    def step(self, rate: int) -> CallStep:
        calls = rate * self.step_seconds
        pid = self.server_pid()
        cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
        result = run_sipp(
            self.port, UAC_XML, self.workdir / f"step-{rate}", users_csv=self.users_csv,
            calls=calls, trace_msg=False, trace_stat=True,
            sipp_timeout=self.step_seconds + HOLD_MS / 1000 + DRAIN_SECONDS, local_port=self.local_port,
            extra_args=[
                "-s", CALLEE, "-r", str(rate), "-d", str(HOLD_MS),
                # at most ~3 s of calls open at once: a stuck server does not pile up calls
                "-l", str(rate * 3 + 100), *SIPP_LOAD_ARGS,
            ],
        )  # fmt: skip
        cpu1, t1 = tree_cpu_seconds(pid), time.monotonic()
        return step_from_sipp(rate, self.step_seconds, result, cpu1 - cpu0, t1 - t0)


def run_ladder(run: PeerRun, flood: Flood, steps: Sequence[int], deadline: float) -> None:
    step_cost = flood.step_seconds + HOLD_MS / 1000 + DRAIN_SECONDS + PAUSE_SECONDS
    print(f"  {run.name:<8} {flood.warm_up()}", flush=True)
    for rate in steps:
        if time.monotonic() + step_cost > deadline:
            run.note = f"stopped before {rate} cps: time budget"
            print(f"  {run.note}", flush=True)
            return
        time.sleep(PAUSE_SECONDS)
        try:
            step = flood.step(rate)
        except RuntimeError as exc:
            run.note = f"{rate} cps step failed: {exc}"
            print(f"  {run.name:<8} {rate:>5} cps: {exc}", flush=True)
            return
        run.steps.append(step)
        print(f"  {run.name:<8} {step.line()}", flush=True)
        if not step.clean:
            run.note = f"stopped after {rate} cps: {100 * step.failure_rate:.2f} % failed"
            if step.reason:
                run.note += f" ({step.reason})"
            return
    run.note = "all steps clean"


# --- peers ----------------------------------------------------------------------------


def bench_kamailio(run: PeerRun, work: Path, steps: Sequence[int], deadline: float, step_seconds: int) -> None:
    run.version = _first_line(["kamailio", "-v"]).removeprefix("version: ")
    seconds = deadline - time.monotonic() + 60
    kam = Kamailio(work / "kamailio", cfg=CALLS_CFG, seconds=seconds)
    uas = Uas(work / "kamailio-uas", seconds)
    kam.start()
    try:
        uas.register(kam.sip_port)
        uas.start()
        run_ladder(run, Flood(work / "kamailio-sipp", kam.sip_port, kam.main_pid, step_seconds), steps, deadline)
        # evidence that the INVITEs were challenged (REGISTER gets 401, not 407)
        with contextlib.suppress(subprocess.SubprocessError):
            for line in kam.kamcmd("stats.get_statistics", "sl:").splitlines():
                if line.startswith("sl:407_replies"):
                    run.note += f"; kamailio sent {line.split('=')[-1].strip()} INVITE 407s"
    finally:
        uas.stop()
        kam.stop()


def sippy_b2bua() -> Path:
    return SIPPY_VENV / "bin" / "b2bua"


def sippy_version() -> str:
    python = SIPPY_VENV / "bin" / "python"
    code = "import importlib.metadata as m; print('sippy', m.version('sippy'))"
    return _first_line([str(python), "-c", code])


def bench_sippy(run: PeerRun, work: Path, steps: Sequence[int], deadline: float, step_seconds: int) -> None:
    if not sippy_b2bua().exists():
        raise RuntimeError(f"{sippy_b2bua()} missing: `make bench-calls` installs sippy there")
    run.version = sippy_version()
    seconds = deadline - time.monotonic() + 60
    uas = Uas(work / "sippy-uas", seconds)
    workdir = work / "sippy"
    workdir.mkdir()
    port = free_port()
    cmd = [
        str(sippy_b2bua()), "-f",  # foreground
        "-l", LOOPBACK, "-p", str(port),
        "-s", f"{LOOPBACK}:{uas.port}",  # static route: every call to the SIPp UAS
        "-u", "-A", "0",  # no RADIUS authentication, no accounting
        "-L", str(workdir / "b2bua.log"), "-P", str(workdir / "b2bua.pid"),
        "-c", str(workdir / "b2bua.sock"),  # command socket (default: /var/run)
    ]  # fmt: skip
    # SIPLOG_LVL=WARN: no copy of every SIP message in the log (the others log none)
    env = {**os.environ, "SIPLOG_LVL": "WARN", "SIPLOG_BEND": "stderr"}
    proc = BoundedProcess(cmd, seconds=seconds, log_path=workdir / "b2bua.out", env=env)

    def pid() -> int:
        if (p := proc.main_pid()) is None:
            raise RuntimeError(f"sippy b2bua exited: {proc.log_text()[-500:]}")
        return p

    try:
        time.sleep(1.5)
        pid()
        uas.start()
        run_ladder(run, Flood(work / "sippy-sipp", port, pid, step_seconds), steps, deadline)
    finally:
        uas.stop()
        proc.terminate(grace=5.0)


def bench_ringwell(run: PeerRun, work: Path, steps: Sequence[int], deadline: float, step_seconds: int) -> None:
    run.version = _first_line([str(REPO / ".venv/bin/ringwell"), "--version"])
    seconds = deadline - time.monotonic() + 60
    (work / "ringwell").mkdir()
    low, high = free_block(RTP_PORTS, minimum=RTP_PORTS // 2)
    print(f"  ringwell: RTP ports {low}-{high} ({(high - low + 1) // 4} concurrent calls)", flush=True)
    server = RingwellServer(
        work / "ringwell", rtp_port_count=2, seconds=seconds, extra_env={"RINGWELL_RTP_PORTS": f"{low}-{high}"}
    )
    t0 = time.monotonic()
    provision_ringwell_users(server, work)
    server.create_user("bench", f"{CALLEE}@bench.example", CALLEE_EXTENSION, CALLEE, CALLEE_PASSWORD)
    print(f"  ringwell: provisioned {len(users()) + 1} users in {time.monotonic() - t0:.1f} s", flush=True)
    uas = Uas(work / "ringwell-uas", seconds)
    server.start()
    try:
        uas.register(server.sip_port)
        uas.start()
        run_ladder(run, Flood(work / "ringwell-sipp", server.sip_port, server.main_pid, step_seconds), steps, deadline)
    finally:
        uas.stop()
        server.stop()


BENCHES: dict[str, Callable[[PeerRun, Path, Sequence[int], float, int], None]] = {
    "ringwell": bench_ringwell,
    "kamailio": bench_kamailio,
    "sippy": bench_sippy,
}


# --- report ---------------------------------------------------------------------------


def ratio_line(runs: dict[str, PeerRun]) -> str:
    ring = runs.get("ringwell")
    ring_rate = ring.best_rate if ring else None

    def ratio(name: str) -> str:
        peer = runs.get(name)
        if ring_rate is None or peer is None or peer.best_rate <= 0:
            return "n/a"
        return f"{ring_rate / peer.best_rate:.3f}"

    ring_text = f"{ring_rate:.0f}cps" if ring_rate is not None else "n/a"
    return f"calls ratio_kamailio={ratio('kamailio')} ratio_sippy={ratio('sippy')} ringwell={ring_text}"


def summary(run: PeerRun) -> str:
    best = run.best
    if best is None:
        return f"{run.name}: 0 cps, no clean step ({run.note})"
    lowest = min(run.steps, key=lambda s: s.target)
    at_lowest = f"; at {lowest.target} cps: {lowest.cpu_us_per_op:.0f} µs" if lowest is not best else ""
    return (
        f"{run.name}: best clean step {best.target} cps -> {best.achieved:.0f} calls/s, "
        f"{best.cpu_us_per_op:.0f} µs CPU per call{at_lowest} ({run.note})"
    )


HEADING = "## `calls` (`make bench-calls`, `python -m bench.calls`)"
INTRO = """
Call flood over UDP: SIPp `bench/sipp/uac_call.xml` → server → SIPp `bench/sipp/uas_call.xml`;
INVITE with SDP (no RTP) → 180 → 200 → ACK, 1 s hold, BYE → 200; 1000 callers cycling.
Ringwell (B2BUA) and Kamailio (`bench/kamailio/calls.cfg`: stateful record-routing proxy,
usrloc) challenge every INVITE with a digest 407; the sippy B2BUA (static route, no RADIUS)
cannot check digests without RADIUS, so its calls skip the 407 round trip. After a warm-up
(one call per caller at 250 calls/s, not measured), fixed-rate steps,
stopping after the first step with ≥ 1 % failed calls; achieved = successful calls / step
length (or time to the last successful call's end − hold − 1 s, if longer); CPU = the
server's process tree per successful call.
"""


def record(runs: dict[str, PeerRun], argv: Sequence[str], started: dt.datetime, host: str, step_seconds: int) -> None:
    versions = [_first_line(["sipp", "-v"]).rstrip(". ")]
    versions += [f"{r.name}: {r.version}" for r in runs.values() if r.version]
    out = [
        f"\n### calls, {started:%Y-%m-%d %H:%M} UTC\n",
        f"* commit: {git_commit()}",
        f"* machine: {host}",
        f"* peers: {'; '.join(versions)}",
        f"* command: `python -m bench.calls {' '.join(argv)}`",
        f"* steps of {step_seconds} s of call starts, hold {HOLD_MS} ms,"
        f" stop at ≥ {100 * MAX_FAILURE_RATE:.0f} % failures",
        "",
        "```",
    ]
    for run in runs.values():
        out += [f"{run.name:<8} {s.line()}" for s in run.steps]
    out += [*(summary(r) for r in runs.values()), ratio_line(runs), "```", ""]
    append_run(RESULTS, HEADING, INTRO, "\n".join(out))


# --- main -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=PEERS, help="benchmark one server only")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="comma-separated calls/s (%(default)s)")
    parser.add_argument("--max-rate", type=int, help="drop steps above this many calls/s")
    parser.add_argument("--step-seconds", type=int, default=STEP_SECONDS, help="seconds of call starts per step")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep SIPp/server files")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    if args.max_rate is not None:
        steps = [s for s in steps if s <= args.max_rate]
    names = [args.only] if args.only else list(PEERS)
    started = dt.datetime.now(dt.UTC)
    host = machine()
    t0 = time.monotonic()
    runs: dict[str, PeerRun] = {}
    print(f"call flood, 1 s calls, {args.step_seconds} s steps: {steps} calls/s", flush=True)
    with scratch_dir("ringwell-bench-calls-", args.keep) as work:
        for i, name in enumerate(names):
            left = TOTAL_BUDGET_SECONDS - (time.monotonic() - t0)
            deadline = time.monotonic() + left / (len(names) - i)
            print(f"== {name}", flush=True)
            runs[name] = run = PeerRun(name)
            try:
                BENCHES[name](run, work, steps, deadline, args.step_seconds)
            except (RuntimeError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
                reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                print(f"  {name} failed: {reason}", flush=True)
                run.note = f"error: {reason}"
    print()
    for run in runs.values():
        print(summary(run))
    if not args.no_record:
        record(runs, sys.argv[1:] if argv is None else list(argv), started, host, args.step_seconds)
        print(f"(recorded in {RESULTS.relative_to(REPO)})")
    print(ratio_line(runs), flush=True)
    return 0 if all(r.best is not None for r in runs.values()) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
