"""segment store recovery positions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "segments",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("indexed_end", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_segments")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("segments")
