"""QIDO-RS (PS3.18 10.6): searching studies, series and instances, answered in DICOM JSON.

Each search is a C-FIND of the index's own code (``FindService``, relational: series and
instances may be searched across studies), so matching is exactly that of C-FIND: single
value, list, wildcard, range, universal; person names without regard to case unless
``case_insensitive_pn = false``.  ``fuzzymatching=true`` is accepted; dicomhub performs no
fuzzy matching and says so in a ``Warning`` header, as PS3.18 asks.  ``includefield`` adds
attributes (``all``: every indexed attribute of the level and the levels above, and the whole
stored header for instances); ``limit`` and ``offset`` page the matches.  No match is 204.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset

from dicomhub.errors import InvalidRequest
from dicomhub.index.attributes import ATTRIBUTES, Level
from dicomhub.index.headers import headers_of
from dicomhub.index.query import InformationModel
from dicomhub.web.context import WebContext, context
from dicomhub.web.dicomweb.media import DICOM_JSON, json_accepted
from dicomhub.web.objects import instance_url, with_bulk_uris
from dicomhub.web.urls import base_url

router = APIRouter(prefix="/dicom-web", tags=["DICOMweb QIDO-RS"])

STUDY_KEYS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_KEYS = (
    "Modality",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)
INSTANCE_KEYS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
)
"""The attributes each level returns by default (PS3.18 Table 10.6.3-3 to -5)."""

CONTROL = frozenset({"includefield", "limit", "offset", "fuzzymatching"})
RETRIEVE_URL = 0x00081190
FUZZY_WARNING = (
    '299 dicomhub: "The fuzzymatching parameter is not supported. Only literal matching has '
    'been performed."'
)


def _keyword(attribute: str) -> str:
    """A keyword from a QIDO attributeID (keyword or 8 hex digits)."""
    text = attribute.strip()
    if tag_for_keyword(text) is not None:
        return text
    if len(text) == 8:
        try:
            keyword = keyword_for_tag(int(text, 16))
        except ValueError:
            keyword = ""
        if keyword:
            return str(keyword)
    if "." in text:
        raise InvalidRequest(f"{text}: matching on attributes inside sequences is not supported")
    raise InvalidRequest(f"{text!r} is not a DICOM attribute (keyword or tag) or a parameter")


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return int(tag)


class Search:
    """One QIDO-RS request, read from its query parameters."""

    def __init__(self, request: Request, level: Level, scope: dict[str, str]) -> None:
        self.level = level
        self.scope = scope
        self.filters: dict[str, str] = {}
        self.include: list[str] = []
        self.all = False
        self.offset = 0
        self.limit: int | None = None
        self.fuzzy = False
        for name, value in request.query_params.multi_items():
            self._parameter(name, value)

    def _parameter(self, name: str, value: str) -> None:
        lowered = name.lower()
        if lowered == "includefield":
            for field in value.split(","):
                if field.strip().lower() == "all":
                    self.all = True
                elif field.strip():
                    self.include.append(_keyword(field))
        elif lowered in ("limit", "offset"):
            if not value.strip().isdigit():
                raise InvalidRequest(f"{name}={value!r}: give a whole number")
            number = int(value)
            if lowered == "limit":
                self.limit = number
            else:
                self.offset = number
        elif lowered == "fuzzymatching":
            if value.strip().lower() not in ("true", "false"):
                raise InvalidRequest(f"fuzzymatching={value!r}: give true or false")
            self.fuzzy = value.strip().lower() == "true"
        else:
            keyword = _keyword(name)
            if dictionary_VR(keyword) == "SQ":
                raise InvalidRequest(f"{keyword} is a sequence: it cannot be matched")
            self.filters[keyword] = value

    def returned(self) -> list[str]:
        """The keywords to return."""
        keys: list[str] = []
        if self.level is Level.STUDY or "StudyInstanceUID" not in self.scope:
            keys += STUDY_KEYS
        if self.level is not Level.STUDY:
            keys.append("StudyInstanceUID")
        if self.level in (Level.SERIES, Level.IMAGE) and (
            self.level is Level.SERIES or "SeriesInstanceUID" not in self.scope
        ):
            keys += SERIES_KEYS
        if self.level is Level.IMAGE:
            keys += ["SeriesInstanceUID", *INSTANCE_KEYS]
        if self.all:
            keys += [a.keyword for a in ATTRIBUTES if a.level.depth <= self.level.depth]
        keys += self.include
        return list(dict.fromkeys(keys))

    def identifier(self) -> Dataset:
        """The C-FIND identifier of the search."""
        query = Dataset()
        query.QueryRetrieveLevel = self.level.value
        for keyword in self.returned():
            query.add_new(_tag(keyword), dictionary_VR(keyword), None)
        for keyword, value in {**self.filters, **self.scope}.items():
            parsed = value.split("\\") if "\\" in value else value
            query.add_new(_tag(keyword), dictionary_VR(keyword), parsed)
        return query


def _json(dataset: Dataset) -> dict[str, Any]:
    dataset.pop("QueryRetrieveLevel", None)
    dataset.pop("SpecificCharacterSet", None)
    result: dict[str, Any] = dataset.to_json_dict(bulk_data_threshold=1 << 30)
    return result


def _url(base: str, level: Level, match: Dataset) -> str:
    study = f"{base}/dicom-web/studies/{match.get('StudyInstanceUID', '')}"
    if level is Level.STUDY:
        return study
    series = f"{study}/series/{match.get('SeriesInstanceUID', '')}"
    if level is Level.SERIES:
        return series
    return f"{series}/instances/{match.get('SOPInstanceUID', '')}"


def _results(ctx: WebContext, search: Search, base: str) -> list[dict[str, Any]]:
    matches: Iterable[Dataset] = ctx.runtime.finder.find(
        search.identifier(), InformationModel.STUDY_ROOT, relational=True
    )
    stop = None if search.limit is None else search.offset + search.limit
    found = list(itertools.islice(matches, search.offset, stop))  # no reading past the page
    results = []
    for match in found:
        url = _url(base, search.level, match)
        answer = _json(match)
        answer[f"{RETRIEVE_URL:08X}"] = {"vr": "UR", "Value": [url]}
        results.append(dict(sorted(answer.items())))
    if search.all and search.level is Level.IMAGE:
        _add_headers(ctx, results, base)
    return results


def _add_headers(ctx: WebContext, results: list[dict[str, Any]], base: str) -> None:
    """includefield=all on instances: the whole stored header of each."""
    for result in results:
        uid = result.get("00080018", {}).get("Value", [""])[0]
        stored = ctx.runtime.repository.get_instance(uid)
        if stored is None:
            continue
        header = headers_of(ctx.runtime.db, [stored.instance_pk]).get(stored.instance_pk, {})
        full = with_bulk_uris(header, stored, base)
        for key, value in full.items():
            result.setdefault(key, value)
        result[f"{RETRIEVE_URL:08X}"] = {"vr": "UR", "Value": [instance_url(base, stored)]}


def _stream(results: list[dict[str, Any]]) -> Iterator[bytes]:
    yield b"["
    for index, result in enumerate(results):
        yield (b"," if index else b"") + json.dumps(result, ensure_ascii=False).encode("utf-8")
    yield b"]"


def _answer(request: Request, ctx: WebContext, level: Level, scope: dict[str, str]) -> Response:
    json_accepted(request.headers.get("accept"))
    search = Search(request, level, scope)
    results = _results(ctx, search, base_url(request, ctx.runtime.settings))
    headers = {"Warning": FUZZY_WARNING} if search.fuzzy else {}
    if not results:
        return Response(status_code=204, headers=headers)
    return StreamingResponse(_stream(results), media_type=DICOM_JSON, headers=headers)


@router.get("/studies", summary="Search for studies")
def search_studies(request: Request, ctx: WebContext = Depends(context)) -> Response:
    """QIDO-RS studies."""
    return _answer(request, ctx, Level.STUDY, {})


@router.get("/series", summary="Search for series of all studies")
def search_series(request: Request, ctx: WebContext = Depends(context)) -> Response:
    """QIDO-RS series (all studies)."""
    return _answer(request, ctx, Level.SERIES, {})


@router.get("/studies/{study}/series", summary="Search for series of a study")
def search_study_series(
    study: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """QIDO-RS series of one study."""
    return _answer(request, ctx, Level.SERIES, {"StudyInstanceUID": study})


@router.get("/instances", summary="Search for instances of all studies")
def search_instances(request: Request, ctx: WebContext = Depends(context)) -> Response:
    """QIDO-RS instances (all studies)."""
    return _answer(request, ctx, Level.IMAGE, {})


@router.get("/studies/{study}/instances", summary="Search for instances of a study")
def search_study_instances(
    study: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """QIDO-RS instances of one study."""
    return _answer(request, ctx, Level.IMAGE, {"StudyInstanceUID": study})


@router.get(
    "/studies/{study}/series/{series}/instances", summary="Search for instances of a series"
)
def search_series_instances(
    study: str, series: str, request: Request, ctx: WebContext = Depends(context)
) -> Response:
    """QIDO-RS instances of one series."""
    scope = {"StudyInstanceUID": study, "SeriesInstanceUID": series}
    return _answer(request, ctx, Level.IMAGE, scope)
