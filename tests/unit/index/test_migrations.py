"""Alembic migrations create exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dicomhub.index import migrate
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import metadata


def test_migrations_match_metadata(database_url: str) -> None:
    db = IndexDatabase(database_url)
    try:
        assert migrate.current_revision(db) is None
        migrate.upgrade(db)
        assert migrate.is_current(db)
        with db.read() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        migrate.upgrade(db)  # idempotent
        assert migrate.current_revision(db) == migrate.head_revision(db)
    finally:
        db.dispose()


def test_sqlite_pragmas(tmp_path: object) -> None:
    db = IndexDatabase(f"sqlite:///{tmp_path}/x.sqlite")
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        db.dispose()
