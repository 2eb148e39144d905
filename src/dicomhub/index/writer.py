"""Indexing stored objects: the instance row, its attachment, the derived keys, the change log.

A batch of objects (the ingest path's group commit) is indexed in one transaction.  Most
objects belong to a series the index already holds; for them the work is a handful of
prepared statements on the driver's cursor, with the counters and change-log rows of the whole
batch written together at the end:

* one look-up of the series with its study (on PostgreSQL the study row is locked, so
  concurrent writers of one study keep its counts and lists right);
* ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` of the instance, so a SOP Instance UID
  already stored costs nothing until it happens;
* the attachment row.

Everything else (a new patient, study or series, a duplicate or replaced instance, a series
filed under another study) takes the general path, statement by statement through
SQLAlchemy in a savepoint of its own, so one refused object does not undo the others.  Items
are indexed in the order of their study and series UIDs, so two writers lock rows in the same
order; a deadlock PostgreSQL still reports is retried with the whole transaction.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.types import DateTime

from dicomhub.errors import DicomhubError, DuplicateSOPInstance
from dicomhub.header import ParsedHeader
from dicomhub.index.attributes import Level
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import attachments, changes, instances, patients, series, studies
from dicomhub.index.times import utc_now
from dicomhub.index.values import character_set, level_values
from dicomhub.storage.base import BlobInfo

LOG = logging.getLogger(__name__)
RETRIES = 3


class AddOutcome(StrEnum):
    """What indexing an object did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


@dataclass(frozen=True)
class AddResult:
    """Outcome of indexing one object; ``obsolete_blob_key`` is to be deleted after commit."""

    outcome: AddOutcome
    obsolete_blob_key: str | None = None


@dataclass(frozen=True)
class NewInstance:
    """A stored object to index, with where it came from."""

    parsed: ParsedHeader
    blob: BlobInfo
    source: str
    calling_ae_title: str = ""
    replace: bool = False
    called_ae_title: str = ""
    sop_instance_uid: str = field(init=False)
    study_instance_uid: str = field(init=False)
    series_instance_uid: str = field(init=False)
    sop_class_uid: str = field(init=False)
    modality: str = field(init=False)
    character_set: str = field(init=False)
    """Read from the header once (the index needs each several times)."""

    @property
    def dataset(self) -> Dataset:
        """The header as a pydicom data set (parsed on first use)."""
        return self.parsed.dataset

    @property
    def header(self) -> dict[str, Any]:
        """The header's DICOM JSON."""
        return self.parsed.header

    @property
    def transfer_syntax_uid(self) -> str:
        return self.parsed.transfer_syntax_uid

    def __post_init__(self) -> None:
        text = self.parsed.text
        for name, value in (
            ("sop_instance_uid", text("SOPInstanceUID")),
            ("study_instance_uid", text("StudyInstanceUID")),
            ("series_instance_uid", text("SeriesInstanceUID")),
            ("sop_class_uid", text("SOPClassUID")),
            ("modality", text("Modality").strip()),
            ("character_set", character_set(self.header)),
        ):
            object.__setattr__(self, name, value)

    def values(self, level: Level) -> dict[str, Any]:
        """Column values of one level, read from the header."""
        return level_values(self.header, level, self.parsed.ds_texts)

    @cached_property
    def image_row(self) -> tuple[Any, ...]:
        """The fast path's ``instances`` row, but for the series key and the time (filled in
        the transaction): computed before the writer lock is taken, so that the lock, which
        other processes may be waiting for, is held only for the statements."""
        values = self.values(Level.IMAGE)
        values.update(
            series_fk=None,
            specific_character_set=self.character_set,
            header=json.dumps(self.header),
            calling_ae_title=self.calling_ae_title[:16],
            source=self.source[:32],
            received_at=None,
        )
        return tuple(values[c] for c in _INSTANCE_COLUMNS)

    @cached_property
    def details_json(self) -> str:
        """The change log's details of this instance, as JSON text."""
        return json.dumps(_details(self))


# Statements of the general path, built once so SQLAlchemy compiles each a single time.
_STORED = (
    select(
        instances.c.id,
        attachments.c.blob_key,
        attachments.c.content_sha256,
        series.c.series_instance_uid,
    )
    .select_from(instances)
    .join(series, instances.c.series_fk == series.c.id)
    .join(attachments, attachments.c.instance_fk == instances.c.id)
    .where(instances.c.sop_instance_uid == bindparam("b_uid"))
)
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


# The fast path: SQL text for the driver's cursor, in each dialect's parameter style.
_INSTANCE_COLUMNS = [c.name for c in instances.columns if c.name != "id"]
_SERIES_FK_AT = _INSTANCE_COLUMNS.index("series_fk")
_RECEIVED_AT_AT = _INSTANCE_COLUMNS.index("received_at")
_JSON_COLUMNS = {"header", "details"}


def _placeholders(columns: Sequence[str], postgres: bool) -> str:
    mark = "%s" if postgres else "?"
    return ", ".join(f"{mark}::json" if postgres and c in _JSON_COLUMNS else mark for c in columns)


def _same(value: datetime) -> Any:
    return value


@dataclass(frozen=True)
class _Sql:
    """The fast path's statements in one dialect."""

    series: str
    instance: str
    attachment: str
    count_series: str
    count_study: str
    count_patient: str
    study_lists: str
    change: str
    time: Callable[[datetime], Any]

    @classmethod
    def build(cls, postgres: bool) -> _Sql:
        mark = "%s" if postgres else "?"
        attachment_columns = [c.name for c in attachments.columns if c.name != "id"]
        change_columns = ["change_type", "level", "uid", "details", "occurred_at"]
        dialect = sqlite.dialect()
        processor = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
        assert processor is not None
        # Built from the schema's own names: nothing here comes from outside.
        return cls(
            series=(
                "SELECT s.id, s.study_fk, st.patient_fk, st.study_instance_uid, "  # noqa: S608
                "st.modalities_in_study, st.sop_classes_in_study "
                "FROM series s JOIN studies st ON st.id = s.study_fk "
                f"WHERE s.series_instance_uid = {mark}" + (" FOR UPDATE OF st" if postgres else "")
            ),
            instance=(
                f"INSERT INTO instances ({', '.join(_INSTANCE_COLUMNS)}) "  # noqa: S608
                f"VALUES ({_placeholders(_INSTANCE_COLUMNS, postgres)}) "
                "ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING id"
            ),
            attachment=(
                f"INSERT INTO attachments ({', '.join(attachment_columns)}) "  # noqa: S608
                f"VALUES ({_placeholders(attachment_columns, postgres)})"
            ),
            count_series=(
                "UPDATE series SET number_of_series_related_instances = "  # noqa: S608
                f"number_of_series_related_instances + {mark} WHERE id = {mark}"
            ),
            count_study=(
                "UPDATE studies SET number_of_study_related_instances = "  # noqa: S608
                f"number_of_study_related_instances + {mark} WHERE id = {mark}"
            ),
            count_patient=(
                "UPDATE patients SET number_of_patient_related_instances = "  # noqa: S608
                f"number_of_patient_related_instances + {mark} WHERE id = {mark}"
            ),
            study_lists=(
                f"UPDATE studies SET modalities_in_study = {mark}, "  # noqa: S608
                f"sop_classes_in_study = {mark} WHERE id = {mark}"
            ),
            change=(
                f"INSERT INTO changes ({', '.join(change_columns)}) "  # noqa: S608
                f"VALUES ({_placeholders(change_columns, postgres)})"
            ),
            time=_same if postgres else processor,
        )


_SQL = {"postgresql": _Sql.build(postgres=True), "sqlite": _Sql.build(postgres=False)}


@dataclass
class _Study:
    """A study row as the batch knows it (its lists may change before they are written)."""

    pk: int
    patient_pk: int
    uid: str
    modalities: set[str]
    classes: set[str]
    dirty: bool = False


@dataclass
class _Batch:
    """Counters, list changes and change-log rows of the fast path, written together."""

    stamp: Any
    """When the batch's objects were received, as the dialect's driver takes it."""
    series: dict[str, tuple[int, _Study]] = field(default_factory=dict)
    studies: dict[int, _Study] = field(default_factory=dict)
    series_counts: dict[int, int] = field(default_factory=dict)
    study_counts: dict[int, int] = field(default_factory=dict)
    patient_counts: dict[int, int] = field(default_factory=dict)
    changes: list[tuple[Any, ...]] = field(default_factory=list)

    def pending(self) -> bool:
        return bool(self.series_counts or self.changes)


class InstanceWriter:
    """Indexes stored objects (see the module docstring)."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db
        self.after_add: Callable[[Connection, NewInstance], None] | None = None
        """Called in the indexing transaction of each stored or replaced instance (the
        forwarding queue is filled there, so an acknowledged instance always has its rows)."""
        self.after_commit: Callable[[], None] | None = None
        """Called after each committed transaction (the forwarder is woken there)."""
        self._lock = threading.Lock()
        self._connection: Connection | None = None

    def close(self) -> None:
        """Return the writer's connection."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def add_instances(
        self,
        items: Sequence[NewInstance],
        *,
        durable: bool = True,
        also: Callable[[Connection], None] | None = None,
    ) -> list[AddResult | DicomhubError]:
        """Index several stored objects in one transaction.

        A refused object (a conflicting duplicate) gets its error in its slot of the result
        and does not undo the others.  Errors of the transaction itself (the commit) are
        raised, and then none of the objects is indexed.  ``durable=False`` lets an embedded
        SQLite commit without waiting for the disk (see ``IndexDatabase.write``); ``also``
        runs in the same transaction (the ingest path records its log position).
        """
        order = sorted(
            range(len(items)),
            key=lambda i: (items[i].study_instance_uid, items[i].series_instance_uid),
        )
        for item in items:  # the work that needs no lock, done before taking it
            item.image_row  # noqa: B018
            item.details_json  # noqa: B018
        for attempt in range(RETRIES):
            last = attempt == RETRIES - 1
            try:
                with self._lock:
                    results = self._transaction(items, order, durable, also)
                if self.after_commit is not None:
                    self.after_commit()
                return results
            except DicomhubError as exc:  # a lone object refused: its transaction rolled back
                if len(items) != 1:
                    raise
                return [exc]
            except IntegrityError:  # a lone object's insert race lost to another writer
                if last:
                    raise
            except OperationalError as exc:
                if last or not _is_deadlock(exc):
                    raise
                LOG.warning("indexing %d objects met a deadlock; retried", len(items))
        raise AssertionError("unreachable")

    def _transaction(
        self,
        items: Sequence[NewInstance],
        order: list[int],
        durable: bool,
        also: Callable[[Connection], None] | None,
    ) -> list[AddResult | DicomhubError]:
        results: list[AddResult | DicomhubError | None] = [None] * len(items)
        result: AddResult | DicomhubError | None
        if self._connection is None or self._connection.invalidated:
            if self._connection is not None:
                self._connection.close()
            self._connection = self.db.connect_writer()
        with self.db.write(durable=durable, connection=self._connection) as conn:
            sql = _SQL[conn.dialect.name]
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            cursor = dbapi.cursor()
            stamp = sql.time(utc_now())
            batch = _Batch(stamp)
            try:
                for index in order:
                    item = items[index]
                    result = self._fast(conn, cursor, sql, batch, item)
                    if result is None:
                        self._flush(cursor, sql, batch)
                        batch = _Batch(stamp)
                        result = self._general(conn, item, alone=len(items) == 1)
                    results[index] = result
                self._flush(cursor, sql, batch)
            finally:
                cursor.close()
            if also is not None:
                also(conn)
        return [r for r in results if r is not None]

    # The fast path ---------------------------------------------------------------------

    def _fast(
        self, conn: Connection, cursor: Any, sql: _Sql, batch: _Batch, item: NewInstance
    ) -> AddResult | None:
        """Index an object of a known series; None when it needs the general path."""
        found = batch.series.get(item.series_instance_uid)
        if found is None:
            cursor.execute(sql.series, (item.series_instance_uid,))
            row = cursor.fetchone()
            if row is None:
                return None
            series_pk, study_pk, patient_pk, study_uid, modalities, classes = row
            study = batch.studies.get(study_pk) or _Study(
                study_pk,
                patient_pk,
                study_uid,
                set(filter(None, modalities.split("\\"))),
                set(filter(None, classes.split("\\"))),
            )
            batch.studies[study_pk] = study
            found = (series_pk, study)
            batch.series[item.series_instance_uid] = found
        series_pk, study = found
        if study.uid != item.study_instance_uid:
            return None  # the series is filed under another study: the general path says how
        row = list(item.image_row)
        row[_SERIES_FK_AT] = series_pk
        row[_RECEIVED_AT_AT] = batch.stamp
        cursor.execute(sql.instance, row)
        row = cursor.fetchone()
        if row is None:
            return None  # already stored: the general path compares the copies
        blob = item.blob
        cursor.execute(
            sql.attachment,
            (
                row[0],
                blob.key,
                blob.size,
                blob.sha256,
                blob.content_sha256,
                item.transfer_syntax_uid,
                batch.stamp,
            ),
        )
        batch.series_counts[series_pk] = batch.series_counts.get(series_pk, 0) + 1
        batch.study_counts[study.pk] = batch.study_counts.get(study.pk, 0) + 1
        batch.patient_counts[study.patient_pk] = batch.patient_counts.get(study.patient_pk, 0) + 1
        modality, sop_class = item.modality, item.sop_class_uid
        if (modality and modality not in study.modalities) or sop_class not in study.classes:
            study.modalities.update(filter(None, [modality]))
            study.classes.add(sop_class)
            study.dirty = True
        batch.changes.append(
            (
                AddOutcome.STORED.value,
                Level.IMAGE.value,
                item.sop_instance_uid,
                item.details_json,
                batch.stamp,
            )
        )
        if self.after_add is not None:
            self.after_add(conn, item)
        return AddResult(AddOutcome.STORED)

    @staticmethod
    def _flush(cursor: Any, sql: _Sql, batch: _Batch) -> None:
        """Write the batch's counters, study lists and change-log rows (rows in key order,
        so concurrent writers lock them in the same order)."""
        if not batch.pending():
            return
        for statement, counts in (
            (sql.count_series, batch.series_counts),
            (sql.count_study, batch.study_counts),
            (sql.count_patient, batch.patient_counts),
        ):
            cursor.executemany(statement, [(counts[pk], pk) for pk in sorted(counts)])
        for study in sorted(batch.studies.values(), key=lambda s: s.pk):
            if study.dirty:
                cursor.execute(
                    sql.study_lists,
                    (
                        "\\".join(sorted(study.modalities)),
                        "\\".join(sorted(study.classes)),
                        study.pk,
                    ),
                )
        cursor.executemany(sql.change, batch.changes)

    # The general path ------------------------------------------------------------------

    def _general(
        self, conn: Connection, item: NewInstance, *, alone: bool
    ) -> AddResult | DicomhubError:
        """Index one object statement by statement.  In a batch it runs in a savepoint of
        its own; a lone object needs none: its refusal or lost race is raised and rolls the
        whole transaction back (``add_instances`` answers or retries)."""
        if alone:
            return self._add(conn, item)
        for number in range(RETRIES):
            try:
                with conn.begin_nested():
                    return self._add(conn, item)
            except DicomhubError as exc:
                return exc
            except IntegrityError:  # an insert race lost to another writer
                if number == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _add(self, conn: Connection, item: NewInstance) -> AddResult:
        sop_uid = item.sop_instance_uid
        outcome, obsolete = AddOutcome.STORED, None
        existing = conn.execute(_STORED, {"b_uid": sop_uid}).first()
        if existing is not None:
            if existing[2] == item.blob.content_sha256:
                return AddResult(AddOutcome.DUPLICATE)
            if not item.replace:
                raise DuplicateSOPInstance(f"already stored with different content: {sop_uid}")
            remove_instance_rows(conn, int(existing[0]), existing[3])
            outcome, obsolete = AddOutcome.REPLACED, existing[1]

        now = utc_now()
        charset = item.character_set
        study_row = conn.execute(_STUDY, {"b_uid": item.study_instance_uid}).first()
        new_study = study_row is None
        if study_row is None:
            patient_pk = _upsert_patient(conn, item, now)
            # Another writer may have created it meanwhile: then it is not new for our counts.
            new_study = _insert_ignore(
                conn,
                studies,
                {
                    **item.values(Level.STUDY),
                    "patient_fk": patient_pk,
                    "specific_character_set": charset,
                    "created_at": now,
                },
            )
            study_row = conn.execute(_STUDY, {"b_uid": item.study_instance_uid}).one()
        study_pk, patient_pk = int(study_row[0]), int(study_row[1])

        series_pk = conn.execute(_SERIES, {"b_uid": item.series_instance_uid}).scalar()
        new_series = series_pk is None
        if series_pk is None:
            new_series = _insert_ignore(
                conn,
                series,
                {
                    **item.values(Level.SERIES),
                    "study_fk": study_pk,
                    "specific_character_set": charset,
                    "created_at": now,
                },
            )
            series_pk = conn.execute(_SERIES, {"b_uid": item.series_instance_uid}).scalar_one()

        instance_pk = conn.execute(
            _INSERT_INSTANCE,
            {
                **item.values(Level.IMAGE),
                "series_fk": series_pk,
                "specific_character_set": charset,
                "header": item.header,
                "calling_ae_title": item.calling_ae_title[:16],
                "source": item.source[:32],
                "received_at": now,
            },
        ).scalar_one()
        blob = item.blob
        conn.execute(
            _INSERT_ATTACHMENT,
            {
                "instance_fk": instance_pk,
                "blob_key": blob.key,
                "size": blob.size,
                "sha256": blob.sha256,
                "content_sha256": blob.content_sha256,
                "transfer_syntax_uid": item.transfer_syntax_uid,
                "created_at": now,
            },
        )
        count(conn, patient_pk, study_pk, series_pk, +1, new_study, new_series)
        _extend_study_lists(conn, study_pk, study_row[2], study_row[3], item)
        record_change(conn, outcome.value, Level.IMAGE, sop_uid, _details(item))
        if self.after_add is not None:
            self.after_add(conn, item)
        return AddResult(outcome, obsolete)


def _details(item: NewInstance) -> dict[str, Any]:
    return {
        "study": item.study_instance_uid,
        "series": item.series_instance_uid,
        "source": item.source,
        "calling_ae_title": item.calling_ae_title,
    }


def _is_deadlock(exc: OperationalError) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock (SQLSTATE 40P01)."""
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def _upsert_patient(conn: Connection, item: NewInstance, now: datetime) -> int:
    values = item.values(Level.PATIENT)
    _insert_ignore(
        conn,
        patients,
        {**values, "specific_character_set": item.character_set, "created_at": now},
    )
    return int(
        conn.execute(
            _PATIENT,
            {"b_id": values["patient_id"], "b_issuer": values["issuer_of_patient_id"]},
        ).scalar_one()
    )


def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """INSERT unless the row exists (waiting for a concurrent writer); True if inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    )
    return conn.execute(statement).first() is not None


def count(
    conn: Connection,
    patient_pk: int,
    study_pk: int,
    series_pk: int,
    delta: int,
    study_changed: bool,
    series_changed: bool,
) -> None:
    """Move the NumberOf*Related* counters of an instance's series, study and patient."""
    s, p = int(series_changed) * delta, int(study_changed) * delta
    conn.execute(_COUNT_SERIES, {"b_pk": series_pk, "b_i": delta})
    conn.execute(_COUNT_STUDY, {"b_pk": study_pk, "b_i": delta, "b_s": s})
    conn.execute(_COUNT_PATIENT, {"b_pk": patient_pk, "b_i": delta, "b_s": s, "b_p": p})


def _extend_study_lists(
    conn: Connection,
    study_pk: int,
    current_modalities: str,
    current_classes: str,
    item: NewInstance,
) -> None:
    """Add this instance's Modality and SOP Class to the study's lists if they are new."""
    modalities = set(filter(None, current_modalities.split("\\")))
    classes = set(filter(None, current_classes.split("\\")))
    modality, sop_class = item.modality, item.sop_class_uid
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
        {"b_pk": study_pk, "b_modalities": "\\".join(modalities), "b_classes": "\\".join(classes)},
    )


def remove_instance_rows(conn: Connection, instance_pk: int, series_instance_uid: str) -> None:
    """Delete an instance and its attachment, move the counters, and delete the series,
    study and patient it leaves empty (the study's lists are recomputed otherwise)."""
    series_pk, study_pk, patient_pk = conn.execute(
        select(series.c.id, studies.c.id, studies.c.patient_fk)
        .join(studies, series.c.study_fk == studies.c.id)
        .where(series.c.series_instance_uid == series_instance_uid)
    ).one()
    conn.execute(delete(attachments).where(attachments.c.instance_fk == instance_pk))
    conn.execute(delete(instances).where(instances.c.id == instance_pk))
    left_in_series = conn.execute(
        select(func.count()).select_from(instances).where(instances.c.series_fk == series_pk)
    ).scalar_one()
    left_in_study = conn.execute(
        select(func.count()).select_from(series).where(series.c.study_fk == study_pk)
    ).scalar_one() - (0 if left_in_series else 1)
    count(conn, patient_pk, study_pk, series_pk, -1, left_in_study == 0, left_in_series == 0)
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
        _refresh_study_lists(conn, study_pk)


def record_change(
    conn: Connection, change_type: str, level: Level, uid: str, details: dict[str, Any]
) -> None:
    """Append an entry to the change log."""
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
