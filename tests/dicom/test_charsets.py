"""Character sets: pydicom's multilingual files stored bit for bit, matched and answered.

Each file is sent as it is (C-STORE), then queried by its decoded patient name over C-FIND;
the response must decode to the same name in every character set, ISO 2022 included.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

from dicomhub.dicom.server import Listener
from tests.dicom.conftest import associate

CHARSET_DIR = Path(pydicom.__file__).parent / "data" / "charset_files"
FILES = [
    "chrArab.dcm",
    "chrFren.dcm",
    "chrGerm.dcm",
    "chrGreek.dcm",
    "chrH31.dcm",
    "chrH32.dcm",
    "chrHbrw.dcm",
    "chrI2.dcm",
    "chrRuss.dcm",
    "chrX1.dcm",
    "chrX2.dcm",
]


@pytest.mark.usefixtures("chunked_send")
def test_every_character_set_round_trips(server: Listener) -> None:
    sent = {name: dcmread(CHARSET_DIR / name) for name in FILES}
    classes = sorted({str(ds.SOPClassUID) for ds in sent.values()})
    assoc = associate(
        server,
        [*classes, StudyRootQueryRetrieveInformationModelFind],
        transfer_syntaxes=[ExplicitVRLittleEndian],
    )
    try:
        for name in FILES:
            assert assoc.send_c_store(CHARSET_DIR / name).Status == 0x0000, name
        for name, ds in sent.items():
            query = Dataset()
            query.SpecificCharacterSet = "ISO_IR 192"
            query.QueryRetrieveLevel = "STUDY"
            query.PatientName = str(ds.PatientName)
            query.StudyInstanceUID = ""
            responses = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
            matches = [
                identifier
                for status, identifier in responses
                if status.Status == 0xFF00 and identifier is not None
            ]
            assert [str(m.StudyInstanceUID) for m in matches] == [str(ds.StudyInstanceUID)], name
            assert str(matches[0].PatientName) == str(ds.PatientName), name
    finally:
        assoc.release()
    for name, ds in sent.items():
        stored = server.runtime.repository.get_instance(str(ds.SOPInstanceUID))
        assert stored is not None, name
        with server.runtime.blobs.open(stored.blob_key) as blob:
            data = blob.read()
        original = (CHARSET_DIR / name).read_bytes()
        assert data.endswith(original[-(len(original) - _data_set_offset(original)) :]), name


def _data_set_offset(data: bytes) -> int:
    import struct

    return 144 + int(struct.unpack("<L", data[140:144])[0])
