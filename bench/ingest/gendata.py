"""Synthetic DICOM data sets for the ingest benchmark, generated with pydicom and cached.

Two sets are made: a CT series (512x512, 16-bit, CT Image Storage) and many small 64x64
Secondary Capture images spread over several patients.  Both use Explicit VR Little Endian,
unique UIDs and plausible pixel content (a noisy body outline).  A set is written into
``<name>.partial`` and renamed once complete, with a ``manifest.json`` that lets later runs
reuse it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
NAMES = [
    "NOVAK^JANA",
    "MUELLER^HANS^PETER",
    "DUBOIS^CLAIRE",
    "ROSSI^MARCO",
    "SMITH^JOHN^A",
    "GARCIA^LUCIA",
    "JANSSEN^PIETER",
    "KOWALSKI^ANNA",
    "OLSEN^ERIK",
    "SILVA^ANA^M",
]

Writer = Callable[[Path, int], list[str]]
"""Writes ``count`` files into a folder and returns their names."""


@dataclass(frozen=True)
class DataSet:
    """A generated set of DICOM files."""

    name: str
    label: str
    files: list[Path]
    total_bytes: int


def ensure_ct(root: Path, count: int) -> DataSet:
    """The CT series of ``count`` 512x512 slices, generated unless cached."""
    return _ensure(root / f"ct-{count}", "ct", f"CT {count}x512x512", count, _write_ct)


def ensure_small(root: Path, count: int) -> DataSet:
    """``count`` 64x64 Secondary Capture images, generated unless cached."""
    return _ensure(root / f"small-{count}", "small", f"SC {count}x64x64", count, _write_small)


def _ensure(directory: Path, name: str, label: str, count: int, writer: Writer) -> DataSet:
    manifest = directory / MANIFEST
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        files = [directory / f for f in info["files"]]
        if (
            info.get("version") == GENERATOR_VERSION
            and len(files) == count
            and all(f.is_file() for f in files)
        ):
            return DataSet(name, label, files, int(info["total_bytes"]))
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(directory, ignore_errors=True)
    partial.mkdir(parents=True)
    print(f"generating {label} in {directory} ...", flush=True)
    names = writer(partial, count)
    total = sum((partial / n).stat().st_size for n in names)
    (partial / MANIFEST).write_text(
        json.dumps({"version": GENERATOR_VERSION, "files": names, "total_bytes": total})
    )
    partial.rename(directory)
    return DataSet(name, label, [directory / n for n in names], total)


def _base(sop_class: str, modality: str, rng: np.random.Generator, number: int) -> Dataset:
    """Patient, study and equipment attributes shared by every instance of one study."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    today = dt.date.today()
    birth = today - dt.timedelta(days=int(rng.integers(20 * 365, 85 * 365)))
    ds.PatientName = NAMES[number % len(NAMES)]
    ds.PatientID = f"BENCH{number:06d}"
    ds.IssuerOfPatientID = "DICOMHUB-BENCH"
    ds.PatientBirthDate = birth.strftime("%Y%m%d")
    ds.PatientSex = "F" if number % 2 == 0 else "M"
    ds.PatientAge = f"{(today - birth).days // 365:03d}Y"
    ds.PatientWeight = f"{rng.uniform(50, 100):.1f}"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = today.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.StudyID = str(1000 + number)
    ds.AccessionNumber = f"ACC{number:08d}"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.InstitutionName = "Bench General Hospital"
    ds.Manufacturer = "dicomhub bench"
    ds.Modality = modality
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    return ds


def _body(size: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A noisy axial body outline (stored values, rescale intercept -1024)."""
    y, x = np.ogrid[-1.0 : 1.0 : complex(size), -1.0 : 1.0 : complex(size)]
    image = np.full((size, size), 24.0, dtype=np.float32)  # air, about -1000 HU
    image[(x / (0.8 * scale)) ** 2 + (y / (0.6 * scale)) ** 2 <= 1] = 1064  # soft tissue
    for cx in (-0.35, 0.35):  # lungs
        image[((x - cx) / (0.25 * scale)) ** 2 + ((y + 0.05) / (0.35 * scale)) ** 2 <= 1] = 200
    image[(x / 0.08) ** 2 + ((y - 0.4 * scale) / 0.08) ** 2 <= 1] = 1800  # vertebra
    image += rng.standard_normal((size, size), dtype=np.float32) * 15
    return np.clip(image, 0, 4095).astype(np.uint16)


def _save(ds: Dataset, folder: Path, name: str) -> str:
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(folder / name, enforce_file_format=True)
    return name


def _write_ct(folder: Path, count: int) -> list[str]:
    rng = np.random.default_rng(20240501)
    ds = _base(CT_IMAGE_STORAGE, "CT", rng, 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDescription = "CT CHEST ABDOMEN PELVIS WITH CONTRAST"
    ds.SeriesDescription = "AXIAL 1.0 SOFT TISSUE"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.AcquisitionNumber = 1
    ds.SeriesNumber = 2
    ds.ScanOptions = "HELICAL MODE"
    ds.KVP = "120"
    ds.SliceThickness = "1.0"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.75, 0.75]
    ds.Rows = ds.Columns = 512
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    names = []
    for i in range(count):
        z = -float(i)
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-192.0, -192.0, z]
        ds.SliceLocation = f"{z:.1f}"
        ds.PixelData = _body(512, 0.85 + 0.15 * np.sin(np.pi * i / count), rng).tobytes()
        names.append(_save(ds, folder, f"CT{i + 1:05d}.dcm"))
    return names


def _write_small(folder: Path, count: int) -> list[str]:
    rng = np.random.default_rng(20240502)
    per_study = 100
    names: list[str] = []
    for number, ds in enumerate(_studies(count, per_study, rng)):
        for i in range(min(per_study, count - len(names))):
            if i % (per_study // 2) == 0:
                ds.SeriesInstanceUID = generate_uid()
                ds.SeriesNumber = i // (per_study // 2) + 1
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = i + 1
            ds.PixelData = _body(64, 0.7 + 0.3 * rng.random(), rng).tobytes()
            names.append(_save(ds, folder, f"SC{number:03d}-{i + 1:04d}.dcm"))
    return names


def _studies(count: int, per_study: int, rng: np.random.Generator) -> Iterator[Dataset]:
    for number in range((count + per_study - 1) // per_study):
        ds = _base(SECONDARY_CAPTURE_STORAGE, "OT", rng, 100 + number)
        ds.ConversionType = "WSD"
        ds.Laterality = ds.PatientOrientation = ""
        ds.StudyDescription = "SCREEN CAPTURES"
        ds.SeriesDescription = "KEY IMAGES"
        ds.Rows = ds.Columns = 64
        yield ds
