"""trunks; organizations.country and currency; call records gain trunk, rate and charge

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trunks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=True),
        sa.Column("password_enc", sa.String(length=512), nullable=True),
        sa.Column("register", sa.Boolean(), nullable=False),
        sa.Column("register_expires", sa.Integer(), nullable=False),
        sa.Column("inbound_addresses", sa.String(length=1000), nullable=False),
        sa.Column("number_format", sa.String(length=16), nullable=False),
        sa.Column("tech_prefix", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("buy_deck", sa.String(length=100), nullable=True),
        sa.Column("max_channels", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trunks")),
        sa.UniqueConstraint("name", name=op.f("uq_trunks_name")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=2), server_default="US", nullable=False))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False))
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trunk_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("rate_deck", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("rate_prefix", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("price_micros", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("billable_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("charge_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("cost_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_call_records_trunk_id_trunks"), "trunks", ["trunk_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_call_records_trunk_id_trunks"), type_="foreignkey")
        for column in ("currency", "cost_minor", "charge_minor", "billable_seconds", "price_micros",
                       "rate_prefix", "rate_deck", "trunk_id"):
            batch_op.drop_column(column)
    # Not a batch (table copy): on SQLite dropping the old organizations table would cascade.
    op.drop_column("organizations", "currency")
    op.drop_column("organizations", "country")
    op.drop_table("trunks")
