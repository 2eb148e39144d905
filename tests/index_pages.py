"""Watching the index being read a page at a time (``dicomhub.index.query``)."""

from __future__ import annotations

from typing import Any

import pytest

from dicomhub.index import query
from dicomhub.index.attributes import Level
from dicomhub.index.query import FindService


def count_pages(monkeypatch: pytest.MonkeyPatch, page_rows: int) -> list[int]:
    """Make pages ``page_rows`` rows long; the returned list gets the row count of every
    page read from then on."""
    monkeypatch.setattr(query, "PAGE_ROWS", page_rows)
    pages: list[int] = []
    page = FindService._page

    def counted(self: FindService, select: Any, level: Level) -> list[dict[Level, dict[str, Any]]]:
        rows = page(self, select, level)
        pages.append(len(rows))
        return rows

    monkeypatch.setattr(FindService, "_page", counted)
    return pages
