"""Point look-ups of the index (instances with their attachments, the change log), and its
writes: indexing stored objects (``writer.InstanceWriter``) and removing them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, func, select

from dicomhub.index.attributes import Level
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import attachments, changes, instances, series, studies
from dicomhub.index.writer import (
    AddOutcome,
    AddResult,
    InstanceWriter,
    NewInstance,
    record_change,
    remove_instance_rows,
)

__all__ = [
    "AddOutcome",
    "AddResult",
    "IndexRepository",
    "NewInstance",
    "StoredInstance",
    "stored_instance_select",
]


@dataclass(frozen=True)
class StoredInstance:
    """An indexed instance with its attachment."""

    instance_pk: int
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    blob_key: str
    size: int
    sha256: str
    content_sha256: str
    transfer_syntax_uid: str


def matches(digests: tuple[str, str], stored: StoredInstance) -> bool:
    """Whether a blob's re-computed (SHA-256, data set SHA-256) are what was recorded: the
    whole blob's where it was recorded (it covers everything), else the data set's (an
    object received in memory, whose file meta is dicomhub's own)."""
    whole, content = digests
    if stored.sha256:
        return whole == stored.sha256
    return content == stored.content_sha256


_STORED_COLUMNS = (
    instances.c.id,
    instances.c.sop_instance_uid,
    instances.c.sop_class_uid,
    series.c.series_instance_uid,
    studies.c.study_instance_uid,
    attachments.c.blob_key,
    attachments.c.size,
    attachments.c.sha256,
    attachments.c.content_sha256,
    attachments.c.transfer_syntax_uid,
)


def stored_instance_select() -> Select[Any]:
    """SELECT of ``StoredInstance`` fields, to be filtered by the caller."""
    return (
        select(*_STORED_COLUMNS)
        .select_from(instances)
        .join(series, instances.c.series_fk == series.c.id)
        .join(studies, series.c.study_fk == studies.c.id)
        .join(attachments, attachments.c.instance_fk == instances.c.id)
    )


def _to_stored(row: Row[Any]) -> StoredInstance:
    (pk, sop_uid, sop_class, series_uid, study_uid, key, size, sha, content, syntax) = tuple(row)
    return StoredInstance(
        int(pk), sop_uid, sop_class, series_uid, study_uid, key, int(size), sha, content, syntax
    )


class IndexRepository:
    """The index's write path and point reads."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db
        self.writer = InstanceWriter(db)
        self.add_instances = self.writer.add_instances
        """Index stored objects in one transaction (``writer.InstanceWriter``)."""

    @property
    def after_add(self) -> Callable[[Connection, NewInstance], None] | None:
        """Called in the indexing transaction of each stored or replaced instance (the
        forwarding queue is filled there, so an acknowledged instance always has its rows)."""
        return self.writer.after_add

    @after_add.setter
    def after_add(self, hook: Callable[[Connection, NewInstance], None] | None) -> None:
        self.writer.after_add = hook

    # Reads ------------------------------------------------------------------------------

    def get_instance(self, sop_instance_uid: str) -> StoredInstance | None:
        """The stored instance with this SOP Instance UID, if any."""
        query = stored_instance_select().where(instances.c.sop_instance_uid == sop_instance_uid)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return _to_stored(row) if row else None

    def iter_instances(self, batch: int = 1000) -> Iterator[StoredInstance]:
        """Every stored instance, in insertion order, read in batches."""
        last = 0
        while True:
            query = (
                stored_instance_select()
                .where(instances.c.id > last)
                .order_by(instances.c.id)
                .limit(batch)
            )
            with self.db.read() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield _to_stored(row)
            last = rows[-1][0]

    def count_instances(self) -> int:
        """Number of stored instances."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(instances)).scalar_one())

    def changes_since(self, seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Change-log entries after ``seq``, oldest first."""
        query = select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
        with self.db.read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # Writes -----------------------------------------------------------------------------

    def remove_instance(self, sop_instance_uid: str, reason: str) -> str | None:
        """Remove an instance from the index; returns its blob key to delete after commit."""
        with self.db.write() as conn:
            row = conn.execute(
                stored_instance_select().where(instances.c.sop_instance_uid == sop_instance_uid)
            ).first()
            if row is None:
                return None
            stored = _to_stored(row)
            remove_instance_rows(conn, stored.instance_pk, stored.series_instance_uid)
            record_change(conn, "deleted", Level.IMAGE, sop_instance_uid, {"reason": reason})
            return stored.blob_key
