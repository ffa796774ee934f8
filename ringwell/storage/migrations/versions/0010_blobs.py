"""encryption at rest: per-org wrapped data keys and encrypted blob metadata

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_data_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("master_key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=op.f("fk_org_data_keys_org_id_organizations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_data_keys")),
    )
    with op.batch_alter_table("org_data_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_org_data_keys_org_id"), ["org_id"], unique=False)

    op.create_table(
        "blobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retention_until", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["org_data_keys.id"], name=op.f("fk_blobs_key_id_org_data_keys"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=op.f("fk_blobs_org_id_organizations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blobs")),
    )
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blobs_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_blobs_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_blobs_retention_until"), ["retention_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blobs_retention_until"))
        batch_op.drop_index(batch_op.f("ix_blobs_org_id"))
        batch_op.drop_index(batch_op.f("ix_blobs_key_id"))
    op.drop_table("blobs")
    with op.batch_alter_table("org_data_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_data_keys_org_id"))
    op.drop_table("org_data_keys")
