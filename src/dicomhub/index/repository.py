"""Writes and point look-ups of the index: instances, their attachments and the change log.

``add_instance`` creates or updates the patient, study and series rows, the instance row and its
attachment, the derived keys (counts, ModalitiesInStudy, SOPClassesInStudy) and a change-log
entry in one transaction.  It is safe under concurrent writers on PostgreSQL (upserts that wait
for each other, row locks on the study) and on SQLite (one writer at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, Row, Select, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from dicomhub.errors import DicomhubError, DuplicateSOPInstance
from dicomhub.index.attributes import Level
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import attachments, changes, instances, patients, series, studies
from dicomhub.index.times import utc_now
from dicomhub.index.values import character_set, level_values
from dicomhub.storage.base import BlobInfo


class AddOutcome(StrEnum):
    """What ``add_instance`` did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


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


@dataclass(frozen=True)
class NewInstance:
    """A stored object to index, with where it came from."""

    dataset: Dataset
    header: dict[str, Any]
    blob: BlobInfo
    transfer_syntax_uid: str
    source: str
    calling_ae_title: str = ""
    replace: bool = False
    called_ae_title: str = ""


@dataclass(frozen=True)
class AddResult:
    """Outcome of ``add_instance``; ``obsolete_blob_key`` is to be deleted after commit."""

    outcome: AddOutcome
    obsolete_blob_key: str | None = None


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


# Statements of the write path, built once so SQLAlchemy compiles each a single time.
_EXISTING = stored_instance_select().where(instances.c.sop_instance_uid == bindparam("b_uid"))
_STUDY = (
    select(
        studies.c.id,
        studies.c.patient_fk,
        studies.c.modalities_in_study,
        studies.c.sop_classes_in_study,
    )
    .where(studies.c.study_instance_uid == bindparam("b_uid"))
    .with_for_update()
)
_SERIES = select(series.c.id).where(series.c.series_instance_uid == bindparam("b_uid"))
_PATIENT = select(patients.c.id).where(
    patients.c.patient_id == bindparam("b_id"),
    patients.c.issuer_of_patient_id == bindparam("b_issuer"),
)
_INSERT_INSTANCE = instances.insert().returning(instances.c.id)
_INSERT_ATTACHMENT = attachments.insert()
_INSERT_CHANGE = changes.insert()
_COUNT_SERIES = (
    update(series)
    .where(series.c.id == bindparam("b_pk"))
    .values(
        number_of_series_related_instances=series.c.number_of_series_related_instances
        + bindparam("b_i")
    )
)
_COUNT_STUDY = (
    update(studies)
    .where(studies.c.id == bindparam("b_pk"))
    .values(
        number_of_study_related_instances=studies.c.number_of_study_related_instances
        + bindparam("b_i"),
        number_of_study_related_series=studies.c.number_of_study_related_series + bindparam("b_s"),
    )
)
_COUNT_PATIENT = (
    update(patients)
    .where(patients.c.id == bindparam("b_pk"))
    .values(
        number_of_patient_related_instances=patients.c.number_of_patient_related_instances
        + bindparam("b_i"),
        number_of_patient_related_series=patients.c.number_of_patient_related_series
        + bindparam("b_s"),
        number_of_patient_related_studies=patients.c.number_of_patient_related_studies
        + bindparam("b_p"),
    )
)
_STUDY_LISTS = (
    update(studies)
    .where(studies.c.id == bindparam("b_pk"))
    .values(
        modalities_in_study=bindparam("b_modalities"), sop_classes_in_study=bindparam("b_classes")
    )
)


def _retrying(attempt: Callable[[], AddResult]) -> AddResult | DicomhubError:
    """Run an indexing attempt; a refusal is returned, a lost insert race retried."""
    for number in range(3):
        try:
            return attempt()
        except DicomhubError as exc:
            return exc
        except IntegrityError:
            if number == 2:
                raise
    raise AssertionError("unreachable")


class IndexRepository:
    """The index's write path and point reads."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db
        self.after_add: Callable[[Connection, NewInstance], None] | None = None
        """Called in the indexing transaction of each stored or replaced instance (the
        forwarding queue is filled there, so an acknowledged instance always has its rows)."""

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

    def add_instance(
        self,
        dataset: Dataset,
        header: dict[str, Any],
        blob: BlobInfo,
        transfer_syntax_uid: str,
        *,
        source: str,
        calling_ae_title: str = "",
        replace: bool = False,
    ) -> AddResult:
        """Index one stored object (see the module docstring)."""
        item = NewInstance(
            dataset, header, blob, transfer_syntax_uid, source, calling_ae_title, replace
        )
        (result,) = self.add_instances([item])
        if isinstance(result, DicomhubError):
            raise result
        return result

    def add_instances(
        self,
        items: Sequence[NewInstance],
        *,
        durable: bool = True,
        also: Callable[[Connection], None] | None = None,
    ) -> list[AddResult | DicomhubError]:
        """Index several stored objects in one transaction (group commit).

        Each object gets its own savepoint, so one refused object (a conflicting duplicate)
        does not undo the others: its slot in the result holds the error instead.  An insert
        race lost to another writer is retried.  Errors of the transaction itself (the
        commit) are raised and then none of the objects is indexed.  ``durable=False`` lets an
        embedded SQLite commit without waiting for the disk (see ``IndexDatabase.write``);
        ``also`` runs in the same transaction (the ingest path records its log position).
        """
        if len(items) == 1:
            return [self._add_alone(items[0], durable, also)]
        results: list[AddResult | DicomhubError] = []
        with self.db.write(durable=durable) as conn:
            for item in items:
                results.append(self._add_one(conn, item))
            if also is not None:
                also(conn)
        return results

    def _add_alone(
        self, item: NewInstance, durable: bool, also: Callable[[Connection], None] | None
    ) -> AddResult | DicomhubError:
        """A batch of one needs no savepoint: a refusal rolls the transaction back."""

        def attempt() -> AddResult:
            with self.db.write(durable=durable) as conn:
                result = self._add(conn, item)
                if also is not None:
                    also(conn)
                return result

        return _retrying(attempt)

    def _add_one(self, conn: Connection, item: NewInstance) -> AddResult | DicomhubError:
        def attempt() -> AddResult:
            with conn.begin_nested():
                return self._add(conn, item)

        return _retrying(attempt)

    def remove_instance(self, sop_instance_uid: str, reason: str) -> str | None:
        """Remove an instance from the index; returns its blob key to delete after commit."""
        with self.db.write() as conn:
            row = conn.execute(
                stored_instance_select().where(instances.c.sop_instance_uid == sop_instance_uid)
            ).first()
            if row is None:
                return None
            stored = _to_stored(row)
            self._remove(conn, stored)
            self._record(conn, "deleted", Level.IMAGE, sop_instance_uid, {"reason": reason})
            return stored.blob_key

    def _add(self, conn: Connection, item: NewInstance) -> AddResult:
        dataset, header, blob = item.dataset, item.header, item.blob
        transfer_syntax_uid, source = item.transfer_syntax_uid, item.source
        calling_ae_title, replace = item.calling_ae_title, item.replace
        sop_uid = str(dataset.SOPInstanceUID)
        outcome, obsolete = AddOutcome.STORED, None
        row = conn.execute(_EXISTING, {"b_uid": sop_uid}).first()
        if row is not None:
            existing = _to_stored(row)
            if existing.content_sha256 == blob.content_sha256:
                return AddResult(AddOutcome.DUPLICATE)
            if not replace:
                raise DuplicateSOPInstance(f"already stored with different content: {sop_uid}")
            self._remove(conn, existing)
            outcome, obsolete = AddOutcome.REPLACED, existing.blob_key

        now = utc_now()
        charset = character_set(dataset)
        study_uid = str(dataset.StudyInstanceUID)
        series_uid = str(dataset.SeriesInstanceUID)

        study_row = conn.execute(_STUDY, {"b_uid": study_uid}).first()
        new_study = study_row is None
        if study_row is None:
            patient_pk = self._upsert_patient(conn, dataset, header, charset, now)
            # Another writer may have created it meanwhile: then it is not new for our counts.
            new_study = self._insert_ignore(
                conn,
                studies,
                {
                    **level_values(dataset, Level.STUDY, header),
                    "patient_fk": patient_pk,
                    "specific_character_set": charset,
                    "created_at": now,
                },
            )
            study_row = conn.execute(_STUDY, {"b_uid": study_uid}).one()
        study_pk, patient_pk = int(study_row[0]), int(study_row[1])

        series_pk = conn.execute(_SERIES, {"b_uid": series_uid}).scalar()
        new_series = series_pk is None
        if series_pk is None:
            new_series = self._insert_ignore(
                conn,
                series,
                {
                    **level_values(dataset, Level.SERIES, header),
                    "study_fk": study_pk,
                    "specific_character_set": charset,
                    "created_at": now,
                },
            )
            series_pk = conn.execute(_SERIES, {"b_uid": series_uid}).scalar_one()

        instance_pk = conn.execute(
            _INSERT_INSTANCE,
            {
                **level_values(dataset, Level.IMAGE, header),
                "series_fk": series_pk,
                "specific_character_set": charset,
                "header": header,
                "calling_ae_title": calling_ae_title[:16],
                "source": source[:32],
                "received_at": now,
            },
        ).scalar_one()
        conn.execute(
            _INSERT_ATTACHMENT,
            {
                "instance_fk": instance_pk,
                "blob_key": blob.key,
                "size": blob.size,
                "sha256": blob.sha256,
                "content_sha256": blob.content_sha256,
                "transfer_syntax_uid": transfer_syntax_uid,
                "created_at": now,
            },
        )
        self._count(conn, patient_pk, study_pk, series_pk, +1, new_study, new_series)
        self._extend_study_lists(conn, study_pk, study_row[2], study_row[3], dataset)
        self._record(
            conn,
            outcome.value,
            Level.IMAGE,
            sop_uid,
            {
                "study": study_uid,
                "series": series_uid,
                "source": source,
                "calling_ae_title": calling_ae_title,
            },
        )
        if self.after_add is not None:
            self.after_add(conn, item)
        return AddResult(outcome, obsolete)

    def _upsert_patient(
        self,
        conn: Connection,
        dataset: Dataset,
        header: dict[str, Any],
        charset: str,
        now: datetime,
    ) -> int:
        values = level_values(dataset, Level.PATIENT, header)
        self._insert_ignore(
            conn,
            patients,
            {
                **values,
                "specific_character_set": charset,
                "created_at": now,
            },
        )
        return int(
            conn.execute(
                _PATIENT,
                {
                    "b_id": values["patient_id"],
                    "b_issuer": values["issuer_of_patient_id"],
                },
            ).scalar_one()
        )

    @staticmethod
    def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
        """INSERT unless the row exists (waiting for a concurrent writer); True if inserted."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
        )
        return conn.execute(statement).first() is not None

    @staticmethod
    def _count(
        conn: Connection,
        patient_pk: int,
        study_pk: int,
        series_pk: int,
        delta: int,
        study_changed: bool,
        series_changed: bool,
    ) -> None:
        s, p = int(series_changed) * delta, int(study_changed) * delta
        conn.execute(_COUNT_SERIES, {"b_pk": series_pk, "b_i": delta})
        conn.execute(_COUNT_STUDY, {"b_pk": study_pk, "b_i": delta, "b_s": s})
        conn.execute(_COUNT_PATIENT, {"b_pk": patient_pk, "b_i": delta, "b_s": s, "b_p": p})

    @staticmethod
    def _extend_study_lists(
        conn: Connection,
        study_pk: int,
        current_modalities: str,
        current_classes: str,
        dataset: Dataset,
    ) -> None:
        """Add this instance's Modality and SOP Class to the study's lists if they are new."""
        modalities = set(filter(None, current_modalities.split("\\")))
        classes = set(filter(None, current_classes.split("\\")))
        modality = str(dataset.get("Modality", "") or "").strip()
        sop_class = str(dataset.SOPClassUID)
        if (not modality or modality in modalities) and sop_class in classes:
            return
        modalities.update(filter(None, [modality]))
        classes.add(sop_class)
        conn.execute(
            _STUDY_LISTS,
            {
                "b_pk": study_pk,
                "b_modalities": "\\".join(sorted(modalities)),
                "b_classes": "\\".join(sorted(classes)),
            },
        )

    @staticmethod
    def _refresh_study_lists(conn: Connection, study_pk: int) -> None:
        """Recompute ModalitiesInStudy and SOPClassesInStudy from the study's rows."""
        modalities = (
            conn.execute(
                select(series.c.modality)
                .where(series.c.study_fk == study_pk, series.c.modality != "")
                .distinct()
                .order_by(series.c.modality)
            )
            .scalars()
            .all()
        )
        classes = (
            conn.execute(
                select(instances.c.sop_class_uid)
                .join(series, instances.c.series_fk == series.c.id)
                .where(series.c.study_fk == study_pk)
                .distinct()
                .order_by(instances.c.sop_class_uid)
            )
            .scalars()
            .all()
        )
        conn.execute(
            _STUDY_LISTS,
            {
                "b_pk": study_pk,
                "b_modalities": "\\".join(modalities),
                "b_classes": "\\".join(classes),
            },
        )

    def _remove(self, conn: Connection, stored: StoredInstance) -> None:
        series_pk, study_pk, patient_pk = conn.execute(
            select(series.c.id, studies.c.id, studies.c.patient_fk)
            .join(studies, series.c.study_fk == studies.c.id)
            .where(series.c.series_instance_uid == stored.series_instance_uid)
        ).one()
        conn.execute(delete(attachments).where(attachments.c.instance_fk == stored.instance_pk))
        conn.execute(delete(instances).where(instances.c.id == stored.instance_pk))
        left_in_series = conn.execute(
            select(func.count()).select_from(instances).where(instances.c.series_fk == series_pk)
        ).scalar_one()
        left_in_study = conn.execute(
            select(func.count()).select_from(series).where(series.c.study_fk == study_pk)
        ).scalar_one() - (0 if left_in_series else 1)
        self._count(
            conn, patient_pk, study_pk, series_pk, -1, left_in_study == 0, left_in_series == 0
        )
        if not left_in_series:
            conn.execute(delete(series).where(series.c.id == series_pk))
        if left_in_study == 0:
            conn.execute(delete(studies).where(studies.c.id == study_pk))
            studies_left = conn.execute(
                select(func.count()).select_from(studies).where(studies.c.patient_fk == patient_pk)
            ).scalar_one()
            if not studies_left:
                conn.execute(delete(patients).where(patients.c.id == patient_pk))
        else:
            self._refresh_study_lists(conn, study_pk)

    @staticmethod
    def _record(
        conn: Connection, change_type: str, level: Level, uid: str, details: dict[str, Any]
    ) -> None:
        conn.execute(
            _INSERT_CHANGE,
            {
                "change_type": change_type,
                "level": level.value,
                "uid": uid,
                "details": details,
                "occurred_at": utc_now(),
            },
        )
