"""data_requests.subjects: the accounts a privacy request is about, fixed when it is received (issue 8)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subjects", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.drop_column("subjects")
