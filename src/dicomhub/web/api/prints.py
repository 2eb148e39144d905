"""Print jobs over REST: who printed what, when, with which outcome; and the films.

Each job lists its films as recorded by the print service (``print_films``): the film box
printed, its layout and, when print-to-archive stored it, the archived Secondary Capture
(SOP Instance UID, study, series) and a URL of the PNG kept in ``data_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from dicomhub.errors import NoSuchResource
from dicomhub.index.print_jobs import ExecutionStatus, PrintFilm, PrintJob
from dicomhub.web.api.paging import Limit, Offset, choice, when
from dicomhub.web.context import WebContext, context
from dicomhub.web.listing import check_paging

router = APIRouter(prefix="/api/print-jobs", tags=["Print"])


def summary(job: PrintJob) -> dict[str, Any]:
    """The facts of the job row."""
    return {
        "id": job.id,
        "sop_instance_uid": job.sop_instance_uid,
        "status": job.status.value,
        "detail": job.detail,
        "film_session_uid": job.film_session_uid,
        "film_box_uids": job.film_box_uids,
        "layout": job.layout,
        "number_of_copies": job.number_of_copies,
        "print_priority": job.print_priority,
        "calling_ae_title": job.calling_ae_title,
        "created_at": when(job.created_at),
        "completed_at": when(job.completed_at),
    }


def film_json(request: Request, job_id: int, film: PrintFilm) -> dict[str, Any]:
    """One film: what was printed, and where print-to-archive stored it (None if it did not)."""
    archived = film.archived
    return {
        "position": film.position,
        "film_box_uid": film.printed.film_box_uid,
        "image_display_format": film.printed.image_display_format,
        "image_boxes": film.printed.image_boxes,
        "archived": None
        if archived is None
        else {
            "sop_instance_uid": archived.sop_instance_uid,
            "study_instance_uid": archived.study_instance_uid,
            "series_instance_uid": archived.series_instance_uid,
            "rows": archived.rows,
            "columns": archived.columns,
            "color": archived.color,
            "png": str(request.url_for("film_png", job_id=job_id, position=film.position))
            if archived.png
            else None,
        },
    }


def _job_json(request: Request, job: PrintJob, films: list[PrintFilm]) -> dict[str, Any]:
    body = summary(job)
    body["films"] = [film_json(request, job.id, film) for film in films]
    return body


@router.get("", summary="Print jobs with their films")
def list_jobs(
    request: Request,
    calling_ae_title: str | None = Query(None, description="Only this print SCU's jobs."),
    status: str | None = Query(None, description="PENDING, PRINTING, DONE or FAILURE"),
    offset: int = Offset,
    limit: int = Limit,
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Jobs, newest first, each with its films."""
    check_paging(offset, limit)
    chosen = choice(ExecutionStatus, status, "status")
    found = ctx.prints.job_page(
        offset=offset, limit=limit, calling_ae_title=calling_ae_title or None, status=chosen
    )
    return {
        "items": [_job_json(request, view.job, view.films) for view in found.items],
        "total": found.total,
        "offset": offset,
        "limit": limit,
        "has_more": offset + len(found.items) < found.total,
    }


def _job(ctx: WebContext, job_id: int) -> PrintJob:
    job = ctx.prints.job_by_id(job_id)
    if job is None:
        raise NoSuchResource(f"There is no print job {job_id}.")
    return job


@router.get("/{job_id}", summary="A print job and its films")
def get_job(job_id: int, request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """A job with its films (a PNG URL for each archived one)."""
    job = _job(ctx, job_id)
    return _job_json(request, job, ctx.prints.films(job.id))


@router.get("/{job_id}/films/{position}.png", summary="A film as PNG", name="film_png")
def film_png(job_id: int, position: int, ctx: WebContext = Depends(context)) -> FileResponse:
    """The PNG print-to-archive kept of the job's film at ``position`` (1 is the first)."""
    _job(ctx, job_id)
    film = next((f for f in ctx.prints.films(job_id) if f.position == position), None)
    if film is None:
        raise NoSuchResource(f"Print job {job_id} has no film {position}.")
    if film.archived is None or not film.archived.png:
        raise NoSuchResource(
            f"Film {position} of print job {job_id} was not archived (print_to_archive off?)."
        )
    data_dir = ctx.runtime.settings.data_dir.absolute()
    path = Path(data_dir, film.archived.png).resolve()
    if not path.is_relative_to(data_dir.resolve()) or not path.is_file():
        raise NoSuchResource(f"The PNG of film {position} of print job {job_id} is missing.")
    return FileResponse(path, media_type="image/png")
