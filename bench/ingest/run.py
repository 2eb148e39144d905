"""Ingest benchmark: dicomhub against Orthanc and DCMTK storescp, fed by DCMTK storescu.

Run from the repository root::

    .venv/bin/python bench/ingest/run.py [--quick]

Each receiver x data set x association count gets a freshly started receiver with empty
storage, so every measurement stores every instance for the first time.  With ``--repeat N``
the receivers take turns in N rounds.  See README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gendata import DataSet, ensure_ct, ensure_small
from procstat import (
    Sampler,
    busiest,
    descendants,
    machine_busy_seconds,
    process_cpu_table,
    self_cpu_seconds,
)
from receivers import DEFAULT_RECEIVERS, RECEIVERS, Receiver
from report import Measurement, ratio_table, results_table, round_ratio_table
from sender import send

HERE = Path(__file__).resolve().parent
BUSY_OTHER = 0.25
"""Fraction of one core used by other work during a send above which a run is flagged."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 100 CT and 200 small instances"
    )
    parser.add_argument("--ct", type=int, help="CT instances (default 800, quick 100)")
    parser.add_argument("--small", type=int, help="small instances (default 2000, quick 200)")
    parser.add_argument(
        "--receivers",
        default=",".join(DEFAULT_RECEIVERS),
        help=f"comma-separated, from {', '.join(RECEIVERS)} (default %(default)s)",
    )
    parser.add_argument(
        "--associations",
        default="1,4",
        help="comma-separated parallel association counts (default %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per configuration; the median wall time is reported",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds allowed for one send (default %(default)s)",
    )
    parser.add_argument("--tmp", type=Path, help="parent folder of the receivers' storage")
    parser.add_argument("--no-json", action="store_true", help="do not write results/*.json")
    args = parser.parse_args(argv)
    args.ct = args.ct or (100 if args.quick else 800)
    args.small = args.small or (200 if args.quick else 2000)
    args.receivers = [r.strip() for r in args.receivers.split(",") if r.strip()]
    unknown = set(args.receivers) - set(RECEIVERS)
    if unknown:
        parser.error(f"unknown receivers: {', '.join(sorted(unknown))}")
    args.associations = [int(n) for n in args.associations.split(",")]
    return args


def warm(files: list[Path]) -> None:
    """Read every file once so that no receiver pays for the first read from disk."""
    for path in files:
        with path.open("rb") as stream:
            while stream.read(1 << 20):
                pass


def measure(
    kind: type[Receiver], data: DataSet, associations: int, args: argparse.Namespace, log_dir: Path
) -> Measurement:
    """Start a fresh receiver, send ``data`` over ``associations`` associations, stop it."""
    m = Measurement(
        kind.name, data.name, data.label, associations, len(data.files), data.total_bytes
    )
    warm(data.files)
    os.sync()
    receiver = kind(args.tmp, log_dir / f"{kind.name}.log")
    try:
        with receiver:
            sampler = Sampler(receiver.pid)
            machine, harness = machine_busy_seconds(), self_cpu_seconds()
            processes = process_cpu_table()
            sampler.start()
            sent = send(
                data.files, kind.ae_title, receiver.port, associations, log_dir, args.timeout
            )
            usage = sampler.stop()
            machine, harness = machine_busy_seconds() - machine, self_cpu_seconds() - harness
            ours = {os.getpid(), receiver.pid, *descendants(receiver.pid)}
            m.other_processes = busiest(processes, process_cpu_table(), ours)
            m.stored = receiver.stored_count()
            m.errors += receiver.consistency_problems()
        m.wall_seconds, m.client_cpu_seconds = sent.wall_seconds, sent.client_cpu_seconds
        m.cpu_seconds, m.peak_rss_bytes = usage.cpu_seconds, usage.peak_rss_bytes
        m.other_cpu_seconds = max(0.0, machine - usage.cpu_seconds - sent.client_cpu_seconds)
        m.harness_cpu_seconds = harness
        m.errors += sent.errors
        m.warnings += sent.warnings
        if sent.successes != m.instances:
            m.errors.append(f"storescu got {sent.successes} success responses for {m.instances}")
    except Exception as exc:  # a broken run is reported, the others still run
        m.errors.append(f"{type(exc).__name__}: {exc}")
    m.receiver_log = receiver.log_problems()
    if m.stored is not None and m.stored != m.instances:
        m.errors.append(f"{kind.name} holds {m.stored} of {m.instances} instances sent")
    os.sync()
    return m


def median_run(runs: list[Measurement]) -> Measurement:
    """The run with the median wall time (failed runs are reported first)."""
    failed = [r for r in runs if not r.ok]
    if failed or len(runs) == 1:
        return failed[0] if failed else runs[0]
    target = statistics.median_low(r.wall_seconds or 0.0 for r in runs)
    return next(r for r in runs if r.wall_seconds == target)


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else ""


def environment() -> dict[str, str]:
    """Versions and machine facts recorded with the results."""
    return {
        "dicomhub_commit": _version(["git", "-C", str(HERE), "describe", "--always", "--dirty"]),
        "dcmtk": _version(["storescu", "--version"]),
        "orthanc": _version(["Orthanc", "--version"]),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


def print_problems(results: list[Measurement], limit: int = 5) -> None:
    """Errors, storescu warnings, receiver log lines (a few of each) and outside load."""
    for m in results:
        for title, lines in (
            ("errors", m.errors),
            ("storescu warnings", m.warnings),
            (f"{m.receiver} log lines", m.receiver_log),
        ):
            if lines:
                print(
                    f"\n{m.receiver} / {m.dataset_label} / {m.associations} assoc: "
                    f"{len(lines)} {title}"
                )
                for line in lines[:limit]:
                    print(f"  {line[:300]}")
        other, wall = m.other_cpu_seconds or 0.0, m.wall_seconds or 0.0
        if wall and other > BUSY_OTHER * wall:
            print(
                f"\n{m.receiver} / {m.dataset_label} / {m.associations} assoc: {other:.1f} CPU s "
                f"in {wall:.1f} s went to other work (kernel I/O threads, other load); "
                f"busiest other processes: {'; '.join(m.other_processes) or 'none seen'}"
            )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when any instance was not stored."""
    args = parse_args(argv)
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = HERE / "results"
    data_root = HERE / "data"
    datasets = [ensure_ct(data_root, args.ct), ensure_small(data_root, args.small)]
    for data in datasets:
        print(f"{data.label}: {len(data.files)} files, {data.total_bytes / 1e6:.1f} MB")
    every_run: list[Measurement] = []
    runs: dict[tuple[str, str, int], list[Measurement]] = {}
    for attempt in range(args.repeat):
        # Rounds, not blocks: every receiver takes each configuration in turn, the order
        # rotating from round to round, so that a machine that drifts during the run (shared
        # hosts do) moves every receiver's figures alike instead of one receiver's block.
        shift = attempt % len(args.receivers)
        order = args.receivers[shift:] + args.receivers[:shift]
        for data in datasets:
            for associations in args.associations:
                for name in order:
                    log_dir = (
                        results_dir
                        / f"logs-{stamp}"
                        / f"{name}-{data.name}-{associations}-{attempt + 1}"
                    )
                    m = measure(RECEIVERS[name], data, associations, args, log_dir)
                    runs.setdefault((name, data.name, associations), []).append(m)
                    every_run.append(m)
                    print(
                        f"round {attempt + 1} {name:13} {data.label:16} {associations} assoc: "
                        f"{m.instances_per_second or 0:7.1f} inst/s "
                        f"{m.mb_per_second or 0:6.1f} MB/s  stored {m.stored}/{m.instances}"
                        f"{'' if m.ok else '  FAILED'}",
                        flush=True,
                    )
    chosen = [
        median_run(runs[(name, data.name, associations)])
        for name in args.receivers
        for data in datasets
        for associations in args.associations
    ]
    print(f"\n{results_table(chosen)}\n\n{ratio_table(chosen)}")
    if args.repeat > 1:
        print(f"\n{round_ratio_table(runs, args.repeat)}")
    print_problems(chosen)
    elapsed = time.monotonic() - started
    print(f"\ntotal time {elapsed:.0f} s; logs in {results_dir / f'logs-{stamp}'}")
    if not args.no_json:
        results_dir.mkdir(parents=True, exist_ok=True)
        out = results_dir / f"ingest-{stamp}.json"
        runs_json = [
            {
                **dataclasses.asdict(m),
                "instances_per_second": m.instances_per_second,
                "mb_per_second": m.mb_per_second,
                "ok": m.ok,
            }
            for m in every_run
        ]
        out.write_text(
            json.dumps(
                {
                    "argv": sys.argv[1:],
                    "environment": environment(),
                    "elapsed_seconds": elapsed,
                    "runs": runs_json,
                },
                indent=2,
            )
        )
        print(f"results written to {out}")
    return 0 if all(m.ok for m in every_run) else 1


if __name__ == "__main__":
    sys.exit(main())
