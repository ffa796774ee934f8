"""rate decks and rates; per-org sell deck

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_decks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_decks")),
        sa.UniqueConstraint("name", name=op.f("uq_rate_decks_name")),
    )
    op.create_table(
        "rates",
        # 64-bit row counter; SQLite autoincrements only an INTEGER PRIMARY KEY (its rowid).
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("deck_id", sa.String(length=36), nullable=False),
        sa.Column("prefix", sa.String(length=15), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.Column("connection_fee_micros", sa.BigInteger(), nullable=False),
        sa.Column("first_increment", sa.Integer(), nullable=False),
        sa.Column("next_increment", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deck_id"], ["rate_decks.id"], name=op.f("fk_rates_deck_id_rate_decks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rates")),
    )
    with op.batch_alter_table("rates", schema=None) as batch_op:
        batch_op.create_index("ix_rates_deck_id_prefix", ["deck_id", "prefix"], unique=False)
    op.create_table(
        "org_rate_decks",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("deck_id", sa.String(length=36), nullable=False),
        sa.Column("assigned_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deck_id"], ["rate_decks.id"], name=op.f("fk_org_rate_decks_deck_id_rate_decks")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_org_rate_decks_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_rate_decks")),
    )
    with op.batch_alter_table("org_rate_decks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_org_rate_decks_deck_id"), ["deck_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("org_rate_decks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_rate_decks_deck_id"))
    op.drop_table("org_rate_decks")
    with op.batch_alter_table("rates", schema=None) as batch_op:
        batch_op.drop_index("ix_rates_deck_id_prefix")
    op.drop_table("rates")
    op.drop_table("rate_decks")
