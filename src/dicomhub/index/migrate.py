"""Schema migrations with Alembic, run programmatically (``dicomhub db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from dicomhub.index.engine import IndexDatabase

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: IndexDatabase) -> Config:
    """An Alembic configuration bound to ``db``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


def upgrade(db: IndexDatabase, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (serialised with other writers)."""
    config = alembic_config(db)
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(db: IndexDatabase) -> str | None:
    """The schema revision the database is at (None when empty)."""
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: IndexDatabase) -> str | None:
    """The newest revision this version of dicomhub knows."""
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def is_current(db: IndexDatabase) -> bool:
    """Whether the database schema is at the newest revision."""
    return current_revision(db) == head_revision(db)
