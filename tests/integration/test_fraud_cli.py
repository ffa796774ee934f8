"""The fraud commands of the operator CLI as a person runs them: output, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

RINGWELL = [sys.executable, "-m", "ringwell"]


def admin_runner(data_dir, db_url=None):
    env = {**os.environ}
    if db_url is not None:
        env["RINGWELL_DATABASE_URL"] = db_url

    def admin(*args, ok=True):
        result = subprocess.run([*RINGWELL, "admin", *args, "--data-dir", str(data_dir)], capture_output=True,
                                text=True, timeout=60, env=env)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return admin


def test_fraud_policy_commands(tmp_path, db_url):
    """On SQLite and PostgreSQL (the database chosen by RINGWELL_DATABASE_URL)."""
    admin = admin_runner(tmp_path, db_url)
    admin("create-org", "--name", "Acme", "--country", "US", "--currency", "USD")

    policy = json.loads(admin("fraud-policy", "--org", "Acme", "--json").stdout)
    assert policy["new_org_until"].endswith("Z")
    assert {key: value for key, value in policy.items() if key not in ("org_id", "new_org_until")} == {
        "org": "Acme", "country": "US", "currency": "USD",
        "destinations": [
            {"country": "US", "risk": None, "allow": True, "source": "default"},
            {"country": None, "risk": "international", "allow": False, "source": "default"},
            {"country": None, "risk": "premium", "allow": False, "source": "default"},
            {"country": None, "risk": "high-risk", "allow": False, "source": "default"},
        ],
        "caps": {
            "max_concurrent": {"value": 3, "text": "3", "source": "default"},
            "max_calls_per_minute": {"value": 10, "text": "10", "source": "default"},
            "daily_spend_cap_minor": {"value": 2500, "text": "25.00 USD", "source": "default"},
            "max_price_per_minute_micros": {"value": 500000, "text": "0.50 USD", "source": "default"},
        },
    }

    assert admin("allow-destination", "--org", "Acme", "--country", "gb").stdout == "Acme: allowed calls to GB\n"
    assert admin("allow-destination", "--org", "Acme", "--country", "CU", "--risk", "high-risk").stdout == (
        "Acme: allowed high-risk numbers in CU\n")
    assert admin("allow-destination", "--org", "Acme", "--risk", "premium").stdout == (
        "Acme: allowed premium-rate numbers\n")
    assert admin("deny-destination", "--org", "Acme", "--risk", "premium").stdout == (
        "Acme: denied premium-rate numbers\n")

    out = admin("set-fraud-caps", "--org", "Acme", "--daily-spend", "50.00", "--max-price", "1.25",
                "--max-concurrent", "5").stdout
    assert [line.split() for line in out.splitlines()] == [
        ["fraud", "caps", "of", "Acme:"],
        ["concurrent", "calls", "5", "org"],
        ["new", "calls", "per", "minute", "10", "default"],
        ["daily", "spend", "50.00", "USD", "org"],
        ["price", "per", "minute", "1.25", "USD", "org"],
    ]
    admin("set-fraud-caps", "--org", "Acme", "--max-concurrent", "default")

    lines = admin("fraud-policy", "--org", "Acme").stdout.splitlines()
    assert lines[0] == "fraud policy of Acme (US, USD)"
    assert lines[1].startswith("new organization: stricter default caps until ")
    assert [line.split() for line in lines[2:]] == [
        ["destinations:"],
        ["allow", "calls", "to", "US", "(home", "country)", "default"],
        ["deny", "international", "calls", "default"],
        ["deny", "high-risk", "numbers", "default"],
        ["allow", "calls", "to", "GB", "org"],
        ["allow", "high-risk", "numbers", "in", "CU", "org"],
        ["deny", "premium-rate", "numbers", "org"],
        ["caps:"],
        ["concurrent", "calls", "3", "default"],
        ["new", "calls", "per", "minute", "10", "default"],
        ["daily", "spend", "50.00", "USD", "org"],
        ["price", "per", "minute", "1.25", "USD", "org"],
    ]
    caps = json.loads(admin("fraud-policy", "--org", "Acme", "--json").stdout)["caps"]
    assert caps["daily_spend_cap_minor"]["value"] == 5000
    assert caps["max_price_per_minute_micros"]["value"] == 1_250_000


def test_fraud_command_errors(tmp_path):
    admin = admin_runner(tmp_path)
    admin("create-org", "--name", "Acme")
    admin("create-org", "--name", "Tokyo", "--country", "JP", "--currency", "JPY")
    for args, message in (
        (("set-fraud-caps", "--org", "Acme", "--daily-spend", "50.005"),
         "error: too many decimals in 50.005: USD has 2 decimals"),
        (("set-fraud-caps", "--org", "Acme", "--daily-spend", "-5"),
         "error: --daily-spend must be an amount such as 50.00, or 'default': '-5'"),
        (("set-fraud-caps", "--org", "Acme", "--max-price", "0.0000001"),
         "error: too many decimals in 0.0000001: prices have at most 6 decimals"),
        (("set-fraud-caps", "--org", "Acme", "--max-concurrent", "two"),
         "error: --max-concurrent must be a whole number or 'default': 'two'"),
        (("set-fraud-caps", "--org", "Acme"),
         "error: give at least one of --max-concurrent, --calls-per-minute, --daily-spend, --max-price"),
        (("set-fraud-caps", "--org", "Tokyo", "--daily-spend", "50.5"),
         "error: too many decimals in 50.5: JPY has 0 decimals"),
        (("set-fraud-caps", "--org", "Nope", "--max-concurrent", "1"), "error: no organization named 'Nope'"),
        (("allow-destination", "--org", "Acme", "--country", "XX"),
         "error: unknown country 'XX': use an ISO 3166-1 alpha-2 code such as GB"),
        (("allow-destination", "--org", "Acme"), "error: give --country, --risk or both"),
        (("deny-destination", "--org", "Acme", "--country", "GB", "--risk", "international"),
         "error: a country alone allows or denies calls to it; 'international' means every country"),
        (("fraud-policy", "--org", "Nope"), "error: no organization named 'Nope'"),
    ):
        result = admin(*args, ok=False)
        assert (result.returncode, result.stderr.strip()) == (1, message), args
    # Nothing was changed by the refused commands.
    policy = json.loads(admin("fraud-policy", "--org", "Acme", "--json").stdout)
    assert all(cap["source"] == "default" for cap in policy["caps"].values())
    assert all(rule["source"] == "default" for rule in policy["destinations"])
    out = admin("set-fraud-caps", "--org", "Tokyo", "--daily-spend", "5000", "--max-price", "30").stdout
    assert "daily spend            5000 JPY" in out and "price per minute       30.00 JPY" in out
