"""Stored objects as the web serves them: located by UIDs, streamed, transcoded, described.

Shared by the REST API and DICOMweb.  Objects are streamed from the blob store in chunks as
stored (byte for byte); only a transcoding (a client that asks for another transfer syntax)
reads one object into memory.  Headers come from the index (DICOM JSON), with BulkDataURIs
made absolute so a client can fetch the values they stand for.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomhub.conformance import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from dicomhub.errors import NoSuchResource
from dicomhub.imaging.part10 import part10_object
from dicomhub.imaging.transcode import transcode
from dicomhub.index.attributes import Level
from dicomhub.index.headers import headers_of
from dicomhub.index.query import InformationModel
from dicomhub.index.repository import StoredInstance
from dicomhub.web.context import WebContext

CHUNK = 1 << 20
PIXEL_DATA = "7FE00010"


def instances_of(
    ctx: WebContext, study: str, series: str | None = None, instance: str | None = None
) -> list[StoredInstance]:
    """The stored instances of a study, series or single instance; 404 when none."""
    query = Dataset()
    query.StudyInstanceUID = study
    level = Level.STUDY
    if series is not None:
        query.SeriesInstanceUID = series
        level = Level.SERIES
    if instance is not None:
        query.SOPInstanceUID = instance
        level = Level.IMAGE
    query.QueryRetrieveLevel = level.value
    found = ctx.locator.instances(query, InformationModel.STUDY_ROOT)
    if not found:
        what = {Level.STUDY: "study", Level.SERIES: "series", Level.IMAGE: "instance"}[level]
        uid = instance or series or study
        raise NoSuchResource(f"There is no {what} {uid} in the archive.")
    return found


def series_instances(ctx: WebContext, series: str) -> list[StoredInstance]:
    """The stored instances of a series named by its UID alone; 404 when none."""
    query = Dataset()
    query.QueryRetrieveLevel = Level.SERIES.value
    query.SeriesInstanceUID = series
    found = ctx.locator.instances(query, InformationModel.STUDY_ROOT)
    if not found:
        raise NoSuchResource(f"There is no series {series} in the archive.")
    return found


def instance_by_uid(ctx: WebContext, sop_instance_uid: str) -> StoredInstance:
    """One stored instance; 404 when it is not in the archive."""
    found = ctx.runtime.repository.get_instance(sop_instance_uid)
    if found is None:
        raise NoSuchResource(f"There is no instance {sop_instance_uid} in the archive.")
    return found


def stored_chunks(ctx: WebContext, instance: StoredInstance) -> Iterator[bytes]:
    """The stored bytes of an instance, chunk by chunk (opened when iteration starts)."""
    with ctx.runtime.blobs.open(instance.blob_key) as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


@contextmanager
def readable(ctx: WebContext, instance: StoredInstance) -> Iterator[BinaryIO]:
    """The stored object as a file pydicom can read: the blob's own file, or (for an object
    kept in a segment, a few megabytes at most) its bytes in memory."""
    with ctx.runtime.blobs.open(instance.blob_key) as stream:
        if isinstance(getattr(stream, "name", None), str):
            yield stream
        else:
            yield BytesIO(stream.read())


@dataclass(frozen=True)
class Rendition:
    """An instance as it will be sent: its transfer syntax and its Part 10 bytes."""

    transfer_syntax_uid: str
    length: int | None
    chunks: Iterator[bytes]


def part10(ctx: WebContext, instance: StoredInstance, syntax: str | None) -> Rendition:
    """The instance as a Part 10 object: as stored (``syntax`` None or the stored one), else
    transcoded (``CannotTranscode`` when it cannot be)."""
    if syntax is None or syntax == instance.transfer_syntax_uid:
        return Rendition(instance.transfer_syntax_uid, instance.size, stored_chunks(ctx, instance))
    with ctx.runtime.blobs.open(instance.blob_key) as stream:
        data = stream.read()
    encoded = transcode(data, syntax)
    whole = part10_object(
        encoded,
        sop_class_uid=instance.sop_class_uid,
        sop_instance_uid=instance.sop_instance_uid,
        transfer_syntax_uid=syntax,
        implementation_class_uid=IMPLEMENTATION_CLASS_UID,
        implementation_version_name=IMPLEMENTATION_VERSION,
    )
    return Rendition(syntax, len(whole), iter([whole]))


def instance_url(base: str, instance: StoredInstance) -> str:
    """The DICOMweb URL of an instance."""
    return (
        f"{base}/dicom-web/studies/{instance.study_instance_uid}/series/"
        f"{instance.series_instance_uid}/instances/{instance.sop_instance_uid}"
    )


def metadata(
    ctx: WebContext, instances: list[StoredInstance], base: str
) -> Iterator[dict[str, Any]]:
    """The DICOM JSON header of each instance, with absolute BulkDataURIs (and one for the
    pixel data, which the stored header leaves out)."""
    for start in range(0, len(instances), 200):
        chunk = instances[start : start + 200]
        headers = headers_of(ctx.runtime.db, [i.instance_pk for i in chunk])
        for instance in chunk:
            header = headers.get(instance.instance_pk)
            if header is None:
                continue
            yield with_bulk_uris(header, instance, base)


def with_bulk_uris(header: dict[str, Any], instance: StoredInstance, base: str) -> dict[str, Any]:
    """A copy of a stored header whose BulkDataURIs point at the instance's bulkdata URLs."""
    url = instance_url(base, instance)
    result: dict[str, Any] = copy.deepcopy(header)
    _absolute(result, url)
    if "00280010" in result and PIXEL_DATA not in result:
        result[PIXEL_DATA] = {
            "vr": _pixel_vr(result, instance),
            "BulkDataURI": f"{url}/bulkdata/{PIXEL_DATA}",
        }
    return dict(sorted(result.items()))


def _absolute(node: Any, url: str) -> None:
    if isinstance(node, dict):
        uri = node.get("BulkDataURI")
        if isinstance(uri, str) and uri.startswith("bulkdata/"):
            node["BulkDataURI"] = f"{url}/{uri}"
        for value in node.values():
            _absolute(value, url)
    elif isinstance(node, list):
        for value in node:
            _absolute(value, url)


def _pixel_vr(header: dict[str, Any], instance: StoredInstance) -> str:
    syntax = UID(instance.transfer_syntax_uid)
    if syntax.is_transfer_syntax and syntax.is_encapsulated:
        return "OB"
    bits = header.get("00280100", {}).get("Value", [16])
    return "OW" if int(bits[0] or 16) > 8 else "OB"
