"""``ringwell admin audit verify | export | access-review`` as an operator runs them (SQLite data dir)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from tests.cli import run


def test_verify_export_and_access_review_from_the_command_line(tmp_path):
    run(tmp_path, "admin", "create-org", "--name", "Acme")
    run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "a@example.com", "--extension", "101")
    run(tmp_path, "admin", "create-staff", "--email", "olga@example.com", "--role", "auditor")
    run(tmp_path, "admin", "create-staff", "--email", "sam@example.com", "--role", "support")

    review = json.loads(run(tmp_path, "admin", "audit", "access-review", "--json").stdout)
    assert {(s["email"], s["role"], s["mfa"]) for s in review} == {("olga@example.com", "auditor", False),
                                                                    ("sam@example.com", "support", False)}
    assert all(s["last_sign_in"] is None for s in review)
    table = run(tmp_path, "admin", "audit", "access-review").stdout
    assert "olga@example.com" in table and "OFF" in table and "2 staff users, 2 active without MFA" in table

    out = run(tmp_path, "admin", "audit", "verify").stdout
    assert out.startswith("audit trail intact: ") and "events, head " in out
    count = int(out.split(": ", 1)[1].split(" ", 1)[0])
    assert count >= 3  # the two staff logins made and the two reviews, at least

    exported = tmp_path / "audit.jsonl"
    run(tmp_path, "admin", "audit", "export", "--out", str(exported))
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, count + 1))
    assert "audit.access_review" in {line["action"] for line in lines}
    # Re-verify with nothing but the recipe in docs/privacy-audit.md.
    prev = "0" * 64
    for line in lines:
        body = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert line["prev_hash"] == prev
        assert hashlib.sha256(prev.encode() + b"\n" + encoded).hexdigest() == line["hash"]
        prev = line["hash"]
    assert run(tmp_path, "admin", "audit", "export", "--since", "2999-01-01").stdout == ""

    # Someone with access to the database file edits one event: verify fails and names it.
    victim = lines[1]["id"]
    db = sqlite3.connect(tmp_path / "ringwell.db")
    db.execute("DROP TRIGGER audit_events_no_update")
    db.execute("UPDATE audit_events SET actor_role = 'owner' WHERE id = ?", (victim,))
    db.commit()
    db.close()
    broken = run(tmp_path, "admin", "audit", "verify", ok=False)
    assert broken.returncode == 1
    assert f"event {victim} (seq 2): edited" in broken.stderr
