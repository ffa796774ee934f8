"""REGISTER benchmark: the same SIPp digest-auth REGISTER flood against Kamailio and Ringwell.

    .venv/bin/python -m bench.register [--only kamailio|ringwell] [--no-record]

For each server (own free ports on 127.0.0.1, 1000 users user0000..user0999 with
password benchNNNNpw): one warm-up pass registering every user, then fixed-rate steps
(1000, 2000, 4000, ... REGISTER/s, 6 s each) until the first step with >= 1 %
failed registrations. One "REGISTER" is a complete digest registration: REGISTER,
401, REGISTER with credentials, 200 (two transactions, SIPp ``reg.xml``).

Per step: achieved rate and failures from SIPp's -trace_stat CSV, and the server's
CPU time (utime+stime of its whole process tree, /proc/PID/stat) over the step,
divided by the successful registrations -> CPU µs per REGISTER.

Prints, per server, the best clean step (highest achieved REGISTER/s with < 1 %
failures) and its CPU cost, then one line:

    register ratio=<ringwell/kamailio throughput> ringwell=<n>/s kamailio=<n>/s

and appends the run to bench/RESULTS.md. SIPp, the server and this script share the
machine's cores: compare only figures from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.results import append_run
from tests.peers.kamailio import Kamailio, bench_password
from tests.peers.ports import free_port
from tests.peers.proc import tree_cpu_seconds
from tests.peers.scratch import scratch_dir
from tests.peers.server import RingwellServer
from tests.peers.sipp import SippResult, run_sipp, write_register_scenario, write_users_csv

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"

USERS = 1000
STEPS = (1000, 2000, 4000, 6000, 8000, 10000, 12000, 15000, 20000)
STEP_SECONDS = 6
MAX_FAILURE_RATE = 0.01
DRAIN_SECONDS = 20  # SIPp -timeout beyond the step: retransmissions finish or fail
PAUSE_SECONDS = 2.0  # between steps: let late retransmissions die out
TOTAL_BUDGET_SECONDS = 570.0  # the whole run stays under 10 min
SIPP_LOAD_ARGS = (
    "-buff_size", "8388608",  # 64 KB default drops datagrams from ~15 k msg/s
    "-max_recv_loops", "10000", "-max_sched_loops", "10000",
    "-max_log_size", "2000000",
)  # fmt: skip

SERVERS = ("kamailio", "ringwell")


def username(i: int) -> str:
    return f"user{i:04d}"


def users() -> list[tuple[str, str]]:
    """The 1000 bench users; passwords as bench/kamailio/register.cfg sets them."""
    return [(username(i), bench_password(i)) for i in range(USERS)]


# --- measurements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    target: int
    calls: int
    ok: int
    failed: int
    retransmissions: int
    elapsed: float
    cpu_seconds: float
    wall_seconds: float
    returncode: int

    @property
    def achieved(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def failure_rate(self) -> float:
        return self.failed / self.calls if self.calls else 1.0

    @property
    def clean(self) -> bool:
        return self.failure_rate < MAX_FAILURE_RATE

    @property
    def cpu_us_per_op(self) -> float:
        return self.cpu_seconds / self.ok * 1e6 if self.ok else float("nan")

    @property
    def cpu_share(self) -> float:
        """Server CPU as a fraction of one core over the step."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.target:>6}/s: ok={self.ok} failed={self.failed} "
            f"({100 * self.failure_rate:.2f} %) retrans={self.retransmissions} "
            f"achieved={self.achieved:.0f}/s cpu={self.cpu_seconds:.2f} s "
            f"({self.cpu_us_per_op:.0f} µs/REGISTER, {100 * self.cpu_share:.0f} % of a core)"
            f" sipp rc={self.returncode}"
        )


@dataclass
class ServerRun:
    name: str
    version: str = ""
    steps: list[Step] = field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> Step | None:
        clean = [s for s in self.steps if s.clean]
        return max(clean, key=lambda s: s.achieved) if clean else None


def _epoch(field_value: str) -> float:
    # "2026-11-23\t09:23:33.915168\t1795425813.915168": the epoch is the last field
    return float(field_value.rsplit("\t", maxsplit=1)[-1])


def step_from_sipp(target: int, calls: int, result: SippResult, cpu: float, wall: float) -> Step:
    rows = result.stats()
    if not rows:
        raise RuntimeError(f"SIPp wrote no statistics (rc {result.returncode}): {result.stderr}")
    last = rows[-1]
    ok = int(last["SuccessfulCall(C)"])
    # calls SIPp never finished (global timeout, fatal error) count as failed
    failed = max(int(last["FailedCall(C)"]), calls - ok)
    return Step(
        target=target,
        calls=calls,
        ok=ok,
        failed=failed,
        retransmissions=int(last["Retransmissions(C)"]),
        elapsed=_epoch(last["CurrentTime"]) - _epoch(last["StartTime"]),
        cpu_seconds=cpu,
        wall_seconds=wall,
        returncode=result.returncode,
    )


class Flood:
    """SIPp reg.xml runs against one server, from one fixed local port."""

    def __init__(self, workdir: Path, port: int, server_pid: Callable[[], int]) -> None:
        self.workdir = workdir
        self.port = port
        self.server_pid = server_pid
        workdir.mkdir(parents=True, exist_ok=True)
        self.scenario = write_register_scenario(workdir)
        self.users_csv = write_users_csv(workdir / "users.csv", users())
        # the same Contact for every step: bindings are refreshed, not added
        self.local_port = free_port()

    def warm_up(self) -> None:
        """Register every user once (slowly), so every step refreshes existing bindings."""
        result = run_sipp(
            self.port, self.scenario, self.workdir / "warmup", users_csv=self.users_csv,
            calls=USERS, trace_msg=False, sipp_timeout=30, local_port=self.local_port,
            extra_args=["-r", "500", *SIPP_LOAD_ARGS],
        )  # fmt: skip
        if not result.ok:
            reason = "see the SIPp output below"
            if "must use MD5" in result.stderr:
                reason = (
                    "the server's first WWW-Authenticate is not MD5, and SIPp 3.6.1 answers"
                    " only the first challenge and only with MD5"
                )
            raise RuntimeError(
                f"warm-up failed (SIPp rc {result.returncode}): {reason}\n"
                f"{result.stderr[-800:]}\n{result.errors[:2000]}"
            )

    def step(self, rate: int, seconds: int) -> Step:
        calls = rate * seconds
        pid = self.server_pid()
        cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
        result = run_sipp(
            self.port, self.scenario, self.workdir / f"step-{rate}", users_csv=self.users_csv,
            calls=calls, trace_msg=False, trace_stat=True, sipp_timeout=seconds + DRAIN_SECONDS,
            local_port=self.local_port, extra_args=["-r", str(rate), *SIPP_LOAD_ARGS],
        )  # fmt: skip
        cpu1, t1 = tree_cpu_seconds(pid), time.monotonic()
        return step_from_sipp(rate, calls, result, cpu1 - cpu0, t1 - t0)


def run_steps(run: ServerRun, flood: Flood, steps: Sequence[int], deadline: float) -> None:
    flood.warm_up()
    for rate in steps:
        if time.monotonic() + STEP_SECONDS + DRAIN_SECONDS + PAUSE_SECONDS > deadline:
            run.note = f"stopped before {rate}/s: time budget"
            print(f"  {run.note}", flush=True)
            return
        time.sleep(PAUSE_SECONDS)
        step = flood.step(rate, STEP_SECONDS)
        run.steps.append(step)
        print(f"  {run.name:<8} {step.line()}", flush=True)
        if not step.clean:
            run.note = f"stopped after {rate}/s: {100 * step.failure_rate:.2f} % failed"
            return
    run.note = "all steps clean"


# --- servers --------------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(["timeout", "10", *cmd], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].strip() if text else "?"


def bench_kamailio(work: Path, steps: Sequence[int], deadline: float) -> ServerRun:
    run = ServerRun("kamailio", version=_first_line(["kamailio", "-v"]).removeprefix("version: "))
    kam = Kamailio(work / "kamailio", seconds=TOTAL_BUDGET_SECONDS + 60)
    kam.start()
    try:
        flood = Flood(work / "kamailio-sipp", kam.sip_port, kam.main_pid)
        run_steps(run, flood, steps, deadline)
    finally:
        kam.stop()
    return run


def provision_ringwell_users(server: RingwellServer, work: Path) -> None:
    """Org 'bench' and user0000..user0999 (password benchNNNNpw) in one bulk call.

    ``ringwell admin bulk-users --org NAME --csv FILE`` (header
    email,extension,sip_username,sip_password); 1000 ``create-user`` calls would
    take minutes of CLI start-ups.
    """
    server.create_org("bench")
    path = work / "ringwell-users.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "extension", "sip_username", "sip_password"])
        for i, (user, password) in enumerate(users()):
            writer.writerow([f"{user}@bench.example", str(1000 + i), user, password])
    server.admin("bulk-users", "--org", "bench", "--csv", str(path), timeout=120)


def bench_ringwell(work: Path, steps: Sequence[int], deadline: float) -> ServerRun:
    run = ServerRun("ringwell", version=_first_line([str(REPO / ".venv/bin/ringwell"), "--version"]))
    (work / "ringwell").mkdir()
    server = RingwellServer(work / "ringwell", seconds=TOTAL_BUDGET_SECONDS + 60)
    # users are written before the server starts, so it cannot miss them
    t0 = time.monotonic()
    provision_ringwell_users(server, work)
    print(f"  ringwell: provisioned {USERS} users in {time.monotonic() - t0:.1f} s", flush=True)
    server.start()
    try:
        flood = Flood(work / "ringwell-sipp", server.sip_port, server.main_pid)
        run_steps(run, flood, steps, deadline)
    finally:
        server.stop()
    return run


# --- report ---------------------------------------------------------------------------


def ratio_line(runs: dict[str, ServerRun]) -> str:
    def rate(name: str) -> float | None:
        run = runs.get(name)
        best = run.best if run else None
        return best.achieved if best else None

    def fmt(value: float | None) -> str:
        return f"{value:.0f}/s" if value is not None else "n/a"

    ring, kam = rate("ringwell"), rate("kamailio")
    ratio = f"{ring / kam:.3f}" if ring is not None and kam else "n/a"
    return f"register ratio={ratio} ringwell={fmt(ring)} kamailio={fmt(kam)}"


def summary(run: ServerRun) -> str:
    best = run.best
    if best is None:
        return f"{run.name}: no clean step ({run.note})"
    lowest = min(run.steps, key=lambda s: s.target)
    at_lowest = f"; at {lowest.target}/s: {lowest.cpu_us_per_op:.0f} µs" if lowest is not best else ""
    return (
        f"{run.name}: best clean step {best.target}/s -> {best.achieved:.0f} REGISTER/s, "
        f"{best.cpu_us_per_op:.0f} µs CPU per REGISTER{at_lowest} ({run.note})"
    )


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "uncommitted"
    return f"{head} + uncommitted changes" if dirty else head


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} CPU ({model}), Linux {platform.release()}, loadavg {load} at start"


HEADER = """\
# Benchmark results

One section per run of a benchmark in `bench/`, newest last. Each records:

* **date** (UTC), **commit** (`git rev-parse --short HEAD`, "+ uncommitted changes" when
  the tree was dirty, or "uncommitted" before the first commit), **machine** (CPUs,
  kernel, load average when the run started) and the peer versions;
* the **command** and its settings;
* per server, one line per load step: SIPp's successful and failed calls, UDP
  retransmissions, the achieved rate, and the server's CPU time over the step (whole
  process tree) as µs per successful call and as a share of one core;
* the **summary**: per server the best clean step (highest achieved rate with < 1 %
  failures) and its CPU cost, and the final ratio line.

SIPp and the servers share the same cores, so absolute rates are machine limits as
much as server limits; compare servers only within one run.

## `register` (`make bench-register`, `python -m bench.register`)

REGISTER flood with digest auth: SIPp `reg.xml` over UDP, 1000 users cycling, every
call is REGISTER → 401 → REGISTER with credentials → 200. Fixed-rate steps of 6 s,
stopping after the first step with ≥ 1 % failures.
"""


def record(runs: dict[str, ServerRun], argv: Sequence[str], started: dt.datetime, host: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    versions = [_first_line(["sipp", "-v"]).rstrip(". ")]
    versions += [f"{r.name}: {r.version}" for r in runs.values()]
    out = [
        f"\n### register, {started:%Y-%m-%d %H:%M} UTC\n",
        f"* commit: {git_commit()}",
        f"* machine: {host}",
        f"* peers: {'; '.join(versions)}",
        f"* command: `python -m bench.register {' '.join(argv)}`",
        f"* users {USERS}, steps {STEP_SECONDS} s, stop at ≥ {100 * MAX_FAILURE_RATE:.0f} % failures",
        "",
        "```",
    ]
    for run in runs.values():
        out += [f"{run.name} {s.line()}" for s in run.steps]
    out += [*(summary(r) for r in runs.values()), ratio_line(runs), "```", ""]
    # at the end of the register section, ahead of the other benchmarks' sections
    append_run(RESULTS, "## `register` (`make bench-register`, `python -m bench.register`)", "", "\n".join(out))


# --- main -----------------------------------------------------------------------------


def scratch(keep: bool) -> contextlib.AbstractContextManager[Path]:
    return scratch_dir("ringwell-bench-register-", keep)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=SERVERS, help="benchmark one server only")
    parser.add_argument("--steps", help="comma-separated REGISTER/s steps (default: %(default)s)",
                        default=",".join(map(str, STEPS)))  # fmt: skip
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep SIPp/server files")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    names = [args.only] if args.only else list(SERVERS)
    started = dt.datetime.now(dt.UTC)
    host = machine()
    t0 = time.monotonic()
    runs: dict[str, ServerRun] = {}
    benches = {"kamailio": bench_kamailio, "ringwell": bench_ringwell}
    print(f"REGISTER flood, digest auth, {USERS} users, {STEP_SECONDS} s steps: {steps}")
    with scratch(args.keep) as work:
        for i, name in enumerate(names):
            # split what is left of the budget between the servers still to run
            left = TOTAL_BUDGET_SECONDS - (time.monotonic() - t0)
            deadline = time.monotonic() + left / (len(names) - i)
            print(f"== {name}", flush=True)
            try:
                runs[name] = benches[name](work, steps, deadline)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"  {name} failed: {exc}", file=sys.stderr, flush=True)
                runs[name] = ServerRun(name, note=f"error: {str(exc).splitlines()[0][:200]}")
    print()
    for run in runs.values():
        print(summary(run))
    line = ratio_line(runs)
    if not args.no_record:
        record(runs, sys.argv[1:] if argv is None else list(argv), started, host)
        print(f"(recorded in {RESULTS.relative_to(REPO)})")
    print(line)
    return 0 if all(r.best is not None for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
