"""``dicomhub queue``: look at the forwarding queue, send failed items again, remove items.

The queue lives in the index database, so these commands see and change the queue of every
dicomhub process on it, running or not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from dicomhub.index.forward_queue import QueueItem, QueueState

if TYPE_CHECKING:
    from dicomhub.runtime import Runtime

queue_app = typer.Typer(
    help="The forwarding queue: list, retry, drop.  Without a command: list.",
    invoke_without_command=True,
)

StateOption = Annotated[
    QueueState | None,
    typer.Option("--state", "-s", help="Only items in this state.", case_sensitive=False),
]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="Items to show.")]
IdsArgument = Annotated[list[int] | None, typer.Argument(help="Queue item ids.", min=1)]


def _open() -> Runtime:
    """The runtime of the configured data folder and database (the CLI's usual way)."""
    from dicomhub.cli.main import _runtime, _settings

    runtime: Runtime = _runtime(_settings())
    return runtime


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return "due"
    if seconds < 120:
        return f"in {seconds:.0f} s"
    if seconds < 7200:
        return f"in {seconds / 60:.0f} min"
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _state(item: QueueItem, now: datetime) -> str:
    if item.state is QueueState.PENDING and item.leased_until and item.leased_until > now:
        return "pending (sending)"
    return item.state.value


def _print(items: list[QueueItem], counts: dict[QueueState, int], console: Console) -> None:
    now = datetime.now(UTC)
    table = Table(show_lines=False)
    for title in (
        "id",
        "instance",
        "destination",
        "rule",
        "state",
        "attempts",
        "next attempt",
        "last error",
    ):
        table.add_column(title, overflow="fold")
    for item in items:
        table.add_row(
            str(item.id),
            item.sop_instance_uid,
            item.destination,
            item.rule,
            _state(item, now),
            str(item.attempts),
            _when(item.next_attempt_at, now) if item.state is QueueState.PENDING else "-",
            item.last_error or "",
        )
    if items:
        console.print(table)
    console.print(", ".join(f"{counts[state]} {state.value}" for state in QueueState))


@queue_app.callback()
def _queue(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        queue_list(state=None, limit=50)


@queue_app.command("list")
def queue_list(state: StateOption = None, limit: LimitOption = 50) -> None:
    """Show queue items, newest first, and how many are in each state."""
    runtime = _open()
    try:
        items = runtime.forward_queue.list(state, limit)
        counts = runtime.forward_queue.counts()
    finally:
        runtime.close()
    console = Console()
    if not items:
        console.print(f"no {state.value} items" if state else "the forwarding queue is empty")
    _print(items, counts, console)


@queue_app.command("retry")
def queue_retry(
    ids: IdsArgument = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed item.")] = False,
) -> None:
    """Send items again: pending and due now, attempts reset to zero."""
    if not ids and not all_failed:
        typer.echo("error: give queue item ids or --all-failed", err=True)
        raise typer.Exit(2)
    runtime = _open()
    try:
        count = runtime.forward_queue.retry(ids or [], all_failed=all_failed)
    finally:
        runtime.close()
    if not count:
        typer.echo("no queue item matched; nothing to retry", err=True)
        raise typer.Exit(1)
    typer.echo(f"{count} items pending again")


@queue_app.command("drop")
def queue_drop(
    ids: IdsArgument = None,
    state: Annotated[
        QueueState | None,
        typer.Option(
            "--state",
            "-s",
            help="Every item in this state (failed or done).",
            case_sensitive=False,
        ),
    ] = None,
) -> None:
    """Remove items from the queue: they will not be sent (any more)."""
    if not ids and state is None:
        typer.echo("error: give queue item ids or --state failed|done", err=True)
        raise typer.Exit(2)
    if state is QueueState.PENDING:
        typer.echo("error: --state takes failed or done; drop pending items by id", err=True)
        raise typer.Exit(2)
    runtime = _open()
    try:
        count = runtime.forward_queue.drop(ids or [], state=state)
    finally:
        runtime.close()
    if not count:
        typer.echo("no queue item matched; nothing dropped", err=True)
        raise typer.Exit(1)
    typer.echo(f"{count} items dropped")
