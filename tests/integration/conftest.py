"""Fixtures of the storage tests: an engine and a session factory on the migrated ``db_url``
(SQLite and PostgreSQL, see ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from ringwell.storage.engine import create_engine, session_factory


@pytest.fixture
async def engine(db_url):
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine):
    return session_factory(engine)
