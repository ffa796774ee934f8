"""incidents: breach records and their notification clocks (issue 8)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ringwell.storage.base

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("cpni", sa.Boolean(), nullable=False),
        sa.Column("detected_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("determined_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("org_ids", sa.JSON(), nullable=False),
        sa.Column("people_affected", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("authority_notified_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("authority_reference", sa.String(length=200), nullable=True),
        sa.Column("law_enforcement_notified_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("law_enforcement_reference", sa.String(length=200), nullable=True),
        sa.Column("law_enforcement_delay_until", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("customers_notified_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("closed_at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_detected_at"), ["detected_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_closed_at"), ["closed_at"], unique=False)
    op.create_table(
        "incident_notes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("at", ringwell.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=36), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_incident_notes_incident_id_incidents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notes")),
    )
    with op.batch_alter_table("incident_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_notes_incident_id"), ["incident_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incident_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_notes_incident_id"))
    op.drop_table("incident_notes")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_closed_at"))
        batch_op.drop_index(batch_op.f("ix_incidents_detected_at"))
    op.drop_table("incidents")
