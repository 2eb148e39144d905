"""Print Management (PS3.4 H) state kept in the database: the SOP instances and print jobs.

``print_objects`` holds every Basic Film Session, Basic Film Box, Image Box, Basic Annotation
Box and Presentation LUT an SCU created, as a DICOM data set (bytes; an image box's pixel data
included), with its parent (film box -> film session, image box -> film box) so that a second
``dicomhub`` process sharing the database serves the same session.  Deleting a parent deletes
its children (ON DELETE CASCADE).  ``print_jobs`` records every N-ACTION print: who printed,
when, the film boxes and their layout, the number of copies and the outcome.

Every instance records the association that created it (``association_uid``; a film box and
its image and annotation boxes that of their film session's association): PS3.4 H scopes the
film session hierarchy and presentation LUTs to the association, so the print service finds an
instance only for the association that created it (``get`` with ``association_uid``), and
``release_association`` deletes them when it ends (what was printed stays in ``print_jobs`` and
``print_films``).  ``print_films`` holds one row per film of a print job, with the
Secondary Capture print-to-archive stored for it and its PNG; ``job_page`` lists jobs with
their films, newest first, a page at a time (for the web).

``FilmJob`` is what the print hook receives for each film box printed.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dicomhub.errors import InstanceExists, NoSuchInstance
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import changes, print_films, print_jobs, print_objects
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
    association_uid: str = ""


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


@dataclass(frozen=True)
class PrintedFilm:
    """A film box as it is printed: its UID, layout and the image boxes that held an image."""

    film_box_uid: str
    image_display_format: str
    image_boxes: int


@dataclass(frozen=True)
class ArchivedFilm:
    """Where print-to-archive stored a film."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    png: str
    """The PNG of the film, relative to ``data_dir`` (``print/<SOP Instance UID>.png``)."""
    rows: int
    columns: int
    color: bool


@dataclass(frozen=True)
class PrintFilm:
    """One film of a print job: what was printed and, when print-to-archive stored it, where."""

    position: int
    printed: PrintedFilm
    archived: ArchivedFilm | None
    created_at: datetime


@dataclass(frozen=True)
class PrintJobView:
    """A print job with its films, as the web lists them."""

    job: PrintJob
    films: list[PrintFilm]


@dataclass(frozen=True)
class PrintJobPage:
    """One page of print jobs, newest first, and how many jobs match in all."""

    total: int
    offset: int
    limit: int
    items: list[PrintJobView]


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
    image_luts: list[Dataset | None] = field(default_factory=list)
    """Per cell, the Presentation LUT its image box references (it overrides the film box's)."""


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
        association_uid=m["association_uid"],
    )


def _film(row: Any) -> PrintFilm:
    m = row._mapping
    archived = ArchivedFilm(
        sop_instance_uid=m["sop_instance_uid"],
        study_instance_uid=m["study_instance_uid"],
        series_instance_uid=m["series_instance_uid"],
        png=m["png"],
        rows=int(m["rows"]),
        columns=int(m["columns"]),
        color=bool(m["color"]),
    )
    return PrintFilm(
        position=int(m["position"]),
        printed=PrintedFilm(m["film_box_uid"], m["image_display_format"], int(m["image_boxes"])),
        archived=archived if archived.sop_instance_uid else None,
        created_at=as_utc(m["created_at"]) or utc_now(),
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

    def get(self, sop_instance_uid: str, association_uid: str | None = None) -> PrintObject | None:
        """An instance by its SOP Instance UID; with ``association_uid``, only when that
        association created it (None for another association's instance)."""
        query = select(print_objects).where(print_objects.c.sop_instance_uid == sop_instance_uid)
        if association_uid is not None:
            query = query.where(print_objects.c.association_uid == association_uid[:64])
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
        association_uid: str = "",
    ) -> PrintObject:
        """Record an N-CREATE (with the children the SCP creates for it, in one transaction);
        ``InstanceExists`` when a SOP Instance UID is known already.  ``association_uid`` is
        the association that creates the instance and its children, which live as long as it
        does and are found for it only."""
        now = utc_now()
        common = {
            "calling_ae_title": calling_ae_title[:16],
            "created_at": now,
            "updated_at": now,
            "association_uid": association_uid[:64],
        }
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

    def release_association(self, association_uid: str) -> int:
        """Delete the instances an association created: film sessions and LUTs with
        everything below them (PS3.4 H: they live as long as the association); the number of
        instances."""
        if not association_uid:
            return 0
        owned = print_objects.c.association_uid == association_uid
        with self.db.write() as conn:
            return int(conn.execute(delete(print_objects).where(owned)).rowcount or 0)

    def release_stale(self, older_than: timedelta) -> int:
        """Delete association-scoped instances created longer ago than any association lasts
        (left behind by a process that stopped before its associations ended)."""
        cutoff = utc_now() - older_than
        stale = and_(print_objects.c.association_uid != "", print_objects.c.created_at < cutoff)
        with self.db.write() as conn:
            return int(conn.execute(delete(print_objects).where(stale)).rowcount or 0)

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
        films: Sequence[PrintedFilm] = (),
    ) -> PrintJob:
        """A new print job, PRINTING, with a ``print_films`` row per film; a ``print-job``
        change is logged with it."""
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
            for position, film in enumerate(films, start=1):
                conn.execute(
                    insert(print_films).values(
                        job_fk=job_id,
                        position=position,
                        film_box_uid=film.film_box_uid,
                        image_display_format=film.image_display_format[:64],
                        image_boxes=film.image_boxes,
                        created_at=now,
                    )
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

    def record_archived_film(
        self, print_job_uid: str, film_box_uid: str, film: ArchivedFilm
    ) -> None:
        """Print-to-archive stored a film of a print job: its Secondary Capture and PNG."""
        job = select(print_jobs.c.id).where(print_jobs.c.sop_instance_uid == print_job_uid)
        target = (
            select(print_films.c.id)
            .where(print_films.c.job_fk == job.scalar_subquery())
            .where(print_films.c.film_box_uid == film_box_uid)
            .where(print_films.c.sop_instance_uid == "")
            .order_by(print_films.c.position)
            .limit(1)
        )
        with self.db.write() as conn:
            film_id = conn.execute(target).scalar()
            if film_id is None:
                raise NoSuchInstance(
                    f"print job {print_job_uid} has no unarchived film of film box {film_box_uid}"
                )
            conn.execute(
                update(print_films)
                .where(print_films.c.id == film_id)
                .values(
                    sop_instance_uid=film.sop_instance_uid,
                    study_instance_uid=film.study_instance_uid,
                    series_instance_uid=film.series_instance_uid,
                    png=film.png[:200],
                    rows=film.rows,
                    columns=film.columns,
                    color=film.color,
                )
            )

    def films(self, job_id: int) -> builtins.list[PrintFilm]:
        """The films of one print job, in print order."""
        query = (
            select(print_films)
            .where(print_films.c.job_fk == job_id)
            .order_by(print_films.c.position)
        )
        with self.db.read() as conn:
            return [_film(row) for row in conn.execute(query)]

    def job_page(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        calling_ae_title: str | None = None,
        status: ExecutionStatus | None = None,
    ) -> PrintJobPage:
        """Print jobs with their films, newest first: ``limit`` (1..1000) from ``offset``,
        optionally only one calling AE title's or one status's."""
        if offset < 0 or not 1 <= limit <= 1000:
            raise ValueError(f"offset {offset} / limit {limit} out of range")
        conditions = []
        if calling_ae_title is not None:
            conditions.append(print_jobs.c.calling_ae_title == calling_ae_title)
        if status is not None:
            conditions.append(print_jobs.c.status == status.value)
        query = select(print_jobs).where(*conditions)
        counted = select(func.count()).select_from(print_jobs).where(*conditions)
        page = query.order_by(print_jobs.c.id.desc()).offset(offset).limit(limit)
        with self.db.read() as conn:
            total = int(conn.execute(counted).scalar_one())
            jobs = [_job(row) for row in conn.execute(page)]
            ids = [job.id for job in jobs]
            by_job: dict[int, builtins.list[PrintFilm]] = {job_id: [] for job_id in ids}
            if ids:
                rows = conn.execute(
                    select(print_films)
                    .where(print_films.c.job_fk.in_(ids))
                    .order_by(print_films.c.job_fk, print_films.c.position)
                )
                for row in rows:
                    by_job[int(row.job_fk)].append(_film(row))
        items = [PrintJobView(job, by_job[job.id]) for job in jobs]
        return PrintJobPage(total, offset, limit, items)
