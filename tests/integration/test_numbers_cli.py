"""The number commands as an operator runs them: output, exit codes and messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from ringwell.features.numbers.models import PhoneNumber
from ringwell.storage.engine import create_engine, session_factory

RINGWELL = [sys.executable, "-m", "ringwell"]

INVENTORY = (
    "number,country,type,monthly_price,setup_price,trunk\n"
    "+1 415 555 0100,US,fixed,2.50,1.00,carrier-a\n"
    "(415) 555-0101,US,mobile,3.00,0,\n"
    "+1 212 555 0100,US,fixed,2.00,1.50,carrier-a\n"
)


def runner(tmp_path, env=None):
    def admin(*args, ok=True):
        result = subprocess.run([*RINGWELL, "admin", *args, "--data-dir", str(tmp_path)], capture_output=True,
                                text=True, timeout=60, env=env)
        if ok:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode == 1, (result.stdout, result.stderr)
        return result

    return admin


async def set_paid_until(db_url, e164, paid_until):
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await session.execute(update(PhoneNumber).where(PhoneNumber.e164 == e164).values(paid_until=paid_until))
    finally:
        await engine.dispose()


async def test_numbers_from_import_to_renewal(tmp_path, db_url):
    """On SQLite and PostgreSQL (the database chosen by RINGWELL_DATABASE_URL)."""
    admin = runner(tmp_path, {**os.environ, "RINGWELL_DATABASE_URL": db_url})
    admin("create-org", "--name", "Acme")
    admin("create-org", "--name", "Other")
    admin("create-user", "--org", "Acme", "--email", "bob@example.com", "--extension", "102")
    admin("add-trunk", "--name", "carrier-a", "--host", "192.0.2.10")
    inventory = tmp_path / "numbers.csv"
    inventory.write_text(INVENTORY)
    assert admin("import-numbers", str(inventory)).stdout == "imported 3 numbers\n"

    bad = tmp_path / "bad.csv"
    bad.write_text(INVENTORY.splitlines()[0] + "\n+1 303 555 0100,US,fixed,2.00,1.00,\n"
                   "+1 303 555 0101,US,fixed,abc,1.00,\n")
    result = admin("import-numbers", str(bad), ok=False)
    assert result.stderr == "error: line 3: monthly_price: not an amount: 'abc' (expected e.g. 10.00)\n"

    out = admin("search-numbers", "--country", "US", "--area", "415").stdout.splitlines()
    assert [line.split()[0] for line in out] == ["+14155550100", "+14155550101"]
    assert "2.50 USD/month" in out[0] and "setup 1.00 USD" in out[0]
    found = json.loads(admin("search-numbers", "--type", "mobile", "--json").stdout)
    assert found == [{"number": "+14155550101", "country": "US", "type": "mobile", "currency": "USD",
                      "monthly_price_minor": 300, "setup_price_minor": 0, "monthly_price": "3.00",
                      "setup_price": "0.00"}]
    assert admin("search-numbers", "--area", "999").stdout == "no available numbers found\n"

    result = admin("rent-number", "--org", "Acme", "+1 415 555 0100", ok=False)
    assert result.stderr == ("error: renting +14155550100 costs 3.50 USD (setup 1.00 USD + first month 2.50 USD); "
                             "the available credit is 0.00 USD\n")
    admin("credit", "--org", "Acme", "--amount", "10.00", "--reason", "test", "--operator", "tester")
    out = admin("rent-number", "--org", "Acme", "(415) 555-0100").stdout
    assert re.fullmatch(r"rented \+14155550100 to Acme: charged 3\.50 USD \(setup 1\.00 USD \+ first month "
                        r"2\.50 USD\); paid until \d{4}-\d\d-\d\d \d\d:\d\d UTC\n"
                        r"available credit: 6\.50 USD\n", out), out
    admin("rent-number", "--org", "Acme", "+14155550101")
    assert "available 3.50 USD" in admin("balance", "--org", "Acme").stdout

    assert admin("route-number", "+14155550100", "--extension", "102").stdout == "+14155550100 rings extension 102\n"
    result = admin("route-number", "+12125550100", "--extension", "102", ok=False)
    assert result.stderr == "error: +12125550100 is not rented by any organization\n"
    result = admin("release-number", "--org", "Other", "+14155550100", ok=False)
    assert result.stderr == "error: +14155550100 is not rented by this organization\n"

    rows = json.loads(admin("numbers", "--org", "Acme", "--json").stdout)
    assert [(row["number"], row["extension"]) for row in rows] == [("+14155550100", "102"), ("+14155550101", None)]
    text = admin("numbers", "--org", "Acme").stdout
    assert "rings 102" in text and "rings nobody" in text
    assert admin("numbers", "--org", "Other").stdout == "Other rents no numbers\n"

    # The renewal job: one number due an hour ago (paid), the other due in a day (warned).
    now = datetime.now(UTC)
    await set_paid_until(db_url, "+14155550100", now - timedelta(hours=1))
    await set_paid_until(db_url, "+14155550101", now + timedelta(days=1))
    out = admin("renew-numbers").stdout.splitlines()
    assert out[-1] == "1 warned, 1 renewed, 0 released"
    # Warned after the renewal took 2.50 of the 3.50 left: 1.00 does not cover the 3.00 due.
    assert re.fullmatch(r"warned   \+14155550101 +Acme: 3\.00 USD due .* UTC \(the credit does NOT cover it\)",
                        out[0])
    assert re.fullmatch(r"renewed  \+14155550100 +Acme: charged 2\.50 USD, paid until .* UTC", out[1])
    assert admin("renew-numbers").stdout == "0 warned, 0 renewed, 0 released\n"
    assert "available 1.00 USD" in admin("balance", "--org", "Acme").stdout
    # Due with 1.00 USD left for a 3.00 USD month: released.
    await set_paid_until(db_url, "+14155550101", now - timedelta(minutes=1))
    out = [" ".join(line.split()) for line in admin("renew-numbers").stdout.splitlines()]
    assert out == ["released +14155550101 Acme: the credit did not pay 3.00 USD", "0 warned, 0 renewed, 1 released"]

    out = admin("release-number", "--org", "Acme", "+14155550100").stdout
    assert re.fullmatch(r"released \+14155550100 from Acme; in quarantine until \d{4}-\d\d-\d\d \d\d:\d\d UTC\n", out)
    assert "+14155550100" not in admin("search-numbers").stdout
    result = admin("rent-number", "--org", "Other", "+14155550100", ok=False)
    assert result.stderr == "error: +14155550100 is in quarantine\n"


def test_number_command_errors(tmp_path):
    admin = runner(tmp_path)
    admin("create-org", "--name", "Acme")
    result = admin("rent-number", "--org", "Nope", "+14155550100", ok=False)
    assert result.stderr == "error: no organization named 'Nope'\n"
    result = admin("rent-number", "--org", "Acme", "123", ok=False)
    assert result.stderr == "error: not a phone number: '123' (too short for +1 (US))\n"
    result = admin("search-numbers", "--type", "landline", ok=False)
    assert result.stderr.startswith("error: unknown type 'landline'")
    assert json.loads(admin("search-numbers", "--json").stdout) == []
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = admin("import-numbers", str(empty), ok=False)
    assert result.stderr.startswith("error: line 1: the file is empty")
