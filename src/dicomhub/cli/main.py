"""``dicomhub`` command line: serve, import, config, db, verify, peers, queue, commitments,
worklist, users, conformance, and the SCU tools (echo, send, find, retrieve)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dicomhub import __version__
from dicomhub.cli.commitments import commitments_app
from dicomhub.cli.logs import setup_logging
from dicomhub.cli.queue import queue_app
from dicomhub.cli.users import users_app
from dicomhub.cli.worklist import worklist_app
from dicomhub.config import (
    ConfigError,
    PeerConfig,
    Service,
    Settings,
    load_settings,
    render_settings,
)

app = typer.Typer(
    help="dicomhub: a light-weight DICOM server.", no_args_is_help=True, add_completion=False
)
db_app = typer.Typer(help="Index database maintenance.", no_args_is_help=True)
peers_app = typer.Typer(help="Peers (remote AEs) stored in the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(peers_app, name="peers")
app.add_typer(queue_app, name="queue")
app.add_typer(commitments_app, name="commitments")
app.add_typer(worklist_app, name="worklist")
app.add_typer(users_app, name="users")

LOG = logging.getLogger("dicomhub")
_state: dict[str, Path | None] = {"config": None}
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML configuration file (or DICOMHUB_CONFIG).",
        envvar="DICOMHUB_CONFIG",
        show_envvar=False,
    ),
]


@app.callback()
def _main(
    config: ConfigOption = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    _state["config"] = config


def _settings() -> Settings:
    try:
        settings = load_settings(_state["config"])
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    setup_logging(settings.log_level)
    return settings


def _runtime(settings: Settings):  # type: ignore[no-untyped-def]
    from dicomhub.runtime import open_runtime

    try:
        return open_runtime(settings)
    except Exception as exc:
        typer.echo(
            f"error: cannot open the index at {settings.effective_database_url}: {exc}", err=True
        )
        raise typer.Exit(2) from exc


@app.command()
def serve() -> None:
    """Run the DICOM server until interrupted (Ctrl-C or SIGTERM)."""
    from dicomhub.cli.serve import StartupError
    from dicomhub.cli.serve import serve as run_serve

    settings = _settings()
    try:
        run_serve(settings)
    except OSError as exc:
        typer.echo(
            f"error: cannot listen on {settings.bind}:{settings.dicom_port}: {exc}", err=True
        )
        raise typer.Exit(2) from exc
    except (ValueError, StartupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
) -> None:
    """Import DICOM files through the ingest path and print what happened to each."""
    from dicomhub.cli.importer import import_paths, print_summary

    settings = _settings()
    runtime = _runtime(settings)
    console = Console(stderr=False)
    try:
        summary = import_paths(runtime.ingest, paths, console)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        runtime.close()
    print_summary(summary, console)
    if summary.counts["rejected"]:
        raise typer.Exit(1)


@app.command()
def config() -> None:
    """Print the effective configuration, commented."""
    typer.echo(render_settings(_settings()))


@app.command()
def verify() -> None:
    """Check every stored blob against its checksum and index row; report orphans."""
    from dicomhub.cli.verify import print_report
    from dicomhub.cli.verify import verify as run_verify

    runtime = _runtime(_settings())
    console = Console()
    try:
        report = run_verify(runtime.repository, runtime.blobs, console)
    finally:
        runtime.close()
    print_report(report, console)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def conformance() -> None:
    """Print the conformance statement (docs/conformance.md)."""
    from dicomhub.conformance import render_conformance

    typer.echo(render_conformance())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the index schema to the newest revision."""
    from dicomhub.index import migrate
    from dicomhub.index.engine import IndexDatabase

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = IndexDatabase(settings.effective_database_url)
    try:
        before = migrate.current_revision(db)
        migrate.upgrade(db)
        typer.echo(
            f"index {_display_url(settings)}: {before or 'empty'} -> {migrate.current_revision(db)}"
        )
    finally:
        db.dispose()


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the index."""
    from dicomhub.index import migrate
    from dicomhub.index.engine import IndexDatabase

    settings = _settings()
    db = IndexDatabase(settings.effective_database_url)
    try:
        typer.echo(
            f"{migrate.current_revision(db) or 'empty'} (newest: {migrate.head_revision(db)})"
        )
    finally:
        db.dispose()


@peers_app.command("list")
def peers_list() -> None:
    """List configured and run-time peers."""
    settings = _settings()
    runtime = _runtime(settings)
    try:
        stored = runtime.peers.all()
    finally:
        runtime.close()
    for origin, items in (("config", settings.peers), ("database", stored)):
        for name, peer in items.items():
            services = ",".join(s.value for s in peer.services)
            typer.echo(f"{name}\t{peer.ae_title}\t{peer.host}:{peer.port}\t{services}\t{origin}")


@peers_app.command("add")
def peers_add(
    name: str,
    ae_title: str,
    host: str,
    port: int,
    services: Annotated[list[Service] | None, typer.Option("--service", "-s")] = None,
) -> None:
    """Declare (or replace) a run-time peer."""
    try:
        peer = PeerConfig(
            ae_title=ae_title, host=host, port=port, services=services or list(Service)
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    runtime = _runtime(_settings())
    try:
        runtime.peers.put(name, peer)
    finally:
        runtime.close()
    typer.echo(f"peer {name} = {peer.ae_title}@{host}:{port}")


@peers_app.command("remove")
def peers_remove(name: str) -> None:
    """Remove a run-time peer."""
    runtime = _runtime(_settings())
    try:
        removed = runtime.peers.remove(name)
    finally:
        runtime.close()
    if not removed:
        typer.echo(f"error: no run-time peer named {name}", err=True)
        raise typer.Exit(1)


KeyOption = Annotated[
    list[str] | None,
    typer.Option("--key", "-k", help="Query key: Keyword=value, or Keyword to ask for it."),
]
LevelOption = Annotated[
    str | None,
    typer.Option("--level", "-l", help="QueryRetrieveLevel (default STUDY, or as -k gives)."),
]
PatientRootOption = Annotated[
    bool, typer.Option("--patient-root", "-P", help="Patient Root model (default Study Root).")
]


def _scu_errors(run: Callable[[], bool]) -> None:
    """Run an SCU command: peer and usage errors become one sentence and exit status 2."""
    from dicomhub.cli.scu import UsageError
    from dicomhub.errors import DicomhubError

    try:
        ok = run()
    except (UsageError, DicomhubError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not ok:
        raise typer.Exit(1)


@app.command()
def echo(peer: Annotated[str, typer.Argument(help="Peer name, AE title or AE@host:port.")]) -> None:
    """C-ECHO a peer."""
    from dicomhub.cli.scu import run_echo

    runtime = _runtime(_settings())
    try:
        _scu_errors(lambda: run_echo(runtime, peer, Console()))
    finally:
        runtime.close()


@app.command()
def send(
    peer: Annotated[str, typer.Argument(help="Peer name, AE title or AE@host:port.")],
    uids: Annotated[
        list[str] | None, typer.Argument(help="Study, series or instance UIDs to send.")
    ] = None,
    key: KeyOption = None,
    level: LevelOption = None,
    commit: Annotated[
        bool,
        typer.Option(
            "--commit", help="Then ask the peer for storage commitment of what it accepted."
        ),
    ] = False,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            help="With --commit: seconds to wait for the report (default: commitment_wait).",
        ),
    ] = None,
) -> None:
    """C-STORE stored instances to a peer: by UIDs, or those a local query selects."""
    from dicomhub.cli.scu import (
        UsageError,
        print_send_summary,
        run_commit,
        run_send,
        select_instances,
    )

    runtime = _runtime(_settings())
    console = Console()

    def run() -> bool:
        if not uids and not key:
            raise UsageError("name UIDs or give a query with -k")
        instances = select_instances(runtime, uids or [], key or [], level)
        if not instances:
            raise UsageError("nothing stored matches")
        results = run_send(runtime, peer, instances, console)
        print_send_summary(results, console)
        sent = all(r.ok for r in results)
        if not commit:
            return sent
        classes = {i.sop_instance_uid: i.sop_class_uid for i in instances}
        references = [(classes[r.sop_instance_uid], r.sop_instance_uid) for r in results if r.ok]
        return run_commit(runtime, peer, references, wait, console) and sent

    try:
        _scu_errors(run)
    finally:
        runtime.close()


@app.command()
def find(
    peer: Annotated[str, typer.Argument(help="Peer name, AE title or AE@host:port.")],
    key: KeyOption = None,
    level: LevelOption = None,
    patient_root: PatientRootOption = False,
) -> None:
    """C-FIND on a peer and print the matches."""
    from dicomhub.cli.scu import run_find

    runtime = _runtime(_settings())
    try:
        _scu_errors(lambda: run_find(runtime, peer, key or [], level, patient_root, Console()) >= 0)
    finally:
        runtime.close()


@app.command()
def retrieve(
    peer: Annotated[str, typer.Argument(help="Peer name, AE title or AE@host:port.")],
    key: KeyOption = None,
    level: LevelOption = None,
    patient_root: PatientRootOption = False,
    method: Annotated[
        str, typer.Option("--method", "-m", help="move (to dicomhub's AE) or get.")
    ] = "move",
) -> None:
    """Retrieve from a peer into dicomhub (C-MOVE to dicomhub, or C-GET)."""
    from dicomhub.cli.scu import UsageError, run_retrieve

    runtime = _runtime(_settings())

    def run() -> bool:
        if method not in {"move", "get"}:
            raise UsageError(f"--method must be move or get, not {method!r}")
        if not key:
            raise UsageError("give the unique keys to retrieve with -k")
        return run_retrieve(runtime, peer, key, level, patient_root, method, Console())

    try:
        _scu_errors(run)
    finally:
        runtime.close()


def _display_url(settings: Settings) -> str:
    from dicomhub.config import _hide_password

    return _hide_password(settings.effective_database_url)


def main() -> None:
    """Console-script entry point."""
    app()
