"""voicemail mailbox access: PIN (Argon2 hash), lockout, custom greeting; hold music

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("pin_hash", sa.String(length=255), nullable=True),
        sa.Column("failed_pin_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("greeting_blob_id", sa.String(length=36), nullable=True),
        sa.Column("updated_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=op.f("fk_mailboxes_org_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_mailboxes_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_mailboxes")),
    )
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailboxes_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailboxes_org_id"))
    op.drop_table("mailboxes")
