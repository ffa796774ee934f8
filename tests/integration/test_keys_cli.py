"""``ringwell admin keys rotate`` and ``keys rewrap`` as an operator runs them."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys

from ringwell.blobs import blob_store
from ringwell.settings import load_settings
from ringwell.storage.engine import create_engine, session_factory

RINGWELL = [sys.executable, "-m", "ringwell"]


def run(data_dir, *args, ok=True):
    result = subprocess.run([*RINGWELL, *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                            timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def store_hold_music(data_dir, org_id: str) -> str:
    async def go() -> str:
        settings = load_settings(data_dir)
        engine = create_engine(settings.effective_database_url)
        try:
            ref = await blob_store(settings, session_factory(engine)).put(org_id, "hold_music", b"tune" * 5000,
                                                                          content_type="audio/wav")
            return ref.id
        finally:
            await engine.dispose()

    return asyncio.run(go())


def read(data_dir, org_id: str, blob_id: str) -> bytes:
    async def go() -> bytes:
        settings = load_settings(data_dir)
        engine = create_engine(settings.effective_database_url)
        try:
            return await blob_store(settings, session_factory(engine)).read_all(org_id, blob_id)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_rotate_and_reencrypt_an_org_then_rewrap_the_master_key(tmp_path):
    org_id = run(tmp_path, "admin", "create-org", "--name", "Acme").stdout.strip()
    blob_id = store_hold_music(tmp_path, org_id)
    before = (tmp_path / "blobs" / org_id / blob_id).read_bytes()
    out = run(tmp_path, "admin", "keys", "rotate", "--org", "Acme")
    assert "1 new data key(s); 0 file(s) re-encrypted" in out.stdout
    assert (tmp_path / "blobs" / org_id / blob_id).read_bytes() == before
    out = run(tmp_path, "admin", "keys", "rotate", "--org", "Acme", "--reencrypt")
    assert "1 file(s) re-encrypted; 2 old key(s) destroyed" in out.stdout
    assert "[##############################] 1/1" in out.stderr
    assert (tmp_path / "blobs" / org_id / blob_id).read_bytes() != before
    assert read(tmp_path, org_id, blob_id) == b"tune" * 5000
    missing = run(tmp_path, "admin", "keys", "rotate", "--org", "Nope", ok=False)
    assert missing.returncode == 1 and "Nope" in missing.stderr

    new_key = tmp_path / "new-master.key"
    out = run(tmp_path, "admin", "keys", "rewrap", "--out", str(new_key))
    assert "re-wrapped 1 data key(s)" in out.stdout
    assert stat.S_IMODE(new_key.stat().st_mode) == 0o600
    assert new_key.read_text().strip() not in out.stdout + out.stderr  # the key is never printed
    (tmp_path / "master.key").write_text(new_key.read_text())
    assert read(tmp_path, org_id, blob_id) == b"tune" * 5000
    again = run(tmp_path, "admin", "keys", "rewrap", "--out", str(new_key), ok=False)
    assert again.returncode == 1 and "exists" in again.stderr
