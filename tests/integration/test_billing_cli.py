"""The billing commands as an operator runs them (SQLite and PostgreSQL): output, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.peers.fake_stripe import FakeStripe

RINGWELL = [sys.executable, "-m", "ringwell"]
API_KEY = "sk_test_51RingwellCliKey000000000000"


@pytest.fixture
def admin(tmp_path, db_url):
    env = {**os.environ, "RINGWELL_DATABASE_URL": db_url, "LOGNAME": "olivia", "USER": "olivia"}
    for name in ("RINGWELL_STRIPE_SECRET_KEY", "RINGWELL_STRIPE_WEBHOOK_SECRET", "RINGWELL_STRIPE_API_BASE"):
        env.pop(name, None)

    def run(*args, ok=True, extra_env=None):
        result = subprocess.run([*RINGWELL, "admin", *args, "--data-dir", str(tmp_path)], capture_output=True,
                                text=True, timeout=60, env={**env, **(extra_env or {})})
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_credit_refund_balance_and_ledger(admin):
    admin("create-org", "--name", "Acme")
    out = admin("credit", "--org", "Acme", "--amount", "10.00", "--reason", "welcome credit").stdout.splitlines()
    assert out[0].startswith("credited 10.00 USD to Acme by olivia (transaction ")
    assert out[1] == "Acme: balance 10.00 USD, reserved 0.00 USD, available 10.00 USD"
    out = admin("credit", "--org", "Acme", "--amount", "-2.50", "--reason", "correction", "--operator", "pat").stdout
    assert out.startswith("debited 2.50 USD from Acme by pat") and "balance 7.50 USD" in out
    out = admin("refund", "--org", "Acme", "--amount", "0.75", "--reason", "dropped call",
                "--reference", "call-7").stdout
    assert out.startswith("refunded 0.75 USD to Acme by olivia") and "balance 8.25 USD" in out

    assert json.loads(admin("balance", "--org", "Acme", "--json").stdout) | {"org_id": None} == {
        "org": "Acme", "org_id": None, "currency": "USD", "balance_minor": 825, "reserved_minor": 0,
        "available_minor": 825, "balance": "8.25", "reserved": "0.00", "available": "8.25"}
    assert admin("balance", "--org", "Acme").stdout.strip() == (
        "Acme: balance 8.25 USD, reserved 0.00 USD, available 8.25 USD")

    lines = admin("ledger", "--org", "Acme").stdout.splitlines()
    assert lines[0] == "ledger of Acme (USD), newest first"
    assert lines[1].split()[:4] == ["time", "(UTC)", "kind", "amount"]
    refund, debit, credit = lines[2:]
    assert refund.split()[1:6] == ["refund", "+0.75", "8.25", "refund", "dropped"] and refund.endswith("olivia")
    assert debit.split()[1:4] == ["adjustment", "-2.50", "7.50"] and "correction" in debit and debit.endswith("pat")
    assert credit.split()[1:4] == ["adjustment", "+10.00", "10.00"] and "welcome credit" in credit
    entries = json.loads(admin("ledger", "--org", "Acme", "--json", "--limit", "2").stdout)
    assert [(e["kind"], e["amount_minor"], e["amount"], e["balance_after_minor"], e["reason"], e["operator"])
            for e in entries] == [("refund", 75, "0.75", 825, "dropped call", "olivia"),
                                  ("adjustment", -250, "-2.50", 750, "correction", "pat")]
    assert entries[0]["reference"] == "call-7" and entries[0]["time"].endswith("+00:00")


def test_amounts_are_exact_in_the_orgs_currency(admin):
    admin("create-org", "--name", "Yen", "--country", "JP", "--currency", "JPY")
    out = admin("credit", "--org", "Yen", "--amount", "500", "--reason", "welcome").stdout
    assert out.startswith("credited 500 JPY to Yen") and "available 500 JPY" in out
    bad = admin("credit", "--org", "Yen", "--amount", "1.5", "--reason", "x", ok=False)
    assert (bad.returncode, bad.stderr.strip()) == (1, "error: JPY has 0 decimal places; '1.5' has 1")
    admin("create-org", "--name", "Acme")
    bad = admin("credit", "--org", "Acme", "--amount", "1.005", "--reason", "x", ok=False)
    assert (bad.returncode, bad.stderr.strip()) == (1, "error: USD has 2 decimal places; '1.005' has 3")
    bad = admin("credit", "--org", "Acme", "--amount", "1.00", "--reason", "  ", ok=False)
    assert (bad.returncode, bad.stderr.strip()) == (1, "error: reason is required")
    bad = admin("credit", "--org", "Acme", "--amount", "0", "--reason", "nothing", ok=False)
    assert bad.returncode == 1 and "non-zero" in bad.stderr
    assert admin("credit", "--org", "Acme", "--amount", "1.00", ok=False).returncode == 2  # --reason is required
    missing = admin("balance", "--org", "Nope", ok=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: no organization named 'Nope'")
    assert admin("ledger", "--org", "Acme").stdout.strip() == "Acme has no ledger entries"


def test_top_up_prints_the_payment_intent(admin):
    admin("create-org", "--name", "Acme")
    off = admin("top-up", "--org", "Acme", "--amount", "25.00", ok=False)
    assert off.returncode == 1 and "Stripe is not configured" in off.stderr
    with FakeStripe(API_KEY) as fake:
        stripe_env = {"RINGWELL_STRIPE_SECRET_KEY": API_KEY, "RINGWELL_STRIPE_WEBHOOK_SECRET": "whsec_cli",
                      "RINGWELL_STRIPE_API_BASE": fake.url}
        out = admin("top-up", "--org", "Acme", "--amount", "25.00", extra_env=stripe_env).stdout.splitlines()
        intent_id = out[0].split()[1]
        assert out[0] == f"PaymentIntent {intent_id} for 25.00 USD to Acme (requires_payment_method)"
        assert out[1].startswith(f"client secret: {intent_id}_secret_")
        assert fake.intent(intent_id)["amount"] == 2500
        assert all(API_KEY not in line for line in out)
    assert "balance 0.00 USD" in admin("balance", "--org", "Acme").stdout  # credited only when Stripe says paid
