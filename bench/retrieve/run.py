"""Retrieve benchmark: C-MOVE of one CT study from dicomhub and from Orthanc to DCMTK storescp.

Run from the repository root::

    .venv/bin/python bench/retrieve/run.py [--repeat 3]

Both servers hold the same generated study and run side by side for the whole session; DCMTK
movescu asks each in turn, alternating, to move the study to the same storescp.  See README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from sources import (
    INGEST,
    Destination,
    HubSource,
    OrthancSource,
    move,
    movescu_available,
)

if str(INGEST) not in sys.path:
    sys.path.insert(0, str(INGEST))

from gendata import DataSet, ensure_ct
from procstat import (
    Sampler,
    busiest,
    cpu_seconds,
    descendants,
    machine_busy_seconds,
    process_cpu_table,
)
from receivers import ReceiverError
from report import Rates

HERE = Path(__file__).resolve().parent
LABELS = {"dicomhub": "dicomhub", "orthanc": "Orthanc"}
BUSY_OTHER = 0.25
"""Fraction of one core used by other work during a move above which a run is flagged."""

Source = HubSource | OrthancSource


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--instances", type=int, default=800, help="CT slices in the study (default 800)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="moves per server, alternating (default 3)"
    )
    parser.add_argument(
        "--warmup", type=int, default=0, help="unmeasured moves per server first (default 0)"
    )
    parser.add_argument(
        "--sources",
        default="dicomhub,orthanc",
        help="comma-separated, from dicomhub, orthanc (default %(default)s)",
    )
    parser.add_argument(
        "--dest-ignore",
        action="store_true",
        help="run storescp with --ignore: receive every object but write no file",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed for one move or load"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "dicomhub-bench-data",
        help="cache folder of the generated study (default %(default)s)",
    )
    parser.add_argument("--tmp", type=Path, help="parent folder of the servers' storage")
    parser.add_argument("--no-json", action="store_true", help="do not write results/*.json")
    args = parser.parse_args(argv)
    args.sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = set(args.sources) - set(LABELS)
    if unknown or not args.sources:
        parser.error(f"unknown sources: {', '.join(sorted(unknown)) or '(none)'}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


@dataclass
class Run(Rates):
    """One C-MOVE of the whole study from one server."""

    source: str
    run: int
    instances: int
    bytes: int
    wall_seconds: float | None = None
    source_cpu_seconds: float | None = None
    dest_cpu_seconds: float | None = None
    movescu_cpu_seconds: float | None = None
    other_cpu_seconds: float | None = None
    """Machine-wide busy CPU during the move minus the server's, storescp's and movescu's."""
    other_processes: list[str] = field(default_factory=list)
    """The other processes that used the most CPU during the move."""
    source_logged_seconds: float | None = None
    """The move's duration as dicomhub logs it (from the request to the last sub-operation)."""
    received: int | None = None
    files_written: int | None = None
    final_status: str | None = None
    pending_responses: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Final status Success, every instance received, no error."""
        return self.received == self.instances and not self.errors

    @property
    def cpu_ms_per_instance(self) -> float | None:
        """The server's CPU milliseconds per instance moved."""
        if self.source_cpu_seconds is None:
            return None
        return 1000 * self.source_cpu_seconds / self.instances


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_load(seconds: float = 2.0) -> float:
    """Cores the whole machine keeps busy over ``seconds`` (before any server starts)."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def wait_received(dest: Destination, expected: int, start: int, limit: float = 5.0) -> int:
    """Store requests storescp logged since ``start``, waiting a little for the last lines."""
    deadline = time.monotonic() + limit
    while True:
        received = dest.store_requests() - start
        if received >= expected or time.monotonic() > deadline:
            return received
        time.sleep(0.1)


def measure(
    name: str,
    source: Source,
    dest: Destination,
    data: DataSet,
    study_uid: str,
    number: int,
    log_dir: Path,
    timeout: float,
) -> Run:
    """Move the whole study from ``source`` to ``dest`` once and check what arrived."""
    r = Run(name, number, len(data.files), data.total_bytes)
    try:
        dest.clear()
        os.sync()
        before = dest.store_requests()
        logged_before = len(source.move_lines()) if isinstance(source, HubSource) else 0
        sampler = Sampler(source.pid)
        dest_cpu, machine, children = (
            cpu_seconds(dest.pid),
            machine_busy_seconds(),
            _children_cpu(),
        )
        processes = process_cpu_table()
        sampler.start()
        result = move(source, study_uid, log_dir / f"movescu-{name}-{number}.log", timeout)
        usage = sampler.stop()
        dest_cpu = cpu_seconds(dest.pid) - dest_cpu
        machine = machine_busy_seconds() - machine
        ours = {os.getpid(), source.pid, dest.pid, *descendants(source.pid)}
        r.other_processes = busiest(processes, process_cpu_table(), ours)
        r.movescu_cpu_seconds = _children_cpu() - children
        r.wall_seconds = result.wall_seconds
        r.source_cpu_seconds, r.dest_cpu_seconds = usage.cpu_seconds, dest_cpu
        used = usage.cpu_seconds + dest_cpu + r.movescu_cpu_seconds
        r.other_cpu_seconds = max(0.0, machine - used)
        r.final_status, r.pending_responses = result.final_status, result.pending_responses
        r.errors += result.errors
        r.warnings += result.warnings
        r.received = wait_received(dest, r.instances, before)
        if r.received != r.instances:
            r.errors.append(f"storescp received {r.received} of {r.instances} instances")
        if not dest.ignore:
            r.files_written = dest.stored_count()
            if r.files_written != r.instances:
                r.errors.append(f"storescp wrote {r.files_written} of {r.instances} files")
        if isinstance(source, HubSource):
            logged = source.move_lines()[logged_before:]
            if logged:
                r.source_logged_seconds = logged[-1][1]
    except Exception as exc:  # a broken run is reported, the others still run
        r.errors.append(f"{type(exc).__name__}: {exc}")
    return r


def median_run(runs: list[Run]) -> Run:
    """A failed run if any, else the run with the median wall time."""
    failed = [r for r in runs if not r.ok]
    if failed:
        return failed[0]
    target = statistics.median_low(r.wall_seconds or 0.0 for r in runs)
    return next(r for r in runs if r.wall_seconds == target)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def results_table(by_source: dict[str, list[Run]], data: DataSet) -> str:
    """One row per server: the median run, and every run's inst/s."""
    header = [
        "server",
        "study",
        "inst/s",
        "MB/s",
        "wall s",
        "CPU s",
        "CPU ms/inst",
        "storescp CPU s",
        "other CPU s",
        "inst/s of each run",
        "received",
        "status",
    ]
    rows = []
    for name, runs in by_source.items():
        m = median_run(runs)
        failed = sum(1 for r in runs if not r.ok)
        rows.append(
            [
                LABELS[name],
                data.label,
                _num(m.instances_per_second),
                _num(m.mb_per_second),
                _num(m.wall_seconds, 2),
                _num(m.source_cpu_seconds, 2),
                _num(m.cpu_ms_per_instance, 2),
                _num(m.dest_cpu_seconds),
                _num(m.other_cpu_seconds),
                " ".join(_num(r.instances_per_second) for r in runs),
                f"{'-' if m.received is None else m.received}/{m.instances}",
                "ok" if not failed else f"FAILED ({failed} of {len(runs)} runs)",
            ]
        )
    return _table(header, rows, left=2)


def ratio_table(by_source: dict[str, list[Run]]) -> str:
    """dicomhub / Orthanc for throughput and CPU, from the median runs."""
    if not {"dicomhub", "orthanc"} <= by_source.keys():
        return ""
    ours, theirs = median_run(by_source["dicomhub"]), median_run(by_source["orthanc"])
    rows = []
    for metric, a, b in (
        ("inst/s", ours.instances_per_second, theirs.instances_per_second),
        ("CPU s", ours.source_cpu_seconds, theirs.source_cpu_seconds),
    ):
        rows.append([f"{metric}: dicomhub / Orthanc", _num(a / b, 2) if a and b else "-"])
    return _table(["ratio", "C-MOVE"], rows)


def print_problems(
    every_run: list[Run], logs: dict[str, list[str]], loads: dict[str, float], limit: int = 5
) -> None:
    """Errors and warnings of each run, the servers' log lines, and outside load."""
    for r in every_run:
        for title, lines in (("errors", r.errors), ("movescu warnings", r.warnings)):
            if lines:
                print(f"\n{LABELS[r.source]} run {r.run}: {len(lines)} {title}")
                for line in lines[:limit]:
                    print(f"  {line[:300]}")
        other, wall = r.other_cpu_seconds or 0.0, r.wall_seconds or 0.0
        if wall and other > BUSY_OTHER * wall:
            print(
                f"\n{LABELS[r.source]} run {r.run}: {other:.1f} CPU s in {wall:.1f} s went to "
                "other work (network and I/O in the kernel, other load); busiest other "
                f"processes: {'; '.join(r.other_processes) or 'none seen'}"
            )
    for name, lines in logs.items():
        if lines:
            print(f"\n{name} log: {len(lines)} warning or error lines")
            for line in lines[: limit * 2]:
                print(f"  {line[:300]}")
    hub = [r for r in every_run if r.source == "dicomhub" and r.source_logged_seconds is not None]
    if hub:
        pairs = ", ".join(f"{r.source_logged_seconds:.1f}/{r.wall_seconds or 0:.2f}" for r in hub)
        print(f"\ndicomhub's logged C-MOVE seconds / movescu wall seconds: {pairs}")
    print(
        "load times: "
        + ", ".join(f"{LABELS[name]} {seconds:.1f} s" for name, seconds in loads.items())
    )


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def environment() -> dict[str, str]:
    """Versions and machine facts recorded with the results."""
    return {
        "dicomhub_commit": _version(["git", "-C", str(HERE), "describe", "--always", "--dirty"]),
        "dcmtk": _version(["movescu", "--version"]),
        "orthanc": _version(["Orthanc", "--version"]),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


def start_sources(
    args: argparse.Namespace, data: DataSet, dest: Destination, log_dir: Path, stack: ExitStack
) -> tuple[dict[str, Source], dict[str, float]]:
    """Start and load the chosen servers; each is stopped when ``stack`` closes."""
    sources: dict[str, Source] = {}
    loads: dict[str, float] = {}
    for name in args.sources:
        if name == "dicomhub":
            hub = HubSource(args.tmp, log_dir / "dicomhub.log", dest)
            stack.callback(hub.stop)
            print("loading dicomhub (dicomhub import) ...", flush=True)
            loads[name] = hub.load(data, log_dir / "dicomhub-import.log", args.timeout)
            hub.start()
            sources[name] = hub
        else:
            orthanc = OrthancSource(args.tmp, log_dir / "orthanc.log", dest)
            stack.callback(orthanc.stop)
            orthanc.start()
            print("loading Orthanc (storescu) ...", flush=True)
            loads[name] = orthanc.load(data, log_dir / "orthanc-load", args.timeout)
            sources[name] = orthanc
    return sources, loads


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when a move failed, 2 when a server did not start."""
    args = parse_args(argv)
    if not movescu_available():
        print("DCMTK (movescu, storescp, storescu, echoscu) and Orthanc must be on the PATH")
        return 2
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = HERE / "results"
    log_dir = results_dir / f"logs-{stamp}"
    data = ensure_ct(args.data, args.instances)
    study_uid = str(pydicom.dcmread(data.files[0], stop_before_pixels=True).StudyInstanceUID)
    print(
        f"{data.label}: {len(data.files)} files, {data.total_bytes / 1e6:.1f} MB, study {study_uid}"
    )
    idle_load = machine_load()
    print(f"machine busy before starting: {idle_load:.2f} of {os.cpu_count()} cores")
    by_source: dict[str, list[Run]] = {name: [] for name in args.sources}
    logs: dict[str, list[str]] = {}
    with ExitStack() as stack:
        dest = Destination(args.tmp, log_dir / "storescp.log", ignore=args.dest_ignore)
        stack.callback(dest.stop)
        try:
            dest.start()
            sources, loads = start_sources(args, data, dest, log_dir, stack)
        except ReceiverError as exc:
            print(f"error: {exc}")
            return 2
        mode = "receives only (--ignore)" if args.dest_ignore else "writes files"
        print(f"destination: storescp on port {dest.port}, {mode}", flush=True)
        for number in range(-args.warmup + 1, args.repeat + 1):
            for name, source in sources.items():
                r = measure(name, source, dest, data, study_uid, number, log_dir, args.timeout)
                label = "warm-up" if number < 1 else f"run {number}"
                print(
                    f"{LABELS[name]:9} {label:8} {r.instances_per_second or 0:7.1f} inst/s "
                    f"{_num(r.source_cpu_seconds, 2):>6} CPU s  received {r.received}/"
                    f"{r.instances}  final {r.final_status}{'' if r.ok else '  FAILED'}",
                    flush=True,
                )
                if number >= 1:
                    by_source[name].append(r)
        for name, source in sources.items():
            logs[LABELS[name]] = source.log_problems()
        logs["storescp"] = dest.log_problems()
    every_run = [r for runs in by_source.values() for r in runs]
    print(f"\n{results_table(by_source, data)}\n\n{ratio_table(by_source)}")
    print_problems(every_run, logs, loads)
    elapsed = time.monotonic() - started
    print(f"\ntotal time {elapsed:.0f} s; logs in {log_dir}")
    if not args.no_json:
        results_dir.mkdir(parents=True, exist_ok=True)
        out = results_dir / f"retrieve-{stamp}.json"
        runs_json = [
            {
                **dataclasses.asdict(r),
                "instances_per_second": r.instances_per_second,
                "ok": r.ok,
            }
            for r in every_run
        ]
        out.write_text(
            json.dumps(
                {
                    "argv": sys.argv[1:],
                    "environment": environment(),
                    "destination_ignores": args.dest_ignore,
                    "machine_load_before": idle_load,
                    "load_seconds": loads,
                    "log_problems": logs,
                    "elapsed_seconds": elapsed,
                    "runs": runs_json,
                },
                indent=2,
            )
        )
        print(f"results written to {out}")
    return 0 if all(r.ok for r in every_run) else 1


if __name__ == "__main__":
    sys.exit(main())
