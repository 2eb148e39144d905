"""Database engine for the index: SQLite (embedded default) or PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit is on disk when it returns) and
foreign keys on.  Write transactions start with ``BEGIN IMMEDIATE`` and are serialised by
``WriterLock`` (threads and processes alike), so concurrent writers queue for the single
writer instead of failing with "database is locked" or polling on SQLite's busy timeout.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

_WRITE_OPTION = "dicomhub_write"
SQLITE_BUSY_TIMEOUT_MS = 120_000


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # straight to the driver


def _synchronous(conn: Connection, mode: str) -> None:
    """Set SQLite's ``synchronous`` on the driver connection when it differs (the pooled
    connection remembers its mode, so the ingest path does not pay two PRAGMAs a commit)."""
    info = conn.connection.info
    if info.get("synchronous", "FULL") == mode:
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    cursor.execute(f"PRAGMA synchronous = {mode}")
    cursor.close()
    info["synchronous"] = mode


class WriterLock:
    """One SQLite writer at a time, among the threads of this process and the processes that
    share the database file (``workers``, a ``dicomhub import`` beside ``serve``).

    Threads queue on a lock; processes on an ``flock`` of a file beside the database.  A
    writer that has to wait is woken the moment the lock is free, where SQLite's own busy
    handler would sleep and try again, ever longer, while the other process writes.
    """

    def __init__(self, database: Path) -> None:
        self._threads = threading.Lock()
        self._path = database.with_name(database.name + ".writer")
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o640)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class IndexDatabase:
    """Engine plus the transaction discipline every index writer follows."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            }
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
        self.engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._write_lock: AbstractContextManager[Any] = nullcontext()
        if self.is_sqlite:
            database = parsed.database
            self._write_lock = (
                WriterLock(Path(database))
                if database and database != ":memory:" and not database.startswith("file:")
                else threading.Lock()
            )

    @contextmanager
    def write(
        self, *, durable: bool = True, connection: Connection | None = None
    ) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on exception.

        With ``durable=False`` an SQLite commit returns once it is in the write-ahead log
        without waiting for the disk (``synchronous = NORMAL``): it survives a crash of the
        process but not of the machine.  Only callers that can redo the transaction from a
        durable record of their own use it.  PostgreSQL commits are always durable.
        ``connection`` is one from ``connect_writer``, kept by a busy writer across its
        transactions (it spares a pool check-out and check-in per transaction).
        """
        with self._write_lock:
            if connection is not None:
                with self._transaction(connection, durable) as conn:
                    yield conn
                return
            with self.engine.connect() as plain:
                conn = plain.execution_options(**{_WRITE_OPTION: True})
                with self._transaction(conn, durable) as conn:
                    yield conn

    def connect_writer(self) -> Connection:
        """A connection for ``write(connection=...)``; its owner closes it."""
        return self.engine.connect().execution_options(**{_WRITE_OPTION: True})

    @contextmanager
    def _transaction(self, conn: Connection, durable: bool) -> Iterator[Connection]:
        if self.is_sqlite:
            _synchronous(conn, "FULL" if durable else "NORMAL")
        with conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
