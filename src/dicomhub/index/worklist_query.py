"""Modality Worklist C-FIND over the stored items (PS3.4 K.2.2, matching per C.2.2.2).

The identifier is read into a tree of keys: one matcher (``index.matching``) per attribute, and
for a sequence the keys of its (single) item.  The columns of ``worklist_items`` narrow the
candidates in SQL (a superset); each candidate is then matched exactly in Python against the
stored item, and answered with every requested key:

* single value, list, wildcard (``*`` ``?``), universal and range matching on any attribute of
  the item, at the top level and inside ScheduledProcedureStepSequence (sequence matching:
  a sequence key matches when one stored item matches all of its item's keys);
* a zero-length stored value never matches a non-universal key (K.2.2.1.1.1);
* ScheduledProcedureStepStartDate and ScheduledProcedureStepStartTime given together are
  matched as one date-time range (``20240105-20240106`` with ``1800-0800`` means from
  5 January 18:00 to 6 January 08:00), as are the step's end date and time;
* person names match without regard to case unless ``case_insensitive_pn`` is off;
* a sequence key with no item or an empty item asks for the whole sequence (C.2.2.2.6): the
  stored sequence is returned as it is;
* a requested key the item has no value for is returned zero-length (an empty sequence for a
  sequence); sequence keys with item keys return, for each matching stored item, those keys;
* an identifier with no key at all is answered with whole items (a zero-length response
  identifier cannot be sent);
* SpecificCharacterSet is returned as the item was stored, whatever the query said;
* a step key sent at the top level (outside the sequence), which some modalities do, is
  matched and answered from the step when the item has no such top-level attribute;
* ScheduledProcedureStepStatus reflects the item's status (STARTED when IN PROGRESS, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import ColumnElement, func, or_, select

from dicomhub.index.engine import IndexDatabase
from dicomhub.index.matching import Matcher, MatchKind, parse_matcher
from dicomhub.index.schema import worklist_items as table
from dicomhub.index.values import text_value
from dicomhub.index.worklist import (
    STEP_COLUMNS,
    TOP_LEVEL_COLUMNS,
    WorklistItem,
    WorklistStatus,
    column_length,
    item_from_row,
    step_of,
)

SPS_TAG = 0x00400100
STATION_AE_TAG = 0x00400001
STEP_STATUS_TAG = 0x00400020
CHARSET_TAG = 0x00080005
_NOT_MATCHED = {CHARSET_TAG, 0x00080201, 0x00080052}
"""SpecificCharacterSet, TimezoneOffsetFromUTC and QueryRetrieveLevel are never matched."""
_DATE_TIME_PAIRS = (
    (0x00400002, 0x00400003),  # ScheduledProcedureStepStartDate / Time
    (0x00400004, 0x00400005),  # ScheduledProcedureStepEndDate / Time
)
_MULTI_VALUED_COLUMNS = {"scheduled_station_ae_title", "performing_physician_name"}
_TEXT_MATCHED_VRS = {
    "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
    "UI", "UR", "UT", "US", "UL", "SS", "SL", "FL", "FD",
}  # fmt: skip
STEP_STATUS: dict[WorklistStatus, str] = {
    WorklistStatus.SCHEDULED: "SCHEDULED",
    WorklistStatus.IN_PROGRESS: "STARTED",
    WorklistStatus.COMPLETED: "COMPLETED",
    WorklistStatus.DISCONTINUED: "DISCONTINUED",
    WorklistStatus.CANCELLED: "CANCELED",
}
"""ScheduledProcedureStepStatus (0040,0020) answered for each item status."""


@dataclass
class Key:
    """One key of a worklist identifier (an attribute, or a sequence with its item's keys)."""

    tag: int
    keyword: str
    vr: str
    matcher: Matcher | None = None
    """None for a sequence."""
    items: list[Key] = field(default_factory=list)
    """The keys of the sequence key's item."""
    whole: bool = False
    """A sequence key with no item or an empty item: the whole stored sequence is asked for."""

    @property
    def universal(self) -> bool:
        """Whether every item matches this key (it only asks for a value)."""
        if self.matcher is not None:
            return self.matcher.kind is MatchKind.UNIVERSAL
        return all(key.universal for key in self.items)


def parse_keys(identifier: Dataset, *, case_insensitive_pn: bool = True) -> list[Key]:
    """The keys of an identifier (or of one sequence item), in the identifier's order."""
    keys = []
    for element in identifier:
        tag = int(element.tag)
        if element.tag.group in {0x0000, 0x0002} or tag == CHARSET_TAG:
            continue
        keyword = element.keyword or keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        vr = str(element.VR)
        if vr == "SQ":
            items = element.value or []
            if not items or not len(items[0]):
                keys.append(Key(tag, keyword, vr, whole=True))
            else:
                sub = parse_keys(items[0], case_insensitive_pn=case_insensitive_pn)
                keys.append(Key(tag, keyword, vr, items=sub))
            continue
        if tag in _NOT_MATCHED or vr not in _TEXT_MATCHED_VRS:
            matcher = Matcher(keyword, vr, MatchKind.UNIVERSAL)
        else:
            raw = "" if element.value is None else text_value(element.value)
            if vr == "PN" and element.value is not None:
                raw = _pn_text(element.value)
            matcher = parse_matcher(keyword, vr, raw, case_insensitive_pn=case_insensitive_pn)
        keys.append(Key(tag, keyword, vr, matcher))
    return keys


def station_requested(keys: Sequence[Key]) -> bool:
    """Whether the identifier matches on ScheduledStationAETitle (in the step or top level)."""
    for key in keys:
        if key.tag == STATION_AE_TAG and not key.universal:
            return True
        if key.tag == SPS_TAG and any(
            sub.tag == STATION_AE_TAG and not sub.universal for sub in key.items
        ):
            return True
    return False


# Matching ------------------------------------------------------------------------------


def _pn_text(value: Any) -> str:
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    return "\\".join(str(v).rstrip(" ") for v in values)


def _stored_text(dataset: Dataset, tag: int, vr: str) -> str:
    element = dataset.get(tag)
    if element is None or element.value is None:
        return ""
    value = element.value
    if element.VR == "PN":
        return _pn_text(value)
    text = text_value(value)
    if vr == "DA":
        return text.replace(".", "")
    if vr == "TM":
        return text.replace(":", "")
    return text


def _lookup(dataset: Dataset, tag: int, fallback: Dataset | None) -> Dataset:
    """The data set holding ``tag``: ``dataset``, else ``fallback`` when it has it."""
    if tag in dataset or fallback is None or tag not in fallback:
        return dataset
    return fallback


def _bounds(matcher: Matcher) -> tuple[str, str] | None:
    if matcher.kind is MatchKind.SINGLE:
        return matcher.value, matcher.value
    if matcher.kind is MatchKind.RANGE:
        return matcher.low, matcher.high
    return None


def _combined(date: Matcher, time: Matcher) -> Callable[[str, str], bool] | None:
    """Date and time keys matched as one date-time range, None when they cannot be."""
    date_bounds, time_bounds = _bounds(date), _bounds(time)
    if date_bounds is None or time_bounds is None:
        return None
    low = date_bounds[0] + time_bounds[0].replace(":", "") if date_bounds[0] else ""
    high = date_bounds[1] + time_bounds[1].replace(":", "") if date_bounds[1] else ""
    if date_bounds[0] and not time_bounds[0]:
        low = date_bounds[0]
    if date_bounds[1] and not time_bounds[1]:
        high = date_bounds[1]
    if not date_bounds[0] and not date_bounds[1]:
        return None
    moment = Matcher("", "DT", MatchKind.RANGE, low=low, high=high)

    def matches(stored_date: str, stored_time: str) -> bool:
        if not stored_date or not stored_time:
            return False
        return moment.matches(stored_date + stored_time)

    return matches


def matches(keys: Sequence[Key], dataset: Dataset, fallback: Dataset | None = None) -> bool:
    """Whether a stored data set (or sequence item) matches every key.

    ``fallback`` (the step, for the top level) answers keys the data set has no element for.
    """
    by_tag = {key.tag: key for key in keys}
    combined: set[int] = set()
    for date_tag, time_tag in _DATE_TIME_PAIRS:
        date, time = by_tag.get(date_tag), by_tag.get(time_tag)
        if date is None or time is None or date.universal or time.universal:
            continue
        assert date.matcher is not None and time.matcher is not None
        check = _combined(date.matcher, time.matcher)
        if check is None:
            continue
        stored_date = _stored_text(_lookup(dataset, date_tag, fallback), date_tag, "DA")
        stored_time = _stored_text(_lookup(dataset, time_tag, fallback), time_tag, "TM")
        if not check(stored_date, stored_time):
            return False
        combined.update((date_tag, time_tag))
    for key in keys:
        if key.universal or key.tag in combined:
            continue
        source = _lookup(dataset, key.tag, fallback)
        if key.matcher is not None:
            if not key.matcher.matches(_stored_text(source, key.tag, key.vr)):
                return False
            continue
        element = source.get(key.tag)
        stored_items = element.value if element is not None and element.VR == "SQ" else None
        if not stored_items or not any(matches(key.items, item) for item in stored_items):
            return False
    return True


# Responses -----------------------------------------------------------------------------


def _empty(key: Key) -> Any:
    vr = key.vr
    if vr == "UN":
        try:
            vr = str(dictionary_VR(key.tag))
        except KeyError:
            vr = "UN"
    return vr, [] if vr == "SQ" else None


def answer(keys: Sequence[Key], dataset: Dataset, fallback: Dataset | None = None) -> Dataset:
    """The response identifier (or sequence item): each key with the stored value."""
    response = Dataset()
    for key in keys:
        source = _lookup(dataset, key.tag, fallback)
        element = source.get(key.tag)
        if key.matcher is not None or key.whole:
            if element is not None and (key.whole or element.VR != "SQ"):
                response.add(copy.deepcopy(element))
            else:
                vr, value = _empty(key)
                response.add_new(key.tag, vr, value)
            continue
        stored_items = element.value if element is not None and element.VR == "SQ" else []
        items = [
            answer(key.items, item)
            for item in stored_items or []
            if key.universal or matches(key.items, item)
        ]
        response.add_new(key.tag, "SQ", items)
    return response


# The query -----------------------------------------------------------------------------


def view(item: WorklistItem) -> Dataset:
    """The item's data set as the worklist answers it (step status from the item's status)."""
    dataset = item.dataset
    step = step_of(dataset)
    if step is not None:
        stored = text_value(step.get("ScheduledProcedureStepStatus"))
        if item.status is not WorklistStatus.SCHEDULED or not stored:
            step.ScheduledProcedureStepStatus = STEP_STATUS[item.status]
    return dataset


def _guarded(condition: ColumnElement[bool], column: str) -> ColumnElement[bool]:
    """``condition``, also true for values that may have been cut to the column's length."""
    length = column_length(column)
    if length is None:
        return condition
    return or_(condition, func.length(table.c[column]) >= length)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Match:
    """One matching item and its response identifier."""

    item: WorklistItem
    identifier: Dataset


class WorklistFinder:
    """Runs Modality Worklist queries against the stored items."""

    def __init__(self, db: IndexDatabase, *, case_insensitive_pn: bool = True) -> None:
        self.db = db
        self.case_insensitive_pn = case_insensitive_pn

    def keys(self, identifier: Dataset) -> list[Key]:
        """The keys of an identifier, with this finder's person-name rule."""
        return parse_keys(identifier, case_insensitive_pn=self.case_insensitive_pn)

    def find(
        self,
        identifier: Dataset,
        *,
        statuses: Sequence[WorklistStatus],
        station: str | None = None,
    ) -> Iterator[Match]:
        """Matching items in order of their scheduled start, each with its response.

        Only items whose status is in ``statuses``; with ``station`` only items scheduled
        for that AE title (one of their ScheduledStationAETitle values) or for no station.
        """
        keys = self.keys(identifier)
        for item in self._candidates(keys, statuses, station):
            dataset = view(item)
            step = step_of(dataset)
            if station is not None and not _for_station(step, station):
                continue
            if not matches(keys, dataset, step):
                continue
            yield Match(item, self._response(keys, dataset, step))

    def _candidates(
        self, keys: Sequence[Key], statuses: Sequence[WorklistStatus], station: str | None
    ) -> list[WorklistItem]:
        query = select(table).where(table.c.status.in_([WorklistStatus(s).value for s in statuses]))
        for condition in self._conditions(keys):
            query = query.where(condition)
        if station is not None:
            column = table.c.scheduled_station_ae_title
            query = query.where(
                _guarded(
                    or_(
                        column == "",
                        column.like(f"%{_like_escape(station.strip())}%", escape="\\"),
                    ),
                    "scheduled_station_ae_title",
                )
            )
        query = query.order_by(table.c.start_date, table.c.start_time, table.c.id)
        with self.db.read() as conn:
            return [item_from_row(row) for row in conn.execute(query)]

    def _conditions(self, keys: Sequence[Key]) -> list[ColumnElement[bool]]:
        conditions = []
        pairs: list[tuple[Key, str]] = []
        for key in keys:
            if key.tag == SPS_TAG:
                pairs += [(sub, STEP_COLUMNS.get(sub.keyword, "")) for sub in key.items]
            elif key.keyword in TOP_LEVEL_COLUMNS:
                pairs.append((key, TOP_LEVEL_COLUMNS[key.keyword]))
        for key, column in pairs:
            if not column or key.matcher is None or key.universal:
                continue
            condition = key.matcher.sql(
                table.c[column], multi_valued=column in _MULTI_VALUED_COLUMNS
            )
            if condition is not None:
                conditions.append(_guarded(condition, column))
        return conditions

    @staticmethod
    def _response(keys: Sequence[Key], dataset: Dataset, step: Dataset | None) -> Dataset:
        response = answer(keys, dataset, step) if keys else copy.deepcopy(dataset)
        charset = dataset.get(CHARSET_TAG)
        if charset is not None and charset.value:
            response.SpecificCharacterSet = charset.value
        elif "SpecificCharacterSet" in response:
            del response.SpecificCharacterSet
        return response


def _for_station(step: Dataset | None, station: str) -> bool:
    """Whether a step is scheduled for ``station`` or for no station at all."""
    if step is None:
        return True
    values = [v for v in text_value(step.get("ScheduledStationAETitle")).split("\\") if v]
    return not values or station.strip() in values
