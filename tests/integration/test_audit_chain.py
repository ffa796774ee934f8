"""The hash-chained audit trail on SQLite and PostgreSQL: an untouched trail verifies; an event
edited or removed directly in the database (as someone with database access would) is named;
purging old events keeps the chain verifiable and every other deletion is still refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Connection, String, column, insert, make_url, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from ringwell.features.audit.chain import GENESIS, Problem
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.storage.base import UTCDateTime
from ringwell.storage.engine import MIGRATIONS_DIR, async_url, create_engine, migrate, session_factory
from tests.conftest import POSTGRES_ENV, postgres_url

_OLD_EVENTS = table("audit_events", column("id", String()), column("at", UTCDateTime()), column("action", String()),
                    column("outcome", String()), column("details", JSON(none_as_null=True)))
ALICE = Actor(user_id="u-alice", org_id="o-acme", role="owner", ip="192.0.2.7", user_agent="pytest")


@pytest.fixture
def audit(sessions) -> AuditLog:
    return AuditLog(sessions)


async def _write(audit: AuditLog, n: int, action: str = "users.update") -> None:
    for i in range(n):
        await audit.record(action, ALICE, org_id="o-acme", target_type="user", target_id=f"u-{i}",
                           details={"changed": ["name"], "n": i, "note": "Zoë"})


async def _raw(engine, statement: str, params: dict | None = None, *, bypass: bool) -> None:
    """Run ``statement`` as a database user would, the append-only triggers out of the way if ``bypass``."""
    sqlite = engine.dialect.name == "sqlite"
    async with engine.begin() as conn:
        if bypass and sqlite:
            await conn.execute(text("DROP TRIGGER audit_events_no_update"))
            await conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        elif bypass:
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        await conn.execute(text(statement), params or {})


async def _seq_id(engine, seq: int) -> str:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT id FROM audit_events WHERE seq = :s"), {"s": seq})).scalar_one()


async def test_an_untouched_trail_verifies_and_is_one_line(audit, engine):
    await _write(audit, 5)
    result = await audit.verify()
    assert result.intact and result.count == 5 and result.head.seq == 5
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq"))).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, 5))
    assert result.head.hash == rows[-1].hash


async def test_editing_one_event_in_the_database_is_detected_and_named(audit, engine):
    await _write(audit, 6)
    victim = await _seq_id(engine, 3)
    await _raw(engine, "UPDATE audit_events SET reason = 'nothing to see' WHERE id = :id", {"id": victim},
               bypass=True)
    result = await audit.verify()
    assert not result.intact and result.broken is not None
    assert (result.broken.problem, result.broken.event_id, result.broken.seq) == (Problem.EDITED, victim, 3)


async def test_editing_the_details_json_or_the_time_is_detected(audit, engine):
    await _write(audit, 3)
    victim = await _seq_id(engine, 2)
    await _raw(engine, "UPDATE audit_events SET details = NULL WHERE id = :id", {"id": victim}, bypass=True)
    result = await audit.verify()
    assert result.broken is not None and result.broken.event_id == victim
    assert result.broken.problem is Problem.EDITED


async def test_removing_an_event_in_the_middle_or_at_the_end_is_detected(audit, engine):
    await _write(audit, 6)
    after_gap = await _seq_id(engine, 4)
    await _raw(engine, "DELETE FROM audit_events WHERE seq = 3", bypass=True)
    result = await audit.verify()
    assert result.broken is not None
    assert (result.broken.problem, result.broken.event_id, result.broken.seq) == (Problem.REMOVED, after_gap, 4)
    assert "seq 3" in result.broken.explanation


async def test_removing_the_last_events_is_detected(audit, engine):
    await _write(audit, 4)
    await _raw(engine, "DELETE FROM audit_events WHERE seq >= 3", bypass=True)
    result = await audit.verify()
    assert result.broken is not None and result.broken.problem is Problem.REMOVED
    assert result.broken.event_id is None and result.broken.seq == 4


async def test_the_database_still_refuses_plain_updates_and_deletes(audit, engine):
    await _write(audit, 3)
    for statement in ("UPDATE audit_events SET action = 'x.y'", "DELETE FROM audit_events WHERE seq = 2",
                      "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            await _raw(engine, statement, bypass=False)
    assert (await audit.verify()).count == 3


async def test_purging_old_events_keeps_the_trail_verifiable(audit, engine):
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        await _write(audit, 4, "old.thing")
    with time_machine.travel(start + timedelta(days=400), tick=False):
        await _write(audit, 2, "new.thing")
    purged = await audit.purge_before(start + timedelta(days=365))
    assert purged == 4
    result = await audit.verify()
    assert result.intact, result.broken
    assert result.head.anchor_seq == 4 and result.count == 3  # two new events and the purge's own record
    async with engine.connect() as conn:
        actions = (await conn.execute(text("SELECT action FROM audit_events ORDER BY seq"))).scalars().all()
    assert actions == ["new.thing", "new.thing", "audit.purge"]
    # A second purge with nothing old left removes nothing; plain deletes are still refused.
    assert await audit.purge_before(start + timedelta(days=365)) == 0
    with pytest.raises(DBAPIError, match="append-only"):
        await _raw(engine, "DELETE FROM audit_events WHERE action = 'new.thing'", bypass=False)
    # New events continue the chain after the purge.
    await _write(audit, 1)
    assert (await audit.verify()).intact


async def test_removing_events_after_a_purge_is_still_detected(audit, engine):
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        await _write(audit, 3, "old.thing")
    await _write(audit, 3, "new.thing")
    await audit.purge_before(start + timedelta(days=1))
    first_left = await _seq_id(engine, 4)
    await _raw(engine, "DELETE FROM audit_events WHERE seq = 4", bypass=True)
    result = await audit.verify()
    assert result.broken is not None and result.broken.problem is Problem.REMOVED
    assert result.broken.event_id != first_left and result.broken.seq == 5


async def test_concurrent_writers_never_fork_the_chain(db_url, audit):
    # A second engine stands for a second server node sharing the database.
    other_engine = create_engine(db_url)
    other = AuditLog(session_factory(other_engine))
    try:
        await asyncio.gather(*(log.record("calls.read", ALICE, org_id="o-acme", target_id=str(i))
                               for i in range(20) for log in (audit, other)))
    finally:
        await other_engine.dispose()
    result = await audit.verify()
    assert result.intact and result.count == 40 and result.head.seq == 40


async def test_a_change_rolled_back_leaves_no_event_and_no_gap(audit, sessions):
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await audit.record("org.update", ALICE, org_id="o-acme", session=session)
            await session.flush()
            raise RuntimeError("the change failed")
    await _write(audit, 1)
    result = await audit.verify()
    assert result.intact and result.count == 1 and result.head.seq == 1


def _recompute(lines: list[dict]) -> bool:
    """The recipe of docs/privacy-audit.md, written independently of ringwell.features.audit.chain."""
    prev = lines[0]["prev_hash"]
    for line in lines:
        body = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if line["prev_hash"] != prev or hashlib.sha256(prev.encode() + b"\n" + encoded).hexdigest() != line["hash"]:
            return False
        prev = line["hash"]
    return True


async def test_the_export_can_be_verified_offline(audit):
    await _write(audit, 3)
    lines = [json.loads(json.dumps(item)) async for item in audit.export()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[0]["at"].endswith("Z") and lines[0]["details"]["note"] == "Zoë"
    assert _recompute(lines)
    lines[1]["target_id"] = "someone-else"
    assert not _recompute(lines)


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def empty_url(request, tmp_path):
    """An empty database (not migrated): a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    name = "rw_old_" + secrets.token_hex(6)
    admin = create_async_engine(async_url(base), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(async_url(base)).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()


async def test_the_migration_chains_events_written_before_it(empty_url):
    engine = create_engine(empty_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, "0016")
        async with engine.begin() as conn:
            for i, at in enumerate((datetime(2026, 1, 2, 10, 0, 0, 1, tzinfo=UTC), datetime(2026, 1, 1, 10, tzinfo=UTC),
                                    datetime(2026, 1, 2, 10, tzinfo=UTC))):
                await conn.execute(
                    insert(_OLD_EVENTS).values(id=f"e{i}", at=at, action="auth.login", outcome="ok",
                                               details={"i": i, "who": "Zoë"} if i else None))
        await migrate(engine)
        log = AuditLog(session_factory(engine))
        result = await log.verify()
        assert result.intact and result.count == 3
        async with engine.connect() as conn:
            order = (await conn.execute(text("SELECT id FROM audit_events ORDER BY seq"))).scalars().all()
        assert order == ["e1", "e2", "e0"]  # oldest first
        await log.record("x.y", ALICE, org_id=None)
        assert (await log.verify()).head.seq == 4
        with pytest.raises(DBAPIError, match="append-only"):
            await _raw(engine, "DELETE FROM audit_events WHERE id = 'e1'", bypass=False)
    finally:
        await engine.dispose()


async def test_several_events_of_one_change_are_chained_in_the_order_added(audit, sessions, engine):
    async with sessions() as session, session.begin():
        for action in ("users.create", "users.role", "users.invite"):
            await audit.record(action, ALICE, org_id="o-acme", session=session)
    assert (await audit.verify()).count == 3
    async with engine.connect() as conn:
        actions = (await conn.execute(text("SELECT action FROM audit_events ORDER BY seq"))).scalars().all()
    assert actions == ["users.create", "users.role", "users.invite"]
