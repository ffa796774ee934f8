"""Export benchmark: a person's data export (``ringwell admin export-person``) with 1 M call
records and 1 GB of recordings, beside the same bytes dumped by standard tools.

    .venv/bin/python -m bench.export [--cdrs 1000000] [--recording-mb 1024] [--keep DIR [--reuse]] [--no-record]

Seeding (not timed): a fresh data directory (SQLite), one org with the person and a colleague,
``--cdrs`` call records of the person bulk-inserted with Core ``executemany`` (plus 1 % of the
colleague's, which must stay out), and ``--recording-mb`` of recordings in 16 MiB files of random
bytes stored through ``BlobStore.put`` (encrypted, as calls store them). The same recording bytes
are also written as plain files for the reference.

Timed, each in a child process (peak RSS = ``ru_maxrss`` of the children, wall seconds):

* ``ringwell``: ``python -m ringwell admin export-person EMAIL --org Bench --out FILE`` — the whole CLI:
  interpreter start, migrations check, JSON + CSV of every category, recordings decrypted into the zip;
* ``reference``: ``sqlite3 -csv`` of the person's call records, then ``zip -0`` of that CSV with
  the plain recording files (no decryption, no JSON: a floor, not an equivalent).

Last line: ``export seconds=<x> rss_mb=<y>`` (goal: < 60 s, < 200 MB); the run is appended to
bench/RESULTS.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from sqlalchemy import insert

from bench.register import git_commit, machine
from bench.results import append_run
from ringwell.blobs import BlobKind, blob_store
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.cdr.models import CallRecord
from ringwell.features.recordings.models import Recording
from ringwell.settings import ensure_config, load_settings
from ringwell.storage.base import new_id
from ringwell.storage.engine import create_engine, migrate, session_factory

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
EMAIL = "pat@bench.example"
CHUNK = 16 * 1024 * 1024
BATCH = 20_000
HEADING = "## `export`"
INTRO = ("`make bench-export`: `ringwell admin export-person` of a person with 1 M call records and 1 GB of\n"
         "recordings (encrypted blobs), beside `sqlite3 -csv` + `zip -0` of the same rows and plain files.\n"
         "Goal: < 60 s and < 200 MB peak RSS.")


async def seed(data_dir: Path, cdrs: int, recording_mb: int, plain_dir: Path) -> tuple[str, str]:
    """Returns (org id, the person's user id)."""
    ensure_config(data_dir)
    settings = load_settings(data_dir)
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        accounts = AccountsService(sessions, settings.sip_realm)
        org = await accounts.create_org("Bench")
        person = await accounts.create_user("Bench", UserSpec(EMAIL, "101", "pat", "bench-password-1"))
        colleague = await accounts.create_user("Bench", UserSpec("sam@bench.example", "102", "sam", "bench-pass-2"))
        user_id, other_id = person.user.id, colleague.user.id
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        table = CallRecord.__table__
        made = 0
        total = cdrs + cdrs // 100
        while made < total:
            rows = []
            for i in range(made, min(made + BATCH, total)):
                mine = i < cdrs
                at = start + dt.timedelta(seconds=i * 7)
                rows.append({
                    "id": new_id(), "org_id": org.id, "sip_call_id": f"{i:08d}@bench", "direction": "outbound",
                    "caller_user_id": user_id if mine else other_id, "caller_extension": "101" if mine else "102",
                    "caller_number": "+15550100101" if mine else "+15550100102",
                    "callee_user_id": None, "callee_extension": None, "callee_number": f"+3314{i % 10_000_000:08d}",
                    "started_at": at, "answered_at": at + dt.timedelta(seconds=3),
                    "ended_at": at + dt.timedelta(seconds=63), "last_alive_at": at + dt.timedelta(seconds=63),
                    "ring_seconds": 3.0, "talk_seconds": 60.0, "state": "closed", "disposition": "answered",
                    "hangup_by": "caller", "sip_status": 200, "sip_reason": "OK", "codec": "PCMU", "media": None,
                    "node": "bench", "trunk_id": None, "rate_deck": "bench", "rate_prefix": "331",
                    "price_micros": 12000, "billable_seconds": 60, "charge_minor": 1, "cost_minor": 1,
                    "currency": "USD",
                })
            async with engine.begin() as conn:
                await conn.execute(insert(table), rows)
            made += len(rows)
        store = blob_store(settings, sessions)
        plain_dir.mkdir(parents=True, exist_ok=True)
        left = recording_mb * 1024 * 1024
        n = 0
        while left > 0:
            size = min(CHUNK, left)
            data = os.urandom(size)
            ref = await store.put(org.id, BlobKind.RECORDING, data, content_type="audio/ogg", owners=(user_id,))
            (plain_dir / f"recording-{n:04d}.ogg").write_bytes(data)
            at = start + dt.timedelta(hours=n)
            async with sessions() as session, session.begin():
                session.add(Recording(org_id=org.id, call_record_id=new_id(), caller_user_id=user_id, trigger="policy",
                                      started_at=at, ended_at=at + dt.timedelta(minutes=17), duration_s=1020.0,
                                      paused_s=0.0, channels=2, content_type="audio/ogg", blob_id=ref.id, size=size,
                                      retention_until=at + dt.timedelta(days=365)))
            left -= size
            n += 1
        return org.id, user_id
    finally:
        await engine.dispose()


def timed(command: list[str], **kwargs: object) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command, measured by GNU time (``%M``).

    Not ``wait4`` from here: a child forked from this (large, seeded) process counts the parent's
    pages in its ``ru_maxrss``; GNU time is a small process, so its child's peak is the command's."""
    with tempfile.NamedTemporaryFile("r") as report:
        began = time.monotonic()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command], check=True,
                       **kwargs)  # type: ignore[call-overload]
        seconds = time.monotonic() - began
        kib = int(report.read().strip().splitlines()[-1])
    return seconds, kib / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--recording-mb", type=int, default=1024)
    parser.add_argument("--keep", help="work in this directory and keep it (default: a temporary one, removed)")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--reuse", action="store_true", help="with --keep: export what an earlier run seeded there")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ringwell-bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir, plain = work / "data", work / "plain"
    load = machine()
    try:
        began = time.monotonic()
        if args.reuse and (data_dir / "ringwell.db").exists():
            user_id = subprocess.run(["sqlite3", str(data_dir / "ringwell.db"),
                                      f"select id from users where email = '{EMAIL}'"],
                                     capture_output=True, text=True, check=True).stdout.strip()
            print(f"reusing the data seeded in {work}", flush=True)
        else:
            _org, user_id = asyncio.run(seed(data_dir, args.cdrs, args.recording_mb, plain))
            print(f"seeded {args.cdrs} call records and {args.recording_mb} MiB of recordings "
                  f"in {time.monotonic() - began:.1f} s", flush=True)
        out = work / "export.zip"
        out.unlink(missing_ok=True)
        database = data_dir / "ringwell.db"  # the default database of a data directory (SQLite)
        query = (f"select sip_call_id, direction, caller_number, callee_number, started_at, answered_at, ended_at, "
                 f"talk_seconds, disposition, rate_prefix, billable_seconds, charge_minor from call_records "
                 f"where caller_user_id = '{user_id}' or callee_user_id = '{user_id}' order by id")
        csv_path = work / "cdrs.csv"
        ref_zip = work / "reference.zip"
        ref_zip.unlink(missing_ok=True)
        with csv_path.open("wb") as sink:
            dump_seconds, dump_rss = timed(["sqlite3", "-csv", "-header", str(database), query], stdout=sink)
        zip_seconds, zip_rss = timed(["zip", "-0", "-q", "-r", str(ref_zip), csv_path.name, plain.name], cwd=work)
        ref_seconds, ref_rss = dump_seconds + zip_seconds, max(dump_rss, zip_rss)
        seconds, rss = timed([sys.executable, "-m", "ringwell", "admin", "export-person", EMAIL, "--org", "Bench",
                              "--out", str(out), "--data-dir", str(data_dir)], stdout=subprocess.DEVNULL)
        with zipfile.ZipFile(out) as archive:
            media = sum(i.file_size for i in archive.infolist() if i.filename.startswith("media/"))
        zip_mb = out.stat().st_size / 1e6
        ratio = seconds / ref_seconds if ref_seconds else float("inf")
        lines = [
            f"ringwell   {seconds:7.1f} s  peak RSS {rss:6.1f} MB  zip {zip_mb:8.1f} MB (media {media / 1e6:.1f} MB)",
            f"reference  {ref_seconds:7.1f} s  peak RSS {ref_rss:6.1f} MB  zip {ref_zip.stat().st_size / 1e6:8.1f} MB "
            "(sqlite3 -csv + zip -0, no decryption)",
            f"ratio ringwell/reference seconds={ratio:.2f}",
            f"export seconds={seconds:.1f} rss_mb={rss:.0f}",
        ]
        print("\n".join(lines))
        if not args.no_record:
            run = (f"### export, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n* commit: {git_commit()}\n"
                   f"* machine: {load}\n* command: `python -m bench.export"
                   f"{' ' + ' '.join(argv) if argv else ''}`\n"
                   f"* data: {args.cdrs} call records of the person (+1 % of a colleague's), "
                   f"{args.recording_mb} MiB of recordings in 16 MiB blobs; SQLite\n\n```\n"
                   + "\n".join(lines) + "\n```")
            append_run(RESULTS, HEADING, INTRO, run)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
