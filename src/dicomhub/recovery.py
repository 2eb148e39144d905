"""Start-up recovery: re-index what a crash may have taken from the index.

Objects kept in segment files are indexed by commits that do not wait for the disk (see
``Ingest``), so a machine crash can lose the last index transactions while the objects
themselves are safe in their segment.  For every segment no live process is writing to, the
records past its recorded position are read again:

* a live record whose object is not indexed is indexed now (with ``recovered`` as its
  source); one that is already indexed, or that conflicts with what is, is discarded;
* a torn record at the very end (a crash in the middle of a write: its length or checksum does
  not hold) is cut off; it was never acknowledged;
* a damaged record in the middle is reported and left in place for an operator.

Then the position moves to the end of the segment.  A segment that ends empty is removed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread

from dicomhub.errors import DicomhubError
from dicomhub.header import check_identity, read_header
from dicomhub.index import positions
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.repository import AddOutcome, IndexRepository, NewInstance
from dicomhub.storage.base import InMemoryObject
from dicomhub.storage.segments import STATE_DEAD, Record, SegmentStore

LOG = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What recovery did."""

    segments: int = 0
    indexed: int = 0
    discarded: int = 0
    torn_bytes: int = 0
    damaged: int = 0


def recover(db: IndexDatabase, repository: IndexRepository, store: SegmentStore) -> RecoveryReport:
    """Recover every idle segment (see the module docstring)."""
    report = RecoveryReport()
    for name in store.segments():
        fd = store.lock_idle(name)
        if fd is None:
            continue  # a live process appends to it
        try:
            _recover_segment(db, repository, store, name, fd, report)
        finally:
            os.close(fd)
    if report.indexed or report.discarded or report.torn_bytes or report.damaged:
        LOG.warning(
            "recovery after an unclean stop: %d objects re-indexed, %d discarded, "
            "%d bytes of torn writes cut off, %d damaged records left in place",
            report.indexed,
            report.discarded,
            report.torn_bytes,
            report.damaged,
        )
    return report


def _recover_segment(
    db: IndexDatabase,
    repository: IndexRepository,
    store: SegmentStore,
    name: str,
    fd: int,
    report: RecoveryReport,
) -> None:
    status = os.fstat(fd)
    size = status.st_size
    if status.st_blocks * 512 > size + (1 << 20):
        os.ftruncate(fd, size)  # blocks a dead writer allocated ahead (``reserve``) go back
    start = positions.position(db, name)
    if size == 0:
        store.path(name).unlink(missing_ok=True)
        return
    if start >= size:
        return
    report.segments += 1
    end = start
    for record in store.scan(name, start):
        if record.state == STATE_DEAD:
            end = record.end
            continue
        if not store.verified(record):
            if record.end >= size:
                break  # torn tail
            LOG.error("segment %s: record at %d fails its checksum; left in place", name, end)
            report.damaged += 1
            end = record.end
            continue
        _reindex(repository, store, record, report)
        end = record.end
    if end < size:
        LOG.warning("segment %s: cutting off %d bytes of an interrupted write", name, size - end)
        os.ftruncate(fd, end)
        os.fsync(fd)
        report.torn_bytes += size - end
    positions.set_position(db, name, end)


def _reindex(
    repository: IndexRepository, store: SegmentStore, record: Record, report: RecoveryReport
) -> None:
    key = str(record.key)
    with store.open(key) as stream:
        data = stream.read()
    try:
        parsed = read_header(data)
        check_identity(parsed)
        parsed.header  # noqa: B018 - an undecodable value makes the record unstorable
    except DicomhubError as exc:
        LOG.error("segment record %s is not a storable object (%s); discarded", key, exc)
        store.delete([key])
        report.discarded += 1
        return
    sop_instance_uid = parsed.text("SOPInstanceUID")
    existing = repository.get_instance(sop_instance_uid)
    if existing is not None and existing.blob_key == key:
        return  # indexed, but the position was not moved past it before the stop
    blob = InMemoryObject.hashed(data, parsed.dataset_offset).info(key)
    item = NewInstance(
        parsed, blob, "recovered", _source_ae_title(data, parsed.dataset_offset), False
    )
    (result,) = repository.add_instances([item])
    if isinstance(result, DicomhubError) or result.outcome is AddOutcome.DUPLICATE:
        store.delete([key])
        report.discarded += 1
        return
    LOG.info("re-indexed %s from segment record %s", sop_instance_uid, key)
    report.indexed += 1


def _source_ae_title(data: bytes, dataset_offset: int) -> str:
    """The calling AE title the receiver wrote into the file meta (0002,0016), so that what
    depends on it (forwarding rules) sees a recovered object as it was received."""
    try:
        meta = dcmread(BytesIO(data[:dataset_offset]), force=True).file_meta
        return str(meta.get("SourceApplicationEntityTitle", "") or "").strip()
    except Exception:  # a meta without the element, or unreadable: no AE title known
        return ""
