"""The operator CLI as a person runs it: output, exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

from ringwell.features.accounts.service import AccountsService
from ringwell.features.cdr.service import CallClosed, CallOpened, CdrWriter
from ringwell.storage.base import new_id
from ringwell.storage.engine import create_engine, session_factory
from tests.cli import RINGWELL, run


def test_admin_commands(tmp_path):
    org_id = run(tmp_path, "admin", "create-org", "--name", "Acme").stdout.strip()
    assert len(org_id) == 36
    out = run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "a@example.com", "--extension", "101")
    assert "SIP password (shown once):" in out.stdout
    password = out.stdout.rsplit(": ", 1)[1].strip()
    assert len(password) >= 20
    out = run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "b@example.com", "--extension", "102",
              "--sip-username", "bob", "--sip-password", "bob-password")
    assert "SIP username bob" in out.stdout and "shown once" not in out.stdout
    dup = run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "c@example.com", "--extension", "103",
              "--sip-username", "bob", ok=False)
    assert dup.returncode == 1 and "taken" in dup.stderr
    missing = run(tmp_path, "admin", "create-user", "--org", "Nope", "--email", "c@example.com", "--extension",
                  "103", ok=False)
    assert missing.returncode == 1 and "no organization named 'Nope'" in missing.stderr
    assert json.loads(run(tmp_path, "admin", "registrations", "--json").stdout) == []
    assert "no registrations" in run(tmp_path, "admin", "registrations").stdout
    out = run(tmp_path, "admin", "set-sip-password", "--sip-username", "bob")
    assert "new SIP password (shown once)" in out.stdout
    # The generated passwords are nowhere on disk.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes()


def test_bulk_users_all_or_nothing(tmp_path):
    run(tmp_path, "admin", "create-org", "--name", "Acme")
    good = tmp_path / "good.csv"
    good.write_text("email,extension,sip_username,sip_password\n"
                    "a@example.com,101,alice,alice-password\nb@example.com,102,bob,\n")
    assert "created 2 users" in run(tmp_path, "admin", "bulk-users", "--org", "Acme", "--csv", str(good)).stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("email,extension,sip_username,sip_password\n"
                   "c@example.com,103,carol,carol-password\nd@example.com,1x,dave,dave-password\n")
    result = run(tmp_path, "admin", "bulk-users", "--org", "Acme", "--csv", str(bad), ok=False)
    assert result.returncode == 1 and "extension" in result.stderr


def test_setup_demo_is_idempotent(tmp_path):
    first = run(tmp_path, "setup-demo").stdout
    assert "demo101" in first and "demo102" in first and "password" in first
    second = run(tmp_path, "setup-demo").stdout
    assert "set at first run" in second
    assert (tmp_path / "ringwell.toml").exists()


async def test_setup_demo_prints_a_portal_login_that_works(tmp_path):
    import re

    from ringwell.server import RingwellServer
    from ringwell.settings import load_settings

    printed = run(tmp_path, "setup-demo").stdout
    match = re.search(r"portal login (\S+)  password (\S+)", printed)
    assert match, printed
    email, password = match.groups()
    server = RingwellServer(load_settings(tmp_path, env={}))
    try:
        result = await server.web.auth.login(email, password, "127.0.0.1", "pytest")
        assert result.token and not result.mfa_pending
        identity = await server.web.web_sessions.resolve(result.token)
        assert identity is not None and identity.role == "owner" and "billing.topup" in identity.permissions
    finally:
        await server.engine.dispose()
    assert password not in run(tmp_path, "setup-demo").stdout  # shown once


def test_config_error_exit_code(tmp_path):
    result = subprocess.run([*RINGWELL, "admin", "registrations", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, env={"RINGWELL_SIP_PORT": "x", "PATH": ""})
    assert result.returncode == 2 and "sip_port" in result.stderr


async def write_calls(db_url, calls):
    """Write call records through the CDR writer, as the server does; returns their ids."""
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    accounts = AccountsService(sessions, "ringwell")
    writer = CdrWriter(sessions)
    ids = []
    started = datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)
    try:
        for offset, (org, caller, callee, disposition, status, reason) in enumerate(calls):
            users = {user.extension: user.id for user, _ in await accounts.users(org)}
            call_id = new_id()
            at = started + timedelta(minutes=offset)
            writer.opened(CallOpened(call_id, (await accounts.org(org)).id, f"{call_id}@10.0.0.5", "internal",
                                     users[caller], caller, caller, callee, at))
            answered = at + timedelta(seconds=3) if disposition == "answered" else None
            ended = at + timedelta(seconds=45)
            writer.closed(CallClosed(call_id, users.get(callee), callee, answered, ended,
                                     ((answered or ended) - at).total_seconds(),
                                     (ended - answered).total_seconds() if answered else 0.0, disposition, "caller",
                                     status, reason, "PCMU" if answered else None,
                                     {"caller": {"packets": 2100}} if answered else None))
            ids.append(call_id)
        await writer.stop()
    finally:
        await engine.dispose()
    return ids


async def test_admin_calls(tmp_path, db_url):
    """On SQLite and PostgreSQL (the database chosen by RINGWELL_DATABASE_URL)."""
    env = {**os.environ, "RINGWELL_DATABASE_URL": db_url}

    def admin(*args, ok=True):
        result = subprocess.run([*RINGWELL, "admin", *args, "--data-dir", str(tmp_path)], capture_output=True,
                                text=True, timeout=60, env=env)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def calls(*args, ok=True):
        return admin("calls", *args, ok=ok)

    assert json.loads(calls("--json").stdout) == []
    assert "no calls" in calls().stdout
    admin("create-org", "--name", "Acme")
    admin("create-org", "--name", "Other")
    for org, ext in (("Acme", "101"), ("Acme", "102"), ("Other", "201")):
        admin("create-user", "--org", org, "--email", f"u{ext}@example.com", "--extension", ext)
    answered, busy, other = await write_calls(db_url, [
        ("Acme", "101", "102", "answered", 200, "OK"),
        ("Acme", "102", "101", "busy", 486, "Busy Here"),
        ("Other", "201", "299", "failed", 404, "Not Found"),
    ])

    rows = json.loads(calls("--json").stdout)
    assert [row["id"] for row in rows] == [other, busy, answered]  # newest first
    first = rows[2]
    assert first == {
        "id": answered, "org_id": first["org_id"], "org_name": "Acme", "sip_call_id": f"{answered}@10.0.0.5",
        "direction": "internal", "caller_user_id": first["caller_user_id"], "caller_extension": "101",
        "caller_number": "101", "callee_user_id": first["callee_user_id"], "callee_extension": "102",
        "callee_number": "102", "started_at": "2026-03-01T09:30:00.250000+00:00",
        "answered_at": "2026-03-01T09:30:03.250000+00:00", "ended_at": "2026-03-01T09:30:45.250000+00:00",
        "last_alive_at": "2026-03-01T09:30:45.250000+00:00", "ring_seconds": 3.0, "talk_seconds": 42.0,
        "state": "closed", "disposition": "answered", "hangup_by": "caller", "sip_status": 200, "sip_reason": "OK",
        "codec": "PCMU", "media": {"caller": {"packets": 2100}}, "node": None, "trunk_id": None,
        "rate_deck": None, "rate_prefix": None, "price_micros": None, "billable_seconds": None,
        "charge_minor": None, "cost_minor": None, "currency": None,
    }
    assert len(first["org_id"]) == len(first["caller_user_id"]) == len(first["callee_user_id"]) == 36

    assert [row["id"] for row in json.loads(calls("--org", "Acme", "--json").stdout)] == [busy, answered]
    assert [row["id"] for row in json.loads(calls("--org", "Other", "--json").stdout)] == [other]
    assert [row["id"] for row in json.loads(calls("--json", "--limit", "1").stdout)] == [other]

    table = calls("--org", "Acme").stdout.splitlines()
    assert table[0].split() == ["started", "(UTC)", "from", "to", "disposition", "ring", "s", "talk", "s",
                                "hangup", "by", "cause", "codec", "charge", "carrier", "cost"]
    assert table[1].split() == ["2026-03-01T09:31:00Z", "102", "101", "busy", "45.0", "0.0", "caller", "486",
                                "Busy", "Here", "-", "-", "-"]
    assert table[2].split() == ["2026-03-01T09:30:00Z", "101", "102", "answered", "3.0", "42.0", "caller", "200",
                                "OK", "PCMU", "-", "-"]
    assert calls().stdout.splitlines()[1].split()[:2] == ["Other", "2026-03-01T09:32:00Z"]  # all orgs: org first

    missing = calls("--org", "Nope", ok=False)
    assert missing.returncode == 1 and "no organization named 'Nope'" in missing.stderr
    bad = calls("--limit", "0", ok=False)
    assert bad.returncode == 1 and "limit" in bad.stderr


def test_set_ring_timeout(tmp_path):
    run(tmp_path, "admin", "create-org", "--name", "Acme")
    run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "a@example.com", "--extension", "101")
    out = run(tmp_path, "admin", "set-ring-timeout", "--org", "Acme", "--extension", "101", "--seconds", "12")
    assert out.stdout.strip() == "extension 101 rings for 12 s"
    for args, message in (
        (("--org", "Acme", "--extension", "101", "--seconds", "0"), "1 to 600 seconds"),
        (("--org", "Acme", "--extension", "999", "--seconds", "10"), "no extension '999'"),
        (("--org", "Nope", "--extension", "101", "--seconds", "10"), "no organization named 'Nope'"),
    ):
        bad = run(tmp_path, "admin", "set-ring-timeout", *args, ok=False)
        assert bad.returncode == 1 and message in bad.stderr, bad.stderr
