"""Tables of the index (SQLAlchemy Core).  Alembic migrations create and evolve them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from dicomhub.index.attributes import INTEGER_VRS, IndexedAttribute, Level, attributes_of

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Autoincrementing 64-bit keys on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

_STRING_LENGTHS = {"PN": 400, "UI": 64, "DA": 8, "TM": 16, "CS": 16, "AS": 4, "DS": 16}
_MULTI_VALUED = {"ModalitiesInStudy", "SOPClassesInStudy", "ImageType", "OtherPatientIDs"}


def _column(attr: IndexedAttribute) -> Column[object]:
    if attr.vr in INTEGER_VRS:
        return Column(attr.column, Integer, nullable=True)
    if attr.keyword in _MULTI_VALUED or attr.vr in {"LT", "ST", "UT"}:
        return Column(attr.column, Text, nullable=False, server_default="")
    return Column(
        attr.column, String(_STRING_LENGTHS.get(attr.vr, 64)), nullable=False, server_default=""
    )


def _level_columns(level: Level, unique: str) -> list[Column[object]]:
    columns = []
    for attr in attributes_of(level):
        col = _column(attr)
        if attr.computed and attr.vr == "IS":
            col = Column(attr.column, Integer, nullable=False, server_default="0")
        if attr.column == unique:
            col = Column(attr.column, String(64), nullable=False, unique=True)
        columns.append(col)
    return columns


patients = Table(
    "patients",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    *[
        c
        for c in _level_columns(Level.PATIENT, unique="")
        if c.name not in {"patient_id", "issuer_of_patient_id"}
    ],
    Column("patient_id", String(64), nullable=False, server_default=""),
    Column("issuer_of_patient_id", String(64), nullable=False, server_default=""),
    Column("specific_character_set", String(200), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("patient_id", "issuer_of_patient_id", name="uq_patients_identity"),
)

studies = Table(
    "studies",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("patient_fk", BigId, ForeignKey("patients.id"), nullable=False, index=True),
    *_level_columns(Level.STUDY, unique="study_instance_uid"),
    Column("specific_character_set", String(200), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_studies_study_date", "study_date"),
    Index("ix_studies_accession_number", "accession_number"),
)

series = Table(
    "series",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("study_fk", BigId, ForeignKey("studies.id"), nullable=False, index=True),
    *_level_columns(Level.SERIES, unique="series_instance_uid"),
    Column("specific_character_set", String(200), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("series_fk", BigId, ForeignKey("series.id"), nullable=False, index=True),
    *_level_columns(Level.IMAGE, unique="sop_instance_uid"),
    Column("specific_character_set", String(200), nullable=False, server_default=""),
    Column("header", JSON, nullable=False),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("source", String(32), nullable=False, server_default=""),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_fk", BigId, ForeignKey("instances.id"), nullable=False, unique=True),
    Column("blob_key", String(64), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("change_type", String(32), nullable=False),
    Column("level", String(16), nullable=False, server_default=""),
    Column("uid", String(64), nullable=False, server_default=""),
    Column("details", JSON, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_changes_uid", "uid"),
)

peers = Table(
    "peers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("ae_title", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("services", Text, nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

segments = Table(
    "segments",
    metadata,
    Column("name", String(32), primary_key=True),
    # Every record before this offset of the segment file has been indexed or discarded;
    # recovery after a crash looks only at what follows.
    Column("indexed_end", BigInteger, nullable=False),
)

forward_queue = Table(
    "forward_queue",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("sop_instance_uid", String(64), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    # 'pending' (to send), 'done' (the destination acknowledged it, or it was deleted since)
    # or 'failed' (given up: unknown peer or too many attempts; `dicomhub queue retry`).
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    # The process sending the item ("host:pid:random") and until when no other may take it.
    Column("leased_by", String(128), nullable=True),
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
    Index("ix_forward_queue_due", "state", "next_attempt_at"),
)

commitment_transactions = Table(
    "commitment_transactions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # 'scp': a peer asked dicomhub to commit; 'scu': dicomhub asked a peer.
    Column("role", String(8), nullable=False),
    Column("transaction_uid", String(64), nullable=False),
    # The requester (role scp) or the committing peer (role scu), and the AE it called.
    Column("peer_ae_title", String(16), nullable=False),
    Column("called_ae_title", String(16), nullable=False, server_default=""),
    # scp: 'pending' (to check) -> 'checked' (report to send) -> 'reported' | 'undeliverable'
    # scu: 'requested' -> 'committed' | 'failed' (report received) | 'timed_out'
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("leased_by", String(128), nullable=True),
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("role", "transaction_uid", name="uq_commitment_transactions_uid"),
    Index("ix_commitment_transactions_due", "role", "state", "next_attempt_at"),
)

commitment_items = Table(
    "commitment_items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "transaction_fk",
        BigId,
        ForeignKey("commitment_transactions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("sop_class_uid", String(64), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False),
    # 'pending', 'committed' or 'failed' (with the PS3.4 J FailureReason and why)
    Column("outcome", String(16), nullable=False),
    Column("failure_reason", Integer, nullable=True),
    Column("detail", Text, nullable=False, server_default=""),
)

commitment_events = Table(
    "commitment_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "transaction_fk",
        BigId,
        ForeignKey("commitment_transactions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # requested, checked, report-sent, report-failed, report-received, timed-out, ...
    Column("event", String(32), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

worklist_items = Table(
    "worklist_items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Matching keys of the Modality Worklist model (PS3.4 K.6), kept in columns; the whole
    # item (patient, visit, requested procedure, one Scheduled Procedure Step) is `attributes`.
    Column("scheduled_procedure_step_id", String(16), nullable=False, server_default=""),
    Column("requested_procedure_id", String(16), nullable=False, server_default=""),
    Column("accession_number", String(16), nullable=False, server_default=""),
    Column("study_instance_uid", String(64), nullable=False, server_default=""),
    Column("patient_id", String(64), nullable=False, server_default=""),
    Column("issuer_of_patient_id", String(64), nullable=False, server_default=""),
    Column("patient_name", String(400), nullable=False, server_default=""),
    Column("modality", String(16), nullable=False, server_default=""),
    Column("scheduled_station_ae_title", String(16), nullable=False, server_default=""),
    Column("scheduled_station_name", String(16), nullable=False, server_default=""),
    Column("start_date", String(8), nullable=False, server_default=""),
    Column("start_time", String(16), nullable=False, server_default=""),
    Column("performing_physician_name", String(400), nullable=False, server_default=""),
    # SCHEDULED, IN PROGRESS, COMPLETED, DISCONTINUED (from MPPS) or CANCELLED (by an order).
    Column("status", String(16), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("specific_character_set", String(200), nullable=False, server_default=""),
    # Where it came from (cli, hl7, api) and the order's own identity when it has one.
    Column("source", String(16), nullable=False, server_default=""),
    Column("order_key", String(128), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_worklist_items_status", "status"),
    Index("ix_worklist_items_accession_number", "accession_number"),
    Index("ix_worklist_items_order_key", "order_key"),
    Index("ix_worklist_items_start_date", "start_date"),
)

mpps = Table(
    "mpps",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    # IN PROGRESS, COMPLETED or DISCONTINUED (PerformedProcedureStepStatus)
    Column("status", String(16), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column(
        "worklist_item_fk",
        BigId,
        ForeignKey("worklist_items.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    # No worklist item matched its Scheduled Step Attributes Sequence.
    Column("unscheduled", Integer, nullable=False, server_default="0"),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
)

mpps_events = Table(
    "mpps_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("mpps_fk", BigId, ForeignKey("mpps.id", ondelete="CASCADE"), nullable=False, index=True),
    # N-CREATE or N-SET, the status before and after, and the attributes the request carried.
    Column("action", String(16), nullable=False),
    Column("status_before", String(16), nullable=False, server_default=""),
    Column("status_after", String(16), nullable=False),
    Column("changes", JSON, nullable=False),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

print_objects = Table(
    "print_objects",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Basic Film Session, Basic Film Box, Basic Grayscale/Color Image Box, Basic Annotation
    # Box or Presentation LUT instances (PS3.4 H), managed by the Print Management SCP.
    Column("kind", String(32), nullable=False),
    Column("sop_class_uid", String(64), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    # Film box -> film session, image and annotation box -> film box.
    Column(
        "parent_fk",
        BigId,
        ForeignKey("print_objects.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    # Image Box Position / Annotation Position (1-based) within the film box.
    Column("position", Integer, nullable=False, server_default="0"),
    # The instance's attributes as a DICOM data set (Explicit VR Little Endian), pixel data
    # of an image box included.
    Column("attributes", LargeBinary, nullable=False),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The association that created a film session or presentation LUT: they live as long as
    # it does (PS3.4 H), and are deleted with everything below them when it ends.
    Column("association_uid", String(64), nullable=False, server_default="", index=True),
)

print_jobs = Table(
    "print_jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # The Print Job SOP Instance UID returned in the N-ACTION response.
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    Column("film_session_uid", String(64), nullable=False, server_default=""),
    Column("film_box_uids", JSON, nullable=False),
    # PENDING, PRINTING, DONE or FAILURE (Execution Status, PS3.3 C.13.8)
    Column("status", String(16), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("number_of_copies", Integer, nullable=False, server_default="1"),
    Column("print_priority", String(16), nullable=False, server_default=""),
    # Image Display Format of each film box, in print order.
    Column("layout", JSON, nullable=False),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
)

print_films = Table(
    "print_films",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_fk", BigId, ForeignKey("print_jobs.id", ondelete="CASCADE"), nullable=False),
    # The film's place in its print job (1-based) and the film box it was printed from.
    Column("position", Integer, nullable=False),
    Column("film_box_uid", String(64), nullable=False, server_default=""),
    Column("image_display_format", String(64), nullable=False, server_default=""),
    # Image boxes that held an image when the film was printed.
    Column("image_boxes", Integer, nullable=False, server_default="0"),
    # Print-to-archive: the stored Secondary Capture and its PNG (relative to data_dir);
    # empty while (or when not) archived.
    Column("sop_instance_uid", String(64), nullable=False, server_default=""),
    Column("study_instance_uid", String(64), nullable=False, server_default=""),
    Column("series_instance_uid", String(64), nullable=False, server_default=""),
    Column("png", String(200), nullable=False, server_default=""),
    Column("rows", Integer, nullable=False, server_default="0"),
    Column("columns", Integer, nullable=False, server_default="0"),
    Column("color", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("job_fk", "position"),
)

http_credentials = Table(
    "http_credentials",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # 'user' (HTTP Basic: name and password) or 'token' (Bearer: a random secret).
    Column("kind", String(8), nullable=False),
    Column("name", String(64), nullable=False),
    # 'read' (look) or 'admin' (look and change).
    Column("role", String(8), nullable=False),
    # user: "scrypt$N$r$p$salt$hash" (hex); token: SHA-256 of the token (hex).  Never the secret.
    Column("secret_hash", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "name", name="uq_http_credentials_kind_name"),
)

LEVEL_TABLES: dict[Level, Table] = {
    Level.PATIENT: patients,
    Level.STUDY: studies,
    Level.SERIES: series,
    Level.IMAGE: instances,
}
