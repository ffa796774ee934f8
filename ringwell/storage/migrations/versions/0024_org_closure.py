"""organizations.closed_at, purged_at: closing an organization, and its data purged 90 days later (issue 8)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("purged_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
        batch_op.drop_column("closed_at")
