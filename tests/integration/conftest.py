"""Fixtures of the storage tests: an engine and a session factory on the migrated ``db_url``
(SQLite and PostgreSQL, see ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.storage.engine import create_engine, session_factory


@pytest.fixture
async def engine(db_url):
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine):
    return session_factory(engine)


@pytest.fixture
async def acme(sessions):
    """Two organizations; Acme has alice (101) and bob (102), Other has carol (201)."""
    accounts = AccountsService(sessions, "ringwell")
    await accounts.create_org("Acme")
    await accounts.create_org("Other")
    alice = await accounts.create_user("Acme", UserSpec("alice@example.com", "101", "alice", "password1"))
    bob = await accounts.create_user("Acme", UserSpec("bob@example.com", "102", "bob", "password1"))
    carol = await accounts.create_user("Other", UserSpec("carol@example.com", "201", "carol", "password1"))
    return {"acme": alice.user.org_id, "other": carol.user.org_id, "alice": alice.user.id, "bob": bob.user.id,
            "carol": carol.user.id}
