"""The archive over REST: patients, studies, series and instances; search, look, delete.

Lists take DICOM keywords as filters with C-FIND values (``PatientName=DOE*``,
``StudyDate=20240101-20240131``), ``sort`` (keywords, ``-`` for descending), ``offset`` and
``limit``, and answer ``{"items", "total", "offset", "limit", "has_more"}``.  Deleting removes
the instances from the index (recorded in the change log, with who asked) and then their
stored objects.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydicom.dataset import Dataset

from dicomhub.errors import NoSuchResource
from dicomhub.index.attributes import Level
from dicomhub.index.headers import reception
from dicomhub.index.query import InformationModel
from dicomhub.index.repository import StoredInstance
from dicomhub.web import objects
from dicomhub.web.context import WebContext, actor, context
from dicomhub.web.listing import DEFAULT_LIMIT, search
from dicomhub.web.objects import instance_by_uid, instances_of

LOG = logging.getLogger("dicomhub.web")
router = APIRouter(prefix="/api", tags=["Archive"])
PAGING = frozenset({"offset", "limit", "sort"})


class Paging:
    """The sort and page of a list (a FastAPI dependency)."""

    def __init__(
        self,
        sort: str = Query("", description="Keywords to sort by, comma-separated; '-' descending."),
        offset: int = Query(0, ge=0, description="Items to skip."),
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=1000, description="Items per page."),
    ) -> None:
        self.sort = sort
        self.offset = offset
        self.limit = limit


def _filters(request: Request, **fixed: str) -> dict[str, str]:
    filters = {k: v for k, v in request.query_params.items() if k not in PAGING}
    filters.update(fixed)
    return filters


def _list(
    ctx: WebContext,
    level: Level,
    request: Request,
    paging: Paging,
    sort: str = "",
    **fixed: str,
) -> dict[str, Any]:
    """A page of ``level`` entities; ``sort`` applies when the request names none."""
    page = search(
        ctx.runtime.finder,
        level,
        _filters(request, **fixed),
        sort=paging.sort or sort,
        offset=paging.offset,
        limit=paging.limit,
    )
    return page.body()


def _one(ctx: WebContext, level: Level, what: str, **fixed: str) -> dict[str, Any]:
    page = search(ctx.runtime.finder, level, fixed, limit=1)
    if not page.items:
        raise NoSuchResource(f"There is no {what} {next(iter(fixed.values()))} in the archive.")
    return page.items[0]


@router.get("/patients", summary="Search patients")
def list_patients(
    request: Request,
    paging: Paging = Depends(),
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Patients matching the filters."""
    return _list(ctx, Level.PATIENT, request, paging)


@router.get("/patients/{patient_id}/studies", summary="Studies of a patient")
def patient_studies(
    patient_id: str,
    request: Request,
    paging: Paging = Depends(),
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """The studies of the patient with this Patient ID."""
    return _list(ctx, Level.STUDY, request, paging, PatientID=patient_id)


@router.get("/studies", summary="Search studies")
def list_studies(
    request: Request,
    paging: Paging = Depends(),
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Studies matching the filters (a work list)."""
    return _list(ctx, Level.STUDY, request, paging)


@router.get("/studies/{study}", summary="A study")
def get_study(study: str, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """One study with its patient."""
    return _one(ctx, Level.STUDY, "study", StudyInstanceUID=study)


@router.get("/studies/{study}/series", summary="Series of a study")
def study_series(
    study: str,
    request: Request,
    paging: Paging = Depends(),
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """The series of a study (sorted by SeriesNumber unless asked otherwise)."""
    return _list(ctx, Level.SERIES, request, paging, "SeriesNumber", StudyInstanceUID=study)


@router.get("/series", summary="Search series")
def list_series(
    request: Request,
    paging: Paging = Depends(),
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Series of any study matching the filters."""
    return _list(ctx, Level.SERIES, request, paging)


@router.get("/series/{series}", summary="A series")
def get_series(series: str, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """One series."""
    return _one(ctx, Level.SERIES, "series", SeriesInstanceUID=series)


@router.get("/series/{series}/instances", summary="Instances of a series")
def series_instances(
    series: str,
    request: Request,
    paging: Paging = Depends(),
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """The instances of a series (sorted by InstanceNumber unless asked otherwise)."""
    return _list(ctx, Level.IMAGE, request, paging, "InstanceNumber", SeriesInstanceUID=series)


@router.get("/instances", summary="Search instances")
def list_instances(
    request: Request,
    paging: Paging = Depends(),
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Instances of any series matching the filters."""
    return _list(ctx, Level.IMAGE, request, paging)


@router.get("/instances/{uid}", summary="An instance")
def get_instance(uid: str, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """One instance, with how it is stored and where it came from."""
    stored = instance_by_uid(ctx, uid)
    item = _one(ctx, Level.IMAGE, "instance", SOPInstanceUID=uid)
    origin = reception(ctx.runtime.db, stored.instance_pk)
    item["stored"] = {
        "transfer_syntax_uid": stored.transfer_syntax_uid,
        "size": stored.size,
        "sha256": stored.sha256,
        "source": origin[0] if origin else "",
        "calling_ae_title": origin[1] if origin else "",
        "received_at": origin[2].isoformat() if origin else None,
    }
    return item


# Deleting -----------------------------------------------------------------------------------


def delete_instances(ctx: WebContext, found: list[StoredInstance], reason: str) -> int:
    """Remove instances from the index (each in its own transaction, logged as a change),
    then their stored objects; the number removed."""
    removed = 0
    for instance in found:
        key = ctx.runtime.repository.remove_instance(instance.sop_instance_uid, reason)
        if key is None:
            continue  # removed meanwhile by someone else
        removed += 1
        try:
            ctx.runtime.blobs.delete(key)
        except OSError as exc:
            LOG.error("stored object %s of %s not removed: %s", key, instance.sop_instance_uid, exc)
    LOG.info("%s: %d instances deleted", reason, removed)
    return removed


def _deleted(count: int) -> dict[str, Any]:
    return {"deleted": count}


@router.delete("/patients/{patient_id}", summary="Delete a patient")
def delete_patient(
    patient_id: str, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """Every instance of the patient with this Patient ID."""
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = patient_id
    found = ctx.locator.instances(query, InformationModel.PATIENT_ROOT)
    if not found:
        raise NoSuchResource(f"There is no patient {patient_id} in the archive.")
    return _deleted(delete_instances(ctx, found, f"deleted over HTTP by {actor(request)}"))


@router.delete("/studies/{study}", summary="Delete a study")
def delete_study(
    study: str, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """Every instance of the study."""
    found = instances_of(ctx, study)
    return _deleted(delete_instances(ctx, found, f"deleted over HTTP by {actor(request)}"))


@router.delete("/series/{series}", summary="Delete a series")
def delete_series(
    series: str, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """Every instance of the series."""
    found = objects.series_instances(ctx, series)
    return _deleted(delete_instances(ctx, found, f"deleted over HTTP by {actor(request)}"))


@router.delete("/instances/{uid}", summary="Delete an instance")
def delete_instance(
    uid: str, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """One instance."""
    found = [instance_by_uid(ctx, uid)]
    return _deleted(delete_instances(ctx, found, f"deleted over HTTP by {actor(request)}"))
