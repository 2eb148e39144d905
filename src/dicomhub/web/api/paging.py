"""Paging of the workflow lists (queue, worklist, MPPS, commitments, print jobs).

Their repositories return the newest rows first up to a limit; a page is cut from the first
``offset + limit + 1`` rows, so the answer says whether more follow (``has_more``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import Query

from dicomhub.errors import InvalidRequest
from dicomhub.web.listing import check_paging

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

Offset = Query(0, ge=0, description="Items to skip.")
Limit = Query(100, ge=1, le=1000, description="Items per page.")


def page(
    fetch: Callable[[int], Sequence[T]],
    describe: Callable[[T], dict[str, Any]],
    offset: int,
    limit: int,
) -> dict[str, Any]:
    """``{"items", "offset", "limit", "has_more"}`` of rows ``fetch(n)`` returns newest first."""
    check_paging(offset, limit)
    rows = fetch(offset + limit + 1)
    chosen = rows[offset : offset + limit]
    return {
        "items": [describe(row) for row in chosen],
        "offset": offset,
        "limit": limit,
        "has_more": len(rows) > offset + limit,
    }


def when(value: Any) -> str | None:
    """A datetime as ISO 8601 (None stays None)."""
    return value.isoformat() if value is not None else None


def choice(kind: type[E], value: str | None, what: str) -> E | None:
    """A query parameter naming one of an enumeration's values (any case, ``_`` for space);
    None when absent, 400 when it names none."""
    if not value:
        return None
    wanted = value.strip().replace("_", " ").upper()
    for member in kind:
        if member.value.upper() == wanted:
            return member
    names = ", ".join(m.value for m in kind)
    raise InvalidRequest(f"{what} {value!r} is not one of {names}")
