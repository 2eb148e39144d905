"""How far each segment file of the blob store has been indexed (the ``segments`` table).

The ingest path advances a segment's position in the same transaction that indexes the
segment's records, so after a crash the records past the position are exactly the ones whose
indexing may have been lost; recovery re-reads only those.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import segments


def _upsert(dialect: Any) -> Any:
    statement = dialect.insert(segments).values(
        name=bindparam("b_name"), indexed_end=bindparam("b_end")
    )
    return statement.on_conflict_do_update(
        index_elements=[segments.c.name],
        set_={"indexed_end": statement.excluded.indexed_end},
        where=segments.c.indexed_end < statement.excluded.indexed_end,
    )


# Built once: this runs in every ingest batch.
_ADVANCE = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}


def advance(conn: Connection, name: str, end: int) -> None:
    """Record that the records of ``name`` before ``end`` are settled (never moves back)."""
    conn.execute(_ADVANCE[conn.dialect.name], {"b_name": name, "b_end": end})


def position(db: IndexDatabase, name: str) -> int:
    """The settled end of a segment (0 when none of it was ever indexed)."""
    with db.read() as conn:
        found = conn.execute(select(segments.c.indexed_end).where(segments.c.name == name)).scalar()
    return int(found or 0)


def set_position(db: IndexDatabase, name: str, end: int) -> None:
    """Record a segment as settled up to ``end`` (after recovery), durably."""
    with db.write() as conn:
        advance(conn, name, end)
