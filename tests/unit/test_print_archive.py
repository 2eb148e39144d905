"""Print-to-archive: a printed film is stored through the ingest path, with its PNG, in the
printed image's study when dicomhub holds that image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from dicomhub.index.print_jobs import FilmJob
from dicomhub.index.schema import instances
from dicomhub.ingest import IngestRequest
from dicomhub.print_archive import PrintArchiver
from dicomhub.runtime import Runtime
from tests.factories import make_dataset, write_file
from tests.unit.imaging.test_film import film_box, grey_box


def _job(*boxes: Dataset) -> FilmJob:
    session = Dataset()
    session.SOPInstanceUID = generate_uid()
    return FilmJob(generate_uid(), session, film_box("STANDARD\\1,1"), list(boxes), [], None, "CT1")


def _films(runtime: Runtime) -> list[tuple[str, str, str]]:
    query = select(
        instances.c.sop_instance_uid, instances.c.sop_class_uid, instances.c.calling_ae_title
    ).where(instances.c.source == "print")
    with runtime.db.read() as conn:
        return [tuple(row) for row in conn.execute(query)]


def _archiver(runtime: Runtime) -> PrintArchiver:
    return PrintArchiver(runtime.settings, runtime.ingest, runtime.repository, runtime.finder)


def test_a_film_of_an_image_dicomhub_holds_joins_its_study(
    runtime: Runtime, tmp_path: Path
) -> None:
    original = make_dataset(patient_name="KNEE^KATE", patient_id="P9")
    path = write_file(original, tmp_path / "original.dcm")
    runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
    box = grey_box(np.full((16, 16), 100, dtype=np.uint8))
    reference = Dataset()
    reference.ReferencedSOPClassUID = original.SOPClassUID
    reference.ReferencedSOPInstanceUID = original.SOPInstanceUID
    box.ReferencedImageSequence = [reference]
    _archiver(runtime)(_job(box))
    ((uid, sop_class, calling),) = _films(runtime)
    assert sop_class == "1.2.840.10008.5.1.4.1.1.7"
    assert calling == "CT1"
    stored = runtime.repository.get_instance(uid)
    assert stored is not None
    assert stored.study_instance_uid == original.StudyInstanceUID
    png = runtime.settings.data_dir.absolute() / "print" / f"{uid}.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_film_of_unknown_images_goes_to_the_print_study(runtime: Runtime) -> None:
    archiver = _archiver(runtime)
    archiver(_job(grey_box(np.zeros((8, 8), dtype=np.uint8))))
    archiver(_job(grey_box(np.ones((8, 8), dtype=np.uint8))))
    films = _films(runtime)
    assert len(films) == 2
    stored = [runtime.repository.get_instance(uid) for uid, _, _ in films]
    studies = {film.study_instance_uid for film in stored if film is not None}
    assert len(studies) == 1  # one print study per calling AE and day
