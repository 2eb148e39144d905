"""Reading the stored headers (DICOM JSON) of instances, for DICOMweb metadata and the web.

The header of every instance is kept in the index at ingest (``header_json``), so metadata is
served without opening any stored object.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import instances
from dicomhub.index.times import as_utc

_CHUNK = 500


def headers_of(db: IndexDatabase, instance_pks: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The stored header of each instance row id (absent ids are left out)."""
    found: dict[int, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(instance_pks))
    with db.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            query = select(instances.c.id, instances.c.header).where(instances.c.id.in_(chunk))
            for pk, header in conn.execute(query):
                found[int(pk)] = dict(header or {})
    return found


def reception(db: IndexDatabase, instance_pk: int) -> tuple[str, str, datetime] | None:
    """Where an instance came from: (source, calling AE title, received at)."""
    query = select(instances.c.source, instances.c.calling_ae_title, instances.c.received_at).where(
        instances.c.id == instance_pk
    )
    with db.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return str(row[0]), str(row[1]), as_utc(row[2])
