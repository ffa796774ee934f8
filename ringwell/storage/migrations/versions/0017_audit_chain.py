"""audit trail hash chain (issue 8)

Every audit event gets ``seq``, ``prev_hash`` and ``hash`` (ringwell/features/audit/chain.py);
events written before this migration are chained here in (at, id) order. The one-row
``audit_chain_head`` names the last event and the anchor a purge leaves. The append-only
triggers are replaced: UPDATE is still always refused; DELETE only of rows at or below the
head's ``anchor_seq`` (the prefix ``AuditLog.purge_before`` removes in the same transaction that
raises the anchor).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base
from ringwell.features.audit.chain import FIELDS, GENESIS, event_hash

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_BATCH = 1000
_MESSAGE = "audit events are append-only"

# The table as 0008 made it, with the types that read values back exactly as the models do.
_events = sa.table(
    "audit_events",
    sa.column("id", sa.String()), sa.column("at", ringwell.storage.base.UTCDateTime()),
    sa.column("actor_user_id", sa.String()), sa.column("actor_org_id", sa.String()),
    sa.column("actor_role", sa.String()), sa.column("api_key_id", sa.String()), sa.column("org_id", sa.String()),
    sa.column("action", sa.String()), sa.column("target_type", sa.String()), sa.column("target_id", sa.String()),
    sa.column("outcome", sa.String()), sa.column("ip", sa.String()), sa.column("user_agent", sa.String()),
    sa.column("reason", sa.String()), sa.column("details", sa.JSON(none_as_null=True)),
    sa.column("seq", sa.BigInteger()), sa.column("prev_hash", sa.String()), sa.column("hash", sa.String()),
)


def _drop_triggers(sqlite: bool) -> None:
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")


def _chain_existing_rows() -> tuple[int, str]:
    """Chain the rows 0008's schema holds, oldest first, a batch at a time; returns the head."""
    bind = op.get_bind()
    seq, last_hash = 0, GENESIS
    after: tuple[object, str] | None = None
    while True:
        query = sa.select(*(_events.c[name] for name in FIELDS if name != "seq")).order_by(
            _events.c.at, _events.c.id).limit(_BATCH)
        if after is not None:
            at, event_id = after
            query = query.where(sa.or_(_events.c.at > at, sa.and_(_events.c.at == at, _events.c.id > event_id)))
        rows = bind.execute(query).mappings().all()
        if not rows:
            return seq, last_hash
        for row in rows:
            seq += 1
            fields = {**row, "seq": seq}
            digest = event_hash(last_hash, fields)
            bind.execute(sa.update(_events).where(_events.c.id == row["id"]).values(
                seq=seq, prev_hash=last_hash, hash=digest))
            last_hash = digest
        after = (rows[-1]["at"], rows[-1]["id"])


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_triggers(sqlite)
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    seq, last_hash = _chain_existing_rows()
    op.execute(sa.table("audit_chain_head", sa.column("id"), sa.column("seq"), sa.column("hash"),
                        sa.column("anchor_seq"), sa.column("anchor_hash")).insert().values(
        id=1, seq=seq, hash=last_hash, anchor_seq=0, anchor_hash=GENESIS))
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_seq"), ["seq"])
    if sqlite:
        # SQLite serialises writers, so reading the head inside the trigger is race-free.
        op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                   f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END")
        op.execute("CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
                   "WHEN OLD.seq > (SELECT anchor_seq FROM audit_chain_head WHERE id = 1) "
                   "BEGIN SELECT RAISE(ABORT, 'audit events are append-only (only a purged prefix may be deleted)'); "
                   "END")
    else:
        op.execute("CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT anchor_seq FROM audit_chain_head WHERE id = 1) "
                   "THEN RETURN OLD; END IF; "
                   "RAISE EXCEPTION 'audit events are append-only'; END $$")
        op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
                   "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_triggers(sqlite)
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_seq"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
    op.drop_table("audit_chain_head")
    if sqlite:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                       f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END")
    else:
        op.execute("CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{_MESSAGE}'; END $$")
        op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
                   "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()")
