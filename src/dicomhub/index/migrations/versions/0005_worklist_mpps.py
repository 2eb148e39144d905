"""modality worklist items and MPPS

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 14:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), server_default="", nullable=False)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "worklist_items",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        _text("scheduled_procedure_step_id", 16),
        _text("requested_procedure_id", 16),
        _text("accession_number", 16),
        _text("study_instance_uid", 64),
        _text("patient_id", 64),
        _text("issuer_of_patient_id", 64),
        _text("patient_name", 400),
        _text("modality", 16),
        _text("scheduled_station_ae_title", 16),
        _text("scheduled_station_name", 16),
        _text("start_date", 8),
        _text("start_time", 16),
        _text("performing_physician_name", 400),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        _text("specific_character_set", 200),
        _text("source", 16),
        _text("order_key", 128),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worklist_items")),
    )
    for column in ("status", "accession_number", "order_key", "start_date"):
        op.create_index(f"ix_worklist_items_{column}", "worklist_items", [column])
    op.create_table(
        "mpps",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("worklist_item_fk", BigId, nullable=True),
        sa.Column("unscheduled", sa.Integer(), server_default="0", nullable=False),
        _text("calling_ae_title", 16),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["worklist_item_fk"],
            ["worklist_items.id"],
            name=op.f("fk_mpps_worklist_item_fk_worklist_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpps")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_mpps_sop_instance_uid")),
    )
    op.create_index(op.f("ix_mpps_worklist_item_fk"), "mpps", ["worklist_item_fk"])
    op.create_table(
        "mpps_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("mpps_fk", BigId, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        _text("status_before", 16),
        sa.Column("status_after", sa.String(length=16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        _text("calling_ae_title", 16),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mpps_fk"], ["mpps.id"], name=op.f("fk_mpps_events_mpps_fk_mpps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpps_events")),
    )
    op.create_index(op.f("ix_mpps_events_mpps_fk"), "mpps_events", ["mpps_fk"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_mpps_events_mpps_fk"), table_name="mpps_events")
    op.drop_table("mpps_events")
    op.drop_index(op.f("ix_mpps_worklist_item_fk"), table_name="mpps")
    op.drop_table("mpps")
    for column in ("status", "accession_number", "order_key", "start_date"):
        op.drop_index(f"ix_worklist_items_{column}", table_name="worklist_items")
    op.drop_table("worklist_items")
