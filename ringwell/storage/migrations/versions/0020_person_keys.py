"""per-person data keys for crypto-shredding; ledger without dialled numbers (issue 8)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("org_data_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_org_data_keys_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extra_key_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_column("extra_key_ids")
    with op.batch_alter_table("org_data_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_data_keys_user_id"))
        batch_op.drop_column("user_id")
