"""The operator CLI as a person runs it: output, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

RINGWELL = [sys.executable, "-m", "ringwell"]


def run(data_dir, *args, ok=True):
    result = subprocess.run([*RINGWELL, *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                            timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


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


def test_config_error_exit_code(tmp_path):
    result = subprocess.run([*RINGWELL, "admin", "registrations", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, env={"RINGWELL_SIP_PORT": "x", "PATH": ""})
    assert result.returncode == 2 and "sip_port" in result.stderr
