"""C-FIND over the index: hierarchical checks, matching and the response identifiers.

Keys kept in columns are matched in SQL (a superset) and then exactly in Python; other keys are
matched and answered from the stored header (DICOM JSON) of the entity's first instance.

Matches are read a page of rows at a time, in the order of the level's row ids, each page in a
read transaction of its own (``id > last id seen``): memory stays bounded whatever the size of
the archive, no transaction stays open while a caller sends responses over the network, and a
caller that needs only the first matches (a QIDO-RS ``limit``) stops reading once it has them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from sqlalchemy import Select, select

from dicomhub.errors import IdentifierDoesNotMatchSOPClass
from dicomhub.index.attributes import BY_KEYWORD, INTEGER_VRS, UNIQUE_KEYS, Level
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.matching import Matcher, MatchKind, parse_matcher
from dicomhub.index.schema import LEVEL_TABLES, instances, patients, series, studies
from dicomhub.index.values import text_value

LOG = logging.getLogger(__name__)
PAGE_ROWS = 500
"""Rows read from the index per page (per read transaction)."""


class InformationModel(StrEnum):
    """Query/Retrieve information models (roots)."""

    PATIENT_ROOT = "PATIENT"
    STUDY_ROOT = "STUDY"

    @property
    def levels(self) -> list[Level]:
        """Levels of the model, top first."""
        if self is InformationModel.PATIENT_ROOT:
            return [Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE]
        return [Level.STUDY, Level.SERIES, Level.IMAGE]


# Keys that describe the query rather than select entities.
_CONTROL_KEYWORDS = {
    "QueryRetrieveLevel",
    "SpecificCharacterSet",
    "RetrieveAETitle",
    "InstanceAvailability",
    "TimezoneOffsetFromUTC",
    "QueryRetrieveView",
}
_MULTI_VALUED_COLUMNS = {
    "modalities_in_study",
    "sop_classes_in_study",
    "image_type",
    "other_patient_ids",
}


@dataclass
class _Key:
    keyword: str
    tag: int
    vr: str
    matcher: Matcher
    level: Level | None  # None: answered from the header


@dataclass(frozen=True)
class Match:
    """An entity that matched a query: its rows (one per level, down to the query level)
    and, when a key needed it, the stored header of its first instance."""

    identifier: Dataset
    level: Level
    keys: list[_Key]
    row: dict[Level, dict[str, Any]]
    header: dict[str, Any] | None


def _keys(identifier: Dataset, level: Level, case_insensitive_pn: bool) -> list[_Key]:
    keys = []
    for element in identifier:
        if element.tag.group in {0x0000, 0x0002}:
            continue
        keyword = element.keyword or keyword_for_tag(element.tag)
        if keyword in _CONTROL_KEYWORDS:
            continue
        vr = element.VR
        if vr == "SQ":
            matcher = Matcher(keyword, vr, MatchKind.UNIVERSAL)
        else:
            matcher = parse_matcher(
                keyword, vr, text_value(element.value), case_insensitive_pn=case_insensitive_pn
            )
        attr = BY_KEYWORD.get(keyword)
        keys.append(_Key(keyword, int(element.tag), vr, matcher, attr.level if attr else None))
    return keys


def identifier_level(identifier: Dataset, model: InformationModel) -> Level:
    """The QueryRetrieveLevel of a C-FIND, C-MOVE or C-GET identifier, checked against the
    information model."""
    raw = str(identifier.get("QueryRetrieveLevel", "") or "").strip()
    if not raw:
        raise IdentifierDoesNotMatchSOPClass("QueryRetrieveLevel is missing")
    try:
        level = Level(raw)
    except ValueError:
        raise IdentifierDoesNotMatchSOPClass(f"unknown QueryRetrieveLevel {raw!r}") from None
    if level not in model.levels:
        raise IdentifierDoesNotMatchSOPClass(
            f"QueryRetrieveLevel {raw} is not valid in the {model.value.title()} Root model"
        )
    return level


def check_identifier(identifier: Dataset, model: InformationModel) -> Level:
    """Validate level and hierarchy (PS3.4 C.4.1.2.1); return the query level."""
    level = identifier_level(identifier, model)
    for upper in model.levels[: model.levels.index(level)]:
        keyword = UNIQUE_KEYS[upper]
        value = text_value(identifier.get(keyword))
        if not value or "*" in value or "?" in value:
            raise IdentifierDoesNotMatchSOPClass(
                f"{keyword} needs a value in a {level} query (unique key of {upper})"
            )
    return level


def _select(level: Level) -> Select[Any]:
    tables = [patients, studies, series, instances][: level.depth + 1]
    query = select(*tables)
    join: Any = patients
    if level.depth >= 1:
        join = join.join(studies, studies.c.patient_fk == patients.c.id)
    if level.depth >= 2:
        join = join.join(series, series.c.study_fk == studies.c.id)
    if level.depth >= 3:
        join = join.join(instances, instances.c.series_fk == series.c.id)
    return query.select_from(join)


class FindService:
    """Runs C-FIND queries against the index."""

    def __init__(
        self, db: IndexDatabase, *, ae_title: str = "", case_insensitive_pn: bool = True
    ) -> None:
        self.db = db
        self.ae_title = ae_title
        self.case_insensitive_pn = case_insensitive_pn

    def find(
        self, identifier: Dataset, model: InformationModel, *, relational: bool = False
    ) -> Iterator[Dataset]:
        """Yield one response identifier per match (raises on an invalid identifier).

        ``relational`` allows any key at any level above the query level instead of
        requiring the unique keys above it (relational queries, PS3.4 C.4.1.2.2; QIDO-RS
        searches series and instances of every study this way).
        """
        for match in self.matches(identifier, model, relational=relational):
            yield self.respond(match)

    def matches(
        self, identifier: Dataset, model: InformationModel, *, relational: bool = False
    ) -> Iterator[Match]:
        """The matches of ``find``, before their response identifiers are made: a caller
        that keeps only some of them (a sorted page of a list) answers only those."""
        level = (
            identifier_level(identifier, model)
            if relational
            else check_identifier(identifier, model)
        )
        keys = _keys(identifier, level, self.case_insensitive_pn)
        query = _select(level)
        for key in keys:
            attr = BY_KEYWORD.get(key.keyword)
            if attr is None or attr.level.depth > level.depth:
                continue
            table = LEVEL_TABLES[attr.level]
            condition = key.matcher.sql(
                table.c[attr.column],
                integer=attr.vr in INTEGER_VRS,
                multi_valued=attr.column in _MULTI_VALUED_COLUMNS,
            )
            if condition is not None:
                query = query.where(condition)
        for row in self._rows(query, level):
            header: dict[str, Any] | None = None
            ok = True
            for key in keys:
                attr = BY_KEYWORD.get(key.keyword)
                if key.matcher.kind is MatchKind.UNIVERSAL:
                    continue
                if attr is not None:
                    if attr.level.depth > level.depth:
                        continue
                    stored = row[attr.level][attr.column]
                else:
                    header = header if header is not None else self._header(level, row)
                    stored = _header_text(header, key.tag)
                if not key.matcher.matches(stored):
                    ok = False
                    break
            if ok:
                yield Match(identifier, level, keys, row, header)

    def respond(self, match: Match, keywords: Collection[str] | None = None) -> Dataset:
        """The response identifier of a match; with ``keywords``, only those of its keys
        (and the query level)."""
        keys = match.keys
        if keywords is not None:
            keys = [key for key in keys if key.keyword in keywords]
        return self._response(match.identifier, match.level, keys, match.row, match.header)

    def _rows(self, query: Select[Any], level: Level) -> Iterator[dict[Level, dict[str, Any]]]:
        """The rows of ``query``, a page at a time (see the module's docstring); each row of
        a level's query is one entity of that level, so its id orders and pages them."""
        column = LEVEL_TABLES[level].c.id
        last: int | None = None
        while True:
            paged = query if last is None else query.where(column > last)
            page = self._page(paged.order_by(column).limit(PAGE_ROWS), level)
            yield from page
            if len(page) < PAGE_ROWS:
                return
            last = int(page[-1][level]["id"])

    def _page(self, query: Select[Any], level: Level) -> list[dict[Level, dict[str, Any]]]:
        """One page of rows, in a read transaction of its own."""
        with self.db.read() as conn:
            return [self._row(level, r._mapping) for r in conn.execute(query)]

    @staticmethod
    def _row(level: Level, mapping: Any) -> dict[Level, dict[str, Any]]:
        """Split a joined row into one dict per level (columns share names)."""
        result: dict[Level, dict[str, Any]] = {}
        for lvl in list(Level)[: level.depth + 1]:
            table = LEVEL_TABLES[lvl]
            result[lvl] = {c.name: mapping[c] for c in table.c}
        return result

    def _header(self, level: Level, row: dict[Level, dict[str, Any]]) -> dict[str, Any]:
        """The DICOM JSON header of the entity's first instance."""
        if level is Level.IMAGE:
            return dict(row[Level.IMAGE]["header"])
        query = select(instances.c.header).select_from(instances)
        if level is Level.SERIES:
            query = query.where(instances.c.series_fk == row[Level.SERIES]["id"])
        else:
            query = query.join(series, instances.c.series_fk == series.c.id)
            if level is Level.STUDY:
                query = query.where(series.c.study_fk == row[Level.STUDY]["id"])
            else:
                query = query.join(studies, series.c.study_fk == studies.c.id).where(
                    studies.c.patient_fk == row[Level.PATIENT]["id"]
                )
        with self.db.read() as conn:
            header = conn.execute(query.order_by(instances.c.id).limit(1)).scalar()
        return dict(header or {})

    def _response(
        self,
        identifier: Dataset,
        level: Level,
        keys: list[_Key],
        row: dict[Level, dict[str, Any]],
        header: dict[str, Any] | None,
    ) -> Dataset:
        response = Dataset()
        charset = row[level].get("specific_character_set") or ""
        if charset:
            response.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
        response.QueryRetrieveLevel = level.value
        for key in keys:
            attr = BY_KEYWORD.get(key.keyword)
            if attr is not None and attr.level.depth <= level.depth:
                value = row[attr.level][attr.column]
                response.add_new(key.tag, key.vr, _element_value(key.vr, value))
                continue
            if attr is not None:  # a key below the query level: returned empty
                response.add_new(key.tag, key.vr, None)
                continue
            header = header if header is not None else self._header(level, row)
            _copy_from_header(response, header, key)
        if "RetrieveAETitle" in identifier:
            response.RetrieveAETitle = self.ae_title
        if "InstanceAvailability" in identifier:
            response.InstanceAvailability = "ONLINE"
        return response


def _element_value(vr: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if vr in INTEGER_VRS or vr in {"US", "UL", "SS", "SL"}:
        return int(value) if vr != "IS" else str(value)
    text = str(value)
    if "\\" in text:
        return text.split("\\")
    return text


def _header_text(header: dict[str, Any], tag: int) -> str:
    element = header.get(f"{tag:08X}")
    if not element or "Value" not in element:
        return ""
    values = []
    for item in element["Value"]:
        if isinstance(item, dict):
            values.append(
                "=".join(
                    str(item.get(g, "")) for g in ("Alphabetic", "Ideographic", "Phonetic")
                ).rstrip("=")
            )
        else:
            values.append(str(item))
    return "\\".join(values)


def _copy_from_header(response: Dataset, header: dict[str, Any], key: _Key) -> None:
    element = header.get(f"{key.tag:08X}")
    if element and "Value" in element:
        try:
            parsed = Dataset.from_json({f"{key.tag:08X}": element})
            response[key.tag] = parsed[key.tag]
            return
        except Exception as exc:  # a damaged header value is answered empty
            LOG.debug("cannot return %s from header: %s", key.keyword, exc)
    vr = key.vr if key.vr != "UN" else _dictionary_vr(key.tag)
    response.add_new(key.tag, vr, [] if vr == "SQ" else None)


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"
