"""Storage on SQLite and PostgreSQL: accounts, HA1-only credentials, bindings, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select, text

from ringwell.errors import Conflict, Invalid, NotFound
from ringwell.features.accounts.models import SipCredential
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.registrations import repository as bindings_repo
from ringwell.pbx.registrar import BindingStore, Registrar, RegistrarLimits
from ringwell.sip.digest import compute_ha1
from ringwell.storage.engine import create_engine, migrate, session_factory
from ringwell.transport.source import Source
from tests.factories import parsed_request


@pytest.fixture
async def sessions(db_url):
    engine = create_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_migrations_are_idempotent_and_create_every_table(db_url):
    engine = create_engine(db_url)
    await migrate(engine)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert {"organizations", "users", "sip_credentials", "bindings", "alembic_version"} <= tables


async def test_create_org_and_users_stores_only_ha1(sessions):
    accounts = AccountsService(sessions, "ringwell")
    org = await accounts.create_org("Acme")
    new = await accounts.create_user("Acme", UserSpec("Alice@Example.com", "101", "alice", "correct horse"))
    assert new.sip_password is None and new.user.email == "alice@example.com"
    generated = await accounts.create_user("Acme", UserSpec("bob@example.com", "102"))
    assert generated.sip_password and len(generated.sip_password) >= 20
    assert generated.sip_username.startswith("102-")
    async with sessions() as session:
        cred = (await session.execute(select(SipCredential).where(SipCredential.username == "alice"))).scalar_one()
        assert cred.org_id == org.id
        assert cred.ha1_md5 == compute_ha1("alice", "ringwell", "correct horse", "MD5")
        assert cred.ha1_sha256 == compute_ha1("alice", "ringwell", "correct horse", "SHA-256")
        # The password itself is nowhere in the database.
        for table in ("organizations", "users", "sip_credentials"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            for row in rows:
                for value in row:
                    assert "correct horse" not in str(value)
                    assert generated.sip_password not in str(value)
    record = await accounts.credential("alice")
    assert record is not None and record.extension == "101" and record.org_id == org.id


async def test_conflicts_and_bad_input_are_refused_whole(sessions):
    accounts = AccountsService(sessions, "ringwell")
    await accounts.create_org("Acme")
    await accounts.create_org("Other")
    with pytest.raises(Conflict):
        await accounts.create_org("Acme")
    await accounts.create_user("Acme", UserSpec("a@example.com", "101", "alice", "password1"))
    with pytest.raises(Conflict):  # SIP usernames are unique on the whole server
        await accounts.create_user("Other", UserSpec("a@example.com", "101", "alice", "password1"))
    with pytest.raises(Conflict):
        await accounts.create_user("Acme", UserSpec("b@example.com", "101", "bob", "password1"))
    with pytest.raises(Invalid):
        await accounts.create_user("Acme", UserSpec("not-an-email", "103"))
    with pytest.raises(Invalid):
        await accounts.create_user("Acme", UserSpec("c@example.com", "1x3"))
    with pytest.raises(Invalid):
        await accounts.create_user("Acme", UserSpec("c@example.com", "103", "carol", "short"))
    with pytest.raises(NotFound):
        await accounts.create_user("Nope", UserSpec("c@example.com", "103"))
    # A bulk import with one bad row creates nothing.
    with pytest.raises(Invalid):
        await accounts.create_users("Acme", [UserSpec("d@example.com", "104", "dave", "password1"),
                                              UserSpec("e@example.com", "bad", "erin", "password1")])
    assert await accounts.credential("dave") is None
    # Same extension in another org is fine (extensions are per organization).
    await accounts.create_user("Other", UserSpec("x@example.com", "101", "other101", "password1"))


async def test_password_rotation_replaces_ha1(sessions):
    accounts = AccountsService(sessions, "ringwell")
    await accounts.create_org("Acme")
    await accounts.create_user("Acme", UserSpec("a@example.com", "101", "alice", "password1"))
    new = await accounts.set_sip_password("alice")
    record = await accounts.credential("alice")
    assert new and record.ha1_md5 == compute_ha1("alice", "ringwell", new, "MD5")


async def test_bindings_survive_a_restart_with_utc_times(sessions):
    accounts = AccountsService(sessions, "ringwell")
    await accounts.create_org("Acme")
    await accounts.create_user("Acme", UserSpec("a@example.com", "101", "alice", "password1"))
    record = await accounts.credential("alice")
    registrar = Registrar(RegistrarLimits())
    store = BindingStore(registrar, sessions)
    now = datetime.now(UTC).timestamp()
    request = parsed_request("REGISTER", extra="Contact: <sip:alice@10.0.0.5:5070>;q=0.5\r\nUser-Agent: Test/1\r\n"
                             "Expires: 600\r\n")
    assert registrar.register(request, record, Source("tcp", "10.0.0.5", 40000), now).status == 200
    assert await store.flush() == 1
    async with sessions() as session:
        rows = await bindings_repo.listing(session, datetime.now(UTC))
    (row, username, org), = rows
    assert (username, org, row.contact, row.transport, row.user_agent, row.q) == (
        "alice", "Acme", "sip:alice@10.0.0.5:5070", "tcp", "Test/1", 500)
    assert row.expires_at.tzinfo is not None and row.expires_at.utcoffset().total_seconds() == 0
    assert abs(row.expires_at.timestamp() - (now + 600)) < 1

    fresh = Registrar(RegistrarLimits())
    assert await BindingStore(fresh, sessions).load(datetime.now(UTC).timestamp()) == 1
    (binding,) = fresh.lookup(record.credential_id, datetime.now(UTC).timestamp())
    assert binding.source == Source("tcp", "10.0.0.5", 40000) and binding.q == 500

    # Unregistering deletes the row on the next flush.
    request = parsed_request("REGISTER", cseq=2, extra="Contact: <sip:alice@10.0.0.5:5070>;expires=0\r\n")
    registrar.register(request, record, Source("tcp", "10.0.0.5", 40000), now + 1)
    await store.flush()
    async with sessions() as session:
        assert await bindings_repo.listing(session, datetime.now(UTC)) == []


async def test_naive_datetimes_are_refused(sessions):
    from ringwell.features.accounts.models import Organization

    with pytest.raises(Exception, match="naive"):
        async with sessions() as session, session.begin():
            session.add(Organization(name="X", created_at=datetime(2026, 1, 1)))
