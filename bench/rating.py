"""Rating benchmark: 1 M CDRs rated against a 100 000-prefix deck, beside the same rating in PostgreSQL.

    .venv/bin/python -m bench.rating [--cdrs 1000000] [--prefixes 100000] [--sample 20000]
                                     [--postgres URL | --no-postgres] [--no-record] [--seed N]

A synthetic but realistic rate deck (seeded): every country calling code of the
``phonenumbers`` metadata, then area- and operator-like prefixes under them (2 to 6 more
digits) until the deck has ``--prefixes`` prefixes; prices log-uniform from $0.001 to
$1.50 per minute, a connection fee on 10 %, increments 60/60, 30/6, 1/1 and 6/6, and 5 %
of the prefixes with a second, dearer rate from 2026-07-01. The CDRs are E.164 numbers
(``+`` and 10 to 13 digits) under the deck's prefixes (10 % under an unrated code), dated
June and July 2026 (so both sides of the price change are rated), 15 % unanswered (0 s)
and the rest exponential talk times (mean 2 min) in milliseconds.

Ringwell: the deck CSV is parsed (``parse_rates_csv``) and built into a ``PrefixTable``
(timed: "deck build"); then every CDR is rated by ``PrefixTable.lookup`` and
``call_charge`` (longest prefix in effect on the CDR's date, billable seconds, charge in
cents), one core, CDRs generated in chunks of 100 000 outside the timed loop. Memory:
the ``tracemalloc`` peak of building the deck and rating a first chunk of 100 000 CDRs
(not timed: tracemalloc slows allocation), what the built table keeps, and the process's
``ru_maxrss`` (which includes the CDRs and the CSV text of the benchmark itself).

PostgreSQL (the reference): the same deck in a temporary schema (dropped afterwards), index
on (prefix, effective_from), the same rating written in SQL the usual way, on the first
``--sample`` CDRs, extrapolated to per-second rates:

* **per call**: one prepared query per CDR, as a switch would ask at call time —
  ``WHERE prefix = ANY(<every prefix of the number>) AND effective_from <= <date>
  ORDER BY length(prefix) DESC, effective_from DESC LIMIT 1`` with the billable seconds
  and the charge computed in the same statement (integer arithmetic, rounded up);
* **set-based**: one statement rating the whole sample (a LATERAL join of the CDRs with
  that same ordered LIMIT 1 subquery), as a batch re-rating job would.

Every sample CDR's prefix, billable seconds and charge from PostgreSQL are compared with
Ringwell's. The ratio is Ringwell's CDRs/s over the faster PostgreSQL method's. Last line:

    rating cdrs_per_s=<n> peak_mb=<tracemalloc peak MB> ratio_postgres=<x>

and the run is appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import math
import os
import platform
import random
import resource
import secrets
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import phonenumbers

from bench.register import git_commit, machine
from bench.results import append_run
from ringwell.features.rating.rates import PrefixTable, Rate, call_charge, parse_rates_csv

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"

CURRENCY = "USD"
CHUNK = 100_000
PRICE_CHANGE = date(2026, 7, 1)
CDR_DAYS = [date(2026, 6, 1) + dt.timedelta(days=i) for i in range(61)]
INCREMENTS = (("60/60", 40), ("30/6", 20), ("1/1", 30), ("6/6", 10))
UNRATED_CODE = "999"  # unassigned country code: numbers under it have no rate
DEFAULT_POSTGRES = "postgresql://root@127.0.0.1:5432/test"
HEADER = "prefix,description,price_per_minute,connection_fee,increments,effective_date\n"

Cdr = tuple[str, float, date]


# --- synthetic data ----------------------------------------------------------------------


def country_codes() -> list[str]:
    return sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def deck_lines(prefixes: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """The deck as CSV lines (header first) and its prefixes."""
    codes = country_codes()
    regions = {str(code): names[0] for code, names in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()}
    chosen: dict[str, None] = dict.fromkeys(codes)
    # Big countries get more prefixes (area codes, mobile ranges): weights ~ 1/rank.
    weights = [1 / (1 + i % 40) for i in range(len(codes))]
    while len(chosen) < prefixes:
        code = rng.choices(codes, weights)[0]
        extra = rng.choice((2, 3, 3, 4, 4, 4, 5, 5, 6))
        chosen.setdefault(code + str(rng.randrange(10**extra)).zfill(extra))
    increments = [name for name, _ in INCREMENTS]
    increment_weights = [weight for _, weight in INCREMENTS]
    lines = [HEADER]
    for prefix in chosen:
        code = next(prefix[:n] for n in (1, 2, 3) if prefix[:n] in regions)
        kind = "mobile" if rng.random() < 0.4 else "fixed"
        micros = round(math.exp(rng.uniform(math.log(1_000), math.log(1_500_000))))
        price = f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
        fee = f"0.{rng.randrange(1, 5):02d}" if rng.random() < 0.1 else ""
        inc = rng.choices(increments, increment_weights)[0]
        description = f"{regions[code]} {kind}" if prefix != code else f"{regions[code]} other"
        lines.append(f"{prefix},{description},{price},{fee},{inc},\n")
        if rng.random() < 0.05:
            dearer = micros + micros // 10 + 1
            lines.append(f"{prefix},{description},{dearer // 1_000_000}.{dearer % 1_000_000:06d},{fee},{inc},"
                         f"{PRICE_CHANGE}\n")
    return lines, list(chosen)


def cdrs(count: int, prefixes: Sequence[str], rng: random.Random) -> list[Cdr]:
    out: list[Cdr] = []
    append = out.append
    for _ in range(count):
        prefix = UNRATED_CODE if rng.random() < 0.1 else rng.choice(prefixes)
        length = rng.randint(max(10, len(prefix) + 3), 13)
        rest = length - len(prefix)
        number = "+" + prefix + str(rng.randrange(10**rest)).zfill(rest)
        talk = 0.0 if rng.random() < 0.15 else round(rng.expovariate(1 / 120), 3)
        append((number, talk, rng.choice(CDR_DAYS)))
    return out


# --- Ringwell ----------------------------------------------------------------------------


@dataclass
class Totals:
    rated: int = 0
    unrated: int = 0
    charge_minor: int = 0
    billable_seconds: int = 0

    def add(self, other: Totals) -> None:
        self.rated += other.rated
        self.unrated += other.unrated
        self.charge_minor += other.charge_minor
        self.billable_seconds += other.billable_seconds


def rate_all(table: PrefixTable, batch: Sequence[Cdr]) -> Totals:
    """What a rating job does per CDR: the rate in effect, the billable seconds and the charge."""
    lookup = table.lookup
    totals = Totals()
    charged = billed = unrated = 0
    for number, talk, on in batch:
        rate = lookup(number, on)
        if rate is None:
            unrated += 1
            continue
        billable, charge = call_charge(rate, talk, CURRENCY)
        billed += billable
        charged += charge
    totals.rated = len(batch) - unrated
    totals.unrated = unrated
    totals.charge_minor = charged
    totals.billable_seconds = billed
    return totals


def expected(table: PrefixTable, batch: Sequence[Cdr]) -> list[tuple[str | None, int, int]]:
    out: list[tuple[str | None, int, int]] = []
    for number, talk, on in batch:
        rate = table.lookup(number, on)
        out.append((None, 0, 0) if rate is None else (rate.prefix, *call_charge(rate, talk, CURRENCY)))
    return out


@dataclass
class RingwellRun:
    deck_lines: int = 0
    rates: int = 0
    prefixes: int = 0
    parse_s: float = 0.0
    build_s: float = 0.0
    table_mb: float = 0.0
    peak_mb: float = 0.0
    cdrs: int = 0
    rating_s: float = 0.0
    totals: Totals = field(default_factory=Totals)

    @property
    def cdrs_per_s(self) -> float:
        return self.cdrs / self.rating_s if self.rating_s else 0.0


def build(lines: Sequence[str]) -> PrefixTable:
    return PrefixTable(parse_rates_csv(lines))


def bench_ringwell(lines: list[str], prefixes: list[str], count: int, rng: random.Random,
                   sample: int) -> tuple[RingwellRun, PrefixTable, list[Cdr]]:  # fmt: skip
    run = RingwellRun(deck_lines=len(lines) - 1)
    gc.collect()
    started = time.perf_counter()
    rates: list[Rate] = parse_rates_csv(lines)
    run.parse_s = time.perf_counter() - started
    started = time.perf_counter()
    table = PrefixTable(rates)
    run.build_s = time.perf_counter() - started
    run.rates, run.prefixes = len(table), table.prefix_count
    del rates, table
    print(f"  deck: {run.rates} rates, {run.prefixes} prefixes; parse {run.parse_s:.2f} s, build "
          f"{run.build_s:.2f} s", flush=True)

    # Memory, untimed: the deck built from its CSV, then a first chunk rated with it.
    first = cdrs(CHUNK, prefixes, rng)
    gc.collect()
    tracemalloc.start()
    table = build(lines)
    gc.collect()
    run.table_mb = tracemalloc.get_traced_memory()[0] / 2**20
    rate_all(table, first)
    run.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"  memory: table {run.table_mb:.1f} MB, tracemalloc peak {run.peak_mb:.1f} MB", flush=True)

    sample_cdrs = first[:sample]
    left = count
    batch = first
    while left > 0:
        batch = batch[:left]
        started = time.perf_counter()
        totals = rate_all(table, batch)
        run.rating_s += time.perf_counter() - started
        run.totals.add(totals)
        run.cdrs += len(batch)
        left -= len(batch)
        if left > 0:
            batch = cdrs(min(CHUNK, left), prefixes, rng)
    print(f"  rated {run.cdrs} CDRs in {run.rating_s:.2f} s: {run.cdrs_per_s:,.0f} CDRs/s "
          f"({run.totals.unrated} without a rate)", flush=True)
    return run, table, sample_cdrs


# --- PostgreSQL ----------------------------------------------------------------------------

# Billable seconds and charge in SQL, integer arithmetic as in ringwell.features.rating.rates:
# talk rounded half up; 0 s free; first increment, then whole next increments; micros rounded
# up, then cents rounded up.
_CHARGE_SQL = """
    CASE WHEN t.talk = 0 THEN 0
         WHEN t.talk <= r.first_increment THEN r.first_increment
         ELSE r.first_increment + (t.talk - r.first_increment + r.next_increment - 1) / r.next_increment
              * r.next_increment END
"""

PER_CALL_SQL = f"""
WITH t AS (SELECT floor($3::float8 + 0.5)::int AS talk)
SELECT r.prefix, b.billable,
       CASE WHEN b.billable = 0 THEN 0
            ELSE (r.connection_fee_micros + (r.price_micros * b.billable + 59) / 60 + 9999) / 10000 END
FROM t,
     LATERAL (SELECT * FROM rates WHERE prefix = ANY($1::text[]) AND effective_from <= $2
              ORDER BY length(prefix) DESC, effective_from DESC LIMIT 1) r,
     LATERAL (SELECT {_CHARGE_SQL} AS billable) b
"""

SET_SQL = f"""
SELECT c.id, r.prefix, b.billable,
       CASE WHEN b.billable = 0 THEN 0
            ELSE (r.connection_fee_micros + (r.price_micros * b.billable + 59) / 60 + 9999) / 10000 END
FROM cdrs c
CROSS JOIN LATERAL (SELECT floor(c.talk + 0.5)::int AS talk) t
JOIN LATERAL (
    SELECT * FROM rates
    WHERE prefix = ANY (ARRAY(SELECT left(c.digits, n) FROM generate_series(1, least(length(c.digits), 15)) n))
      AND effective_from <= c.on_date
    ORDER BY length(prefix) DESC, effective_from DESC LIMIT 1) r ON true
CROSS JOIN LATERAL (SELECT {_CHARGE_SQL} AS billable) b
ORDER BY c.id
"""


@dataclass
class PostgresRun:
    version: str = ""
    load_s: float = 0.0
    sample: int = 0
    per_call_s: float = 0.0
    set_s: float = 0.0
    mismatches: int = 0
    note: str = ""

    @property
    def per_call_rate(self) -> float:
        return self.sample / self.per_call_s if self.per_call_s else 0.0

    @property
    def set_rate(self) -> float:
        return self.sample / self.set_s if self.set_s else 0.0

    @property
    def best_rate(self) -> float:
        return max(self.per_call_rate, self.set_rate)


def all_prefixes(number: str) -> list[str]:
    digits = number.removeprefix("+")
    return [digits[:n] for n in range(1, min(len(digits), 15) + 1)]


async def bench_postgres(url: str, table: PrefixTable, sample: Sequence[Cdr]) -> PostgresRun:
    import asyncpg  # noqa: PLC0415 - a Ringwell dependency; only this side needs it

    run = PostgresRun(sample=len(sample))
    schema = "bench_rating_" + secrets.token_hex(4)
    conn = await asyncpg.connect(url)
    try:
        run.version = "PostgreSQL " + str(await conn.fetchval("SHOW server_version"))
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path TO {schema}")
        started = time.perf_counter()
        await conn.execute(
            "CREATE TABLE rates (prefix text NOT NULL, description text NOT NULL, price_micros bigint NOT NULL,"
            " connection_fee_micros bigint NOT NULL, first_increment int NOT NULL, next_increment int NOT NULL,"
            " effective_from date NOT NULL)"
        )
        await conn.copy_records_to_table("rates", records=[
            (r.prefix, r.description, r.price_micros, r.connection_fee_micros, r.increments.first,
             r.increments.next, r.effective_from) for r in table.rates()])  # fmt: skip
        await conn.execute("CREATE INDEX ON rates (prefix, effective_from)")
        await conn.execute("CREATE TABLE cdrs (id int PRIMARY KEY, digits text NOT NULL, talk float8 NOT NULL,"
                           " on_date date NOT NULL)")
        await conn.copy_records_to_table("cdrs", records=[
            (i, number.removeprefix("+"), talk, on) for i, (number, talk, on) in enumerate(sample)])  # fmt: skip
        await conn.execute("ANALYZE rates")
        await conn.execute("ANALYZE cdrs")
        run.load_s = time.perf_counter() - started
        want = expected(table, sample)

        statement = await conn.prepare(PER_CALL_SQL)
        got: list[tuple[str | None, int, int]] = []
        started = time.perf_counter()
        for number, talk, on in sample:
            row = await statement.fetchrow(all_prefixes(number), on, talk)
            got.append((None, 0, 0) if row is None else (row[0], row[1], row[2]))
        run.per_call_s = time.perf_counter() - started
        run.mismatches += sum(1 for a, b in zip(got, want, strict=True) if a != b)

        started = time.perf_counter()
        rows = await conn.fetch(SET_SQL)
        run.set_s = time.perf_counter() - started
        by_id = {row[0]: (row[1], row[2], row[3]) for row in rows}
        run.mismatches += sum(1 for i, w in enumerate(want) if by_id.get(i, (None, 0, 0)) != w)
    finally:
        with contextlib.suppress(Exception):
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
    return run


# --- report --------------------------------------------------------------------------------

HEADING = "## `rating` (`make bench-rating`, `python -m bench.rating`)"
INTRO = """
1 M synthetic CDRs (E.164 numbers, talk times in ms, 15 % unanswered, two months of dates)
rated against a 100 000-prefix deck (country codes plus area/operator prefixes, 60/60,
30/6, 1/1 and 6/6 increments, 5 % with a price change mid-period): longest prefix in
effect on the CDR's date, billable seconds, charge in cents. Ringwell: `PrefixTable` +
`call_charge` on one core; deck build = CSV parse + table; memory = tracemalloc peak of
building the deck and rating 100 000 CDRs, and the process's ru_maxrss. Reference: the same
rating in PostgreSQL (temporary schema, index on (prefix, effective_from)) on a 20 000-CDR
sample, extrapolated: one prepared query per CDR, and one set-based LATERAL join; the ratio
is against the faster of the two. Every sample CDR is checked to be rated identically.
"""


def ratio_text(ring: RingwellRun, pg: PostgresRun | None) -> str:
    if pg is None or pg.best_rate <= 0:
        return "n/a"
    return f"{ring.cdrs_per_s / pg.best_rate:.1f}"


def last_line(ring: RingwellRun, pg: PostgresRun | None) -> str:
    return f"rating cdrs_per_s={ring.cdrs_per_s:.0f} peak_mb={ring.peak_mb:.1f} ratio_postgres={ratio_text(ring, pg)}"


def report_lines(ring: RingwellRun, pg: PostgresRun | None, maxrss_mb: float) -> list[str]:
    out = [
        f"deck: {ring.rates} rates under {ring.prefixes} prefixes; build {ring.parse_s + ring.build_s:.2f} s "
        f"(CSV parse {ring.parse_s:.2f} s + PrefixTable {ring.build_s:.2f} s); table {ring.table_mb:.1f} MB",
        f"ringwell: {ring.cdrs} CDRs in {ring.rating_s:.2f} s = {ring.cdrs_per_s:,.0f} CDRs/s "
        f"({1e6 / ring.cdrs_per_s if ring.cdrs_per_s else 0:.2f} µs/CDR); {ring.totals.rated} rated, "
        f"{ring.totals.unrated} without a rate; {ring.totals.billable_seconds} billable s, "
        f"{ring.totals.charge_minor} cents",
        f"ringwell memory: tracemalloc peak {ring.peak_mb:.1f} MB (deck build + 100000 CDRs rated), "
        f"ru_maxrss {maxrss_mb:.0f} MB (whole benchmark process)",
    ]
    if pg is None:
        out.append("postgres: not run")
    elif pg.note:
        out.append(f"postgres: {pg.note}")
    else:
        out += [
            f"postgres: {pg.version}; deck + sample loaded in {pg.load_s:.2f} s (COPY, index, ANALYZE)",
            f"postgres per call: {pg.sample} CDRs in {pg.per_call_s:.2f} s = {pg.per_call_rate:,.0f} CDRs/s "
            f"-> 1 M in {1e6 / pg.per_call_rate if pg.per_call_rate else math.inf:.0f} s (extrapolated)",
            f"postgres set-based: {pg.sample} CDRs in {pg.set_s:.2f} s = {pg.set_rate:,.0f} CDRs/s "
            f"-> 1 M in {1e6 / pg.set_rate if pg.set_rate else math.inf:.0f} s (extrapolated)",
            f"check: {pg.sample} sample CDRs x 2 methods, {pg.mismatches} rated differently from Ringwell",
        ]
    out.append(last_line(ring, pg))
    return out


def record(lines: list[str], argv: Sequence[str], started: dt.datetime, host: str, pg: PostgresRun | None,
           args: argparse.Namespace) -> None:  # fmt: skip
    versions = [f"Python {platform.python_version()}"]
    if pg is not None and pg.version:
        versions.append(pg.version)
    out = [
        f"\n### rating, {started:%Y-%m-%d %H:%M} UTC\n",
        f"* commit: {git_commit()}",
        f"* machine: {host}",
        f"* peers: {'; '.join(versions)}",
        f"* command: `python -m bench.rating {' '.join(argv)}`",
        f"* deck {args.prefixes} prefixes, {args.cdrs} CDRs, PostgreSQL sample {args.sample} CDRs (extrapolated),"
        f" seed {args.seed}",
        "",
        "```",
        *lines,
        "```",
        "",
    ]
    append_run(RESULTS, HEADING, INTRO, "\n".join(out))


# --- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--prefixes", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=20_000, help="CDRs rated by PostgreSQL (%(default)s)")
    parser.add_argument("--postgres", default=os.environ.get("RINGWELL_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="reference database (RINGWELL_BENCH_POSTGRES_URL, default %(default)s)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL reference")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.sample = min(args.sample, args.cdrs, CHUNK)
    started = dt.datetime.now(dt.UTC)
    host = machine()
    rng = random.Random(args.seed)
    print(f"rating: {args.cdrs} CDRs against a {args.prefixes}-prefix deck", flush=True)
    lines, prefixes = deck_lines(args.prefixes, rng)
    print("== ringwell", flush=True)
    ring, table, sample = bench_ringwell(lines, prefixes, args.cdrs, rng, args.sample)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pg: PostgresRun | None = None
    if not args.no_postgres:
        print(f"== postgresql ({args.sample} CDRs)", flush=True)
        try:
            pg = asyncio.run(bench_postgres(args.postgres, table, sample))
        except (OSError, ConnectionError) as exc:
            pg = PostgresRun(note=f"error: {exc}")
        except Exception as exc:  # asyncpg's errors: report, keep Ringwell's figures
            pg = PostgresRun(note=f"error: {type(exc).__name__}: {exc}")
    lines_out = report_lines(ring, pg, maxrss_mb)
    print()
    for line in lines_out[:-1]:
        print(line)
    if not args.no_record:
        record(lines_out, sys.argv[1:] if argv is None else list(argv), started, host, pg, args)
        print(f"(recorded in {RESULTS.relative_to(REPO)})")
    print(lines_out[-1], flush=True)
    return 0 if pg is None or (not pg.note and pg.mismatches == 0) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
