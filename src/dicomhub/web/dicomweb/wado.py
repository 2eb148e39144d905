"""WADO-RS (PS3.18 10.4): studies, series and instances, their metadata, frames, bulk data
and rendered images.

Instances go out as ``multipart/related; type="application/dicom"``, streamed from the blob
store one chunk at a time: as stored, byte for byte, with ``transfer-syntax=*`` (or when the
syntax asked for is the stored one), else transcoded (Explicit VR Little Endian when the
request names no syntax, as PS3.18 8.7.3.5.2 requires).  Whether every instance can be sent
in the syntax asked for is checked before the answer starts: 406 otherwise.  Metadata is the
stored header of each instance (no object is opened), with BulkDataURIs pointing here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydicom.dataset import Dataset

from dicomhub.errors import InvalidRequest, NotAcceptable
from dicomhub.imaging.frames import bulk_value, frames, native_pixel_data, read_object
from dicomhub.imaging.render import RenderRequest, Window, render
from dicomhub.imaging.transcode import can_transcode
from dicomhub.index.repository import StoredInstance
from dicomhub.web.context import WebContext, context
from dicomhub.web.dicomweb.media import (
    DICOM,
    DICOM_JSON,
    FRAME_MEDIA_TYPES,
    OCTET_STREAM,
    frame_choice,
    instance_syntax,
    json_accepted,
    rendered_type,
)
from dicomhub.web.multipart import Part, multipart_stream, new_boundary
from dicomhub.web.objects import instances_of, metadata, part10, readable
from dicomhub.web.urls import base_url

router = APIRouter(prefix="/dicom-web", tags=["DICOMweb WADO-RS"])
PIXEL_DATA_TAG = 0x7FE00010


def _instances_answer(
    request: Request, ctx: WebContext, found: list[StoredInstance]
) -> StreamingResponse:
    syntax = instance_syntax(request.headers.get("accept"))
    if syntax is not None:
        refused = [i for i in found if not can_transcode(i.transfer_syntax_uid, syntax)]
        if refused:
            raise NotAcceptable(
                f"{len(refused)} of the {len(found)} instances cannot be sent in transfer "
                f"syntax {syntax} (e.g. {refused[0].sop_instance_uid}, stored in "
                f"{refused[0].transfer_syntax_uid}); ask for transfer-syntax=* to get them "
                "as stored."
            )

    def parts() -> Iterator[Part]:
        for instance in found:
            rendition = part10(ctx, instance, syntax)
            yield Part(
                f"{DICOM}; transfer-syntax={rendition.transfer_syntax_uid}",
                rendition.chunks,
                {"Content-Length": str(rendition.length)} if rendition.length else {},
            )

    boundary = new_boundary()
    return StreamingResponse(
        multipart_stream(parts(), boundary),
        media_type=f'multipart/related; type="{DICOM}"; boundary={boundary}',
    )


def _metadata_answer(
    request: Request, ctx: WebContext, found: list[StoredInstance]
) -> StreamingResponse:
    json_accepted(request.headers.get("accept"))
    base = base_url(request, ctx.runtime.settings)

    def body() -> Iterator[bytes]:
        yield b"["
        for index, header in enumerate(metadata(ctx, found, base)):
            yield (b"," if index else b"") + json.dumps(header, ensure_ascii=False).encode()
        yield b"]"

    return StreamingResponse(body(), media_type=DICOM_JSON)


@router.get("/studies/{study}", summary="Retrieve a study")
def retrieve_study(study: str, request: Request, ctx: WebContext = Depends(context)) -> Response:
    """Every instance of the study."""
    return _instances_answer(request, ctx, instances_of(ctx, study))


@router.get("/studies/{study}/series/{series}", summary="Retrieve a series")
def retrieve_series(
    study: str, series: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """Every instance of the series."""
    return _instances_answer(request, ctx, instances_of(ctx, study, series))


@router.get("/studies/{study}/series/{series}/instances/{instance}", summary="Retrieve an instance")
def retrieve_instance(
    study: str, series: str, instance: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """One instance."""
    return _instances_answer(request, ctx, instances_of(ctx, study, series, instance))


@router.get("/studies/{study}/metadata", summary="Retrieve the metadata of a study")
def study_metadata(study: str, request: Request, ctx: WebContext = Depends(context)) -> Response:
    """The header of every instance of the study."""
    return _metadata_answer(request, ctx, instances_of(ctx, study))


@router.get("/studies/{study}/series/{series}/metadata", summary="Retrieve series metadata")
def series_metadata(
    study: str, series: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """The header of every instance of the series."""
    return _metadata_answer(request, ctx, instances_of(ctx, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    summary="Retrieve instance metadata",
)
def instance_metadata(
    study: str, series: str, instance: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """The header of one instance."""
    return _metadata_answer(request, ctx, instances_of(ctx, study, series, instance))


def frame_numbers(text: str) -> list[int]:
    """``1,3,5`` as frame numbers."""
    numbers = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) < 1:
            raise InvalidRequest(f"{text!r}: frame numbers are whole numbers from 1, e.g. 1,2,3")
        numbers.append(int(part))
    return numbers


def _read(ctx: WebContext, instance: StoredInstance) -> Dataset:
    with readable(ctx, instance) as stream:
        return read_object(stream)


def _binary_parts(values: list[bytes], content_type: str) -> StreamingResponse:
    boundary = new_boundary()
    parts = (Part(content_type, [value]) for value in values)
    part_type = content_type.split(";", 1)[0]
    return StreamingResponse(
        multipart_stream(parts, boundary),
        media_type=f'multipart/related; type="{part_type}"; boundary={boundary}',
    )


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{numbers}",
    summary="Retrieve frames",
)
def retrieve_frames(
    study: str,
    series: str,
    instance: str,
    numbers: str,
    request: Request,
    ctx: WebContext = Depends(context),
) -> Response:
    """Frames as native pixels (application/octet-stream) or as stored (compressed)."""
    (stored,) = instances_of(ctx, study, series, instance)
    wanted = frame_numbers(numbers)
    choice = frame_choice(request.headers.get("accept"), stored.transfer_syntax_uid)
    values = frames(_read(ctx, stored), wanted, native=choice.native)
    if choice.native:
        return _binary_parts(values, f"{OCTET_STREAM}; transfer-syntax=1.2.840.10008.1.2.1")
    media = FRAME_MEDIA_TYPES[stored.transfer_syntax_uid]
    return _binary_parts(values, f"{media}; transfer-syntax={stored.transfer_syntax_uid}")


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}",
    summary="Retrieve bulk data",
)
def retrieve_bulkdata(
    study: str,
    series: str,
    instance: str,
    tag: str,
    request: Request,
    ctx: WebContext = Depends(context),
) -> Response:
    """The value a BulkDataURI of the metadata stands for (native pixels for Pixel Data)."""
    (stored,) = instances_of(ctx, study, series, instance)
    try:
        number = int(tag, 16)
    except ValueError:
        raise InvalidRequest(f"{tag!r} is not a tag (8 hexadecimal digits)") from None
    frame_choice(request.headers.get("accept"), "")  # octet-stream must be acceptable
    dataset = _read(ctx, stored)
    if number == PIXEL_DATA_TAG:
        value = native_pixel_data(dataset)
    else:
        raw = bulk_value(dataset, number).value
        if not isinstance(raw, bytes | bytearray):
            raise NotAcceptable(f"element {tag} is not a binary value")
        value = bytes(raw)
    return _binary_parts([value], OCTET_STREAM)


def render_request(request: Request, frame: int, media: str) -> RenderRequest:
    """The rendering parameters of PS3.18 8.3.5 (window, viewport, quality)."""
    params = request.query_params
    window = Window.parse(params["window"]) if params.get("window") else None
    width = height = None
    if params.get("viewport"):
        parts = params["viewport"].split(",")
        try:
            width, height = int(parts[0]), int(parts[1] if len(parts) > 1 else parts[0])
        except ValueError:
            raise InvalidRequest(
                "viewport: give the width and height, e.g. viewport=512,512"
            ) from None
    quality = 90
    if params.get("quality"):
        if not params["quality"].isdigit() or not 1 <= int(params["quality"]) <= 100:
            raise InvalidRequest("quality: give a whole number from 1 to 100")
        quality = int(params["quality"])
    return RenderRequest(
        frame=frame,
        window=window,
        width=width,
        height=height,
        format="png" if media == "image/png" else "jpeg",
        quality=quality,
    )


def rendered_answer(
    ctx: WebContext, stored: StoredInstance, request: Request, frame: int
) -> Response:
    """A rendered frame of an instance."""
    media = rendered_type(request.headers.get("accept"))
    wanted = render_request(request, frame, media)
    with readable(ctx, stored) as stream:
        image = render(stream, wanted)
    return Response(image, media_type=media)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/rendered",
    summary="Retrieve a rendered instance",
)
def rendered_instance(
    study: str, series: str, instance: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """The first frame as JPEG or PNG."""
    (stored,) = instances_of(ctx, study, series, instance)
    return rendered_answer(ctx, stored, request, 1)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{numbers}/rendered",
    summary="Retrieve a rendered frame",
)
def rendered_frame(
    study: str,
    series: str,
    instance: str,
    numbers: str,
    request: Request,
    ctx: WebContext = Depends(context),
) -> Response:
    """One frame as JPEG or PNG."""
    (stored,) = instances_of(ctx, study, series, instance)
    wanted = frame_numbers(numbers)
    if len(wanted) != 1:
        raise InvalidRequest("a rendered answer is one image: name one frame")
    return rendered_answer(ctx, stored, request, wanted[0])
