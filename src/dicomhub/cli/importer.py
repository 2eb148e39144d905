"""``dicomhub import``: files and folders through the ingest path, with a progress bar."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dicomhub.errors import DicomhubError
from dicomhub.ingest import Ingest, IngestRequest, StoreStatus


@dataclass
class ImportSummary:
    """Counts per outcome and the reason of every rejection."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[tuple[Path, str]] = field(default_factory=list)


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and files under folders named (recursively), in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path} does not exist")


def import_paths(ingest: Ingest, paths: list[Path], console: Console) -> ImportSummary:
    """Ingest every file; never stops on a bad file."""
    files = list(iter_files(paths))
    summary = ImportSummary()
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("import", total=len(files))
        for path in files:
            try:
                result = ingest.store(IngestRequest(path=path, take=False, source="import"))
                summary.counts[result.status.value] += 1
            except DicomhubError as exc:
                summary.counts["rejected"] += 1
                summary.rejected.append((path, f"{exc} (0x{exc.dimse_status:04X})"))
            progress.advance(task)
    return summary


def print_summary(summary: ImportSummary, console: Console) -> None:
    """Print the summary table and the rejected files with their reasons."""
    parts = [f"{summary.counts[s.value]} {s.value}" for s in StoreStatus]
    parts.append(f"{summary.counts['rejected']} rejected")
    console.print("import: " + ", ".join(parts))
    for path, reason in summary.rejected:
        console.print(f"  rejected {path}: {reason}", markup=False, highlight=False)
