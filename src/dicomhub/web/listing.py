"""Searching the archive for the REST API: C-FIND matching, then sorting and paging.

Filters are DICOM keywords with C-FIND values (``PatientName=DOE*``,
``StudyDate=20240101-20240131``, ``ModalitiesInStudy=CT``); they are matched by the index's
C-FIND code (``FindService``, relational), exactly as a DICOM query would be.  The matches are
then sorted (``sort=-StudyDate,PatientName``) and cut to a page (``offset``, ``limit``); the
answer says how many matched in all, so a UI can page.  Only the page's matches are answered
in full (see ``search``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from dicomhub.errors import InvalidRequest
from dicomhub.index.attributes import Level
from dicomhub.index.query import FindService, InformationModel, Match

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

LEVEL_KEYS: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: (
        "PatientID",
        "IssuerOfPatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ),
    Level.STUDY: (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
    ),
    Level.SERIES: (
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
    ),
    Level.IMAGE: (
        "SOPInstanceUID",
        "SOPClassUID",
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "InstanceNumber",
        "Rows",
        "Columns",
        "NumberOfFrames",
        "ContentDate",
        "ContentTime",
    ),
}
"""The attributes each level's items carry."""

MULTI_VALUED = frozenset({"ModalitiesInStudy", "SOPClassesInStudy", "ImageType", "OtherPatientIDs"})


@dataclass(frozen=True)
class Page:
    """One page of a list."""

    items: list[dict[str, Any]]
    total: int
    offset: int
    limit: int

    def body(self) -> dict[str, Any]:
        """The JSON answer: items and paging facts."""
        return {
            "items": self.items,
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "has_more": self.offset + len(self.items) < self.total,
        }


def check_paging(offset: int, limit: int) -> None:
    """Refuse a page that cannot be served."""
    if offset < 0:
        raise InvalidRequest("offset cannot be negative")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")


def identifier(level: Level, filters: Mapping[str, str], returned: Iterable[str]) -> Dataset:
    """A C-FIND identifier of ``level``: the filters as matching keys, ``returned`` asked for."""
    query = Dataset()
    query.QueryRetrieveLevel = level.value
    for keyword in returned:
        _add(query, keyword, "")
    for keyword, value in filters.items():
        _add(query, keyword, value)
    return query


def _add(query: Dataset, keyword: str, value: str) -> None:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise InvalidRequest(f"{keyword!r} is not a DICOM keyword or a parameter of this list")
    vr = str(dictionary_VR(tag))
    if vr == "SQ":
        raise InvalidRequest(f"{keyword} is a sequence: it cannot be a filter")
    query.add_new(tag, vr, value.split("\\") if "\\" in value else (value or None))


def plain(dataset: Dataset, keyword: str) -> Any:
    """An attribute as a plain JSON value: text, a list for multi-valued keys, an int for
    counts and integers, None when absent or empty."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return [] if keyword in MULTI_VALUED else None
    if isinstance(value, MultiValue | list | tuple):
        values = [_one(v) for v in value]
        return values if keyword in MULTI_VALUED or len(values) != 1 else values[0]
    one = _one(value)
    return [one] if keyword in MULTI_VALUED else one


def text_of(value: Any) -> str:
    """A data set value as one line of text (values joined by backslash, '' when empty)."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(text_of(v) for v in value)
    return str(value).strip()


def _one(value: Any) -> Any:
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, int | float | str):
        if type(value).__name__ == "IS":
            return int(value)
        if type(value).__name__ in ("DSfloat", "DSdecimal"):
            return float(value)
        return value if isinstance(value, int | float) else str(value)
    return str(value)


def item(dataset: Dataset, keywords: Sequence[str]) -> dict[str, Any]:
    """A match as ``{keyword: plain value}``."""
    return {keyword: plain(dataset, keyword) for keyword in keywords}


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None or value == []:
        return (1, "")
    if isinstance(value, list):
        return (0, "\\".join(str(v) for v in value))
    if isinstance(value, int | float):
        return (0, f"{value:020.6f}")
    return (0, str(value).upper())


@total_ordering
class _Descending:
    """A sort value compared the other way round."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __hash__(self) -> int:
        return hash(self.value)


def sort_order(sort: str, allowed: Sequence[str]) -> list[tuple[str, bool]]:
    """``sort`` (keywords, comma-separated, ``-`` for descending) as (keyword, descending)
    pairs; ``InvalidRequest`` for a keyword the list cannot sort by."""
    order = []
    for key in (k.strip() for k in sort.split(",")):
        if not key:
            continue
        keyword = key.lstrip("-+")
        if keyword not in allowed:
            raise InvalidRequest(f"cannot sort by {keyword!r}: sort by one of {', '.join(allowed)}")
        order.append((keyword, key.startswith("-")))
    return order


def rank(
    values: Mapping[str, Any], order: Sequence[tuple[str, bool]], number: int
) -> tuple[Any, ...]:
    """Where an item goes: by each sort key in turn (an empty value last, whichever the
    direction), then by ``number``, its place among the matches."""
    parts: list[Any] = []
    for keyword, descending in order:
        missing, value = _sort_key(values.get(keyword))
        parts += [missing, _Descending(value) if descending else value]
    parts.append(number)
    return tuple(parts)


def search(
    finder: FindService,
    level: Level,
    filters: Mapping[str, str],
    *,
    sort: str = "",
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """One page of the ``level`` entities matching ``filters``.

    Every match is counted (the page says how many there are), but only the page's are
    answered in full: unsorted, the matches before ``offset`` are skipped; sorted, each match
    is ranked by its sort keys alone and only the best ``offset + limit`` are kept.  Memory
    thus follows the page, not the archive, and the work per match is a fraction of a whole
    answer.
    """
    check_paging(offset, limit)
    keywords = list(LEVEL_KEYS[level])
    order = sort_order(sort, keywords)
    model = InformationModel.PATIENT_ROOT if level is Level.PATIENT else InformationModel.STUDY_ROOT
    matches = finder.matches(identifier(level, filters, keywords), model, relational=True)
    total = 0
    chosen: list[Match] = []
    if not order:
        for match in matches:
            if offset <= total < offset + limit:
                chosen.append(match)
            total += 1
    else:
        sorting = [keyword for keyword, _ in order]

        def ranked() -> Iterator[tuple[tuple[Any, ...], Match]]:
            nonlocal total
            for match in matches:
                values = item(finder.respond(match, sorting), sorting)
                yield rank(values, order, total), match
                total += 1

        best = heapq.nsmallest(offset + limit, ranked(), key=lambda pair: pair[0])
        chosen = [match for _, match in best[offset:]]
    items = [item(finder.respond(match, keywords), keywords) for match in chosen]
    return Page(items, total, offset, limit)
