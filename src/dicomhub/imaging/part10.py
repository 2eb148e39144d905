"""Wrapping a data set's encoded bytes into a DICOM Part 10 object (preamble and file meta)."""

from __future__ import annotations

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID


def part10_object(
    dataset: bytes,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str,
) -> bytes:
    """The Part 10 object of ``dataset`` (bytes already encoded in ``transfer_syntax_uid``)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = UID(implementation_class_uid)
    meta.ImplementationVersionName = implementation_version_name
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return bytes(buffer.getvalue()) + dataset
