"""The forwarding queue: instances to send to peers, shared by every process on the database.

A row is one instance for one destination peer.  It is written in the transaction that indexes
the instance (``enqueue``), so an acknowledged instance always has its rows, and it stays until
the destination acknowledged it (``done``), or it is given up (``failed``, the dead-letter state,
left for an operator: ``dicomhub queue``).  Delivery is at least once: an instance may arrive
twice (a crash after sending but before ``done``, a lost response), never zero times.

Several senders share the queue through leases.  ``claim`` takes due pending rows whose lease
is free or expired and leases them to its caller for a while: on PostgreSQL the rows are
selected ``FOR UPDATE SKIP LOCKED``, so concurrent claims never wait for nor return each
other's rows; on SQLite the claim is one write transaction, which are serialised.  A sender
that dies holds its rows only until the lease expires; then another process sends them again.

Failed attempts are retried with exponential back-off (``RetryPolicy``); after
``max_attempts`` the row moves to ``failed`` with the reason.

Times come from the database server on PostgreSQL, so processes on several hosts agree on
lease expiry whatever their clocks, and from this host's clock on SQLite (one host).  The
sender's own writes (claims, outcomes) do not wait for the disk on SQLite: a machine crash can
only undo a lease or an outcome, and the row is then sent again, as at-least-once allows.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, func, or_, select, update

from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import forward_queue as fq
from dicomhub.index.times import as_utc


class QueueState(StrEnum):
    """States of a forwarding queue row."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class QueueItem:
    """One instance to send to one destination."""

    id: int
    sop_instance_uid: str
    destination: str
    rule: str
    state: QueueState
    attempts: int
    next_attempt_at: datetime
    leased_by: str | None
    leased_until: datetime | None
    last_error: str
    created_at: datetime
    updated_at: datetime
    done_at: datetime | None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failed sending is tried again."""

    max_attempts: int = 10
    initial: float = 5.0
    maximum: float = 600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        return float(min(self.maximum, self.initial * 2 ** min(max(attempts - 1, 0), 60)))


@dataclass(frozen=True)
class Rescheduled:
    """What ``retry_later`` did: rows to try again, rows given up, the soonest next try."""

    retried: int
    failed: int
    next_delay: float | None


def _item(row: Any) -> QueueItem:
    m = row._mapping
    return QueueItem(
        id=int(m["id"]),
        sop_instance_uid=m["sop_instance_uid"],
        destination=m["destination"],
        rule=m["rule"],
        state=QueueState(m["state"]),
        attempts=int(m["attempts"]),
        next_attempt_at=as_utc(m["next_attempt_at"]),
        leased_by=m["leased_by"],
        leased_until=as_utc(m["leased_until"]) if m["leased_until"] is not None else None,
        last_error=m["last_error"],
        created_at=as_utc(m["created_at"]),
        updated_at=as_utc(m["updated_at"]),
        done_at=as_utc(m["done_at"]) if m["done_at"] is not None else None,
    )


_PENDING = QueueState.PENDING.value
_INSERT = fq.insert()
_INSERT_SERVER_TIME = fq.insert().values(
    next_attempt_at=func.now(), created_at=func.now(), updated_at=func.now()
)
_RETRY = (
    update(fq)
    .where(fq.c.id == bindparam("b_id"))
    .values(
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        leased_by=None,
        leased_until=None,
        updated_at=bindparam("b_now"),
    )
)
_GIVE_UP = (
    update(fq)
    .where(fq.c.id == bindparam("b_id"))
    .values(
        state=QueueState.FAILED.value,
        attempts=bindparam("b_attempts"),
        last_error=bindparam("b_error"),
        leased_by=None,
        leased_until=None,
        updated_at=bindparam("b_now"),
    )
)


class ForwardQueue:
    """Reads and writes of the forwarding queue (see the module docstring).

    ``clock`` replaces the database's clock (tests move time forward with it).
    """

    def __init__(
        self,
        db: IndexDatabase,
        policy: RetryPolicy | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.policy = policy or RetryPolicy()
        self.clock = clock

    def _now(self, conn: Connection) -> datetime:
        if self.clock is not None:
            return as_utc(self.clock())
        if conn.dialect.name == "postgresql":
            return as_utc(conn.execute(select(func.now())).scalar_one())
        return datetime.now(UTC)

    # Writes of the ingest path ----------------------------------------------------------

    def enqueue(
        self, conn: Connection, sop_instance_uid: str, targets: Sequence[tuple[str, str]]
    ) -> None:
        """Queue one instance for each ``(rule, destination)``, in the caller's transaction."""
        if not targets:
            return
        rows = [
            {
                "sop_instance_uid": sop_instance_uid,
                "destination": destination,
                "rule": rule,
                "state": _PENDING,
                "attempts": 0,
                "last_error": "",
            }
            for rule, destination in targets
        ]
        if self.clock is None and conn.dialect.name == "postgresql":
            # The server's clock, without a round trip on the ingest path.
            conn.execute(_INSERT_SERVER_TIME, rows)
            return
        now = self._now(conn)
        for row in rows:
            row.update(next_attempt_at=now, created_at=now, updated_at=now)
        conn.execute(_INSERT, rows)

    # The sender's side ------------------------------------------------------------------

    def _due(self, now: datetime, exclude: Collection[str]) -> list[ColumnElement[bool]]:
        conditions = [
            fq.c.state == _PENDING,
            fq.c.next_attempt_at <= now,
            or_(fq.c.leased_until.is_(None), fq.c.leased_until <= now),
        ]
        if exclude:
            conditions.append(fq.c.destination.not_in(list(exclude)))
        return conditions

    def claim(
        self, owner: str, limit: int, lease: float, *, exclude: Collection[str] = ()
    ) -> dict[str, builtins.list[QueueItem]]:
        """Lease up to ``limit`` due pending rows to ``owner`` for ``lease`` seconds.

        Due: ``next_attempt_at`` has passed and no other sender holds a live lease on it.
        Rows for the destinations in ``exclude`` are left alone.  The result maps each
        destination to its rows, oldest first.  Two claims never return the same row while
        its lease lasts.
        """
        with self.db.read() as conn:
            # Idle queues are the common case: look without taking the write lock.
            probe = select(fq.c.id).where(*self._due(self._now(conn), exclude)).limit(1)
            if conn.execute(probe).first() is None:
                return {}
        with self.db.write(durable=False) as conn:
            now = self._now(conn)
            query = (
                select(fq.c.id)
                .where(*self._due(now, exclude))
                .order_by(fq.c.next_attempt_at, fq.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = builtins.list(conn.execute(query).scalars())
            if not ids:
                return {}
            rows = conn.execute(
                update(fq)
                .where(fq.c.id.in_(ids))
                .values(
                    leased_by=owner,
                    leased_until=now + timedelta(seconds=lease),
                    updated_at=now,
                )
                .returning(*fq.c)
            ).all()
        claimed: dict[str, builtins.list[QueueItem]] = {}
        for item in sorted((_item(r) for r in rows), key=lambda i: (i.next_attempt_at, i.id)):
            claimed.setdefault(item.destination, []).append(item)
        return claimed

    def renew(self, ids: Collection[int], owner: str, lease: float) -> int:
        """Extend ``owner``'s lease on these rows (a long batch); returns rows renewed."""
        if not ids:
            return 0
        with self.db.write(durable=False) as conn:
            now = self._now(conn)
            return conn.execute(
                update(fq)
                .where(fq.c.id.in_(builtins.list(ids)), fq.c.leased_by == owner)
                .where(fq.c.state == _PENDING)
                .values(leased_until=now + timedelta(seconds=lease), updated_at=now)
            ).rowcount

    def release(self, owner: str, ids: Collection[int] | None = None) -> int:
        """Give up ``owner``'s lease (on these rows, or on all of them) without an attempt:
        another sender may take them at once.  Returns rows released."""
        with self.db.write(durable=False) as conn:
            now = self._now(conn)
            statement = update(fq).where(fq.c.leased_by == owner, fq.c.state == _PENDING)
            if ids is not None:
                if not ids:
                    return 0
                statement = statement.where(fq.c.id.in_(builtins.list(ids)))
            return conn.execute(
                statement.values(leased_by=None, leased_until=None, updated_at=now)
            ).rowcount

    def lease_holders(self) -> builtins.list[str]:
        """Senders holding a live lease on pending rows."""
        with self.db.read() as conn:
            now = self._now(conn)
            query = (
                select(fq.c.leased_by)
                .where(fq.c.state == _PENDING, fq.c.leased_by.is_not(None))
                .where(fq.c.leased_until > now)
                .distinct()
            )
            return sorted(str(owner) for owner in conn.execute(query).scalars())

    def done(self, ids: Collection[int], note: str = "") -> int:
        """The destination has these rows' instances (or they need not be sent any more:
        ``note`` says why).  Returns rows settled."""
        return self._settle(ids, QueueState.DONE, note, with_done_at=True)

    def fail(self, ids: Collection[int], error: str) -> int:
        """Give these rows up at once (no retry can help, e.g. an unknown peer)."""
        return self._settle(ids, QueueState.FAILED, error, with_done_at=False)

    def _settle(
        self, ids: Collection[int], state: QueueState, text: str, *, with_done_at: bool
    ) -> int:
        """Move pending rows to a final state, releasing their lease."""
        if not ids:
            return 0
        with self.db.write(durable=False) as conn:
            now = self._now(conn)
            values: dict[str, object] = {
                "state": state.value,
                "last_error": text,
                "leased_by": None,
                "leased_until": None,
                "updated_at": now,
            }
            if with_done_at:
                values["done_at"] = now
            return conn.execute(
                update(fq)
                .where(fq.c.id.in_(builtins.list(ids)), fq.c.state == _PENDING)
                .values(**values)
            ).rowcount

    def retry_later(
        self, ids: Collection[int], error: str, *, owner: str | None = None
    ) -> Rescheduled:
        """Count a failed attempt: try again after the back-off, or give up after
        ``max_attempts`` (state ``failed``).  With ``owner``, only rows it still holds."""
        if not ids:
            return Rescheduled(0, 0, None)
        with self.db.write(durable=False) as conn:
            now = self._now(conn)
            query = select(fq.c.id, fq.c.attempts).where(
                fq.c.id.in_(builtins.list(ids)), fq.c.state == _PENDING
            )
            if owner is not None:
                query = query.where(fq.c.leased_by == owner)
            retry, give_up, delays = [], [], []
            for row_id, attempts in conn.execute(query).all():
                count = int(attempts) + 1
                if count >= self.policy.max_attempts:
                    give_up.append(
                        {
                            "b_id": row_id,
                            "b_attempts": count,
                            "b_error": f"gave up after {count} attempts: {error}",
                            "b_now": now,
                        }
                    )
                    continue
                delay = self.policy.delay(count)
                delays.append(delay)
                retry.append(
                    {
                        "b_id": row_id,
                        "b_attempts": count,
                        "b_next": now + timedelta(seconds=delay),
                        "b_error": error,
                        "b_now": now,
                    }
                )
            if retry:
                conn.execute(_RETRY, retry)
            if give_up:
                conn.execute(_GIVE_UP, give_up)
        return Rescheduled(len(retry), len(give_up), min(delays) if delays else None)

    def postpone(
        self, ids: Collection[int], delay: float, error: str, *, owner: str | None = None
    ) -> int:
        """Try these rows again in ``delay`` seconds without counting an attempt (they were
        not tried: the association ended before their turn).  Returns rows postponed."""
        if not ids:
            return 0
        with self.db.write(durable=False) as conn:
            now = self._now(conn)
            statement = update(fq).where(fq.c.id.in_(builtins.list(ids)), fq.c.state == _PENDING)
            if owner is not None:
                statement = statement.where(fq.c.leased_by == owner)
            return conn.execute(
                statement.values(
                    next_attempt_at=now + timedelta(seconds=delay),
                    last_error=error,
                    leased_by=None,
                    leased_until=None,
                    updated_at=now,
                )
            ).rowcount

    def purge_done(self, older_than: float) -> int:
        """Delete rows delivered more than ``older_than`` seconds ago."""
        with self.db.write(durable=False) as conn:
            cutoff = self._now(conn) - timedelta(seconds=older_than)
            return conn.execute(
                delete(fq).where(fq.c.state == QueueState.DONE.value, fq.c.done_at < cutoff)
            ).rowcount

    # The operator's side ----------------------------------------------------------------

    def list(self, state: QueueState | None = None, limit: int = 100) -> builtins.list[QueueItem]:
        """Rows, newest first, optionally of one state."""
        query = select(fq).order_by(fq.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(fq.c.state == state.value)
        with self.db.read() as conn:
            return [_item(row) for row in conn.execute(query)]

    def delivered(self, sop_instance_uid: str) -> int:
        """Number of destinations that acknowledged this instance (rows in ``done``)."""
        query = (
            select(func.count(func.distinct(fq.c.destination)))
            .select_from(fq)
            .where(
                fq.c.sop_instance_uid == sop_instance_uid,
                fq.c.state == QueueState.DONE.value,
                fq.c.last_error == "",
            )
        )
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def counts(self) -> dict[QueueState, int]:
        """Number of rows in each state."""
        query = select(fq.c.state, func.count()).group_by(fq.c.state)
        with self.db.read() as conn:
            found = {str(state): int(n) for state, n in conn.execute(query).all()}
        return {state: found.get(state.value, 0) for state in QueueState}

    def retry(self, ids: Collection[int] = (), *, all_failed: bool = False) -> int:
        """Make rows pending and due now with their attempts reset (the failed ones, these
        ids whatever their state, or both).  Returns rows changed."""
        conditions: builtins.list[ColumnElement[bool]] = []
        if ids:
            conditions.append(fq.c.id.in_(builtins.list(ids)))
        if all_failed:
            conditions.append(fq.c.state == QueueState.FAILED.value)
        if not conditions:
            return 0
        with self.db.write() as conn:
            now = self._now(conn)
            return conn.execute(
                update(fq)
                .where(or_(*conditions))
                .values(
                    state=_PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    done_at=None,
                    updated_at=now,
                )
            ).rowcount

    def drop(self, ids: Collection[int] = (), *, state: QueueState | None = None) -> int:
        """Delete rows: these ids, or every row in ``state``, or both.  Returns rows deleted."""
        conditions: builtins.list[ColumnElement[bool]] = []
        if ids:
            conditions.append(fq.c.id.in_(builtins.list(ids)))
        if state is not None:
            conditions.append(fq.c.state == state.value)
        if not conditions:
            return 0
        with self.db.write() as conn:
            return conn.execute(delete(fq).where(or_(*conditions))).rowcount
