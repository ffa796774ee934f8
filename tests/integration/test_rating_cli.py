"""``ringwell admin import-rates / assign-deck / rate`` as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

from ringwell.features.accounts.service import AccountsService
from ringwell.features.rating.service import RatingService
from ringwell.storage.engine import create_engine, session_factory

RINGWELL = [sys.executable, "-m", "ringwell"]
DECK = """\
prefix,description,price_per_minute,connection_fee,increments,effective_date
1,United States,0.0123,0,60/60,
1415,"San Francisco, CA",0.02,0.01,1/1,
44,United Kingdom,0.10,0,30/6,2026-01-01
"""
BAD = """\
Prefix,Description,Price_per_minute
1,United States,0.5
33,France,0.5
34,Spain,0.5
49,Germany,0.5
1415,San Francisco,0.5
39,Italy,0,05
"""


async def test_import_assign_and_show_rates(tmp_path, db_url):
    env = {**os.environ, "RINGWELL_DATABASE_URL": db_url}

    def admin(*args, ok=True):
        result = subprocess.run([*RINGWELL, "admin", *args, "--data-dir", str(tmp_path)], capture_output=True,
                                text=True, timeout=60, env=env)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    (tmp_path / "retail.csv").write_text(DECK)
    (tmp_path / "bad.csv").write_text(BAD)
    out = admin("import-rates", "--deck", "retail", str(tmp_path / "retail.csv"))
    assert out.stdout == "imported 3 rates into deck retail\n"

    shown = admin("rate", "--deck", "retail", "+1 415 555-0100").stdout
    assert shown.splitlines() == [
        "deck        retail (USD)",
        "number      +14155550100",
        "prefix      1415",
        "description San Francisco, CA",
        "price       0.02 USD per minute",
        "fee         0.01 USD per answered call",
        "increments  1/1",
        "effective   from 1970-01-01",
    ]

    bad = admin("import-rates", "--deck", "retail", str(tmp_path / "bad.csv"), ok=False)
    assert (bad.returncode, bad.stdout, bad.stderr) == (1, "", "error: line 7: expected 3 fields like the header, "
                                                               "got 4\n")
    # Nothing of the bad file was imported: the deck still has its 3 rates and its old prices.
    assert "price       0.02 USD per minute" in admin("rate", "--deck", "retail", "14155550100").stdout
    missing = admin("rate", "--deck", "retail", "+4930123456", ok=False)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no rate for +4930123456 in deck retail on ")
    early = admin("rate", "--deck", "retail", "--on", "2025-12-31", "+447700900123", ok=False)
    assert early.stderr == "error: no rate for +447700900123 in deck retail on 2025-12-31\n"
    assert "prefix      44\n" in admin("rate", "--deck", "retail", "--on", "2026-01-01", "+447700900123").stdout
    assert admin("rate", "--deck", "retail", "call me", ok=False).stderr == (
        "error: not a phone number: 'call me' (E.164, e.g. +14155550100)\n")
    nofile = admin("import-rates", "--deck", "retail", str(tmp_path / "none.csv"), ok=False)
    assert nofile.returncode == 1 and nofile.stderr.startswith("error: cannot read ")

    admin("create-org", "--name", "Acme")
    assert admin("assign-deck", "--org", "Acme", "--deck", "retail").stdout == (
        "organization Acme pays by deck retail (USD)\n")
    assert admin("import-rates", "--deck", "euro", "--currency", "EUR", str(tmp_path / "retail.csv")).stdout == (
        "imported 3 rates into deck euro\n")
    mismatch = admin("assign-deck", "--org", "Acme", "--deck", "euro", ok=False)
    assert mismatch.stderr == "error: Acme pays in USD; deck 'euro' is priced in EUR\n"

    engine = create_engine(db_url)
    try:
        sessions = session_factory(engine)
        org = await AccountsService(sessions, "ringwell").org("Acme")
        assert await RatingService(sessions).deck_of_org(org.id) == "retail"
    finally:
        await engine.dispose()
