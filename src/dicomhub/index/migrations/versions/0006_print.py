"""print management objects and print jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), server_default="", nullable=False)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "print_objects",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("parent_fk", BigId, nullable=True),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attributes", sa.LargeBinary(), nullable=False),
        _text("calling_ae_title", 16),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_fk"],
            ["print_objects.id"],
            name=op.f("fk_print_objects_parent_fk_print_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_objects")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_print_objects_sop_instance_uid")),
    )
    op.create_index(op.f("ix_print_objects_parent_fk"), "print_objects", ["parent_fk"])
    op.create_table(
        "print_jobs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        _text("film_session_uid", 64),
        sa.Column("film_box_uids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("number_of_copies", sa.Integer(), server_default="1", nullable=False),
        _text("print_priority", 16),
        sa.Column("layout", sa.JSON(), nullable=False),
        _text("calling_ae_title", 16),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_jobs")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_print_jobs_sop_instance_uid")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("print_jobs")
    op.drop_index(op.f("ix_print_objects_parent_fk"), table_name="print_objects")
    op.drop_table("print_objects")
