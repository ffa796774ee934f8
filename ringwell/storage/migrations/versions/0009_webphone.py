"""web phone: short-lived SIP credentials (kind, expires_at)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sip_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="device", nullable=False))
        batch_op.add_column(sa.Column("expires_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_sip_credentials_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sip_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sip_credentials_expires_at"))
        batch_op.drop_column("expires_at")
        batch_op.drop_column("kind")
