"""The processes of the retrieve benchmark: two C-MOVE sources, one destination, movescu.

The sources are dicomhub and Orthanc, each loaded with the same study in its own fresh
folder; the destination is DCMTK ``storescp``, declared to both sources as the peer ``DEST``.
The process handling (free ports, C-ECHO readiness, stopping by PID, ``TCP_NODELAY=1`` for
DCMTK and Orthanc) comes from the ingest benchmark's ``receivers`` module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

INGEST = Path(__file__).resolve().parent.parent / "ingest"
if str(INGEST) not in sys.path:
    sys.path.insert(0, str(INGEST))

from gendata import DataSet  # noqa: E402
from receivers import (  # noqa: E402
    CALLING_AE,
    HOST,
    Dicomhub,
    Orthanc,
    Receiver,
    ReceiverError,
    StoreSCP,
    dcmtk_env,
)
from sender import send  # noqa: E402

DEST_AE = "DEST"
STORE_REQUEST = "I: Received Store Request "
FINAL_RESPONSE = "I: Received Final Move Response "
PENDING_RESPONSE = re.compile(r"^I: Received Move Response \d+ \(Pending\)")
HUB_MOVE_LINE = re.compile(r"C-MOVE from .*?(\d+) completed,.* in ([\d.]+) s$")


class Destination(StoreSCP):
    """``storescp -v +xa -aet DEST``: writes each object to a file, or with ``ignore`` not.

    ``-v`` logs one ``Received Store Request`` line per object, which is how the objects
    received are counted whether or not they are written.
    """

    name = "storescp"
    ae_title = DEST_AE

    def __init__(self, tmp_root: Path | None, log_path: Path, *, ignore: bool) -> None:
        super().__init__(tmp_root, log_path)
        self.ignore = ignore

    def command(self) -> list[str]:
        """``storescp -v +xa [--ignore] -aet DEST -od DIR PORT``."""
        out = self.workdir / "out"
        out.mkdir()
        options = ["-v", "+xa", *(["--ignore"] if self.ignore else [])]
        return ["storescp", *options, "-aet", self.ae_title, "-od", str(out), str(self.port)]

    def store_requests(self) -> int:
        """``Received Store Request`` lines logged so far."""
        with self.log_path.open("rb") as log:
            return sum(1 for line in log if line.startswith(STORE_REQUEST.encode()))

    def clear(self) -> None:
        """Remove the files written so far."""
        for path in (self.workdir / "out").iterdir():
            path.unlink()


class HubSource(Dicomhub):
    """``dicomhub serve`` with ``DEST`` declared as ``[peers.dest]``, loaded by ``dicomhub import``.

    It logs at INFO (a few lines per association, none per sub-operation) so that its own
    timing of each C-MOVE is recorded; lines at WARNING and above, and any line that is not
    a log record (a traceback), are reported.
    """

    problem_line = re.compile(r"^(?!\d{4}-\d\d-\d\d [\d:,]+ (INFO|DEBUG) ).*\S")

    def __init__(self, tmp_root: Path | None, log_path: Path, destination: Destination) -> None:
        super().__init__(tmp_root, log_path)
        self.destination = destination
        self.config_path = self.workdir / "dicomhub.toml"

    def environment(self) -> dict[str, str]:
        """The ingest benchmark's settings plus the configuration file, at INFO."""
        env = super().environment()
        env.update(DICOMHUB_CONFIG=str(self.config_path), DICOMHUB_LOG_LEVEL="INFO")
        return env

    def load(self, data: DataSet, log_path: Path, timeout: float) -> float:
        """``dicomhub import`` every file into the (not yet running) server; seconds taken."""
        self.config_path.write_text(
            "[peers.dest]\n"
            f'ae_title = "{self.destination.ae_title}"\n'
            f'host = "{HOST}"\n'
            f"port = {self.destination.port}\n"
        )
        script = Path(sys.executable).parent / "dicomhub"
        command = [str(script) if script.exists() else "dicomhub", "import"]
        started = time.perf_counter()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            done = subprocess.run(
                [*command, *(str(f) for f in data.files)],
                env=self.environment(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise ReceiverError(
                f"dicomhub import exited with status {done.returncode}; see {log_path}:\n{tail}"
            )
        stored = self.stored_count()
        if stored != len(data.files):
            raise ReceiverError(f"dicomhub import stored {stored} of {len(data.files)} files")
        return seconds

    def move_lines(self) -> list[tuple[int, float]]:
        """(completed, seconds) of every C-MOVE the server logged so far."""
        if not self.log_path.is_file():
            return []
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = HUB_MOVE_LINE.search(line)
            if match:
                found.append((int(match.group(1)), float(match.group(2))))
        return found


class OrthancSource(Orthanc):
    """Orthanc with ``DEST`` in ``DicomModalities``, loaded by storescu.

    ``DicomAlwaysAllowMove`` lets the benchmark's movescu (an AE Orthanc does not know) ask
    for the move; everything else keeps Orthanc's defaults (``SynchronousCMove`` true).
    """

    def __init__(self, tmp_root: Path | None, log_path: Path, destination: Destination) -> None:
        super().__init__(tmp_root, log_path)
        self.destination = destination

    def command(self) -> list[str]:
        """The ingest benchmark's configuration plus the destination modality."""
        binary, config_path = super().command()
        config = json.loads(Path(config_path).read_text())
        config["DicomModalities"] = {
            "dest": [self.destination.ae_title, HOST, self.destination.port]
        }
        config["DicomAlwaysAllowMove"] = True
        Path(config_path).write_text(json.dumps(config, indent=2))
        return [binary, config_path]

    def load(self, data: DataSet, log_dir: Path, timeout: float) -> float:
        """C-STORE every file with one storescu (the server is running); seconds taken."""
        sent = send(data.files, self.ae_title, self.port, 1, log_dir, timeout)
        problems = [*sent.errors]
        if sent.successes != len(data.files):
            problems.append(f"{sent.successes} of {len(data.files)} stored with success")
        stored = self.stored_count()
        if stored != len(data.files):
            problems.append(f"Orthanc holds {stored} of {len(data.files)} instances")
        if problems:
            raise ReceiverError("loading Orthanc failed: " + "; ".join(problems[:5]))
        return sent.wall_seconds


@dataclass
class MoveResult:
    """One movescu run: wall time, exit status, final status and movescu's problem lines."""

    wall_seconds: float
    exit_code: int | None
    final_status: str | None
    pending_responses: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def move(source: Receiver, study_uid: str, log_path: Path, timeout: float) -> MoveResult:
    """``movescu -S`` a STUDY level C-MOVE of ``study_uid`` from ``source`` to ``DEST``."""
    command = [
        "movescu",
        "-v",
        "-S",
        "-aet",
        CALLING_AE,
        "-aec",
        source.ae_title,
        "-aem",
        DEST_AE,
        "-to",
        "10",
        "-ta",
        "10",
        "-td",
        "120",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study_uid}",
        HOST,
        str(source.port),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=dcmtk_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            code = None
            errors.append(f"movescu killed after {timeout:.0f} s")
        wall = time.perf_counter() - started
    result = MoveResult(wall, code, None, 0, errors)
    if code not in (0, None):
        result.errors.append(f"movescu exit status {code}")
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith(FINAL_RESPONSE):
            result.final_status = line.removeprefix(FINAL_RESPONSE).strip("()")
        elif PENDING_RESPONSE.match(line):
            result.pending_responses += 1
        elif line.startswith(("E:", "F:")):
            result.errors.append(line)
        elif line.startswith("W:"):
            result.warnings.append(line)
    if result.final_status != "Success":
        result.errors.append(f"final move response: {result.final_status or 'none received'}")
    return result


def movescu_available() -> bool:
    """Whether the DCMTK tools and Orthanc this benchmark runs are on the PATH."""
    return all(shutil.which(tool) for tool in ("movescu", "storescp", "storescu", "echoscu")) and (
        shutil.which("Orthanc") is not None or Path("/usr/sbin/Orthanc").exists()
    )
