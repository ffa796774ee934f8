"""Shared fixtures: databases (SQLite and PostgreSQL) and an in-process Ringwell server."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ringwell.storage.engine import async_url, create_engine, migrate

POSTGRES_ENV = "RINGWELL_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


# Each test gets a database of its own, copied from one migrated per session: SQLite from a
# template file, PostgreSQL with CREATE DATABASE ... TEMPLATE. Migrating from scratch for every
# test (about 0.5 s on SQLite, 0.7 s on PostgreSQL, 700+ tests) was minutes of every run; the
# migrations themselves are tested on their own (test_storage, test_migrations_match_the_models).
_templates: dict[str, str] = {}


async def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "sqlite" not in _templates:
        path = tmp_path_factory.mktemp("db-template") / "template.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate(engine)
        await engine.dispose()
        _templates["sqlite"] = str(path)
    return Path(_templates["sqlite"])


async def _postgres_template(admin: AsyncEngine, base: str, config: pytest.Config) -> str:
    if "postgresql" not in _templates:
        name = "rw_template_" + secrets.token_hex(6)
        async with admin.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name}"))
        engine = create_engine(make_url(async_url(base)).set(database=name).render_as_string(hide_password=False))
        await migrate(engine)
        await engine.dispose()
        _templates["postgresql"] = name

        def drop() -> None:
            async def run() -> None:
                dropper = create_async_engine(async_url(base), isolation_level="AUTOCOMMIT")
                async with dropper.connect() as conn:
                    await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                await dropper.dispose()

            asyncio.run(run())

        config.add_cleanup(drop)
    return _templates["postgresql"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request, tmp_path, tmp_path_factory) -> AsyncIterator[str]:
    """A migrated, empty database: SQLite in tmp_path, or a fresh database in PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(await _sqlite_template(tmp_path_factory), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip(f"{POSTGRES_ENV} is not set (CI sets it; the test then must run)")
    name = "rw_" + secrets.token_hex(6)
    admin: AsyncEngine = create_async_engine(async_url(base), isolation_level="AUTOCOMMIT")
    template = await _postgres_template(admin, base, request.config)
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))
    url = make_url(async_url(base)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()


# Run with the interop tests, never beside them: files that keep a core busy for long stretches
# (speech recognition), whose load disturbs the phones judging audio in real time; and files that
# judge real-time pacing themselves (packets 20 ms apart within 15 ms), which a browser beside
# them, taking both cores, disturbs.
_WITH_INTEROP = frozenset({"tests/integration/test_transcribe.py", "tests/integration/test_media_apps.py"})


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """How ``make test``'s two pytest-xdist workers share the tests (decision 0017).

    A test file's tests stay on one worker, so a module-scoped fixture starts its peers once; the
    interop tests, which drive real phones and browsers in real time, all run on one worker, one
    after the other (with the speech-recognition tests, ``_WITH_INTEROP``), while the other worker
    takes the rest. (xdist's own ``loadgroup`` cannot do
    this under pytest 9.2: it renames items through ``_nodeid``, which pytest no longer reads.)
    """
    from xdist.scheduler import LoadScopeScheduling  # only when xdist distributes

    class ByFileInteropTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/interop" if path.startswith("tests/interop/") or path in _WITH_INTEROP else path

    return ByFileInteropTogether(config, log)
