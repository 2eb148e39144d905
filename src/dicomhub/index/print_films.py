"""Which archived films belong to a print job (read side, for the web).

Print-to-archive stores each film of a job as a Secondary Capture image (source ``print``,
the printing AE as calling AE title) between the moment the job is recorded and the moment
its outcome is; the job row keeps no list of those images, so they are found by that window.
Two jobs printed at the same moment by the same AE cannot be told apart this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from dicomhub.index.engine import IndexDatabase
from dicomhub.index.print_jobs import PrintJob
from dicomhub.index.schema import instances, series, studies
from dicomhub.index.times import utc_now

_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Film:
    """An archived film image."""

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    instance_number: int | None


def films_of(db: IndexDatabase, job: PrintJob) -> list[Film]:
    """The film images print-to-archive stored for ``job``, in instance number order."""
    until = (job.completed_at or utc_now()) + _SLACK
    query = (
        select(
            instances.c.sop_instance_uid,
            series.c.series_instance_uid,
            studies.c.study_instance_uid,
            instances.c.instance_number,
        )
        .select_from(instances)
        .join(series, instances.c.series_fk == series.c.id)
        .join(studies, series.c.study_fk == studies.c.id)
        .where(
            instances.c.source == "print",
            instances.c.calling_ae_title == job.calling_ae_title[:16],
            instances.c.received_at >= job.created_at - _SLACK,
            instances.c.received_at <= until,
        )
        .order_by(instances.c.instance_number, instances.c.id)
    )
    with db.read() as conn:
        return [Film(str(a), str(b), str(c), d) for a, b, c, d in conn.execute(query)]
