"""print objects owned by their association; films of print jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), server_default="", nullable=False)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("print_objects") as batch:
        batch.add_column(_text("association_uid", 64))
    op.create_index(op.f("ix_print_objects_association_uid"), "print_objects", ["association_uid"])
    op.create_table(
        "print_films",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("job_fk", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _text("film_box_uid", 64),
        _text("image_display_format", 64),
        sa.Column("image_boxes", sa.Integer(), server_default="0", nullable=False),
        _text("sop_instance_uid", 64),
        _text("study_instance_uid", 64),
        _text("series_instance_uid", 64),
        _text("png", 200),
        sa.Column("rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("columns", sa.Integer(), server_default="0", nullable=False),
        sa.Column("color", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_fk"],
            ["print_jobs.id"],
            name=op.f("fk_print_films_job_fk_print_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_films")),
        sa.UniqueConstraint("job_fk", "position", name=op.f("uq_print_films_job_fk")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("print_films")
    op.drop_index(op.f("ix_print_objects_association_uid"), table_name="print_objects")
    with op.batch_alter_table("print_objects") as batch:
        batch.drop_column("association_uid")
