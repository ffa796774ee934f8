"""voicemail: one row per message, its audio and transcript in encrypted blobs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voicemails",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=False),
        sa.Column("caller_name", sa.String(length=128), nullable=True),
        sa.Column("call_record_id", sa.String(length=36), nullable=True),
        sa.Column("received_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("audio_blob_id", sa.String(length=36), nullable=False),
        sa.Column("transcript_blob_id", sa.String(length=36), nullable=True),
        sa.Column("transcript_status", sa.String(length=8), nullable=False),
        sa.Column("folder", sa.String(length=8), nullable=False),
        sa.Column("read_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("retention_until", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_record_id"], ["call_records.id"],
                                name=op.f("fk_voicemails_call_record_id_call_records"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=op.f("fk_voicemails_org_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_voicemails_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemails")),
    )
    with op.batch_alter_table("voicemails", schema=None) as batch_op:
        batch_op.create_index("ix_voicemails_org_user_received", ["org_id", "user_id", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_voicemails_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_voicemails_retention_until"), ["retention_until"], unique=False)
        batch_op.create_index(batch_op.f("ix_voicemails_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voicemails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voicemails_user_id"))
        batch_op.drop_index(batch_op.f("ix_voicemails_retention_until"))
        batch_op.drop_index(batch_op.f("ix_voicemails_org_id"))
        batch_op.drop_index("ix_voicemails_org_user_received")
    op.drop_table("voicemails")
