"""WADO-URI (PS3.18 9): ``/wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=..``.

``contentType=application/dicom`` answers the object itself (a single Part 10 body): in
``transferSyntax`` when given (``*`` for as stored), else Explicit VR Little Endian.  The
default ``image/jpeg`` (or ``image/png``) renders one frame (``frameNumber``) with the
window given (``windowCenter`` and ``windowWidth``) or the header's, scaled to fit ``rows``
and ``columns``, at ``imageQuality``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from dicomhub.errors import InvalidRequest, NotAcceptable
from dicomhub.imaging.render import RenderRequest, Window, render
from dicomhub.web.context import WebContext, context
from dicomhub.web.dicomweb.media import DICOM, EXPLICIT_VR_LITTLE_ENDIAN
from dicomhub.web.objects import instances_of, part10, readable
from dicomhub.web.paths import checked_uid

router = APIRouter(tags=["WADO-URI"])


def _whole(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise InvalidRequest(f"{name}={value!r}: give a whole number from 1")
    return int(value)


@router.get("/wado", summary="WADO-URI")
def wado(
    request: Request,
    request_type: str = Query(..., alias="requestType"),
    study_uid: str = Query(..., alias="studyUID"),
    series_uid: str = Query(..., alias="seriesUID"),
    object_uid: str = Query(..., alias="objectUID"),
    content_type: str = Query("image/jpeg", alias="contentType"),
    transfer_syntax: str | None = Query(None, alias="transferSyntax"),
    frame_number: str | None = Query(None, alias="frameNumber"),
    window_center: str | None = Query(None, alias="windowCenter"),
    window_width: str | None = Query(None, alias="windowWidth"),
    rows: str | None = Query(None),
    columns: str | None = Query(None),
    image_quality: str | None = Query(None, alias="imageQuality"),
    ctx: WebContext = Depends(context),
) -> Response:
    """One object, as DICOM or as a rendered image."""
    if request_type != "WADO":
        raise InvalidRequest(f"requestType={request_type!r}: only WADO is supported")
    (stored,) = instances_of(
        ctx,
        checked_uid(study_uid, "studyUID"),
        checked_uid(series_uid, "seriesUID"),
        checked_uid(object_uid, "objectUID"),
    )
    kinds = [c.split(";")[0].strip().lower() for c in content_type.split(",")]
    if DICOM in kinds:
        syntax = transfer_syntax or EXPLICIT_VR_LITTLE_ENDIAN
        rendition = part10(ctx, stored, None if syntax == "*" else syntax)
        headers = {"Content-Length": str(rendition.length)} if rendition.length else {}
        return StreamingResponse(rendition.chunks, media_type=DICOM, headers=headers)
    media = next((k for k in kinds if k in ("image/jpeg", "image/png")), None)
    if media is None:
        raise NotAcceptable(
            f"contentType={content_type!r}: dicomhub answers application/dicom, image/jpeg "
            "or image/png"
        )
    window = None
    if window_center or window_width:
        if not (window_center and window_width):
            raise InvalidRequest("give windowCenter and windowWidth together")
        window = Window.parse(f"{window_center},{window_width}")
    quality = _whole(image_quality, "imageQuality") or 90
    wanted = RenderRequest(
        frame=_whole(frame_number, "frameNumber") or 1,
        window=window,
        width=_whole(columns, "columns"),
        height=_whole(rows, "rows"),
        format="png" if media == "image/png" else "jpeg",
        quality=min(quality, 100),
    )
    with readable(ctx, stored) as stream:
        image = render(stream, wanted)
    return Response(image, media_type=media)
