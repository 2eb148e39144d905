"""The hand-built file meta equals what pydicom writes, and pydicom reads it back."""

from __future__ import annotations

from io import BytesIO

from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta

from dicomhub.dicom.engine.filemeta import part10_prefix


def test_matches_pydicom() -> None:
    values = {
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "sop_instance_uid": "1.2.826.0.1.3680043.10.1.123",
        "transfer_syntax_uid": "1.2.840.10008.1.2.4.91",
        "implementation_class_uid": "1.2.826.0.1.3680043.10.9",
        "implementation_version_name": "DICOMHUB_010",
        "source_ae_title": "CT1",
    }
    ours = part10_prefix(**values)
    meta = create_file_meta(
        sop_class_uid=UID(values["sop_class_uid"]),
        sop_instance_uid=UID(values["sop_instance_uid"]),
        transfer_syntax=UID(values["transfer_syntax_uid"]),
        implementation_uid=UID(values["implementation_class_uid"]),
        implementation_version=values["implementation_version_name"],
    )
    meta.SourceApplicationEntityTitle = values["source_ae_title"]
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_file_meta_info(buffer, meta)
    assert ours == b"\0" * 128 + b"DICM" + buffer.getvalue()
    stream = BytesIO(ours)
    read_preamble(stream, False)
    parsed = _read_file_meta_info(stream)
    assert parsed.MediaStorageSOPInstanceUID == values["sop_instance_uid"]
    assert parsed.SourceApplicationEntityTitle == "CT1"
    assert stream.tell() == len(ours)
