"""Storage Commitment transactions (PS3.4 J), in both roles, kept in the database.

Role ``scp``: a peer asked dicomhub to commit to instances.  The request is recorded before
the N-ACTION response (``pending``), the per-instance results once checked (``checked``), and
the report's delivery (``reported``, or ``undeliverable`` after the configured attempts).  A
restart resumes what is pending or checked.  Role ``scu``: dicomhub asked a peer
(``requested``) and records the report it receives (``committed`` when every instance was,
``failed`` otherwise) or gives up waiting (``timed_out``).  Every step is also appended to
``commitment_events`` with what happened.

Several processes share the transactions through leases, like the forwarding queue.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from dicomhub.index.engine import IndexDatabase
from dicomhub.index.forward_queue import RetryPolicy
from dicomhub.index.schema import commitment_events as events_table
from dicomhub.index.schema import commitment_items as items_table
from dicomhub.index.schema import commitment_transactions as tx_table
from dicomhub.index.times import as_utc, utc_now


class Role(StrEnum):
    """Which side of the transaction dicomhub is."""

    SCP = "scp"
    SCU = "scu"


class State(StrEnum):
    """States of a transaction (see the module docstring)."""

    PENDING = "pending"
    CHECKED = "checked"
    REPORTED = "reported"
    UNDELIVERABLE = "undeliverable"
    REQUESTED = "requested"
    COMMITTED = "committed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class Outcome(StrEnum):
    """What became of one referenced instance."""

    PENDING = "pending"
    COMMITTED = "committed"
    FAILED = "failed"


# FailureReason values of PS3.4 J.3.2.1.3 (Failed SOP Sequence)
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119


@dataclass(frozen=True)
class Item:
    """One referenced instance and what became of it."""

    sop_class_uid: str
    sop_instance_uid: str
    outcome: Outcome = Outcome.PENDING
    failure_reason: int | None = None
    detail: str = ""
    row_id: int | None = None
    """The item's row, when read from the database."""

    def settled(self, outcome: Outcome, reason: int | None = None, detail: str = "") -> Item:
        """This reference with an outcome."""
        return replace(self, outcome=outcome, failure_reason=reason, detail=detail)


@dataclass(frozen=True)
class Transaction:
    """A storage commitment transaction with its items."""

    id: int
    role: Role
    transaction_uid: str
    peer_ae_title: str
    called_ae_title: str
    state: State
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    items: list[Item] = field(default_factory=list)

    @property
    def committed(self) -> list[Item]:
        """Items committed."""
        return [i for i in self.items if i.outcome is Outcome.COMMITTED]

    @property
    def failed(self) -> list[Item]:
        """Items that failed."""
        return [i for i in self.items if i.outcome is Outcome.FAILED]


def _transaction(row: Any, items: list[Item]) -> Transaction:
    m = row._mapping
    return Transaction(
        id=int(m["id"]),
        role=Role(m["role"]),
        transaction_uid=m["transaction_uid"],
        peer_ae_title=m["peer_ae_title"],
        called_ae_title=m["called_ae_title"],
        state=State(m["state"]),
        attempts=int(m["attempts"]),
        next_attempt_at=as_utc(m["next_attempt_at"]) or utc_now(),
        last_error=m["last_error"],
        created_at=as_utc(m["created_at"]) or utc_now(),
        updated_at=as_utc(m["updated_at"]) or utc_now(),
        completed_at=as_utc(m["completed_at"]),
        items=items,
    )


class CommitmentRepository:
    """Reads and writes of storage commitment transactions."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

    # Reads ------------------------------------------------------------------------------------

    def _items(self, conn: Connection, ids: Sequence[int]) -> dict[int, list[Item]]:
        found: dict[int, list[Item]] = {i: [] for i in ids}
        if not ids:
            return found
        query = (
            select(items_table)
            .where(items_table.c.transaction_fk.in_(builtins.list(ids)))
            .order_by(items_table.c.id)
        )
        for row in conn.execute(query):
            m = row._mapping
            found[int(m["transaction_fk"])].append(
                Item(
                    m["sop_class_uid"],
                    m["sop_instance_uid"],
                    Outcome(m["outcome"]),
                    m["failure_reason"],
                    m["detail"],
                    int(m["id"]),
                )
            )
        return found

    def _load(self, conn: Connection, rows: Sequence[Any]) -> list[Transaction]:
        items = self._items(conn, [int(r._mapping["id"]) for r in rows])
        return [_transaction(r, items[int(r._mapping["id"])]) for r in rows]

    def get(self, transaction_id: int) -> Transaction | None:
        """A transaction by its row id."""
        with self.db.read() as conn:
            rows = conn.execute(select(tx_table).where(tx_table.c.id == transaction_id)).all()
            loaded = self._load(conn, rows)
        return loaded[0] if loaded else None

    def find(self, role: Role, transaction_uid: str) -> Transaction | None:
        """A transaction by its Transaction UID."""
        query = select(tx_table).where(
            tx_table.c.role == role.value, tx_table.c.transaction_uid == transaction_uid
        )
        with self.db.read() as conn:
            loaded = self._load(conn, conn.execute(query).all())
        return loaded[0] if loaded else None

    def list(
        self, role: Role | None = None, state: State | None = None, limit: int = 50
    ) -> builtins.list[Transaction]:
        """The newest transactions first."""
        query = select(tx_table).order_by(tx_table.c.id.desc()).limit(limit)
        if role is not None:
            query = query.where(tx_table.c.role == role.value)
        if state is not None:
            query = query.where(tx_table.c.state == state.value)
        with self.db.read() as conn:
            return self._load(conn, conn.execute(query).all())

    def events(self, transaction_id: int) -> builtins.list[tuple[datetime, str, str]]:
        """What happened to a transaction, oldest first: (when, event, detail)."""
        query = (
            select(events_table.c.occurred_at, events_table.c.event, events_table.c.detail)
            .where(events_table.c.transaction_fk == transaction_id)
            .order_by(events_table.c.id)
        )
        with self.db.read() as conn:
            return [
                (as_utc(when) or utc_now(), event, detail)
                for when, event, detail in conn.execute(query)
            ]

    # Writes -----------------------------------------------------------------------------------

    @staticmethod
    def _event(conn: Connection, transaction_id: int, event: str, detail: str = "") -> None:
        conn.execute(
            insert(events_table).values(
                transaction_fk=transaction_id, event=event, detail=detail, occurred_at=utc_now()
            )
        )

    def record(
        self,
        role: Role,
        transaction_uid: str,
        peer_ae_title: str,
        called_ae_title: str,
        references: Sequence[tuple[str, str]],
        detail: str = "",
        *,
        hold: float = 0.0,
    ) -> int:
        """Record a request (durably, before it is answered); returns the transaction id.

        A Transaction UID seen before in the same role starts that transaction again with the
        new references (a requester repeating its request gets a new report).  ``hold``:
        seconds before a background worker may take it up (the caller handles it meanwhile).
        """
        now = utc_now()
        state = State.PENDING if role is Role.SCP else State.REQUESTED
        with self.db.write() as conn:
            existing = conn.execute(
                select(tx_table.c.id).where(
                    tx_table.c.role == role.value, tx_table.c.transaction_uid == transaction_uid
                )
            ).scalar()
            values = {
                "peer_ae_title": peer_ae_title[:16],
                "called_ae_title": called_ae_title[:16],
                "state": state.value,
                "attempts": 0,
                "next_attempt_at": now + timedelta(seconds=hold),
                "leased_by": None,
                "leased_until": None,
                "last_error": "",
                "updated_at": now,
                "completed_at": None,
            }
            if existing is None:
                transaction_id = int(
                    conn.execute(
                        insert(tx_table)
                        .values(
                            role=role.value,
                            transaction_uid=transaction_uid,
                            created_at=now,
                            **values,
                        )
                        .returning(tx_table.c.id)
                    ).scalar_one()
                )
            else:
                transaction_id = int(existing)
                conn.execute(update(tx_table).where(tx_table.c.id == existing).values(**values))
                conn.execute(delete(items_table).where(items_table.c.transaction_fk == existing))
            if references:
                conn.execute(
                    insert(items_table),
                    [
                        {
                            "transaction_fk": transaction_id,
                            "sop_class_uid": sop_class,
                            "sop_instance_uid": sop_instance,
                            "outcome": Outcome.PENDING.value,
                            "failure_reason": None,
                            "detail": "",
                        }
                        for sop_class, sop_instance in references
                    ],
                )
            event = "requested" if existing is None else "requested-again"
            self._event(conn, transaction_id, event, detail or f"{len(references)} instances")
        return transaction_id

    def set_results(
        self, transaction_id: int, results: Sequence[Item], state: State, detail: str = ""
    ) -> None:
        """Record each item's outcome and move the transaction to ``state``."""
        now = utc_now()
        with self.db.write() as conn:
            for item in results:
                which = (
                    items_table.c.id == item.row_id
                    if item.row_id is not None
                    else and_(
                        items_table.c.sop_instance_uid == item.sop_instance_uid,
                        items_table.c.sop_class_uid == item.sop_class_uid,
                    )
                )
                conn.execute(
                    update(items_table)
                    .where(items_table.c.transaction_fk == transaction_id, which)
                    .values(
                        outcome=item.outcome.value,
                        failure_reason=item.failure_reason,
                        detail=item.detail,
                    )
                )
            final = state in {State.COMMITTED, State.FAILED}
            conn.execute(
                update(tx_table)
                .where(tx_table.c.id == transaction_id)
                .values(
                    state=state.value,
                    updated_at=now,
                    next_attempt_at=now,
                    completed_at=now if final else None,
                )
            )
            committed = sum(1 for r in results if r.outcome is Outcome.COMMITTED)
            failed = sum(1 for r in results if r.outcome is Outcome.FAILED)
            summary = f"{committed} committed, {failed} failed"
            event = "checked" if state is State.CHECKED else "report-received"
            self._event(conn, transaction_id, event, f"{summary}{'; ' + detail if detail else ''}")

    def claim(
        self, owner: str, role: Role, states: Sequence[State], limit: int, lease: float
    ) -> builtins.list[Transaction]:
        """Lease due transactions in ``states`` to ``owner`` for ``lease`` seconds."""
        now = utc_now()
        due = [
            tx_table.c.role == role.value,
            tx_table.c.state.in_([s.value for s in states]),
            tx_table.c.next_attempt_at <= now,
            or_(tx_table.c.leased_until.is_(None), tx_table.c.leased_until < now),
        ]
        with self.db.read() as conn:
            if conn.execute(select(tx_table.c.id).where(*due).limit(1)).first() is None:
                return []
        with self.db.write(durable=False) as conn:
            query = select(tx_table.c.id).where(*due).order_by(tx_table.c.id).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [int(i) for i in conn.execute(query).scalars()]
            if not ids:
                return []
            conn.execute(
                update(tx_table)
                .where(tx_table.c.id.in_(ids))
                .values(leased_by=owner, leased_until=now + timedelta(seconds=lease))
            )
            rows = conn.execute(select(tx_table).where(tx_table.c.id.in_(ids))).all()
            return self._load(conn, rows)

    def release(self, transaction_id: int, *, after: float = 0.0) -> None:
        """Give a transaction back to the background workers, due in ``after`` seconds."""
        now = utc_now()
        with self.db.write(durable=False) as conn:
            conn.execute(
                update(tx_table)
                .where(tx_table.c.id == transaction_id)
                .values(
                    leased_by=None,
                    leased_until=None,
                    next_attempt_at=now + timedelta(seconds=after),
                    updated_at=now,
                )
            )

    def lease_holders(self, role: Role) -> builtins.list[str]:
        """Holders of live leases on unfinished transactions of ``role``."""
        now = utc_now()
        query = (
            select(tx_table.c.leased_by)
            .where(
                tx_table.c.role == role.value,
                tx_table.c.leased_by.is_not(None),
                tx_table.c.leased_until > now,
            )
            .distinct()
        )
        with self.db.read() as conn:
            return sorted(str(holder) for holder in conn.execute(query).scalars())

    def release_holder(self, role: Role, holder: str) -> int:
        """Release every lease ``holder`` has on transactions of ``role``; how many."""
        with self.db.write(durable=False) as conn:
            return int(
                conn.execute(
                    update(tx_table)
                    .where(tx_table.c.role == role.value, tx_table.c.leased_by == holder)
                    .values(leased_by=None, leased_until=None)
                ).rowcount
            )

    def finish(self, transaction_id: int, state: State, event: str, detail: str = "") -> None:
        """Move to a final state (report delivered, timed out ...), releasing the lease."""
        now = utc_now()
        with self.db.write() as conn:
            conn.execute(
                update(tx_table)
                .where(tx_table.c.id == transaction_id)
                .values(
                    state=state.value,
                    leased_by=None,
                    leased_until=None,
                    updated_at=now,
                    completed_at=now,
                    last_error="" if state in {State.REPORTED, State.COMMITTED} else detail,
                )
            )
            self._event(conn, transaction_id, event, detail)

    def retry_later(
        self, transaction_id: int, error: str, policy: RetryPolicy, give_up: State
    ) -> bool:
        """Count a failed attempt; True when it will be tried again, False when the
        transaction moved to ``give_up`` after ``policy.max_attempts``."""
        now = utc_now()
        with self.db.write() as conn:
            attempts = int(
                conn.execute(
                    select(tx_table.c.attempts).where(tx_table.c.id == transaction_id)
                ).scalar_one()
            )
            attempts += 1
            values: dict[str, Any] = {
                "attempts": attempts,
                "last_error": error,
                "leased_by": None,
                "leased_until": None,
                "updated_at": now,
            }
            again = attempts < policy.max_attempts
            if again:
                values["next_attempt_at"] = now + timedelta(seconds=policy.delay(attempts))
                self._event(conn, transaction_id, "report-failed", error)
            else:
                values["state"] = give_up.value
                values["completed_at"] = now
                self._event(conn, transaction_id, "given-up", f"after {attempts} attempts: {error}")
            conn.execute(update(tx_table).where(tx_table.c.id == transaction_id).values(**values))
        return again

    def time_out(self, role: Role, state: State, older_than: float) -> builtins.list[int]:
        """Transactions left in ``state`` for over ``older_than`` seconds become
        ``timed_out``; their ids."""
        now = utc_now()
        cutoff = now - timedelta(seconds=older_than)
        with self.db.write() as conn:
            ids = [
                int(i)
                for i in conn.execute(
                    select(tx_table.c.id).where(
                        tx_table.c.role == role.value,
                        tx_table.c.state == state.value,
                        tx_table.c.created_at < cutoff,
                    )
                ).scalars()
            ]
            if ids:
                conn.execute(
                    update(tx_table)
                    .where(tx_table.c.id.in_(ids))
                    .values(
                        state=State.TIMED_OUT.value,
                        updated_at=now,
                        completed_at=now,
                        last_error=f"no report within {older_than:.0f} s",
                    )
                )
                for transaction_id in ids:
                    self._event(
                        conn, transaction_id, "timed-out", f"no report within {older_than:.0f} s"
                    )
        return ids
