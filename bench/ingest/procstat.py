"""CPU time and peak resident memory of a process tree, read from ``/proc``."""

from __future__ import annotations

import os
import resource
import threading
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the command name (field 3 is index 0)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children of every thread, recursively)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            found.extend(children)
            todo.extend(children)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid``, its reaped children and its live descendants."""
    fields = _stat(pid)
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    for child in descendants(pid):
        try:
            ticks += sum(int(f) for f in _stat(child)[11:13])
        except (OSError, ValueError):
            continue
    return ticks / CLOCK_TICKS


def peak_rss_bytes(pid: int) -> int:
    """VmHWM of ``pid`` plus that of its live descendants."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            total += _status_kib(member, "VmHWM")
        except OSError:
            continue
    return total * 1024


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine, all cores, outside idle and iowait."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def self_cpu_seconds() -> float:
    """CPU seconds used by this process (the benchmark itself)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_table() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU seconds (its own threads, live or ended)."""
    table: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            name = text[text.index("(") + 1 : text.rindex(")")]
            table[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def busiest(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], skip: set[int]
) -> list[str]:
    """The processes (not in ``skip``) that used the most CPU between two tables."""
    used = [
        (seconds - before.get(pid, (name, 0.0))[1], pid, name)
        for pid, (name, seconds) in after.items()
        if pid not in skip
    ]
    return [f"{name} (pid {pid}): {s:.1f} s" for s, pid, name in sorted(used)[::-1][:3] if s > 0]


@dataclass
class Usage:
    """What a receiver used during one measured send."""

    cpu_seconds: float
    peak_rss_bytes: int


class Sampler:
    """Samples a process tree in a background thread between ``start`` and ``stop``."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self._cpu_start = 0.0
        self._cpu_last = 0.0
        self._peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        """Take the starting CPU reading and begin sampling."""
        self._cpu_start = self._cpu_last = cpu_seconds(self.pid)
        self._peak = peak_rss_bytes(self.pid)
        self._thread.start()

    def _sample(self) -> None:
        try:
            self._cpu_last = cpu_seconds(self.pid)
            self._peak = max(self._peak, peak_rss_bytes(self.pid))
        except (OSError, ValueError):
            pass  # the process is gone: keep the last reading

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def stop(self) -> Usage:
        """Stop sampling and return CPU seconds used since ``start`` and the peak RSS."""
        self._done.set()
        self._thread.join(timeout=5)
        self._sample()
        return Usage(self._cpu_last - self._cpu_start, self._peak)
