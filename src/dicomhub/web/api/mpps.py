"""Modality Performed Procedure Steps over REST: list, and one step in detail with its
worklist item, its history (N-CREATE, N-SETs) and the performed series against the archive."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from dicomhub.errors import NoSuchResource
from dicomhub.index.mpps import Mpps, MppsStatus
from dicomhub.web.api.paging import Limit, Offset, choice, page, when
from dicomhub.web.api.worklist import summary as worklist_summary
from dicomhub.web.context import WebContext, context
from dicomhub.web.listing import text_of

router = APIRouter(prefix="/api/mpps", tags=["MPPS"])

_PATIENT_NAME = "00100010"
_PATIENT_ID = "00100020"
_DESCRIPTION = "00400254"
_START_DATE = "00400244"
_START_TIME = "00400245"
_STATION = "00400241"


def _text(attributes: dict[str, Any], key: str) -> str:
    element = attributes.get(key) or {}
    values = element.get("Value") or []
    if not values:
        return ""
    first = values[0]
    if isinstance(first, dict):
        return text_of(first.get("Alphabetic", ""))
    return text_of(first)


def summary(step: Mpps) -> dict[str, Any]:
    """The facts a list shows."""
    attributes = step.attributes
    return {
        "id": step.id,
        "sop_instance_uid": step.sop_instance_uid,
        "status": step.status.value,
        "patient_name": _text(attributes, _PATIENT_NAME),
        "patient_id": _text(attributes, _PATIENT_ID),
        "description": _text(attributes, _DESCRIPTION),
        "start_date": _text(attributes, _START_DATE),
        "start_time": _text(attributes, _START_TIME),
        "performed_station_ae_title": _text(attributes, _STATION),
        "worklist_item_id": step.worklist_item_id,
        "unscheduled": step.unscheduled,
        "calling_ae_title": step.calling_ae_title,
        "created_at": when(step.created_at),
        "updated_at": when(step.updated_at),
        "completed_at": when(step.completed_at),
    }


@router.get("", summary="MPPS instances")
def list_mpps(
    status: str | None = Query(None, description="IN PROGRESS, COMPLETED or DISCONTINUED"),
    unscheduled: bool | None = Query(None, description="Only steps without worklist item."),
    worklist_item_id: int | None = Query(None),
    offset: int = Offset,
    limit: int = Limit,
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Steps, newest first."""
    chosen = choice(MppsStatus, status, "status")

    def fetch(n: int) -> list[Mpps]:
        return ctx.mpps.list(
            chosen, unscheduled=unscheduled, worklist_item_id=worklist_item_id, limit=n
        )

    return page(fetch, summary, offset, limit)


@router.get("/{mpps_id}", summary="An MPPS instance")
def get_mpps(mpps_id: int, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """A step: attributes, linked worklist item, history, performed vs received series."""
    step = ctx.mpps.get_by_id(mpps_id)
    if step is None:
        raise NoSuchResource(f"There is no MPPS {mpps_id}.")
    body = summary(step)
    body["attributes"] = step.attributes
    item = ctx.worklist.get(step.worklist_item_id) if step.worklist_item_id else None
    body["worklist_item"] = worklist_summary(item) if item is not None else None
    body["history"] = [
        {
            "action": event.action,
            "status_before": event.status_before,
            "status_after": event.status_after,
            "calling_ae_title": event.calling_ae_title,
            "occurred_at": when(event.occurred_at),
            "changes": event.changes,
        }
        for event in ctx.mpps.history(step.id)
    ]
    body["series"] = [
        {
            "series_instance_uid": series.series_instance_uid,
            "performed": series.referenced,
            "received": series.received,
            "missing": series.missing,
        }
        for series in ctx.mpps.performed_vs_received(step.id)
    ]
    return body
