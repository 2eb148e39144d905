"""Modality Worklist items over REST: list with status, create, edit, cancel.

An item is given either as plain fields (patient, procedure, one step: the same fields as
``dicomhub worklist add``) or as a whole DICOM JSON data set (``{"dataset": {...}}``).  Each
item shows the status it reached (SCHEDULED, IN PROGRESS from an MPPS N-CREATE, COMPLETED or
DISCONTINUED from its N-SET, CANCELLED) and the MPPS instances linked to it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from pydicom.dataset import Dataset

from dicomhub.errors import InvalidRequest, NoSuchResource, ResourceConflict
from dicomhub.index.worklist import WorklistItem, WorklistStatus, step_of
from dicomhub.web.api.paging import Limit, Offset, choice, page, when
from dicomhub.web.context import WebContext, actor, context
from dicomhub.web.listing import text_of
from dicomhub.worklist_items import WorklistFields, dataset_from_fields

LOG = logging.getLogger("dicomhub.web")
router = APIRouter(prefix="/api/worklist", tags=["Worklist"])


class ItemBody(BaseModel):
    """A worklist item: ``dataset`` (DICOM JSON) or the plain fields."""

    dataset: dict[str, Any] | None = Field(
        None, description="The whole item as DICOM JSON (PS3.18 F); the fields are ignored."
    )
    patient_name: str = Field("", description="PatientName, e.g. DOE^JANE.")
    patient_id: str = Field("", description="PatientID.")
    issuer_of_patient_id: str = ""
    birth_date: str = Field("", description="PatientBirthDate (YYYYMMDD).")
    sex: str = Field("", description="PatientSex (M, F, O).")
    modality: str = Field("", description="Modality of the step (CT, MR, ...).")
    station_ae: str = Field("", description="ScheduledStationAETitle.")
    station_name: str = ""
    start: str = Field("", description="Scheduled start 'YYYYMMDD HHMM' (default: now).")
    accession: str = Field("", description="AccessionNumber.")
    procedure: str = Field("", description="RequestedProcedureDescription.")
    requested_procedure_id: str = ""
    step_id: str = Field("", description="ScheduledProcedureStepID.")
    step_description: str = ""
    referring_physician: str = ""
    performing_physician: str = ""
    study_uid: str = Field("", description="StudyInstanceUID (default: a new one).")

    def to_dataset(self) -> Dataset:
        """The item as a data set."""
        if self.dataset is not None:
            try:
                return Dataset.from_json(self.dataset)
            except Exception as exc:
                raise InvalidRequest(f"dataset is not DICOM JSON: {exc}") from None
        values = self.model_dump(exclude={"dataset"})
        return dataset_from_fields(WorklistFields(**values))


def summary(item: WorklistItem) -> dict[str, Any]:
    """The facts a list shows."""
    dataset = item.dataset
    step = step_of(dataset) or Dataset()
    return {
        "id": item.id,
        "status": item.status.value,
        "patient_name": text_of(dataset.get("PatientName")),
        "patient_id": text_of(dataset.get("PatientID")),
        "accession_number": text_of(dataset.get("AccessionNumber")),
        "study_instance_uid": text_of(dataset.get("StudyInstanceUID")),
        "procedure": text_of(dataset.get("RequestedProcedureDescription"))
        or text_of(step.get("ScheduledProcedureStepDescription")),
        "modality": text_of(step.get("Modality")),
        "station_ae_title": text_of(step.get("ScheduledStationAETitle")),
        "start_date": text_of(step.get("ScheduledProcedureStepStartDate")),
        "start_time": text_of(step.get("ScheduledProcedureStepStartTime")),
        "step_id": text_of(step.get("ScheduledProcedureStepID")),
        "source": item.source,
        "order_key": item.order_key,
        "created_at": when(item.created_at),
        "updated_at": when(item.updated_at),
    }


def _item(ctx: WebContext, item_id: int) -> WorklistItem:
    item = ctx.worklist.get(item_id)
    if item is None:
        raise NoSuchResource(f"There is no worklist item {item_id}.")
    return item


def detail(ctx: WebContext, item: WorklistItem) -> dict[str, Any]:
    """An item with its attributes and the MPPS linked to it."""
    body = summary(item)
    body["attributes"] = item.attributes
    body["mpps"] = [
        {
            "id": step.id,
            "sop_instance_uid": step.sop_instance_uid,
            "status": step.status.value,
            "updated_at": when(step.updated_at),
        }
        for step in ctx.mpps.list(worklist_item_id=item.id)
    ]
    return body


@router.get("", summary="Worklist items")
def list_items(
    status: str | None = Query(None, description="Only items in this status."),
    offset: int = Offset,
    limit: int = Limit,
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Items, most recently created first."""
    chosen = choice(WorklistStatus, status, "status")
    return page(lambda n: ctx.worklist.list(chosen, n), summary, offset, limit)


@router.get("/{item_id}", summary="A worklist item")
def get_item(item_id: int, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """One item, its attributes and linked MPPS."""
    return detail(ctx, _item(ctx, item_id))


@router.post("", summary="Schedule a worklist item", status_code=201)
def create_item(
    body: ItemBody, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """A new SCHEDULED item (422 when it lacks the patient or its step)."""
    item_id = ctx.worklist.add(body.to_dataset(), source="api")
    LOG.info("worklist item %d scheduled by %s", item_id, actor(request))
    return detail(ctx, _item(ctx, item_id))


@router.put("/{item_id}", summary="Change a worklist item")
def edit_item(
    item_id: int, body: ItemBody, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """Replace the item's attributes (its status is kept; a final item cannot change)."""
    current = _item(ctx, item_id)
    if current.status.is_final:
        raise ResourceConflict(
            f"Worklist item {item_id} is {current.status.value}: it cannot be changed any more."
        )
    ctx.worklist.update(item_id, body.to_dataset())
    LOG.info("worklist item %d changed by %s", item_id, actor(request))
    return detail(ctx, _item(ctx, item_id))


@router.post("/{item_id}/cancel", summary="Cancel a worklist item")
def cancel_item(
    item_id: int, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """Mark the item CANCELLED: the worklist no longer offers it."""
    if not ctx.worklist.cancel(item_id):
        item = _item(ctx, item_id)
        raise ResourceConflict(
            f"Worklist item {item_id} is {item.status.value} already: it cannot be cancelled."
        )
    LOG.info("worklist item %d cancelled by %s", item_id, actor(request))
    return detail(ctx, _item(ctx, item_id))
