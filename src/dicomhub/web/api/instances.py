"""One instance over REST: its stored file, its header, a preview; and uploading files.

The file is the stored object byte for byte.  The header is the DICOM JSON the index keeps
(PS3.18 F; no pixel data), with BulkDataURIs to the DICOMweb bulk data routes.  Previews are
PNG or JPEG of one frame, with the header's window or the one given.  Uploads take one object
(``application/dicom``) or files of a form (``multipart/form-data``), each through the ingest
path.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from dicomhub.errors import InvalidRequest, UnsupportedMediaType
from dicomhub.imaging.render import RenderRequest, Window, render
from dicomhub.index.headers import headers_of
from dicomhub.index.repository import StoredInstance
from dicomhub.web.context import WebContext, actor, context
from dicomhub.web.multipart import media_type
from dicomhub.web.objects import (
    instance_by_uid,
    readable,
    series_instances,
    stored_chunks,
    with_bulk_uris,
)
from dicomhub.web.problems import error_body
from dicomhub.web.uploads import DICOM, Outcome, Receiver
from dicomhub.web.urls import base_url

router = APIRouter(prefix="/api", tags=["Instances"])


@router.get("/instances/{uid}/file", summary="Download the stored file")
def download(uid: str, ctx: WebContext = Depends(context)) -> StreamingResponse:
    """The stored object, byte for byte."""
    stored = instance_by_uid(ctx, uid)
    return StreamingResponse(
        stored_chunks(ctx, stored),
        media_type=DICOM,
        headers={
            "Content-Length": str(stored.size),
            "Content-Disposition": f'attachment; filename="{uid}.dcm"',
        },
    )


@router.get("/instances/{uid}/header", summary="The header as DICOM JSON")
def header(uid: str, request: Request, ctx: WebContext = Depends(context)) -> JSONResponse:
    """The stored header (no pixel data) in the DICOM JSON model."""
    stored = instance_by_uid(ctx, uid)
    found = headers_of(ctx.runtime.db, [stored.instance_pk]).get(stored.instance_pk, {})
    body = with_bulk_uris(found, stored, base_url(request, ctx.runtime.settings))
    return JSONResponse(body, media_type="application/dicom+json")


def _preview(
    ctx: WebContext,
    stored: StoredInstance,
    frame: int,
    size: int | None,
    window: str | None,
    image_format: str,
) -> Response:
    if image_format not in ("png", "jpeg"):
        raise InvalidRequest("format: png or jpeg")
    wanted = RenderRequest(
        frame=frame,
        window=Window.parse(window) if window else None,
        width=size,
        height=size,
        format="png" if image_format == "png" else "jpeg",
    )
    with readable(ctx, stored) as stream:
        image = render(stream, wanted)
    return Response(image, media_type=f"image/{image_format}")


Frame = Query(1, ge=1, description="Frame number (1 is the first).")
Size = Query(None, ge=1, le=8192, description="Largest width and height, in pixels.")
WindowQuery = Query(None, description="center,width[,linear|linear-exact|sigmoid]")
FormatQuery = Query("png", description="png or jpeg")


@router.get("/instances/{uid}/preview", summary="A rendered frame")
def preview(
    uid: str,
    frame: int = Frame,
    size: int | None = Size,
    window: str | None = WindowQuery,
    image_format: str = Query("png", alias="format", description="png or jpeg"),
    ctx: WebContext = Depends(context),
) -> Response:
    """One frame as PNG or JPEG."""
    return _preview(ctx, instance_by_uid(ctx, uid), frame, size, window, image_format)


@router.get("/series/{series}/preview", summary="A thumbnail of a series")
def series_preview(
    series: str,
    size: int | None = Size,
    window: str | None = WindowQuery,
    image_format: str = Query("png", alias="format", description="png or jpeg"),
    ctx: WebContext = Depends(context),
) -> Response:
    """The first frame of the series' middle instance (by InstanceNumber)."""
    found = series_instances(ctx, series)
    return _preview(ctx, found[len(found) // 2], 1, size, window, image_format)


def upload_answer(outcomes: list[Outcome]) -> JSONResponse:
    """200 when everything was stored, 202 when some were refused; when every one was
    refused, the refusal's own status for a single object, else 409."""
    items: list[dict[str, Any]] = []
    for outcome in outcomes:
        entry: dict[str, Any] = {
            "filename": outcome.filename,
            "sop_class_uid": outcome.identity.sop_class_uid,
            "sop_instance_uid": outcome.identity.sop_instance_uid,
            "study_instance_uid": outcome.identity.study_instance_uid,
        }
        if outcome.result is not None:
            entry["status"] = outcome.result.status.value
        else:
            assert outcome.error is not None
            entry["status"] = "failed"
            entry["error"] = str(outcome.error)
            entry["failure_reason"] = outcome.error.dimse_status
        items.append(entry)
    stored = sum(1 for o in outcomes if o.ok)
    body: dict[str, Any] = {"items": items, "stored": stored, "failed": len(outcomes) - stored}
    if stored == len(outcomes):
        return JSONResponse(body, status_code=200)
    if stored:
        return JSONResponse(body, status_code=202)
    if len(outcomes) == 1 and outcomes[0].error is not None:
        error = outcomes[0].error
        return JSONResponse(
            {**error_body(error.http_status, str(error)), **body}, error.http_status
        )
    return JSONResponse(
        {**error_body(409, "None of the files was stored."), **body}, status_code=409
    )


@router.post("/instances", summary="Upload DICOM files")
async def upload(request: Request, ctx: WebContext = Depends(context)) -> JSONResponse:
    """One object (``application/dicom``) or the files of a form (``multipart/form-data``)."""
    kind, params = media_type(request.headers.get("content-type", ""))
    receiver = Receiver(
        ctx,
        source="upload",
        actor=actor(request),
        part_types=(DICOM, "application/octet-stream"),
    )
    if kind == DICOM:
        outcomes = await receiver.single(request.stream())
    elif kind in ("multipart/form-data", "multipart/related"):
        outcomes = await receiver.multipart(request.stream(), params.get("boundary", ""))
    else:
        raise UnsupportedMediaType(
            "Upload DICOM files as application/dicom (one file) or multipart/form-data."
        )
    if not outcomes:
        raise InvalidRequest("The upload holds no file.")
    return upload_answer(outcomes)
