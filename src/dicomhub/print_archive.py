"""Print-to-archive: every printed film becomes a Secondary Capture image in the archive.

This is the print service's ``compose`` hook.  The film box is composed at the configured
film resolution (``imaging.film``), stored through the one ingest path (source ``print``)
in the study the identity rule picks (the printed images' own study when dicomhub holds
them, else a print study per calling AE and day), and kept as a PNG next to the archive
(``data_dir/print/<SOP Instance UID>.png``, a name dicomhub generated) for the web.  The film
row of the print job (``print_films``) then records the stored instance and its PNG.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydicom.dataset import Dataset

from dicomhub.config import Settings
from dicomhub.imaging.film import (
    compose_film,
    film_png,
    film_secondary_capture,
    print_study_identity,
)
from dicomhub.index.print_jobs import ArchivedFilm, FilmJob, PrintRepository
from dicomhub.index.query import FindService, InformationModel
from dicomhub.index.repository import IndexRepository
from dicomhub.ingest import Ingest, IngestRequest
from dicomhub.storage.base import fsync_dir

LOG = logging.getLogger("dicomhub.print")
_PATIENT_KEYS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex")


class PrintArchiver:
    """Composes and stores the films of print jobs."""

    def __init__(
        self,
        settings: Settings,
        ingest: Ingest,
        repository: IndexRepository,
        finder: FindService,
        print_jobs: PrintRepository | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.repository = repository
        self.finder = finder
        self.print_jobs = print_jobs
        """Where the stored film is recorded against its print job (None: not recorded)."""
        self.png_dir = settings.data_dir.absolute() / "print"

    def __call__(self, job: FilmJob) -> None:
        """Compose one film, store it, keep its PNG; errors propagate (the print fails)."""
        pixels = compose_film(job, dpi=self.settings.print_film_dpi)
        identity = print_study_identity(job, self.settings.print_study_rule, lookup=self._lookup)
        data = film_secondary_capture(
            job,
            pixels,
            study_uid=identity.study_uid,
            series_uid=identity.series_uid,
            patient=identity.patient,
        )
        result = self.ingest.store(
            IngestRequest(
                path=None,
                take=True,
                source="print",
                calling_ae_title=job.calling_ae_title,
                content=bytearray(data),
            )
        )
        png = self._keep_png(result.sop_instance_uid, film_png(pixels))
        film_box_uid = str(job.film_box.get("SOPInstanceUID") or "")
        if self.print_jobs is not None and job.print_job_uid and film_box_uid:
            self.print_jobs.record_archived_film(
                job.print_job_uid,
                film_box_uid,
                ArchivedFilm(
                    sop_instance_uid=result.sop_instance_uid,
                    study_instance_uid=result.study_instance_uid,
                    series_instance_uid=identity.series_uid,
                    png=f"{self.png_dir.name}/{png.name}",
                    rows=int(pixels.shape[0]),
                    columns=int(pixels.shape[1]),
                    color=pixels.ndim == 3,
                ),
            )
        LOG.info(
            "print job %s: film %dx%d stored as %s in study %s (%s)",
            job.print_job_uid,
            pixels.shape[1],
            pixels.shape[0],
            result.sop_instance_uid,
            result.study_instance_uid,
            png.name,
        )

    def _keep_png(self, sop_instance_uid: str, data: bytes) -> Path:
        """Write the PNG durably under a name dicomhub generated (the stored SOP Instance UID)."""
        self.png_dir.mkdir(parents=True, exist_ok=True)
        target = self.png_dir / f"{sop_instance_uid}.png"
        staged = target.with_suffix(".part")
        with staged.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        staged.replace(target)
        fsync_dir(self.png_dir)
        return target

    def _lookup(self, sop_instance_uid: str) -> Dataset | None:
        """The study and patient of a printed image dicomhub holds, None otherwise."""
        stored = self.repository.get_instance(sop_instance_uid)
        if stored is None:
            return None
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = stored.study_instance_uid
        for keyword in _PATIENT_KEYS:
            setattr(query, keyword, "")
        for match in self.finder.find(query, InformationModel.STUDY_ROOT):
            return match
        return None
