"""number inventory and caller-id verification

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "phone_numbers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("e164", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("national_number", sa.String(length=17), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("monthly_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("setup_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("trunk_id", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("route_user_id", sa.String(length=36), nullable=True),
        sa.Column("rented_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_until", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("renewal_warned_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("quarantine_until", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_phone_numbers_org_id_organizations"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["route_user_id"], ["users.id"], name=op.f("fk_phone_numbers_route_user_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["trunk_id"], ["trunks.id"], name=op.f("fk_phone_numbers_trunk_id_trunks"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_numbers")),
        sa.UniqueConstraint("e164", name=op.f("uq_phone_numbers_e164")),
    )
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.create_index("ix_phone_numbers_state_country", ["state", "country"], unique=False)
        batch_op.create_index("ix_phone_numbers_org_id_state", ["org_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_phone_numbers_paid_until"), ["paid_until"], unique=False)

    op.create_table(
        "caller_id_verifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("e164", sa.String(length=16), nullable=False),
        sa.Column("code_hash", sa.String(length=97), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_caller_id_verifications_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_caller_id_verifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caller_id_verifications")),
    )
    with op.batch_alter_table("caller_id_verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caller_id_verifications_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_caller_id_verifications_user_id_e164", ["user_id", "e164"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("caller_id_verifications", schema=None) as batch_op:
        batch_op.drop_index("ix_caller_id_verifications_user_id_e164")
        batch_op.drop_index(batch_op.f("ix_caller_id_verifications_org_id"))
    op.drop_table("caller_id_verifications")

    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_numbers_paid_until"))
        batch_op.drop_index("ix_phone_numbers_org_id_state")
        batch_op.drop_index("ix_phone_numbers_state_country")
    op.drop_table("phone_numbers")
