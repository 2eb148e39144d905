"""STOW-RS (PS3.18 10.5): ``multipart/related; type="application/dicom"`` into the ingest path.

Every part is stored through ``Ingest.store`` as it arrives (``web.uploads``).  The answer is
the Store Instances Response Module (PS3.18 Annex I) in DICOM JSON: a ReferencedSOPSequence
item per stored instance (with its RetrieveURL) and a FailedSOPSequence item per refused one,
whose FailureReason is the C-STORE status of the refusal (0xA700 out of resources, 0xA900 data
set does not match SOP class, 0xC000 cannot understand, 0x0111 duplicate SOP instance with
other content, 0xC409 another study than the one in the URL).  Status: 200 when everything
was stored, 202 when some parts were refused, 409 when none was stored, 400 for a malformed
body, 415 for a body that is not multipart/related of application/dicom.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from dicomhub.errors import InvalidRequest, StudyInstanceUIDMismatch, UnsupportedMediaType
from dicomhub.web.context import WebContext, actor, context
from dicomhub.web.dicomweb.media import DICOM, DICOM_JSON
from dicomhub.web.multipart import media_type
from dicomhub.web.uploads import Identity, Outcome, Receiver
from dicomhub.web.urls import base_url

router = APIRouter(prefix="/dicom-web", tags=["DICOMweb STOW-RS"])

RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"


def _uid(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _reference(identity: Identity) -> dict[str, Any]:
    return {
        REFERENCED_SOP_CLASS_UID: _uid(identity.sop_class_uid),
        REFERENCED_SOP_INSTANCE_UID: _uid(identity.sop_instance_uid),
    }


def response_module(outcomes: list[Outcome], base: str, study: str | None) -> dict[str, Any]:
    """The Store Instances Response Module of a STOW-RS request."""
    body: dict[str, Any] = {}
    if study is not None:
        body[RETRIEVE_URL] = {"vr": "UR", "Value": [f"{base}/dicom-web/studies/{study}"]}
    failed = [o for o in outcomes if not o.ok]
    stored = [o for o in outcomes if o.ok]
    if failed:
        items = []
        for outcome in failed:
            item = _reference(outcome.identity)
            assert outcome.error is not None
            item[FAILURE_REASON] = {"vr": "US", "Value": [outcome.error.dimse_status]}
            items.append(dict(sorted(item.items())))
        body[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": items}
    if stored:
        items = []
        for outcome in stored:
            identity = outcome.identity
            item = _reference(identity)
            url = (
                f"{base}/dicom-web/studies/{identity.study_instance_uid}/series/"
                f"{identity.series_instance_uid}/instances/{identity.sop_instance_uid}"
            )
            item[RETRIEVE_URL] = {"vr": "UR", "Value": [url]}
            items.append(dict(sorted(item.items())))
        body[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": items}
    return dict(sorted(body.items()))


def status_of(outcomes: list[Outcome]) -> int:
    """200 all stored, 202 some refused, 409 none stored."""
    stored = sum(1 for o in outcomes if o.ok)
    if stored == len(outcomes):
        return 200
    return 202 if stored else 409


def check_content_type(request: Request) -> str:
    """The boundary of a multipart/related body of application/dicom; 415 otherwise."""
    kind, params = media_type(request.headers.get("content-type", ""))
    part_type = params.get("type", "").lower()
    if kind != "multipart/related" or part_type not in ("", DICOM):
        raise UnsupportedMediaType(
            'STOW-RS takes multipart/related; type="application/dicom" (DICOM JSON or '
            f"XML metadata with bulk data is not supported); this request is {kind or 'untyped'}"
            + (f' of type "{part_type}"' if part_type else "")
        )
    boundary = params.get("boundary", "")
    if not boundary:
        raise InvalidRequest("the multipart/related body has no boundary parameter")
    return boundary


async def _store(request: Request, ctx: WebContext, study: str | None) -> JSONResponse:
    boundary = check_content_type(request)

    def same_study(identity: Identity) -> None:
        found = identity.study_instance_uid
        if study is not None and found and found != study:  # none: the ingest path says why
            raise StudyInstanceUIDMismatch(
                f"the instance belongs to study {found}, not to {study} named in the request"
            )

    receiver = Receiver(ctx, source="STOW-RS", actor=actor(request), check=same_study)
    outcomes = await receiver.multipart(request.stream(), boundary)
    if not outcomes:
        raise InvalidRequest("the request holds no DICOM instance")
    body = response_module(outcomes, base_url(request, ctx.runtime.settings), study)
    return JSONResponse(body, status_code=status_of(outcomes), media_type=DICOM_JSON)


@router.post("/studies", summary="Store instances")
async def store_instances(request: Request, ctx: WebContext = Depends(context)) -> JSONResponse:
    """STOW-RS into any study."""
    return await _store(request, ctx, None)


@router.post("/studies/{study}", summary="Store instances into a study")
async def store_study_instances(
    study: str, request: Request, ctx: WebContext = Depends(context)
) -> JSONResponse:
    """STOW-RS into one study: instances of other studies are refused (0xC409)."""
    return await _store(request, ctx, study)
