"""The receivers under test: dicomhub, Orthanc and DCMTK's storescp.

Each receiver runs as a child process in a fresh temporary folder, listens on a free port of
127.0.0.1 (it is only ever called there) and is stopped by its own PID.  Debian's DCMTK and
Orthanc leave Nagle's algorithm on unless ``TCP_NODELAY=1`` is in their environment, so every
DCMTK tool and Orthanc is started with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar

from dicomhub.storage.filesystem import FilesystemBlobStore

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

# Ports below the ephemeral range, as the tests pick them: one that bind(0) hands out can be
# taken by any outgoing connection (a sender's) before the receiver binds it.
from tests.ports import free_port  # noqa: E402

HOST = "127.0.0.1"
CALLING_AE = "BENCHSCU"


class ReceiverError(RuntimeError):
    """A receiver did not start or answer."""


def dcmtk_env() -> dict[str, str]:
    """The environment for DCMTK tools and Orthanc: Nagle's algorithm off."""
    return {**os.environ, "TCP_NODELAY": "1"}


def echo(ae_title: str, port: int, timeout: float = 10.0) -> bool:
    """Whether ``ae_title`` on ``port`` answers C-ECHO (DCMTK echoscu)."""
    command = [
        "echoscu",
        "-aet",
        CALLING_AE,
        "-aec",
        ae_title,
        "-to",
        "3",
        "-ta",
        "3",
        "-td",
        "3",
        HOST,
        str(port),
    ]
    try:
        done = subprocess.run(
            command, env=dcmtk_env(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


class Receiver:
    """A receiver process in its own temporary folder; use as a context manager."""

    name: ClassVar[str] = ""
    ae_title: ClassVar[str] = ""
    problem_line: ClassVar[re.Pattern[str]] = re.compile(r"^[EFW]")

    def __init__(self, tmp_root: Path | None, log_path: Path) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-", dir=tmp_root))
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that runs the receiver."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The receiver's environment."""
        return dcmtk_env()

    def stored_count(self) -> int:
        """How many instances the receiver holds now."""
        raise NotImplementedError

    def log_problems(self) -> list[str]:
        """Warning and error lines of the receiver's log (readable after ``stop``)."""
        if not self.log_path.is_file():
            return []
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if self.problem_line.search(line)]

    def consistency_problems(self) -> list[str]:
        """Disagreements inside the receiver's storage (while it runs)."""
        return []

    @property
    def pid(self) -> int:
        """PID of the running receiver."""
        if self.process is None:
            raise ReceiverError(f"{self.name} is not running")
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        """Start the receiver and wait until it answers C-ECHO."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not echo(self.ae_title, self.port):
            code = self.process.poll()
            if code is not None:
                raise ReceiverError(
                    f"{self.name} exited with status {code} before answering "
                    f"C-ECHO; see {self.log_path}:\n{self._tail()}"
                )
            if time.monotonic() > deadline:
                raise ReceiverError(
                    f"{self.name} did not answer C-ECHO within {timeout:.0f} s;"
                    f" see {self.log_path}:\n{self._tail()}"
                )
            time.sleep(0.2)

    def _tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the receiver by its PID (SIGTERM, then SIGKILL) and remove its folder."""
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    print(f"  {self.name} (pid {self.process.pid}) ignored SIGTERM; killing it")
                    self.process.kill()
                    self.process.wait(timeout=timeout)
        finally:
            if self._log is not None:
                self._log.close()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Receiver:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Dicomhub(Receiver):
    """``dicomhub serve`` on an embedded SQLite index in a fresh data folder."""

    name = "dicomhub"
    ae_title = "DICOMHUB"
    problem_line = re.compile(r"\S")  # it runs at WARNING: every line is worth a look

    def command(self) -> list[str]:
        """``dicomhub serve`` from the virtualenv running this script."""
        script = Path(sys.executable).parent / "dicomhub"
        return [str(script) if script.exists() else "dicomhub", "serve"]

    def environment(self) -> dict[str, str]:
        """Only the benchmark's ``DICOMHUB_*`` settings, whatever the caller had."""
        env = {k: v for k, v in dcmtk_env().items() if not k.startswith("DICOMHUB_")}
        env.update(
            DICOMHUB_DATA_DIR=str(self.workdir / "data"),
            DICOMHUB_DICOM_PORT=str(self.port),
            DICOMHUB_HTTP_PORT=str(free_port()),
            DICOMHUB_BIND=HOST,
            DICOMHUB_AE_TITLE=self.ae_title,
            DICOMHUB_LOG_LEVEL="WARNING",
        )
        return env

    def stored_count(self) -> int:
        """Rows in the index's ``instances`` table."""
        uri = f"file:{self.workdir / 'data' / 'index.sqlite'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM instances").fetchone()[0])

    def blob_count(self) -> int:
        """Live blobs in the store (files and segment records), staging excluded."""
        return sum(1 for _ in FilesystemBlobStore(self.workdir / "data" / "storage").all_keys())

    def consistency_problems(self) -> list[str]:
        """The index and the blob store disagree, or staging files were left behind."""
        found = []
        blobs, rows = self.blob_count(), self.stored_count()
        if blobs != rows:
            found.append(f"blob store holds {blobs} files but the index {rows} instances")
        staged = FilesystemBlobStore(self.workdir / "data" / "storage").staged_files()
        if staged:
            found.append(f"{len(staged)} files left in the staging folder")
        return found


class DicomhubWorkers(Dicomhub):
    """``dicomhub serve`` with two worker processes sharing the DICOM socket."""

    name = "dicomhub-2w"

    def environment(self) -> dict[str, str]:
        """The plain dicomhub settings plus ``DICOMHUB_WORKERS=2``."""
        return {**super().environment(), "DICOMHUB_WORKERS": "2"}


class Orthanc(Receiver):
    """Orthanc with its default SQLite index and storage area in a fresh folder."""

    name = "orthanc"
    ae_title = "ORTHANC"
    problem_line = re.compile(r"^[EF]\d{4} ")

    def __init__(self, tmp_root: Path | None, log_path: Path) -> None:
        super().__init__(tmp_root, log_path)
        self.http_port = free_port()

    def command(self) -> list[str]:
        """Write the configuration file and run ``Orthanc CONFIG``."""
        config = {
            "Name": "dicomhub-bench",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "DicomAet": self.ae_title,
            "DicomPort": self.port,
            "HttpPort": self.http_port,
            "DicomCheckCalledAet": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "DicomModalities": {},
            "OrthancPeers": {},
        }
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        return [binary, str(path)]

    def stored_count(self) -> int:
        """``CountInstances`` from the REST API's ``/statistics``."""
        url = f"http://{HOST}:{self.http_port}/statistics"
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(json.load(response)["CountInstances"])


class StoreSCP(Receiver):
    """DCMTK ``storescp +xa`` writing each object to a file in a fresh folder."""

    name = "storescp"
    ae_title = "STORESCP"
    problem_line = re.compile(r"^[EFW]: ")

    def command(self) -> list[str]:
        """``storescp -aet STORESCP +xa -od DIR PORT``."""
        out = self.workdir / "out"
        out.mkdir()
        return ["storescp", "-aet", self.ae_title, "+xa", "-od", str(out), str(self.port)]

    def stored_count(self) -> int:
        """Files written to the output folder."""
        return sum(1 for p in (self.workdir / "out").iterdir() if p.is_file())


class StoreSCPFork(StoreSCP):
    """``storescp --fork``: one child process per association (not run by default)."""

    name = "storescp-fork"

    def command(self) -> list[str]:
        """``storescp --fork -aet STORESCP +xa -od DIR PORT``."""
        binary, *rest = super().command()
        return [binary, "--fork", *rest]


RECEIVERS: dict[str, type[Receiver]] = {
    r.name: r for r in (Dicomhub, DicomhubWorkers, Orthanc, StoreSCP, StoreSCPFork)
}
DEFAULT_RECEIVERS = ["dicomhub", "dicomhub-2w", "orthanc", "storescp"]
