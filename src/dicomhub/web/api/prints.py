"""Print jobs over REST: who printed what, when, with which outcome; and the films, as the
archived images and as the PNGs print-to-archive keeps in ``data_dir/print``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from dicomhub.errors import NoSuchResource
from dicomhub.index.print_films import films_of
from dicomhub.index.print_jobs import PrintJob
from dicomhub.web.api.paging import Limit, Offset, page, when
from dicomhub.web.context import WebContext, context

router = APIRouter(prefix="/api/print-jobs", tags=["Print"])
_UID = re.compile(r"^[0-9.]{1,64}$")


def summary(job: PrintJob) -> dict[str, Any]:
    """The facts a list shows."""
    return {
        "id": job.id,
        "sop_instance_uid": job.sop_instance_uid,
        "status": job.status.value,
        "detail": job.detail,
        "film_session_uid": job.film_session_uid,
        "films": len(job.film_box_uids),
        "layout": job.layout,
        "number_of_copies": job.number_of_copies,
        "print_priority": job.print_priority,
        "calling_ae_title": job.calling_ae_title,
        "created_at": when(job.created_at),
        "completed_at": when(job.completed_at),
    }


def _job(ctx: WebContext, job_id: int) -> PrintJob:
    job = ctx.prints.job_by_id(job_id)
    if job is None:
        raise NoSuchResource(f"There is no print job {job_id}.")
    return job


@router.get("", summary="Print jobs")
def list_jobs(
    offset: int = Offset, limit: int = Limit, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """Jobs, newest first."""
    return page(ctx.prints.jobs, summary, offset, limit)


@router.get("/{job_id}", summary="A print job and its films")
def get_job(job_id: int, request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """A job with its archived films (a PNG URL for each that has one)."""
    job = _job(ctx, job_id)
    body = summary(job)
    png_dir = ctx.runtime.settings.data_dir.absolute() / "print"
    body["film_box_uids"] = job.film_box_uids
    body["archived_films"] = [
        {
            "sop_instance_uid": film.sop_instance_uid,
            "series_instance_uid": film.series_instance_uid,
            "study_instance_uid": film.study_instance_uid,
            "instance_number": film.instance_number,
            "png": (
                str(request.url_for("film_png", job_id=job.id, uid=film.sop_instance_uid))
                if (png_dir / f"{film.sop_instance_uid}.png").is_file()
                else None
            ),
        }
        for film in films_of(ctx.runtime.db, job)
    ]
    return body


@router.get("/{job_id}/films/{uid}.png", summary="A film as PNG", name="film_png")
def film_png(job_id: int, uid: str, ctx: WebContext = Depends(context)) -> FileResponse:
    """The PNG print-to-archive kept of one of the job's films."""
    job = _job(ctx, job_id)
    if not _UID.match(uid) or uid not in {
        f.sop_instance_uid for f in films_of(ctx.runtime.db, job)
    }:
        raise NoSuchResource(f"Print job {job_id} has no film {uid}.")
    path = ctx.runtime.settings.data_dir.absolute() / "print" / f"{uid}.png"
    if not path.is_file():
        raise NoSuchResource(f"The PNG of film {uid} is not kept (print_to_archive was off?).")
    return FileResponse(path, media_type="image/png")
