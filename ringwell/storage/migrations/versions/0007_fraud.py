"""destination permissions and fraud caps per org

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fraud_settings",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("max_calls_per_minute", sa.Integer(), nullable=True),
        sa.Column("daily_spend_cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("max_price_per_minute_micros", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_fraud_settings_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_fraud_settings")),
    )
    op.create_table(
        "destination_permissions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("region", sa.String(length=2), nullable=True),
        sa.Column("risk", sa.String(length=16), nullable=True),
        sa.Column("allow", sa.Boolean(), nullable=False),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("region IS NOT NULL OR risk IS NOT NULL", name=op.f("ck_destination_permissions_target")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_destination_permissions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destination_permissions")),
        sa.UniqueConstraint("org_id", "region", "risk", name="uq_destination_permissions_org_region_risk"),
    )
    with op.batch_alter_table("destination_permissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_destination_permissions_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("destination_permissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_destination_permissions_org_id"))
    op.drop_table("destination_permissions")
    op.drop_table("fraud_settings")
