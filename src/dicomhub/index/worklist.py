"""Modality Worklist items (PS3.4 K): one Scheduled Procedure Step each, kept in the database.

An item is a data set with the patient, visit and requested procedure attributes and a
``ScheduledProcedureStepSequence`` of exactly one item.  The whole data set is stored as DICOM
JSON (``attributes``, values decoded to Unicode, ``SpecificCharacterSet`` kept); the matching
keys of the worklist model are copied into columns so a query can be narrowed in SQL.

Items come from the command line, from HL7 orders (``upsert_order`` / ``cancel_order``, one
item per order key) and move through their statuses with MPPS:

    SCHEDULED -> IN PROGRESS -> COMPLETED | DISCONTINUED;  SCHEDULED | IN PROGRESS -> CANCELLED

COMPLETED, DISCONTINUED and CANCELLED are final: cancelling or patient updates leave such
items alone, and the worklist SCP does not return them unless configured to.
"""

from __future__ import annotations

import builtins
import copy
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from sqlalchemy import Connection, func, insert, select, text, update

from dicomhub.errors import InvalidWorklistItem, NoSuchWorklistItem
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import worklist_items as table
from dicomhub.index.times import utc_now
from dicomhub.index.values import text_value


class WorklistStatus(StrEnum):
    """Status of a worklist item (its Scheduled Procedure Step)."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        """COMPLETED, DISCONTINUED and CANCELLED items do not change any more by themselves."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {WorklistStatus.COMPLETED, WorklistStatus.DISCONTINUED, WorklistStatus.CANCELLED}
)
ACTIVE_STATUSES = (WorklistStatus.SCHEDULED, WorklistStatus.IN_PROGRESS)

SPS_KEYWORD = "ScheduledProcedureStepSequence"

TOP_LEVEL_COLUMNS: dict[str, str] = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "IssuerOfPatientID": "issuer_of_patient_id",
    "AccessionNumber": "accession_number",
    "RequestedProcedureID": "requested_procedure_id",
    "StudyInstanceUID": "study_instance_uid",
}
"""Top-level matching keys kept in columns (keyword -> column)."""

STEP_COLUMNS: dict[str, str] = {
    "ScheduledProcedureStepID": "scheduled_procedure_step_id",
    "Modality": "modality",
    "ScheduledStationAETitle": "scheduled_station_ae_title",
    "ScheduledStationName": "scheduled_station_name",
    "ScheduledProcedureStepStartDate": "start_date",
    "ScheduledProcedureStepStartTime": "start_time",
    "ScheduledPerformingPhysicianName": "performing_physician_name",
}
"""Matching keys of the ScheduledProcedureStepSequence item kept in columns."""

_UTF8 = "ISO_IR 192"
_TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})


@dataclass(frozen=True)
class WorklistItem:
    """One stored worklist item."""

    id: int
    status: WorklistStatus
    source: str
    order_key: str
    attributes: dict[str, Any]
    """The item as DICOM JSON (PS3.18 F)."""
    created_at: datetime
    updated_at: datetime

    @property
    def dataset(self) -> Dataset:
        """The item as a pydicom data set."""
        return Dataset.from_json(self.attributes)


def step_of(dataset: Dataset) -> Dataset | None:
    """The (first) ScheduledProcedureStepSequence item of a worklist data set."""
    sequence = dataset.get(SPS_KEYWORD)
    if not sequence:
        return None
    item: Dataset = sequence[0]
    return item


def _clean(dataset: Dataset) -> Dataset:
    """A copy without command and file meta elements (a worklist file's group 0002)."""
    result = Dataset()
    for element in dataset:
        if element.tag.group not in {0x0000, 0x0002}:
            result.add(copy.deepcopy(element))
    return result


def _encodable(elements: Iterable[Any], charset: str) -> bool:
    """Whether every text value of ``elements`` can be written in ``charset``."""
    encodings = convert_encodings(charset.split("\\") if charset else [""])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for element in elements:
            if element.VR not in _TEXT_VRS or element.value is None:
                continue
            values = element.value if element.VM > 1 else [element.value]
            for value in values:
                try:
                    encode_string(str(value), encodings)
                except (UserWarning, UnicodeError, LookupError):
                    return False
    return True


def validate(dataset: Dataset) -> None:
    """Raise ``InvalidWorklistItem`` unless the data set can be a worklist item."""
    missing = [k for k in ("PatientName", "PatientID") if not text_value(dataset.get(k))]
    if missing:
        raise InvalidWorklistItem(
            f"a worklist item needs {' and '.join(missing)}: the modality identifies the "
            "patient by them"
        )
    element = dataset.get(SPS_KEYWORD)
    if element is None or not isinstance(element, Sequence) or len(element) == 0:
        raise InvalidWorklistItem(
            "a worklist item needs a ScheduledProcedureStepSequence with one item "
            "(the Scheduled Procedure Step: station, modality, start date and time)"
        )
    if len(element) > 1:
        raise InvalidWorklistItem(
            f"a worklist item is one Scheduled Procedure Step; its "
            f"ScheduledProcedureStepSequence has {len(element)} items: add one item per step"
        )


def _column_values(dataset: Dataset) -> dict[str, str]:
    """The matching-key columns of a (validated) worklist data set, cut to column length."""
    values: dict[str, str] = {}
    step = step_of(dataset) or Dataset()
    for source, columns in ((dataset, TOP_LEVEL_COLUMNS), (step, STEP_COLUMNS)):
        for keyword, column in columns.items():
            value = text_value(source.get(keyword))
            if keyword == "ScheduledProcedureStepStartDate":
                value = value.replace(".", "")
            length = getattr(table.c[column].type, "length", None)
            values[column] = value[:length] if length else value
    charset = text_value(dataset.get("SpecificCharacterSet"))
    values["specific_character_set"] = charset[:200]
    return values


def column_length(column: str) -> int | None:
    """The declared length of a worklist column (values of this length may be cut short)."""
    length = getattr(table.c[column].type, "length", None)
    return int(length) if length else None


def item_from_row(row: Any) -> WorklistItem:
    """A ``worklist_items`` row as a ``WorklistItem``."""
    attributes = row.attributes
    return WorklistItem(
        id=int(row.id),
        status=WorklistStatus(row.status),
        source=row.source,
        order_key=row.order_key,
        attributes=dict(attributes) if isinstance(attributes, Mapping) else {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class WorklistRepository:
    """Worklist items in the index database (shared by every dicomhub process)."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

    # Writing --------------------------------------------------------------------------

    def add(self, dataset: Dataset, *, source: str, order_key: str = "") -> int:
        """Store a new SCHEDULED item; its id.

        Refuses (``InvalidWorklistItem``) an item without PatientName or PatientID or without
        exactly one ScheduledProcedureStepSequence item.  A StudyInstanceUID is generated
        when the item has none, so every modality uses the same one for the study.
        """
        item = self._prepared(dataset)
        with self.db.write() as conn:
            return self._insert(conn, item, source=source, order_key=order_key)

    def update(self, item_id: int, dataset: Dataset) -> None:
        """Replace an item's attributes (its status is kept).

        Without a StudyInstanceUID in ``dataset`` the item keeps the one it had.
        """
        item = self._prepared(dataset, generate=False)
        with self.db.write() as conn:
            current = self._locked(conn, item_id)
            if current is None:
                raise NoSuchWorklistItem(f"there is no worklist item {item_id}")
            self._replace(conn, current, item)

    def upsert_order(self, order_key: str, dataset: Dataset, *, source: str) -> int:
        """A new or changed order: the item of ``order_key`` gets ``dataset``; its id.

        One item per order key: when the order has an item already, its attributes are
        replaced (StudyInstanceUID kept unless the new data set names one) and its status
        kept, except that a CANCELLED item becomes SCHEDULED again (the order was placed
        anew).  Otherwise a new SCHEDULED item is added.
        """
        if not order_key:
            raise InvalidWorklistItem("an order needs an order key (placer/filler number)")
        item = self._prepared(dataset, generate=False)
        with self.db.write() as conn:
            self._lock_order(conn, order_key)
            row = conn.execute(
                select(table)
                .where(table.c.order_key == order_key)
                .order_by(table.c.id.desc())
                .limit(1)
            ).first()
            if row is None:
                if "StudyInstanceUID" not in item or not text_value(item.StudyInstanceUID):
                    item.StudyInstanceUID = generate_uid()
                return self._insert(conn, item, source=source, order_key=order_key)
            current = item_from_row(row)
            status = current.status
            if status is WorklistStatus.CANCELLED:
                status = WorklistStatus.SCHEDULED
            self._replace(conn, current, item, status=status, source=source)
            return current.id

    def cancel(self, item_id: int) -> bool:
        """Mark an item CANCELLED; False when there is no such item or it is final already."""
        with self.db.write() as conn:
            result = conn.execute(
                update(table)
                .where(table.c.id == item_id)
                .where(table.c.status.in_([s.value for s in ACTIVE_STATUSES]))
                .values(status=WorklistStatus.CANCELLED.value, updated_at=utc_now())
            )
            return bool(result.rowcount)

    def cancel_order(self, order_key: str) -> int:
        """Cancel the items of an order that are not final; how many were cancelled."""
        if not order_key:
            return 0
        with self.db.write() as conn:
            result = conn.execute(
                update(table)
                .where(table.c.order_key == order_key)
                .where(table.c.status.in_([s.value for s in ACTIVE_STATUSES]))
                .values(status=WorklistStatus.CANCELLED.value, updated_at=utc_now())
            )
            return int(result.rowcount)

    def set_status(self, item_id: int, status: WorklistStatus) -> None:
        """Set an item's status (MPPS: IN PROGRESS, COMPLETED, DISCONTINUED)."""
        status = WorklistStatus(status)
        with self.db.write() as conn:
            result = conn.execute(
                update(table)
                .where(table.c.id == item_id)
                .values(status=status.value, updated_at=utc_now())
            )
            if not result.rowcount:
                raise NoSuchWorklistItem(f"there is no worklist item {item_id}")

    def update_patient(self, patient_id: str, issuer_of_patient_id: str, changes: Dataset) -> int:
        """Apply patient attributes to every item of that patient that is not final.

        The patient is the one with exactly this PatientID and IssuerOfPatientID.  Only the
        patient's attributes in ``changes`` are applied (group 0010: name, birth date, sex,
        other IDs, medical alerts, allergies, ...); when ``changes`` names another character
        set (or values the item's character set cannot encode), the items are switched to
        UTF-8 (ISO_IR 192) so every value stays encodable.
        Returns the number of items whose attributes changed.
        """
        if not patient_id:
            return 0
        patient = _patient_elements(changes)
        if not len(patient):
            return 0
        new_charset = text_value(changes.get("SpecificCharacterSet"))
        changed = 0
        with self.db.write() as conn:
            rows = conn.execute(
                select(table)
                .where(table.c.patient_id == patient_id[: column_length("patient_id")])
                .where(table.c.issuer_of_patient_id == issuer_of_patient_id)
                .where(table.c.status.in_([s.value for s in ACTIVE_STATUSES]))
                .order_by(table.c.id)
            ).all()
            for row in rows:
                current = item_from_row(row)
                dataset = current.dataset
                if text_value(dataset.get("PatientID")) != patient_id:
                    continue  # a longer ID cut to the column's length
                before = dataset.to_json_dict()
                for element in patient:
                    dataset[element.tag] = copy.deepcopy(element)
                charset = text_value(dataset.get("SpecificCharacterSet"))
                if (new_charset and new_charset != charset) or not _encodable(patient, charset):
                    dataset.SpecificCharacterSet = _UTF8
                if dataset.to_json_dict() == before:
                    continue
                self._replace(conn, current, dataset)
                changed += 1
        return changed

    # Reading --------------------------------------------------------------------------

    def get(self, item_id: int) -> WorklistItem | None:
        """One item, None when there is no such item."""
        with self.db.read() as conn:
            row = conn.execute(select(table).where(table.c.id == item_id)).first()
        return None if row is None else item_from_row(row)

    def list(
        self, status: WorklistStatus | None = None, limit: int = 100
    ) -> builtins.list[WorklistItem]:
        """Items, most recently created first (optionally only those with ``status``)."""
        query = select(table).order_by(table.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(table.c.status == WorklistStatus(status).value)
        with self.db.read() as conn:
            return [item_from_row(row) for row in conn.execute(query)]

    def match_scheduled_step(
        self,
        *,
        study_instance_uid: str = "",
        accession_number: str = "",
        requested_procedure_id: str = "",
        scheduled_procedure_step_id: str = "",
    ) -> WorklistItem | None:
        """The item a Scheduled Step Attributes Sequence item (MPPS) names.

        Criteria are tried from the most specific (every identifier given) to the least
        (StudyInstanceUID alone, AccessionNumber alone); empty identifiers are not used.  The
        first criterion that some item meets decides: one item is the answer; several are
        ambiguous (None) unless exactly one of them is not CANCELLED.  None when no
        criterion is met.
        """
        given = {
            "study_instance_uid": study_instance_uid.strip(),
            "accession_number": accession_number.strip(),
            "requested_procedure_id": requested_procedure_id.strip(),
            "scheduled_procedure_step_id": scheduled_procedure_step_id.strip(),
        }
        levels: builtins.list[tuple[str, ...]] = [
            tuple(name for name, value in given.items() if value),
            ("accession_number", "requested_procedure_id", "scheduled_procedure_step_id"),
            ("study_instance_uid", "scheduled_procedure_step_id"),
            ("accession_number", "scheduled_procedure_step_id"),
            ("study_instance_uid", "requested_procedure_id"),
            ("accession_number", "requested_procedure_id"),
            ("study_instance_uid",),
            ("accession_number",),
        ]
        tried: set[tuple[str, ...]] = set()
        with self.db.read() as conn:
            for level in levels:
                if not level or level in tried or not all(given[name] for name in level):
                    continue
                tried.add(level)
                query = select(table).order_by(table.c.id)
                for name in level:
                    query = query.where(table.c[name] == given[name][: column_length(name)])
                found = [item_from_row(row) for row in conn.execute(query)]
                if not found:
                    continue
                if len(found) > 1:
                    found = [i for i in found if i.status is not WorklistStatus.CANCELLED]
                return found[0] if len(found) == 1 else None
        return None

    # Internals ------------------------------------------------------------------------

    @staticmethod
    def _prepared(dataset: Dataset, *, generate: bool = True) -> Dataset:
        item = _clean(dataset)
        validate(item)
        if generate and not text_value(item.get("StudyInstanceUID")):
            item.StudyInstanceUID = generate_uid()
        return item

    @staticmethod
    def _insert(conn: Connection, item: Dataset, *, source: str, order_key: str) -> int:
        now = utc_now()
        result = conn.execute(
            insert(table).values(
                **_column_values(item),
                status=WorklistStatus.SCHEDULED.value,
                attributes=item.to_json_dict(),
                source=source[: column_length("source")],
                order_key=order_key[: column_length("order_key")],
                created_at=now,
                updated_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    @staticmethod
    def _replace(
        conn: Connection,
        current: WorklistItem,
        item: Dataset,
        *,
        status: WorklistStatus | None = None,
        source: str | None = None,
    ) -> None:
        if not text_value(item.get("StudyInstanceUID")):
            previous = text_value(current.dataset.get("StudyInstanceUID"))
            item.StudyInstanceUID = previous or generate_uid()
        values: dict[str, Any] = {
            **_column_values(item),
            "attributes": item.to_json_dict(),
            "updated_at": utc_now(),
        }
        if status is not None:
            values["status"] = status.value
        if source is not None:
            values["source"] = source[: column_length("source")]
        conn.execute(update(table).where(table.c.id == current.id).values(**values))

    @staticmethod
    def _locked(conn: Connection, item_id: int) -> WorklistItem | None:
        query = select(table).where(table.c.id == item_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else item_from_row(row)

    @staticmethod
    def _lock_order(conn: Connection, order_key: str) -> None:
        """Serialise writers of one order key (SQLite has one writer at a time anyway)."""
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(f"worklist-order:{order_key}".encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _patient_elements(changes: Dataset) -> builtins.list[Any]:
    """The Patient module elements (group 0010) of ``changes``."""
    return [element for element in changes if element.tag.group == 0x0010]


def count_by_status(db: IndexDatabase) -> dict[WorklistStatus, int]:
    """How many items there are in each status."""
    with db.read() as conn:
        rows = conn.execute(select(table.c.status, func.count()).group_by(table.c.status)).all()
    return {WorklistStatus(status): int(count) for status, count in rows}
