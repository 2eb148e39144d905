"""Alembic environment: runs against the connection handed in by ``dicomhub.index.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from dicomhub.index.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()


def run_migrations_online() -> None:
    """Run with the caller's connection, or a fresh engine from the configured URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)


run_migrations_online()
