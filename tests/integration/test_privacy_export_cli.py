"""``ringwell admin export-person`` as the operator runs it: the zip, the progress line, no overwrite."""

from __future__ import annotations

import json
import os
import stat
import zipfile

from tests.cli import run as run_cli


def run(data_dir, *args, ok=True):
    return run_cli(data_dir, *args, ok=ok, timeout=120)  # an export of audio takes longer than 60 s on a busy CI


def test_export_person_writes_the_zip_with_progress_and_never_overwrites(tmp_path):
    run(tmp_path, "admin", "create-org", "--name", "Acme")
    run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "ann@example.com", "--extension", "101",
        "--sip-username", "ann")
    run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "ben@example.com", "--extension", "102",
        "--sip-username", "benjamin")
    out = tmp_path / "ann.zip"
    # ann has no verified login: her user email names her only in the organization the operator names
    unnamed = run(tmp_path, "admin", "export-person", "ann@example.com", "--out", str(out), ok=False)
    assert unnamed.returncode == 1 and "--org" in unnamed.stderr and not out.exists()
    old_umask = os.umask(0o022)  # the default: a file would be world-readable
    try:
        result = run(tmp_path, "admin", "export-person", "ANN@example.com", "--org", "Acme", "--out", str(out))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # a person's data: the operator's eyes only
    # the bar is one line rewritten with \r (text mode reads it as new lines)
    assert "export: " in result.stderr and " rows, " in result.stderr.splitlines()[-1]
    assert str(out) in result.stdout
    archive = zipfile.ZipFile(out)
    account = json.loads(archive.read("account.json"))["tables"]
    assert [u["email"] for u in account["users"]] == ["ann@example.com"]
    assert [c["username"] for c in account["sip_credentials"]] == ["ann"]
    assert b"benjamin" not in out.read_bytes() and b"ben@example.com" not in out.read_bytes()
    before = out.read_bytes()
    again = run(tmp_path, "admin", "export-person", "ann@example.com", "--org", "Acme", "--out", str(out), ok=False)
    assert again.returncode == 1 and "exists" in again.stderr
    assert out.read_bytes() == before
    missing = run(tmp_path, "admin", "export-person", "nobody@example.com", "--out", str(tmp_path / "n.zip"),
                  ok=False)
    assert missing.returncode == 1 and "nobody" in missing.stderr and not (tmp_path / "n.zip").exists()
