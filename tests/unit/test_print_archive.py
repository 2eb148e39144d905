"""Print-to-archive: a printed film is stored through the ingest path, with its PNG, in the
printed image's study when dicomhub holds that image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from dicomhub.index.print_jobs import FilmJob, PrintedFilm, PrintRepository
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


def test_archived_films_are_listed_with_their_job(runtime: Runtime) -> None:
    jobs = PrintRepository(runtime.db)
    archiver = PrintArchiver(
        runtime.settings, runtime.ingest, runtime.repository, runtime.finder, jobs
    )
    listed = []
    for number in range(3):
        job = _job(grey_box(np.full((8, 8), number, dtype=np.uint8)))
        film_box_uid = str(job.film_box.SOPInstanceUID)
        jobs.record_job(
            job.print_job_uid,
            film_session_uid=str(job.film_session.SOPInstanceUID),
            film_box_uids=[film_box_uid],
            layout=["STANDARD\\1,1"],
            number_of_copies=1,
            print_priority="MED",
            calling_ae_title="CT1",
            films=[PrintedFilm(film_box_uid, "STANDARD\\1,1", 1)],
        )
        archiver(job)
        listed.append(job.print_job_uid)
    page = jobs.job_page(offset=1, limit=1)
    assert page.total == 3
    (view,) = page.items
    assert view.job.sop_instance_uid == listed[1]  # newest first
    (film,) = view.films
    assert film.printed.image_display_format == "STANDARD\\1,1"
    assert film.archived is not None
    stored = runtime.repository.get_instance(film.archived.sop_instance_uid)
    assert stored is not None and stored.study_instance_uid == film.archived.study_instance_uid
    png = runtime.settings.data_dir.absolute() / film.archived.png
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (film.archived.rows, film.archived.columns, film.archived.color) == (1000, 800, False)
    assert jobs.job_page(calling_ae_title="OTHER").total == 0
