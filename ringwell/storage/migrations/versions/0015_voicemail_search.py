"""mailbox switch and do-not-disturb per user; transcript search index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voicemail_enabled", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column("dnd", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "voicemail_terms",
        sa.Column("voicemail_id", sa.String(length=36), nullable=False),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"],
                                name=op.f("fk_voicemail_terms_org_id_organizations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["voicemail_id"], ["voicemails.id"],
                                name=op.f("fk_voicemail_terms_voicemail_id_voicemails"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("voicemail_id", "term", name=op.f("pk_voicemail_terms")),
    )
    with op.batch_alter_table("voicemail_terms", schema=None) as batch_op:
        batch_op.create_index("ix_voicemail_terms_org_term", ["org_id", "term"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voicemail_terms", schema=None) as batch_op:
        batch_op.drop_index("ix_voicemail_terms_org_term")
    op.drop_table("voicemail_terms")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("dnd")
        batch_op.drop_column("voicemail_enabled")
