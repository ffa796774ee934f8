"""consent records (recording announcements, CPNI, marketing email, analytics cookies) (issue 8)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("visitor_id", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("text_shown", sa.Text(), nullable=False),
        sa.Column("text_version", sa.String(length=32), nullable=False),
        sa.Column("call_record_id", sa.String(length=36), nullable=True),
        sa.Column("at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"],
                                name=op.f("fk_consent_records_org_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index("ix_consent_records_person", ["org_id", "user_id", "purpose", "at"], unique=False)
        batch_op.create_index("ix_consent_records_visitor", ["visitor_id", "purpose", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_records_superseded_at"), ["superseded_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_records_superseded_at"))
        batch_op.drop_index("ix_consent_records_visitor")
        batch_op.drop_index("ix_consent_records_person")
    op.drop_table("consent_records")
