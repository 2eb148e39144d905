"""``dicomhub verify``: every blob against its checksum and index row; orphans and losses."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from dicomhub.index.repository import IndexRepository, matches
from dicomhub.storage.base import BlobStore


@dataclass
class VerifyReport:
    """What ``verify`` found."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not (self.missing or self.corrupt or self.orphaned)


def verify(repository: IndexRepository, blobs: BlobStore, console: Console) -> VerifyReport:
    """Re-hash every indexed blob and look for blobs no index row refers to."""
    report = VerifyReport()
    known: set[str] = set()
    total = repository.count_instances()
    with Progress(
        TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("verify", total=total)
        for stored in repository.iter_instances():
            known.add(stored.blob_key)
            report.checked += 1
            if not blobs.exists(stored.blob_key):
                report.missing.append(f"{stored.sop_instance_uid} (blob {stored.blob_key})")
            elif not matches(blobs.digests(stored.blob_key), stored):
                report.corrupt.append(f"{stored.sop_instance_uid} (blob {stored.blob_key})")
            progress.advance(task)
    report.orphaned = [key for key in blobs.all_keys() if key not in known]
    return report


def print_report(report: VerifyReport, console: Console) -> None:
    """Human summary of a verification."""
    console.print(
        f"verified {report.checked} instances: {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt, {len(report.orphaned)} orphaned files"
    )
    for label, items in (
        ("missing", report.missing),
        ("corrupt", report.corrupt),
        ("orphaned", report.orphaned),
    ):
        for item in items:
            console.print(f"  {label}: {item}", markup=False, highlight=False)
