"""retention per organization: days its voicemail and its call recordings are kept (null: the server's)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voicemail_retention_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recording_retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("recording_retention_days")
        batch_op.drop_column("voicemail_retention_days")
