"""C-FIND attribute matching (PS3.4 C.2.2.2): one matcher per query key.

A matcher decides in Python, exactly, whether a stored value matches, and can also produce an
SQL condition that selects a superset of the matches, so the database does the coarse work and
Python the exact one (case rules, person-name component groups, time ranges).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

WILDCARD_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
RANGE_VRS = {"DA", "TM", "DT"}
_TIME_DIGITS = 12  # HHMMSSffffff
_DT_WITH_OFFSET = re.compile(r"^\d{8,14}(\.\d+)?-\d{4}$")


class MatchKind(Enum):
    """Kinds of matching defined by PS3.4 C.2.2.2."""

    UNIVERSAL = "universal"
    SINGLE = "single value"
    WILDCARD = "wildcard"
    RANGE = "range"
    LIST = "list of values"


def _normalize_pn(value: str) -> str:
    groups = [g.rstrip(" ^") for g in value.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _time_key(value: str, fill: str) -> str:
    """TM as a fixed-width string; missing trailing components filled with ``fill``."""
    text = value.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    digits = (whole + fraction)[:_TIME_DIGITS]
    return digits + fill * (_TIME_DIGITS - len(digits))


def _datetime_key(value: str, fill: str) -> str:
    """DT as a fixed-width string (UTC offset ignored), padded with ``fill``."""
    text = value.strip()
    for index, char in enumerate(text):
        if char in "+-" and index >= 4:
            text = text[:index]
            break
    digits = text.replace(".", "")[:20]
    return digits + fill * (20 - len(digits))


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _like_pattern(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@dataclass
class Matcher:
    """Matching of one key of a C-FIND identifier."""

    keyword: str
    vr: str
    kind: MatchKind
    value: str = ""
    values: list[str] = field(default_factory=list)
    low: str = ""
    high: str = ""
    case_insensitive: bool = False

    # Python, exact --------------------------------------------------------------------

    def matches(self, stored: Any) -> bool:
        """Whether a stored value (string, int or None) matches this key."""
        if self.kind is MatchKind.UNIVERSAL:
            return True
        text = "" if stored is None else str(stored)
        if self.kind is MatchKind.LIST:
            return any(self._single(v, text) for v in self.values)
        if self.kind is MatchKind.RANGE:
            return self._in_range(text)
        return self._single(self.value, text)

    def _candidates(self, stored: str) -> list[str]:
        values = stored.split("\\") if stored else []
        if self.vr == "PN":
            expanded = []
            for value in values:
                expanded.append(_normalize_pn(value))
                expanded.extend(g for g in value.split("=") if "=" in value and g)
            values = [_normalize_pn(v) for v in expanded]
        return [v.strip() for v in values]

    def _single(self, query: str, stored: str) -> bool:
        if self.vr in {"DA", "TM", "DT"} and "-" in query:
            return Matcher(
                self.keyword,
                self.vr,
                MatchKind.RANGE,
                low=query.split("-", 1)[0],
                high=query.split("-", 1)[1],
            )._in_range(stored)
        has_wildcard = self.vr in WILDCARD_VRS and ("*" in query or "?" in query)
        if self.vr == "PN":
            query = _normalize_pn(query)
        if self.case_insensitive:
            query = query.casefold()
        regex = _wildcard_regex(query) if has_wildcard else None
        for raw in self._candidates(stored):
            candidate = raw.casefold() if self.case_insensitive else raw
            if regex is not None:
                if regex.fullmatch(candidate):
                    return True
            elif self.vr == "TM":
                if _time_key(query, "0") <= _time_key(candidate, "0") <= _time_key(query, "9"):
                    return True
            elif candidate == query.strip():
                return True
        return False

    def _in_range(self, stored: str) -> bool:
        if not stored:
            return False
        for candidate in stored.split("\\"):
            if self.vr == "DA":
                key, low, high = candidate.replace(".", ""), self.low, self.high
            elif self.vr == "TM":
                key = _time_key(candidate, "0")
                low = _time_key(self.low, "0") if self.low else ""
                high = _time_key(self.high, "9") if self.high else ""
            else:
                key = _datetime_key(candidate, "0")
                low = _datetime_key(self.low, "0") if self.low else ""
                high = _datetime_key(self.high, "9") if self.high else ""
            if (not low or key >= low) and (not high or key <= high):
                return True
        return False

    # SQL, superset ---------------------------------------------------------------------

    def sql(
        self, column: ColumnElement[Any], *, integer: bool = False, multi_valued: bool = False
    ) -> ColumnElement[bool] | None:
        """A condition on ``column`` true for every match (None: cannot help).

        It must never exclude a true match: where the database cannot follow the rules
        (ranges inside lists, case folding beyond ASCII on SQLite), it gives up.
        """
        if self.kind is MatchKind.UNIVERSAL:
            return None
        if self.case_insensitive and not all(v.isascii() for v in (self.value, *self.values)):
            return None
        if self.kind is MatchKind.LIST and self.vr in RANGE_VRS:
            return None
        if self.kind is MatchKind.LIST:
            if self.vr == "UI" and not multi_valued:
                return column.in_(self.values)
            parts = [
                Matcher(
                    self.keyword,
                    self.vr,
                    MatchKind.SINGLE,
                    value=v,
                    case_insensitive=self.case_insensitive,
                ).sql(column, integer=integer, multi_valued=multi_valued)
                for v in self.values
            ]
            if any(p is None for p in parts):
                return None
            return or_(*[p for p in parts if p is not None])
        if integer:
            if self.kind is MatchKind.SINGLE:
                try:
                    condition: ColumnElement[bool] = column == int(self.value)
                    return condition
                except ValueError:
                    return None
            return None
        if self.kind is MatchKind.RANGE:
            if self.vr != "DA":
                return None
            conditions = [column != ""]
            if self.low:
                conditions.append(column >= self.low)
            if self.high:
                conditions.append(column <= self.high)
            return and_(*conditions)
        if self.vr in {"TM", "DT"}:
            return None
        pattern = _like_pattern(self.value) if self.kind is MatchKind.WILDCARD else None
        if self.vr == "PN" or multi_valued:
            like = "%" + (pattern if pattern is not None else _like_pattern(self.value)) + "%"
            if self.vr == "PN":
                like = "%" + _like_pattern(_normalize_pn(self.value)).strip("%") + "%"
            op = column.ilike if self.case_insensitive else column.like
            return op(like, escape="\\")
        if pattern is not None:
            return column.like(pattern, escape="\\")
        return column == self.value


def parse_matcher(keyword: str, vr: str, raw: str, *, case_insensitive_pn: bool = True) -> Matcher:
    """Classify a query value per PS3.4 C.2.2.2."""
    value = raw.strip() if vr != "PN" else raw.rstrip(" ")
    insensitive = case_insensitive_pn and vr == "PN"
    if value == "" or (vr in WILDCARD_VRS and value.strip("*") == ""):
        return Matcher(keyword, vr, MatchKind.UNIVERSAL)
    if "\\" in value:
        parts = [p.rstrip(" ") if vr == "PN" else p.strip() for p in value.split("\\")]
        return Matcher(keyword, vr, MatchKind.LIST, values=parts, case_insensitive=insensitive)
    if vr in RANGE_VRS and "-" in value and not (vr == "DT" and _DT_WITH_OFFSET.match(value)):
        low, _, high = value.partition("-")
        return Matcher(keyword, vr, MatchKind.RANGE, low=low.strip(), high=high.strip())
    if vr in WILDCARD_VRS and ("*" in value or "?" in value):
        return Matcher(keyword, vr, MatchKind.WILDCARD, value=value, case_insensitive=insensitive)
    return Matcher(keyword, vr, MatchKind.SINGLE, value=value, case_insensitive=insensitive)
