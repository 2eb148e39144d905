"""Sending a data set with DCMTK ``storescu`` over one or several parallel associations."""

from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from receivers import CALLING_AE, HOST, dcmtk_env

STORE_RESPONSE = "I: Received Store Response "


@dataclass
class SendResult:
    """Wall time, storescu CPU time, exit codes, and storescu's error and warning lines."""

    wall_seconds: float
    client_cpu_seconds: float
    exit_codes: list[int]
    successes: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def split(files: list[Path], parts: int) -> list[list[Path]]:
    """``files`` cut into ``parts`` contiguous chunks whose sizes differ by one at most."""
    size, extra = divmod(len(files), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(files[start:end])
        start = end
    return [c for c in chunks if c]


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def send(
    files: list[Path], ae_title: str, port: int, associations: int, log_dir: Path, timeout: float
) -> SendResult:
    """Run one ``storescu`` per association, each with its share of ``files``, and wait.

    ``-nh`` makes storescu go on after a refused object and ``-v`` makes it log every
    response status (it exits with 0 even when objects were refused), so every failure is
    counted; the files are named relative to their folder to keep the command lines short.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dcmtk_env()
    running: list[tuple[subprocess.Popen[bytes], IO[bytes], Path]] = []
    cpu_before = _client_cpu()
    start = time.perf_counter()
    for i, chunk in enumerate(split(files, associations)):
        log_path = log_dir / f"storescu-{i + 1}.log"
        log = log_path.open("wb")
        options = ["-aet", CALLING_AE, "-aec", ae_title, "-v", "-nh", "-to", "10", "-td", "120"]
        command = ["storescu", *options, HOST, str(port), *(f.name for f in chunk)]
        process = subprocess.Popen(
            command,
            cwd=chunk[0].parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        running.append((process, log, log_path))
    result = SendResult(0.0, 0.0, [])
    deadline = start + timeout
    try:
        for process, _, _ in running:
            try:
                code = process.wait(timeout=max(0.1, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(timeout=30)
                result.errors.append(f"storescu pid {process.pid} killed after {timeout:.0f} s")
            result.exit_codes.append(code)
    finally:
        for process, _, _ in running:
            if process.poll() is None:  # only on an exception: leave nothing running
                process.kill()
                process.wait(timeout=30)
    result.wall_seconds = time.perf_counter() - start
    result.client_cpu_seconds = _client_cpu() - cpu_before
    for (process, stream, log_path), code in zip(running, result.exit_codes, strict=True):
        stream.close()
        if code != 0:
            result.errors.append(f"storescu pid {process.pid} exit status {code}")
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(("E:", "F:")):
                result.errors.append(line)
            elif line.startswith("W:"):
                result.warnings.append(line)
            elif line.startswith(STORE_RESPONSE):
                status = line.removeprefix(STORE_RESPONSE)
                if status == "(Success)":
                    result.successes += 1
                else:
                    target = result.warnings if "Warning" in status else result.errors
                    target.append(f"storescu {process.pid}: {line}")
    return result
