"""Print Management (PS3.4 H) state kept in the database: the SOP instances and print jobs.

``print_objects`` holds every Basic Film Session, Basic Film Box, Image Box, Basic Annotation
Box and Presentation LUT an SCU created, as a DICOM data set (bytes; an image box's pixel data
included), with its parent (film box -> film session, image box -> film box) so that a second
``dicomhub`` process sharing the database serves the same session.  Deleting a parent deletes
its children (ON DELETE CASCADE).  ``print_jobs`` records every N-ACTION print: who printed,
when, the film boxes and their layout, the number of copies and the outcome.

``FilmJob`` is what the print hook receives for each film box printed.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dicomhub.errors import InstanceExists, NoSuchInstance
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import changes, print_jobs, print_objects
from dicomhub.index.times import as_utc, utc_now


class PrintKind(StrEnum):
    """The kinds of Print Management SOP instances dicomhub keeps."""

    FILM_SESSION = "film-session"
    FILM_BOX = "film-box"
    IMAGE_BOX = "image-box"
    ANNOTATION_BOX = "annotation-box"
    PRESENTATION_LUT = "presentation-lut"


class ExecutionStatus(StrEnum):
    """Execution Status (2100,0020) of a print job (PS3.3 C.13.8)."""

    PENDING = "PENDING"
    PRINTING = "PRINTING"
    DONE = "DONE"
    FAILURE = "FAILURE"


@dataclass(frozen=True)
class PrintObject:
    """One Print Management SOP instance."""

    id: int
    kind: PrintKind
    sop_class_uid: str
    sop_instance_uid: str
    parent_id: int | None
    position: int
    attributes: bytes
    """The instance's attributes, a data set in Explicit VR Little Endian."""
    calling_ae_title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewObject:
    """A child instance created together with its parent (image and annotation boxes)."""

    kind: PrintKind
    sop_class_uid: str
    sop_instance_uid: str
    position: int
    attributes: bytes


@dataclass(frozen=True)
class PrintJob:
    """One print request (N-ACTION on a film session or a film box)."""

    id: int
    sop_instance_uid: str
    film_session_uid: str
    film_box_uids: list[str]
    status: ExecutionStatus
    detail: str
    number_of_copies: int
    print_priority: str
    layout: list[str]
    calling_ae_title: str
    created_at: datetime
    completed_at: datetime | None


@dataclass
class FilmJob:
    """One film box to print, as the print hook (``PrintService.compose``) receives it."""

    print_job_uid: str
    film_session: Dataset
    """The Basic Film Session attributes (NumberOfCopies, MediumType, FilmDestination, ...)."""
    film_box: Dataset
    """The Basic Film Box attributes (ImageDisplayFormat, FilmOrientation, FilmSizeID, ...)."""
    image_boxes: list[Dataset | None]
    """One entry per cell, in Image Box Position order: the image box's attributes with its
    BasicGrayscaleImageSequence or BasicColorImageSequence, None for a cell never set."""
    annotations: list[Dataset] = field(default_factory=list)
    """Basic Annotation Box attributes (AnnotationPosition, TextString), in position order."""
    presentation_lut: Dataset | None = None
    """The Presentation LUT the film box references, None when it references none."""
    calling_ae_title: str = ""
    called_ae_title: str = ""
    """The AE title of dicomhub the print SCU called (selects a ``print_relay`` printer)."""
    color: bool = False
    """Basic Color Print Management (RGB image boxes) rather than grayscale."""


def _object(row: Any) -> PrintObject:
    m = row._mapping
    return PrintObject(
        id=int(m["id"]),
        kind=PrintKind(m["kind"]),
        sop_class_uid=m["sop_class_uid"],
        sop_instance_uid=m["sop_instance_uid"],
        parent_id=None if m["parent_fk"] is None else int(m["parent_fk"]),
        position=int(m["position"]),
        attributes=bytes(m["attributes"]),
        calling_ae_title=m["calling_ae_title"],
        created_at=as_utc(m["created_at"]) or utc_now(),
        updated_at=as_utc(m["updated_at"]) or utc_now(),
    )


def _job(row: Any) -> PrintJob:
    m = row._mapping
    return PrintJob(
        id=int(m["id"]),
        sop_instance_uid=m["sop_instance_uid"],
        film_session_uid=m["film_session_uid"],
        film_box_uids=list(m["film_box_uids"] or []),
        status=ExecutionStatus(m["status"]),
        detail=m["detail"],
        number_of_copies=int(m["number_of_copies"]),
        print_priority=m["print_priority"],
        layout=list(m["layout"] or []),
        calling_ae_title=m["calling_ae_title"],
        created_at=as_utc(m["created_at"]) or utc_now(),
        completed_at=as_utc(m["completed_at"]),
    )


class PrintRepository:
    """Reads and writes of Print Management instances and print jobs."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

    # Instances --------------------------------------------------------------------------------

    def get(self, sop_instance_uid: str) -> PrintObject | None:
        """An instance by its SOP Instance UID."""
        query = select(print_objects).where(print_objects.c.sop_instance_uid == sop_instance_uid)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _object(row)

    def get_by_id(self, object_id: int) -> PrintObject | None:
        """An instance by its row id."""
        with self.db.read() as conn:
            row = conn.execute(select(print_objects).where(print_objects.c.id == object_id)).first()
        return None if row is None else _object(row)

    def children(self, parent_id: int, kind: PrintKind | None = None) -> builtins.list[PrintObject]:
        """The instances below one parent, in position order."""
        query = (
            select(print_objects)
            .where(print_objects.c.parent_fk == parent_id)
            .order_by(print_objects.c.position, print_objects.c.id)
        )
        if kind is not None:
            query = query.where(print_objects.c.kind == kind.value)
        with self.db.read() as conn:
            return [_object(row) for row in conn.execute(query)]

    def create(
        self,
        kind: PrintKind,
        sop_class_uid: str,
        sop_instance_uid: str,
        attributes: bytes,
        *,
        calling_ae_title: str,
        parent_id: int | None = None,
        children: tuple[NewObject, ...] = (),
    ) -> PrintObject:
        """Record an N-CREATE (with the children the SCP creates for it, in one transaction);
        ``InstanceExists`` when a SOP Instance UID is known already."""
        now = utc_now()
        common = {"calling_ae_title": calling_ae_title[:16], "created_at": now, "updated_at": now}
        try:
            with self.db.write() as conn:
                exists = conn.execute(
                    select(print_objects.c.id).where(
                        print_objects.c.sop_instance_uid == sop_instance_uid
                    )
                ).first()
                if exists is not None:
                    raise InstanceExists(f"{kind.value} {sop_instance_uid} exists already")
                object_id = int(
                    conn.execute(
                        insert(print_objects)
                        .values(
                            kind=kind.value,
                            sop_class_uid=sop_class_uid,
                            sop_instance_uid=sop_instance_uid,
                            parent_fk=parent_id,
                            position=0,
                            attributes=attributes,
                            **common,
                        )
                        .returning(print_objects.c.id)
                    ).scalar_one()
                )
                for child in children:
                    conn.execute(
                        insert(print_objects).values(
                            kind=child.kind.value,
                            sop_class_uid=child.sop_class_uid,
                            sop_instance_uid=child.sop_instance_uid,
                            parent_fk=object_id,
                            position=child.position,
                            attributes=child.attributes,
                            **common,
                        )
                    )
        except IntegrityError as exc:
            raise InstanceExists(f"{kind.value} {sop_instance_uid} exists already") from exc
        created = self.get_by_id(object_id)
        assert created is not None
        return created

    def update(self, object_id: int, attributes: bytes) -> None:
        """Replace an instance's attributes (N-SET, after merging)."""
        with self.db.write() as conn:
            done = conn.execute(
                update(print_objects)
                .where(print_objects.c.id == object_id)
                .values(attributes=attributes, updated_at=utc_now())
            )
            if not done.rowcount:
                raise NoSuchInstance(f"no print instance with id {object_id}")

    def delete(self, sop_instance_uid: str) -> PrintObject:
        """N-DELETE: the instance and everything below it; ``NoSuchInstance`` if unknown."""
        with self.db.write() as conn:
            row = conn.execute(
                select(print_objects).where(print_objects.c.sop_instance_uid == sop_instance_uid)
            ).first()
            if row is None:
                raise NoSuchInstance(f"no print instance {sop_instance_uid}")
            conn.execute(delete(print_objects).where(print_objects.c.id == row.id))
        return _object(row)

    # Print jobs -------------------------------------------------------------------------------

    def record_job(
        self,
        sop_instance_uid: str,
        *,
        film_session_uid: str,
        film_box_uids: builtins.list[str],
        layout: builtins.list[str],
        number_of_copies: int,
        print_priority: str,
        calling_ae_title: str,
    ) -> PrintJob:
        """A new print job, PRINTING; a ``print-job`` change is logged with it."""
        now = utc_now()
        with self.db.write() as conn:
            job_id = int(
                conn.execute(
                    insert(print_jobs)
                    .values(
                        sop_instance_uid=sop_instance_uid,
                        film_session_uid=film_session_uid,
                        film_box_uids=film_box_uids,
                        status=ExecutionStatus.PRINTING.value,
                        detail="",
                        number_of_copies=number_of_copies,
                        print_priority=print_priority,
                        layout=layout,
                        calling_ae_title=calling_ae_title[:16],
                        created_at=now,
                        completed_at=None,
                    )
                    .returning(print_jobs.c.id)
                ).scalar_one()
            )
            conn.execute(
                insert(changes).values(
                    change_type="print-job",
                    level="",
                    uid=sop_instance_uid,
                    details={
                        "films": len(film_box_uids),
                        "copies": number_of_copies,
                        "calling_ae_title": calling_ae_title,
                    },
                    occurred_at=now,
                )
            )
        job = self.job_by_id(job_id)
        assert job is not None
        return job

    def finish_job(self, job_id: int, status: ExecutionStatus, detail: str = "") -> None:
        """Record the outcome of a print job."""
        with self.db.write() as conn:
            conn.execute(
                update(print_jobs)
                .where(print_jobs.c.id == job_id)
                .values(status=status.value, detail=detail, completed_at=utc_now())
            )

    def job_by_id(self, job_id: int) -> PrintJob | None:
        """A print job by its row id."""
        with self.db.read() as conn:
            row = conn.execute(select(print_jobs).where(print_jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def job(self, sop_instance_uid: str) -> PrintJob | None:
        """A print job by its Print Job SOP Instance UID."""
        query = select(print_jobs).where(print_jobs.c.sop_instance_uid == sop_instance_uid)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _job(row)

    def jobs(self, limit: int = 100) -> builtins.list[PrintJob]:
        """The newest print jobs first."""
        query = select(print_jobs).order_by(print_jobs.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            return [_job(row) for row in conn.execute(query)]
