"""call recording: policies per org, user and number; recordings listed with the call record

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recording_policies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("mode", sa.String(length=12), nullable=False),
        sa.Column("updated_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"],
                                name=op.f("fk_recording_policies_org_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_policies")),
        sa.UniqueConstraint("org_id", "scope", name="uq_recording_policies_org_scope"),
    )
    with op.batch_alter_table("recording_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recording_policies_org_id"), ["org_id"], unique=False)
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("call_record_id", sa.String(length=36), nullable=False),
        sa.Column("caller_user_id", sa.String(length=36), nullable=True),
        sa.Column("callee_user_id", sa.String(length=36), nullable=True),
        sa.Column("trigger", sa.String(length=8), nullable=False),
        sa.Column("started_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("paused_s", sa.Float(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("blob_id", sa.String(length=36), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("retention_until", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=op.f("fk_recordings_org_id_organizations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index("ix_recordings_org_started", ["org_id", "started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_call_record_id"), ["call_record_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_retention_until"), ["retention_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_retention_until"))
        batch_op.drop_index(batch_op.f("ix_recordings_org_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_call_record_id"))
        batch_op.drop_index("ix_recordings_org_started")
    op.drop_table("recordings")
    with op.batch_alter_table("recording_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_policies_org_id"))
    op.drop_table("recording_policies")
