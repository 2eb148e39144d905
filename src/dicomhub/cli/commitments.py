"""``dicomhub commitments``: Storage Commitment transactions, in both roles.

Role ``scp``: peers asked dicomhub to commit (states pending, checked, reported,
undeliverable).  Role ``scu``: dicomhub asked peers (``dicomhub send --commit``, forwarding
rules with ``commit = true``; states requested, committed, failed, timed_out).  The
transactions live in the index database, so every dicomhub process's are shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dicomhub.index.commitments import Outcome, Role, State, Transaction

if TYPE_CHECKING:
    from dicomhub.runtime import Runtime

commitments_app = typer.Typer(
    help="Storage Commitment transactions (both roles): list, show.  Without a command: list.",
    invoke_without_command=True,
)

RoleOption = Annotated[
    Role | None,
    typer.Option("--role", "-r", help="Only this role (scp or scu).", case_sensitive=False),
]
StateOption = Annotated[
    State | None,
    typer.Option("--state", "-s", help="Only transactions in this state.", case_sensitive=False),
]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="Transactions to show.")]


def _open() -> Runtime:
    """The runtime of the configured data folder and database (the CLI's usual way)."""
    from dicomhub.cli.main import _runtime, _settings

    runtime: Runtime = _runtime(_settings())
    return runtime


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _counts(transaction: Transaction) -> tuple[int, int, int]:
    outcomes = [item.outcome for item in transaction.items]
    return (
        outcomes.count(Outcome.COMMITTED),
        outcomes.count(Outcome.FAILED),
        outcomes.count(Outcome.PENDING),
    )


def failure_reason(reason: int | None) -> str:
    """A FailureReason in hex ("-" when none was given)."""
    return "-" if reason is None else f"0x{reason:04X}"


@commitments_app.callback()
def _commitments(
    ctx: typer.Context, role: RoleOption = None, state: StateOption = None, limit: LimitOption = 50
) -> None:
    if ctx.invoked_subcommand is None:
        commitments_list(role=role, state=state, limit=limit)


@commitments_app.command("list")
def commitments_list(
    role: RoleOption = None, state: StateOption = None, limit: LimitOption = 50
) -> None:
    """Show transactions, newest first."""
    runtime = _open()
    try:
        transactions = runtime.commitments.list(role, state, limit)
    finally:
        runtime.close()
    console = Console()
    if not transactions:
        console.print("no storage commitment transactions", markup=False)
        return
    table = Table()
    for title in (
        "id",
        "role",
        "transaction UID",
        "peer",
        "state",
        "committed",
        "failed",
        "pending",
        "created",
        "completed",
        "last error",
    ):
        table.add_column(title, overflow="fold")
    for transaction in transactions:
        committed, failed, pending = _counts(transaction)
        table.add_row(
            str(transaction.id),
            transaction.role.value,
            transaction.transaction_uid,
            transaction.peer_ae_title,
            transaction.state.value,
            str(committed),
            str(failed),
            str(pending),
            _when(transaction.created_at),
            _when(transaction.completed_at),
            Text(transaction.last_error),
        )
    console.print(table)


def find_transactions(runtime: Runtime, which: str) -> list[Transaction]:
    """Transactions by row id, or by Transaction UID (in either role)."""
    if which.isdigit():
        found = runtime.commitments.get(int(which))
        if found is not None:
            return [found]
    matches = [runtime.commitments.find(role, which) for role in Role]
    return [t for t in matches if t is not None]


@commitments_app.command("show")
def commitments_show(
    which: Annotated[str, typer.Argument(help="Transaction id or Transaction UID.")],
) -> None:
    """One transaction: its instances with their outcome, and what happened to it."""
    runtime = _open()
    try:
        transactions = find_transactions(runtime, which)
        history = {t.id: runtime.commitments.events(t.id) for t in transactions}
    finally:
        runtime.close()
    if not transactions:
        typer.echo(f"error: no storage commitment transaction has the id or UID {which}", err=True)
        raise typer.Exit(1)
    console = Console()
    for transaction in transactions:
        _show(transaction, history[transaction.id], console)


def _show(
    transaction: Transaction, events: list[tuple[datetime, str, str]], console: Console
) -> None:
    committed, failed, pending = _counts(transaction)
    asker, asked = (
        (transaction.peer_ae_title, transaction.called_ae_title)
        if transaction.role is Role.SCP
        else (transaction.called_ae_title, transaction.peer_ae_title)
    )
    lines = [
        f"transaction {transaction.transaction_uid} (id {transaction.id})",
        f"role: {transaction.role.value} ({asker} asked {asked} to commit)",
        f"state: {transaction.state.value}: {committed} committed, {failed} failed, "
        f"{pending} pending",
        f"created: {_when(transaction.created_at)}  completed: {_when(transaction.completed_at)}",
    ]
    if transaction.role is Role.SCP:
        lines.append(f"report attempts: {transaction.attempts}")
    if transaction.last_error:
        lines.append(f"last error: {transaction.last_error}")
    for line in lines:
        console.print(line, markup=False, highlight=False)
    items = Table(title="instances", title_justify="left")
    for title in ("SOP instance UID", "SOP class UID", "outcome", "FailureReason", "detail"):
        items.add_column(title, overflow="fold")
    for item in transaction.items:
        items.add_row(
            item.sop_instance_uid,
            item.sop_class_uid,
            item.outcome.value,
            failure_reason(item.failure_reason) if item.outcome is Outcome.FAILED else "",
            Text(item.detail),
        )
    console.print(items)
    history = Table(title="events", title_justify="left")
    for title in ("when", "event", "detail"):
        history.add_column(title, overflow="fold")
    for when, event, detail in events:
        history.add_row(_when(when), event, Text(detail))
    console.print(history)
