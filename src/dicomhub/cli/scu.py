"""``dicomhub echo / send / find / retrieve``: dicomhub as a DICOM user of a peer.

``send --commit`` then asks the peer for storage commitment of what it accepted.

A peer is named by its name in the configuration or the peer list, by its AE title, or
written out as ``AE@host:port``.  Queries are given as ``-k Keyword=value`` pairs, as with
DCMTK's findscu (``-k Keyword`` alone asks for the attribute without matching on it).
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dicomhub.config import PeerConfig, validate_ae_title
from dicomhub.dicom.scu import StoreSCU, SubOperation
from dicomhub.errors import PeerUnavailable
from dicomhub.index.attributes import UNIQUE_KEYS, Level
from dicomhub.index.commitments import Outcome, State, Transaction
from dicomhub.index.query import InformationModel
from dicomhub.index.repository import StoredInstance
from dicomhub.index.retrieve import RetrieveLocator
from dicomhub.runtime import Runtime

if TYPE_CHECKING:
    from dicomhub.dicom.server import Listener

_ADDRESS = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:]+):(?P<port>\d{1,5})$")


class UsageError(Exception):
    """The command line cannot be carried out; the message says why."""


def resolve_peer(runtime: Runtime, name: str) -> PeerConfig:
    """A peer by name, by AE title, or from ``AE@host:port``."""
    peers = runtime.access.peers()
    if name in peers:
        return peers[name]
    by_title = runtime.access.peer_for(name)
    if by_title is not None:
        return by_title
    match = _ADDRESS.match(name)
    if match:
        try:
            return PeerConfig(
                ae_title=validate_ae_title(match["ae"]),
                host=match["host"],
                port=int(match["port"]),
            )
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from exc
    known = ", ".join(sorted(peers)) or "none declared"
    raise UsageError(
        f"unknown peer {name!r} (known: {known}); give a peer name, an AE title or AE@host:port"
    )


def parse_keys(keys: Sequence[str], level: str | None) -> Dataset:
    """An identifier from ``Keyword=value`` / ``Keyword`` pairs (values as DICOM text)."""
    identifier = Dataset()
    for key in keys:
        keyword, _, value = key.partition("=")
        keyword = keyword.strip()
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise UsageError(f"-k {key}: {keyword!r} is not a DICOM keyword")
        vr = str(dictionary_VR(tag))
        if vr == "SQ":
            identifier.add_new(tag, vr, [])
            continue
        parsed: object = value if value else None
        if value and "\\" in value:
            parsed = value.split("\\")
        identifier.add_new(tag, vr, parsed)
    if level:
        identifier.QueryRetrieveLevel = level.upper()
    if "QueryRetrieveLevel" not in identifier:
        identifier.QueryRetrieveLevel = "STUDY"
    return identifier


def _progress(console: Console, label: str) -> Progress:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, transient=False)


# echo ------------------------------------------------------------------------------------


def run_echo(runtime: Runtime, name: str, console: Console) -> bool:
    """C-ECHO a peer and print the outcome."""
    from dicomhub.dicom.qr_scu import echo

    peer = resolve_peer(runtime, name)
    status, seconds = echo(runtime.settings, peer)
    console.print(
        f"C-ECHO {peer.ae_title}@{peer.host}:{peer.port}: status 0x{status:04X} "
        f"in {seconds * 1000:.0f} ms",
        markup=False,
    )
    return status == 0x0000


# send ------------------------------------------------------------------------------------


def select_instances(
    runtime: Runtime, uids: Sequence[str], keys: Sequence[str], level: str | None
) -> list[StoredInstance]:
    """Stored instances named by UIDs (study, series or instance) or selected by a query."""
    locator = RetrieveLocator(runtime.db)
    model = InformationModel.STUDY_ROOT
    found: dict[str, StoredInstance] = {}
    for uid in uids:
        matched = locator.by_uid(uid)
        if not matched:
            raise UsageError(f"no stored study, series or instance has the UID {uid}")
        found.update((i.sop_instance_uid, i) for i in matched)
    if keys:
        query = parse_keys(keys, level)
        query_level = Level(str(query.QueryRetrieveLevel))
        if query_level is Level.PATIENT:
            raise UsageError("send selects studies, series or instances: use another level")
        unique = UNIQUE_KEYS[query_level]
        if unique not in query:
            setattr(query, unique, "")
        values = [str(m.get(unique)) for m in runtime.finder.find(query, model)]
        if values:
            identifier = Dataset()
            identifier.QueryRetrieveLevel = query_level.value
            setattr(identifier, unique, values)
            found.update((i.sop_instance_uid, i) for i in locator.instances(identifier, model))
    return list(found.values())


def run_send(
    runtime: Runtime, name: str, instances: list[StoredInstance], console: Console
) -> list[SubOperation]:
    """C-STORE instances to a peer on one association, with a progress bar."""
    peer = resolve_peer(runtime, name)
    results: list[SubOperation] = []
    with (
        _progress(console, f"sending to {peer.ae_title}") as progress,
        StoreSCU(runtime.settings, peer, runtime.blobs, instances) as scu,
    ):
        task = progress.add_task("send", total=len(instances))
        for instance in instances:
            results.append(scu.send(instance))
            progress.advance(task)
    return results


def print_send_summary(results: list[SubOperation], console: Console) -> None:
    """Counts, then every failure with its status."""
    sent = sum(1 for r in results if r.status == 0x0000)
    warned = sum(1 for r in results if r.ok and r.status != 0x0000)
    failed = [r for r in results if not r.ok]
    console.print(f"send: {sent} sent, {warned} with warnings, {len(failed)} failed")
    for result in failed:
        console.print(
            f"  {result.sop_instance_uid}: 0x{result.status:04X} {result.comment}",
            markup=False,
            highlight=False,
        )


def run_commit(
    runtime: Runtime,
    name: str,
    references: Sequence[tuple[str, str]],
    wait: float | None,
    console: Console,
) -> bool:
    """Request storage commitment of ``references`` and print the outcome; False when an
    instance is not committed (reported failed, or the request failed)."""
    from dicomhub.dicom.bindings import storage_commitment
    from dicomhub.dicom.commitment_scu import (
        CommitmentRefused,
        CommitmentUnreachable,
        request_commitment,
    )

    if not references:
        console.print("storage commitment: nothing was sent, nothing to commit", markup=False)
        return False
    peer = resolve_peer(runtime, name)
    settings = runtime.settings
    service = storage_commitment(runtime)
    listener = _OwnListener(runtime)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(listener)
        except PeerUnavailable as exc:
            console.print(
                f"note: {exc}; a report can only come on the requesting association",
                markup=False,
            )
        try:
            transaction = request_commitment(
                settings,
                peer,
                references,
                service,
                wait=settings.commitment_wait if wait is None else wait,
            )
        except (CommitmentRefused, CommitmentUnreachable) as exc:
            print_commitment(exc.transaction, console, reason=exc.message)
            return False
    print_commitment(transaction, console, temporary_listener=listener.server is not None)
    return transaction.state is not State.FAILED


def print_commitment(
    transaction: Transaction,
    console: Console,
    *,
    reason: str = "",
    temporary_listener: bool = False,
) -> None:
    """The outcome of a storage commitment request, with every instance not committed."""
    head = f"storage commitment {transaction.transaction_uid} ({transaction.peer_ae_title})"
    total = len(transaction.items)
    if reason:
        console.print(f"{head}: failed: {reason}", markup=False, highlight=False)
    elif transaction.state is State.COMMITTED:
        console.print(f"{head}: committed, {total} instances", markup=False, highlight=False)
    elif transaction.state is State.REQUESTED:
        where = (
            "dicomhub's listener is not running: start `dicomhub serve` so that the report "
            "is recorded when the peer sends it"
            if temporary_listener
            else "the report will be recorded when it arrives on dicomhub's listener"
        )
        console.print(
            f"{head}: requested for {total} instances, no report yet; {where}; "
            "see `dicomhub commitments`",
            markup=False,
            highlight=False,
        )
    else:
        committed = len(transaction.committed)
        console.print(
            f"{head}: {transaction.state.value}: {committed} committed, "
            f"{len(transaction.failed)} failed",
            markup=False,
            highlight=False,
        )
    for item in transaction.items:
        if item.outcome is not Outcome.FAILED:
            continue
        reason_code = "-" if item.failure_reason is None else f"0x{item.failure_reason:04X}"
        console.print(
            f"  {item.sop_instance_uid}: FailureReason {reason_code} {item.detail}".rstrip(),
            markup=False,
            highlight=False,
        )


# find ------------------------------------------------------------------------------------


def run_find(
    runtime: Runtime,
    name: str,
    keys: Sequence[str],
    level: str | None,
    patient_root: bool,
    console: Console,
) -> int:
    """C-FIND and print a table of the matches; the number of matches."""
    from dicomhub.dicom.qr_scu import find

    peer = resolve_peer(runtime, name)
    identifier = parse_keys(keys, level)
    columns = [e.keyword for e in identifier if e.keyword and e.keyword != "QueryRetrieveLevel"]
    table = Table(*(columns or ["QueryRetrieveLevel"]))
    count = 0
    for match in find(runtime.settings, peer, identifier, patient_root=patient_root):
        count += 1
        table.add_row(*(_text(match, keyword) for keyword in columns or ["QueryRetrieveLevel"]))
    console.print(table)
    console.print(f"{count} matches from {peer.ae_title}")
    return count


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "\\".join(str(v) for v in value)
    return str(value)


# retrieve ---------------------------------------------------------------------------------


def run_retrieve(
    runtime: Runtime,
    name: str,
    keys: Sequence[str],
    level: str | None,
    patient_root: bool,
    method: str,
    console: Console,
) -> bool:
    """C-MOVE (to dicomhub's own AE) or C-GET from a peer; what arrives is ingested."""
    from dicomhub.dicom import qr_scu

    peer = resolve_peer(runtime, name)
    identifier = parse_keys(keys, level)
    settings = runtime.settings
    with _progress(console, f"retrieving from {peer.ae_title}") as progress:
        task = progress.add_task("retrieve", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if method == "get":
            outcome = qr_scu.get(
                settings,
                peer,
                identifier,
                runtime.ingest,
                runtime.blobs,
                patient_root=patient_root,
                progress=advance,
            )
        else:
            with _OwnListener(runtime):
                outcome = qr_scu.move(
                    settings,
                    peer,
                    identifier,
                    settings.ae_title,
                    patient_root=patient_root,
                    progress=advance,
                )
    console.print(
        f"{method.upper()} from {peer.ae_title}: status 0x{outcome.status:04X}, "
        f"{outcome.completed} completed, {outcome.failed} failed, {outcome.warning} warnings"
        + (f" ({outcome.comment})" if outcome.comment else ""),
        markup=False,
    )
    for uid in outcome.failed_uids:
        console.print(f"  failed: {uid}", markup=False)
    return outcome.ok


class _OwnListener:
    """A C-MOVE to dicomhub needs its listener: use the running one, or start one meanwhile."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: Listener | None = None

    def __enter__(self) -> None:
        settings = self.runtime.settings
        host = "127.0.0.1" if settings.bind in {"", "0.0.0.0"} else settings.bind  # noqa: S104
        try:
            with socket.create_connection((host, settings.dicom_port), timeout=2):
                return
        except OSError:
            pass
        from dicomhub.dicom.server import create_listener

        listener = create_listener(self.runtime)
        try:
            listener.start()
        except OSError as exc:
            raise PeerUnavailable(
                f"dicomhub's listener is not running and port {settings.dicom_port} "
                f"cannot be opened: {exc}"
            ) from exc
        self.server = listener

    def __exit__(self, *_: object) -> None:
        if self.server is not None:
            self.server.stop()
