"""Measurements of the ingest benchmark and the tables printed from them.

Throughput and memory are in MB = 10^6 bytes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

MB = 1_000_000
RECEIVER_LABELS = {
    "dicomhub": "dicomhub",
    "dicomhub-2w": "dicomhub 2 workers",
    "orthanc": "Orthanc",
    "storescp": "storescp",
    "storescp-fork": "storescp --fork",
}
DATASET_SHORT = {"ct": "CT", "small": "small"}


class Rates:
    """Throughput of a run that moved ``instances`` objects of ``bytes`` in ``wall_seconds``."""

    instances: int
    bytes: int
    wall_seconds: float | None

    @property
    def instances_per_second(self) -> float | None:
        """Instances per second of wall time."""
        return self.instances / self.wall_seconds if self.wall_seconds else None

    @property
    def mb_per_second(self) -> float | None:
        """MB of DICOM files per second of wall time."""
        return self.bytes / MB / self.wall_seconds if self.wall_seconds else None


@dataclass
class Measurement(Rates):
    """One receiver receiving one data set over N associations."""

    receiver: str
    dataset: str
    dataset_label: str
    associations: int
    instances: int
    bytes: int
    wall_seconds: float | None = None
    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    client_cpu_seconds: float | None = None
    other_cpu_seconds: float | None = None
    """Machine-wide busy CPU during the send minus the receiver's and storescu's: the
    benchmark itself (``harness_cpu_seconds``) plus anything else running on the machine."""
    harness_cpu_seconds: float | None = None
    other_processes: list[str] = field(default_factory=list)
    """The other processes that used the most CPU during the send."""
    stored: int | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    receiver_log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every instance stored and no error."""
        return self.stored == self.instances and not self.errors

    @property
    def peak_rss_mb(self) -> float | None:
        """Peak resident memory of the receiver in MB."""
        return None if self.peak_rss_bytes is None else self.peak_rss_bytes / MB

    def metrics(self) -> list[float | None]:
        """The four compared columns: instances/s, MB/s, CPU seconds, peak RSS MB."""
        return [self.instances_per_second, self.mb_per_second, self.cpu_seconds, self.peak_rss_mb]


METRIC_NAMES = ["inst/s", "MB/s", "CPU s", "peak RSS MB"]


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(cells: list[str], widths: list[int], left: int) -> str:
    """Cells padded to ``widths``: the first ``left`` ones left-aligned, the rest right."""
    return "  ".join(
        c.ljust(w) if i < left else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths, left), "  ".join("-" * w for w in widths)]
    lines += [_row(r, widths, left) for r in rows]
    return "\n".join(lines)


def results_table(results: list[Measurement]) -> str:
    """Rows = receiver x data set x associations; columns = the measured values."""
    header = [
        "receiver",
        "data set",
        "assoc",
        *METRIC_NAMES,
        "wall s",
        "storescu CPU s",
        "other CPU s",
        "stored",
        "status",
    ]
    rows = []
    for m in results:
        status = "ok" if m.ok else f"FAILED ({len(m.errors)} errors)"
        rows.append(
            [
                RECEIVER_LABELS[m.receiver],
                m.dataset_label,
                str(m.associations),
                _num(m.instances_per_second),
                _num(m.mb_per_second),
                _num(m.cpu_seconds),
                _num(m.peak_rss_mb),
                _num(m.wall_seconds, 2),
                _num(m.client_cpu_seconds),
                _num(m.other_cpu_seconds),
                f"{'-' if m.stored is None else m.stored}/{m.instances}",
                status,
            ]
        )
    return _table(header, rows, left=2)


def _config_name(m: Measurement) -> str:
    return f"{DATASET_SHORT.get(m.dataset, m.dataset)} {m.associations} assoc"


def ratio_table(results: list[Measurement]) -> str:
    """Each dicomhub variant / Orthanc and / storescp per metric, one column per configuration."""
    by_key = {(m.receiver, _config_name(m)): m for m in results}
    configs = list(dict.fromkeys(_config_name(m) for m in results))
    variants = [v for v in ("dicomhub", "dicomhub-2w") if any(m.receiver == v for m in results)]
    rows = []
    for index, metric in enumerate(METRIC_NAMES):
        for variant, other in ((v, o) for v in variants for o in ("orthanc", "storescp")):
            cells = [f"{metric}: {RECEIVER_LABELS[variant]} / {RECEIVER_LABELS[other]}"]
            for config in configs:
                ours, theirs = by_key.get((variant, config)), by_key.get((other, config))
                a = ours.metrics()[index] if ours else None
                b = theirs.metrics()[index] if theirs else None
                cells.append(_num(a / b, 2) if a is not None and b else "-")
            rows.append(cells)
    return _table(["ratio", *configs], rows)


def round_ratio_table(runs: dict[tuple[str, str, int], list[Measurement]], rounds: int) -> str:
    """Each dicomhub variant / Orthanc inst/s, round by round: the two ran minutes apart at
    most, so this ratio is the one a drifting machine disturbs least.  One row per round,
    then the lowest and the median."""
    configs: dict[str, tuple[str, int]] = {}
    for (_, dataset, associations), measured in runs.items():
        configs.setdefault(_config_name(measured[0]), (dataset, associations))
    variants = [v for v in ("dicomhub", "dicomhub-2w") if any(k[0] == v for k in runs)]
    rows = []
    for variant in variants:
        per_config: list[list[float | None]] = []
        for dataset, associations in configs.values():
            ours = runs.get((variant, dataset, associations), [])
            theirs = runs.get(("orthanc", dataset, associations), [])
            ratios: list[float | None] = []
            for i in range(rounds):
                a = ours[i].instances_per_second if i < len(ours) and ours[i].ok else None
                b = theirs[i].instances_per_second if i < len(theirs) and theirs[i].ok else None
                ratios.append(a / b if a is not None and b else None)
            per_config.append(ratios)
        label = f"{RECEIVER_LABELS[variant]} / Orthanc inst/s"
        for i in range(rounds):
            rows.append([f"{label}, round {i + 1}", *(_num(r[i], 2) for r in per_config)])
        for name, pick in (("lowest", min), ("median", statistics.median)):
            cells = []
            for ratios in per_config:
                known = [r for r in ratios if r is not None]
                cells.append(_num(pick(known), 2) if known else "-")
            rows.append([f"{label}, {name}", *cells])
    if not rows:
        return ""
    return _table(["ratio by round", *configs], rows)
