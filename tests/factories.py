"""Builders of realistic DICOM objects for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

_counter = {"n": 0}


def make_dataset(
    *,
    patient_name: str = "DOE^JOHN",
    patient_id: str = "PID001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    sop_class: str = CTImageStorage,
    modality: str = "CT",
    study_date: str = "20240315",
    study_time: str = "101500",
    accession: str = "ACC001",
    charset: str | None = None,
    rows: int = 8,
    **extra: Any,
) -> Dataset:
    """A small but complete image with pixel data (``rows`` x ``rows``, 16-bit)."""
    _counter["n"] += 1
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.ReferringPhysicianName = "WELBY^MARCUS"
    ds.StudyDescription = "CT HEAD"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = _counter["n"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = (np.arange(rows * rows, dtype=np.uint16) % 4096).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def write_file(ds: Dataset, path: Path, syntax: str = str(ExplicitVRLittleEndian)) -> Path:
    """Write ``ds`` as a DICOM Part 10 file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
