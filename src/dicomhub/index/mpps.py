"""Modality Performed Procedure Steps (PS3.4 F.7) kept in the database, with their history.

One ``mpps`` row per SOP instance: its Performed Procedure Step Status, every attribute the
modality sent (DICOM JSON, PS3.18 F), the worklist item it is linked to or the ``unscheduled``
flag, and the calling AE that created it.  Every accepted N-CREATE and N-SET also appends an
``mpps_events`` row (status before and after, the attributes that request carried, the calling
AE) and a ``changes`` entry (``mpps-created`` / ``mpps-updated``), in the same transaction.

``performed_vs_received`` compares the Performed Series Sequence with what the archive holds,
so a step that is COMPLETED while images are missing can be shown.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dicomhub.errors import InstanceExists, NoSuchInstance
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import changes, instances, mpps_events, series
from dicomhub.index.schema import mpps as mpps_table
from dicomhub.index.times import as_utc, utc_now

PERFORMED_SERIES = "00400340"
SERIES_INSTANCE_UID = "0020000E"
REFERENCED_IMAGES = "00081140"
REFERENCED_NON_IMAGES = "00400220"
REFERENCED_SOP_INSTANCE_UID = "00081155"
_IN_CHUNK = 500


class MppsStatus(StrEnum):
    """Performed Procedure Step Status (0040,0252) values (PS3.3 C.4.14)."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"

    @property
    def final(self) -> bool:
        """COMPLETED and DISCONTINUED are final: no N-SET is accepted afterwards."""
        return self is not MppsStatus.IN_PROGRESS


@dataclass(frozen=True)
class Mpps:
    """One Modality Performed Procedure Step instance."""

    id: int
    sop_instance_uid: str
    status: MppsStatus
    attributes: dict[str, Any]
    """Every attribute received so far (N-CREATE merged with the N-SETs), DICOM JSON."""
    worklist_item_id: int | None
    unscheduled: bool
    calling_ae_title: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class MppsEvent:
    """One accepted N-CREATE or N-SET."""

    action: str
    status_before: str
    status_after: str
    changes: dict[str, Any]
    """The attributes the request carried, DICOM JSON."""
    calling_ae_title: str
    occurred_at: datetime


class PerformedSeries(NamedTuple):
    """One series of the Performed Series Sequence against the archive's index."""

    series_instance_uid: str
    referenced: int
    """SOP instances the step lists (Referenced Image and Non-Image Composite Sequences)."""
    received: int
    """Of those, how many the archive holds in that series."""

    @property
    def missing(self) -> int:
        """Instances performed but not (yet) received."""
        return self.referenced - self.received


def _mpps(row: Any) -> Mpps:
    m = row._mapping
    return Mpps(
        id=int(m["id"]),
        sop_instance_uid=m["sop_instance_uid"],
        status=MppsStatus(m["status"]),
        attributes=dict(m["attributes"] or {}),
        worklist_item_id=None if m["worklist_item_fk"] is None else int(m["worklist_item_fk"]),
        unscheduled=bool(m["unscheduled"]),
        calling_ae_title=m["calling_ae_title"],
        created_at=as_utc(m["created_at"]) or utc_now(),
        updated_at=as_utc(m["updated_at"]) or utc_now(),
        completed_at=as_utc(m["completed_at"]),
    )


def _values(element: dict[str, Any] | None) -> list[Any]:
    if not element:
        return []
    value = element.get("Value")
    return list(value) if isinstance(value, list) else []


def _text(element: dict[str, Any] | None) -> str:
    values = _values(element)
    return str(values[0]).strip() if values and values[0] is not None else ""


def performed_series(attributes: dict[str, Any]) -> Iterator[tuple[str, set[str]]]:
    """(Series Instance UID, referenced SOP Instance UIDs) of each Performed Series item."""
    for item in _values(attributes.get(PERFORMED_SERIES)):
        if not isinstance(item, dict):
            continue
        references: set[str] = set()
        for keyword in (REFERENCED_IMAGES, REFERENCED_NON_IMAGES):
            for reference in _values(item.get(keyword)):
                if isinstance(reference, dict):
                    uid = _text(reference.get(REFERENCED_SOP_INSTANCE_UID))
                    if uid:
                        references.add(uid)
        yield _text(item.get(SERIES_INSTANCE_UID)), references


class MppsRepository:
    """Reads and writes of MPPS instances and their history."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db
        self.after_event: Callable[[Connection, str, int], None] | None = None
        """Runs in the transaction of every accepted N-CREATE and N-SET with the SOP
        Instance UID and the event's id (MPPS forwarding queues it there)."""

    # Reads ------------------------------------------------------------------------------------

    def get(self, sop_instance_uid: str) -> Mpps | None:
        """An MPPS by its SOP Instance UID."""
        query = select(mpps_table).where(mpps_table.c.sop_instance_uid == sop_instance_uid)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _mpps(row)

    def get_by_id(self, mpps_id: int) -> Mpps | None:
        """An MPPS by its row id."""
        with self.db.read() as conn:
            row = conn.execute(select(mpps_table).where(mpps_table.c.id == mpps_id)).first()
        return None if row is None else _mpps(row)

    def list(
        self,
        status: MppsStatus | None = None,
        *,
        unscheduled: bool | None = None,
        worklist_item_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[Mpps]:
        """The newest steps first, optionally of one status, link state or worklist item."""
        query = select(mpps_table).order_by(mpps_table.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(mpps_table.c.status == status.value)
        if unscheduled is not None:
            query = query.where(mpps_table.c.unscheduled == int(unscheduled))
        if worklist_item_id is not None:
            query = query.where(mpps_table.c.worklist_item_fk == worklist_item_id)
        with self.db.read() as conn:
            return [_mpps(row) for row in conn.execute(query)]

    def event(self, event_id: int) -> tuple[str, str, dict[str, Any]] | None:
        """One accepted request by its id: (SOP Instance UID, N-CREATE or N-SET, the
        attributes it carried), for forwarding it."""
        query = (
            select(mpps_table.c.sop_instance_uid, mpps_events.c.action, mpps_events.c.changes)
            .select_from(mpps_events)
            .join(mpps_table, mpps_events.c.mpps_fk == mpps_table.c.id)
            .where(mpps_events.c.id == event_id)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return (str(row[0]), str(row[1]), dict(row[2])) if row else None

    def history(self, mpps_id: int) -> builtins.list[MppsEvent]:
        """Every accepted N-CREATE and N-SET of a step, oldest first."""
        query = (
            select(mpps_events).where(mpps_events.c.mpps_fk == mpps_id).order_by(mpps_events.c.id)
        )
        with self.db.read() as conn:
            return [
                MppsEvent(
                    action=row.action,
                    status_before=row.status_before,
                    status_after=row.status_after,
                    changes=dict(row.changes or {}),
                    calling_ae_title=row.calling_ae_title,
                    occurred_at=as_utc(row.occurred_at) or utc_now(),
                )
                for row in conn.execute(query)
            ]

    def performed_vs_received(self, mpps_id: int) -> builtins.list[PerformedSeries]:
        """Each performed series with the instances it references and how many of them the
        archive holds in that series ("performed but images missing" when fewer)."""
        step = self.get_by_id(mpps_id)
        if step is None:
            raise NoSuchInstance(f"no MPPS with id {mpps_id}")
        result = []
        with self.db.read() as conn:
            for series_uid, references in performed_series(step.attributes):
                received = 0
                wanted = sorted(references)
                for start in range(0, len(wanted), _IN_CHUNK):
                    chunk = wanted[start : start + _IN_CHUNK]
                    received += int(
                        conn.execute(
                            select(func.count())
                            .select_from(
                                instances.join(series, instances.c.series_fk == series.c.id)
                            )
                            .where(
                                series.c.series_instance_uid == series_uid,
                                instances.c.sop_instance_uid.in_(chunk),
                            )
                        ).scalar_one()
                    )
                result.append(PerformedSeries(series_uid, len(references), received))
        return result

    # Writes -----------------------------------------------------------------------------------

    @staticmethod
    def _event(
        conn: Connection,
        mpps_id: int,
        action: str,
        before: str,
        after: MppsStatus,
        attributes: dict[str, Any],
        calling_ae_title: str,
        now: datetime,
    ) -> int:
        return int(
            conn.execute(
                insert(mpps_events)
                .values(
                    mpps_fk=mpps_id,
                    action=action,
                    status_before=before,
                    status_after=after.value,
                    changes=attributes,
                    calling_ae_title=calling_ae_title[:16],
                    occurred_at=now,
                )
                .returning(mpps_events.c.id)
            ).scalar_one()
        )

    @staticmethod
    def _change(
        conn: Connection, change_type: str, uid: str, details: dict[str, Any], now: datetime
    ) -> None:
        conn.execute(
            insert(changes).values(
                change_type=change_type, level="", uid=uid, details=details, occurred_at=now
            )
        )

    def create(
        self,
        sop_instance_uid: str,
        attributes: dict[str, Any],
        *,
        calling_ae_title: str,
        worklist_item_id: int | None,
    ) -> Mpps:
        """Record an N-CREATE (status IN PROGRESS); ``InstanceExists`` when the SOP Instance
        UID is known already.  Without a worklist item the step is flagged ``unscheduled``."""
        now = utc_now()
        status = MppsStatus.IN_PROGRESS
        try:
            with self.db.write() as conn:
                exists = conn.execute(
                    select(mpps_table.c.id).where(mpps_table.c.sop_instance_uid == sop_instance_uid)
                ).first()
                if exists is not None:
                    raise InstanceExists(f"MPPS {sop_instance_uid} exists already")
                mpps_id = int(
                    conn.execute(
                        insert(mpps_table)
                        .values(
                            sop_instance_uid=sop_instance_uid,
                            status=status.value,
                            attributes=attributes,
                            worklist_item_fk=worklist_item_id,
                            unscheduled=int(worklist_item_id is None),
                            calling_ae_title=calling_ae_title[:16],
                            created_at=now,
                            updated_at=now,
                            completed_at=None,
                        )
                        .returning(mpps_table.c.id)
                    ).scalar_one()
                )
                event_id = self._event(
                    conn, mpps_id, "N-CREATE", "", status, attributes, calling_ae_title, now
                )
                if self.after_event is not None:
                    self.after_event(conn, sop_instance_uid, event_id)
                self._change(
                    conn,
                    "mpps-created",
                    sop_instance_uid,
                    {
                        "status": status.value,
                        "worklist_item": worklist_item_id,
                        "calling_ae_title": calling_ae_title,
                    },
                    now,
                )
        except IntegrityError as exc:
            # Another process created the same instance between the check and the insert.
            raise InstanceExists(f"MPPS {sop_instance_uid} exists already") from exc
        created = self.get_by_id(mpps_id)
        assert created is not None
        return created

    def set(
        self,
        sop_instance_uid: str,
        request: dict[str, Any],
        *,
        calling_ae_title: str,
        apply: Callable[[Mpps], tuple[MppsStatus, dict[str, Any]]],
    ) -> tuple[Mpps, Mpps]:
        """Record an N-SET; returns the step before and after.

        ``apply`` receives the current step, read under a row lock in the writing
        transaction, and returns the new status and the merged attributes, or raises a
        ``DicomhubError`` to refuse the request (nothing is written then).  ``request`` (the
        attributes the N-SET carried) goes into the history.  ``NoSuchInstance`` when the
        SOP Instance UID is unknown.
        """
        now = utc_now()
        with self.db.write() as conn:
            row = conn.execute(
                select(mpps_table)
                .where(mpps_table.c.sop_instance_uid == sop_instance_uid)
                .with_for_update()
            ).first()
            if row is None:
                raise NoSuchInstance(f"no MPPS with SOP Instance UID {sop_instance_uid}")
            before = _mpps(row)
            status, attributes = apply(before)
            conn.execute(
                update(mpps_table)
                .where(mpps_table.c.id == before.id)
                .values(
                    status=status.value,
                    attributes=attributes,
                    updated_at=now,
                    completed_at=now if status.final else None,
                )
            )
            event_id = self._event(
                conn,
                before.id,
                "N-SET",
                before.status.value,
                status,
                request,
                calling_ae_title,
                now,
            )
            if self.after_event is not None:
                self.after_event(conn, sop_instance_uid, event_id)
            self._change(
                conn,
                "mpps-updated",
                sop_instance_uid,
                {
                    "status_before": before.status.value,
                    "status": status.value,
                    "calling_ae_title": calling_ae_title,
                },
                now,
            )
        after = self.get_by_id(before.id)
        assert after is not None
        return before, after

    def link(self, mpps_id: int, worklist_item_id: int | None) -> Mpps:
        """Link a step to a worklist item (or unlink it, flagging it ``unscheduled``)."""
        with self.db.write() as conn:
            done = conn.execute(
                update(mpps_table)
                .where(mpps_table.c.id == mpps_id)
                .values(
                    worklist_item_fk=worklist_item_id,
                    unscheduled=int(worklist_item_id is None),
                    updated_at=utc_now(),
                )
            )
            if not done.rowcount:
                raise NoSuchInstance(f"no MPPS with id {mpps_id}")
        linked = self.get_by_id(mpps_id)
        assert linked is not None
        return linked
