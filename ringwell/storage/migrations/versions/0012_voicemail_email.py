"""voicemail to email: the user's choice, the organization's choice about attaching audio

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voicemail_email", sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voicemail_attach_audio", sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("voicemail_attach_audio")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("voicemail_email")
