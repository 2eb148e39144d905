"""Index times are aware UTC whatever the database returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from dicomhub.index.times import as_utc, utc_now


def test_naive_values_are_utc_and_aware_ones_kept() -> None:
    naive = datetime(2026, 11, 25, 12, 0, 0)
    assert as_utc(naive) == datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    aware = datetime(2026, 11, 25, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert as_utc(aware) is aware
    assert as_utc(None) is None


def test_now_is_aware_utc() -> None:
    assert utc_now().tzinfo is UTC
