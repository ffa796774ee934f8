"""``ringwell admin keys rotate`` and ``keys rewrap`` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ringwell.blobs import blob_store
from ringwell.blobs.models import OrgDataKey
from ringwell.features.accounts.models import User
from ringwell.settings import load_settings
from ringwell.storage.engine import create_engine, session_factory
from tests.cli import run


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


def test_the_retention_command_erases_a_closed_account_and_destroys_its_keys(tmp_path):
    """``ringwell admin retention`` deletes a long-closed account as the server does: the person is
    erased (their data keys destroyed, so a backup of their files never decrypts), not merely deleted."""
    org_id = run(tmp_path, "admin", "create-org", "--name", "Acme").stdout.strip()
    run(tmp_path, "admin", "create-user", "--org", "Acme", "--email", "gone@example.com", "--extension", "101")

    async def close_account() -> tuple[str, str]:
        settings = load_settings(tmp_path)
        engine = create_engine(settings.effective_database_url)
        try:
            sessions = session_factory(engine)
            async with sessions() as session, session.begin():
                user = (await session.execute(select(User).where(User.email == "gone@example.com"))).scalar_one()
                user.disabled_at = datetime.now(UTC) - timedelta(days=200)
            ref = await blob_store(settings, sessions).put(org_id, "greeting", b"hello" * 1000,
                                                           content_type="audio/wav", owners=(user.id,))
            return user.id, ref.id
        finally:
            await engine.dispose()

    async def keys_of(user_id: str) -> list[tuple[bytes | None, datetime | None]]:
        settings = load_settings(tmp_path)
        engine = create_engine(settings.effective_database_url)
        try:
            async with session_factory(engine)() as session:
                rows = (await session.execute(select(OrgDataKey.wrapped_key, OrgDataKey.destroyed_at)
                                              .where(OrgDataKey.user_id == user_id))).all()
            return [(row[0], row[1]) for row in rows]
        finally:
            await engine.dispose()

    user_id, _blob_id = asyncio.run(close_account())
    assert [wrapped is not None for wrapped, _ in asyncio.run(keys_of(user_id))] == [True]
    out = run(tmp_path, "admin", "retention", "--json")
    assert json.loads(out.stdout)["counts"]["closed_accounts"] == {"purged": 1, "held": 0}
    keys = asyncio.run(keys_of(user_id))
    assert keys and all(wrapped is None and destroyed is not None for wrapped, destroyed in keys)
