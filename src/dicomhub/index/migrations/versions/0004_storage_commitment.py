"""storage commitment transactions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 14:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "commitment_transactions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("transaction_uid", sa.String(length=64), nullable=False),
        sa.Column("peer_ae_title", sa.String(length=16), nullable=False),
        sa.Column("called_ae_title", sa.String(length=16), server_default="", nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_by", sa.String(length=128), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commitment_transactions")),
        sa.UniqueConstraint("role", "transaction_uid", name="uq_commitment_transactions_uid"),
    )
    op.create_index(
        "ix_commitment_transactions_due",
        "commitment_transactions",
        ["role", "state", "next_attempt_at"],
    )
    tables: tuple[tuple[str, list[sa.Column[Any]]], ...] = (
        (
            "commitment_items",
            [
                sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
                sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
                sa.Column("outcome", sa.String(length=16), nullable=False),
                sa.Column("failure_reason", sa.Integer(), nullable=True),
                sa.Column("detail", sa.Text(), server_default="", nullable=False),
            ],
        ),
        (
            "commitment_events",
            [
                sa.Column("event", sa.String(length=32), nullable=False),
                sa.Column("detail", sa.Text(), server_default="", nullable=False),
                sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
            ],
        ),
    )
    for table, columns in tables:
        op.create_table(
            table,
            sa.Column("id", BigId, autoincrement=True, nullable=False),
            sa.Column("transaction_fk", BigId, nullable=False),
            *columns,
            sa.ForeignKeyConstraint(
                ["transaction_fk"],
                ["commitment_transactions.id"],
                name=op.f(f"fk_{table}_transaction_fk_commitment_transactions"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        )
        op.create_index(op.f(f"ix_{table}_transaction_fk"), table, ["transaction_fk"])


def downgrade() -> None:
    """Revert this revision."""
    for table in ("commitment_events", "commitment_items"):
        op.drop_index(op.f(f"ix_{table}_transaction_fk"), table_name=table)
        op.drop_table(table)
    op.drop_index("ix_commitment_transactions_due", table_name="commitment_transactions")
    op.drop_table("commitment_transactions")
