"""SQLite write transactions: durable by default, relaxed only when asked."""

from __future__ import annotations

from pathlib import Path

from dicomhub.index.engine import IndexDatabase

_FULL, _NORMAL = 2, 1


def test_synchronous_follows_each_write(tmp_path: Path) -> None:
    db = IndexDatabase(f"sqlite:///{tmp_path / 'index.sqlite'}")
    try:
        modes = []
        for durable in (True, False, False, True):
            with db.write(durable=durable) as conn:
                modes.append(conn.exec_driver_sql("PRAGMA synchronous").scalar())
        assert modes == [_FULL, _NORMAL, _NORMAL, _FULL]
    finally:
        db.dispose()
