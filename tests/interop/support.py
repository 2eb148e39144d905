"""Helpers of the interoperability suite: processes, DICOM files, and dicomhub's index.

* Every external process (dicomhub, DCMTK, Orthanc) is bounded by a timeout, and every DCMTK and
  Orthanc process gets ``TCP_NODELAY=1`` in its environment: Debian's DCMTK keeps Nagle's
  algorithm on otherwise, which adds a delayed-ACK wait to every DIMSE exchange.
* Part 10 files are split into their file meta elements and the raw data set bytes that follow,
  without decoding or re-encoding anything, so stored objects can be compared byte for byte.
* dicomhub's SQLite index is opened read-only; a blob is the file named by its key under
  ``DATA_DIR/storage`` (outside ``storage/.staging``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset

from dicomhub.storage.filesystem import FilesystemBlobStore
from tests.ports import free_port

HOST = "127.0.0.1"
HUB_AE = "DICOMHUB"
REFERENCE_AE = "REFERENCE"
TOOL_TIMEOUT = 120.0
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

DCMTK_TOOLS = (
    "echoscu",
    "storescu",
    "dcmsend",
    "findscu",
    "storescp",
    "movescu",
    "getscu",
    "dcmdump",
)


def _find_dcmtk(name: str) -> str | None:
    """The absolute path of DCMTK's ``name``.

    pynetdicom installs console scripts with the same names (echoscu, findscu, storescu,
    storescp) in the virtualenv, so the first one on PATH is not necessarily DCMTK's: each
    candidate must identify itself as DCMTK in its ``--version`` output.
    """
    folders = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]
    for folder in dict.fromkeys(f for f in folders if f):
        candidate = Path(folder) / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        try:
            version = subprocess.run(
                [str(candidate), "--version"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "$dcmtk:" in version.stdout + version.stderr:
            return str(candidate)
    return None


DCMTK = {name: path for name in DCMTK_TOOLS if (path := _find_dcmtk(name)) is not None}
MISSING_DCMTK = [tool for tool in DCMTK_TOOLS if tool not in DCMTK]
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"

needs_dcmtk = pytest.mark.skipif(
    bool(MISSING_DCMTK),
    reason=f"DCMTK tools not found on PATH: {', '.join(MISSING_DCMTK)} (apt-get install dcmtk)",
)
needs_orthanc = pytest.mark.skipif(
    not os.access(ORTHANC, os.X_OK),
    reason=f"Orthanc not found ({ORTHANC}; apt-get install orthanc)",
)


def _engine() -> str:
    """The DICOM engine the hubs run: $DICOMHUB_INTEROP_ENGINE, else dicomhub's default."""
    chosen = os.environ.get("DICOMHUB_INTEROP_ENGINE", "")
    if chosen:
        return chosen
    from dicomhub.config import Settings

    field = Settings.model_fields.get("engine")
    return str(field.default) if field is not None else "pynetdicom"


ENGINE = _engine()
"""Engine-specific xfail marks use this; ``running_hub`` passes it on as DICOMHUB_ENGINE."""

PYNETDICOM_ABORTS_ON_UNKNOWN_SOP_CLASS = pytest.mark.xfail(
    ENGINE == "pynetdicom",
    strict=True,
    raises=AssertionError,
    reason="pynetdicom engine: a C-STORE-RQ whose Affected SOP Class UID is not a supported "
    "SOP class is answered with an A-ABORT (pynetdicom's dispatch raises NotImplementedError) "
    "instead of a failure status; the rest of the transfer is lost",
)
"""Known limitation of the optional pynetdicom engine; dicomhub's own engine answers."""

# Transfer syntaxes ---------------------------------------------------------------------------

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

# storescp option that makes DCMTK's receiver prefer (and so accept) one transfer syntax.
STORESCP_PREFERENCE: dict[str, str] = {
    IMPLICIT_LE: "+xi",
    EXPLICIT_LE: "+xe",
    EXPLICIT_BE: "+xb",
    DEFLATED_LE: "+xd",
    RLE_LOSSLESS: "+xr",
    JPEG_BASELINE: "+xy",
    JPEG_EXTENDED: "+xx",
    JPEG_LOSSLESS_SV1: "+xs",
    JPEG_LS_LOSSLESS: "+xt",
    JPEG_LS_NEAR_LOSSLESS: "+xu",
    JPEG_2000_LOSSLESS: "+xv",
    JPEG_2000: "+xw",
}

# SOP classes used by the synthetic data sets.
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"

# UIDs minted by this suite (pydicom's organisation root plus a private arc).
UID_ROOT = "1.2.826.0.1.3680043.8.498.4242"


# Processes -----------------------------------------------------------------------------------

Arg = str | bytes | os.PathLike[str]


def tool_env() -> dict[str, str]:
    """Environment for DCMTK and Orthanc processes: ours plus TCP_NODELAY=1."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


def run_tool(
    args: Sequence[Arg], *, timeout: float = TOOL_TIMEOUT, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool (bounded by ``timeout``) and capture its output as text."""
    argv: list[str | bytes] = [a if isinstance(a, bytes) else os.fspath(a) for a in args]
    if isinstance(argv[0], str):
        argv[0] = DCMTK.get(argv[0], argv[0])
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        env=tool_env(),
        cwd=cwd,
        check=False,
    )


def start_storescu(
    files: Sequence[Path], port: int, *, calling: str = "STORESCU", verbose: bool = False
) -> subprocess.Popen[bytes]:
    """DCMTK storescu sending ``files`` to the hub in the background (output piped)."""
    argv = [
        DCMTK.get("storescu", "storescu"),
        *(["-v"] if verbose else []),
        "-aet",
        calling,
        "-aec",
        HUB_AE,
        HOST,
        str(port),
        *map(str, files),
    ]
    return subprocess.Popen(argv, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr of a finished tool (DCMTK logs to stderr)."""
    return f"{result.stdout}{result.stderr}"


def dimse_statuses(text: str) -> list[int]:
    """Every ``DIMSE Status : 0xNNNN`` in a DCMTK tool's debug (-d) output, in order."""
    return [int(h, 16) for h in re.findall(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})", text)]


def echo_statuses(text: str) -> list[int]:
    """The status of every C-ECHO response echoscu reports ("Received Echo Response (...)")."""
    statuses = []
    for detail in re.findall(r"Received Echo Response \(([^)\n]*)\)", text):
        number = re.search(r"0x([0-9a-fA-F]+)", detail)
        statuses.append(
            0x0000 if detail == "Success" else int(number.group(1), 16) if number else -1
        )
    return statuses


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM the process by its PID, wait, SIGKILL it if it does not go; the exit code."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=timeout)


def children_of(pid: int) -> list[int]:
    """The PIDs of a process's children (none when it has ended)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# DICOM Part 10 files -------------------------------------------------------------------------

_LONG_LENGTH_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}


@dataclass(frozen=True)
class Part10:
    """A Part 10 file split into its file meta elements and the data set bytes after them."""

    meta: dict[int, bytes]
    dataset: bytes

    def meta_text(self, tag: int) -> str:
        """A file meta element's value as text, without its padding."""
        return self.meta.get(tag, b"").rstrip(b"\x00 ").decode("ascii", "replace")

    @property
    def sop_class_uid(self) -> str:
        """(0002,0002) Media Storage SOP Class UID."""
        return self.meta_text(0x00020002)

    @property
    def sop_instance_uid(self) -> str:
        """(0002,0003) Media Storage SOP Instance UID."""
        return self.meta_text(0x00020003)

    @property
    def transfer_syntax(self) -> str:
        """(0002,0010) Transfer Syntax UID."""
        return self.meta_text(0x00020010)


def split_part10(data: bytes) -> Part10:
    """Split a Part 10 file: group 0002 (explicit VR little endian) and the raw bytes after it."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise ValueError("not a DICOM Part 10 file: no 'DICM' after a 128-byte preamble")
    meta: dict[int, bytes] = {}
    pos = 132
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_LENGTH_VRS:
            (length,) = struct.unpack_from("<L", data, pos + 8)
            header = 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            header = 8
        meta[(group << 16) | element] = data[pos + header : pos + header + length]
        pos += header + length
    return Part10(meta, data[pos:])


def read_part10(path: Path) -> Part10:
    """``split_part10`` of a file."""
    return split_part10(path.read_bytes())


def is_part10(path: Path) -> bool:
    """Whether ``path`` starts with a 128-byte preamble and 'DICM'."""
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _meta_element(tag: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00"
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in _LONG_LENGTH_VRS:
        return head + b"\x00\x00" + struct.pack("<L", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def encode_part10(
    dataset: bytes, *, sop_class: str, sop_instance: str, transfer_syntax: str
) -> bytes:
    """A Part 10 file around raw data set bytes, with exactly the given file meta UIDs.

    The values are written as given, valid or not: this is how the tests craft C-STORE
    requests whose command UIDs (taken from the file meta) disagree with the data set.
    """
    body = b"".join(
        [
            _meta_element(0x00020001, b"OB", b"\x00\x01"),
            _meta_element(0x00020002, b"UI", sop_class.encode("ascii")),
            _meta_element(0x00020003, b"UI", sop_instance.encode("ascii")),
            _meta_element(0x00020010, b"UI", transfer_syntax.encode("ascii")),
            _meta_element(0x00020012, b"UI", f"{UID_ROOT}.1".encode("ascii")),
        ]
    )
    group_length = _meta_element(0x00020000, b"UL", struct.pack("<L", len(body)))
    return b"\x00" * 128 + b"DICM" + group_length + body + dataset


def encode_dataset(dataset: Dataset, *, implicit_vr: bool = False) -> bytes:
    """Little endian data set bytes of ``dataset``, with pydicom's value validation off."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit_vr
    with pydicom.config.disable_value_validation():
        write_dataset(buffer, dataset)
    return bytes(buffer.getvalue())


def write_part10(path: Path, dataset: Dataset) -> Path:
    """Write ``dataset`` as an Explicit VR Little Endian Part 10 file."""
    data = encode_dataset(dataset)
    path.write_bytes(
        encode_part10(
            data,
            sop_class=str(dataset.SOPClassUID),
            sop_instance=str(dataset.SOPInstanceUID),
            transfer_syntax=EXPLICIT_LE,
        )
    )
    return path


def sha256(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def describe_difference(actual: bytes, expected: bytes) -> str:
    """Empty when equal, else where two byte strings first differ (never the whole values)."""
    if actual == expected:
        return ""
    index = next(
        (i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
        min(len(actual), len(expected)),
    )
    return (
        f"{len(actual)} bytes vs {len(expected)} expected, first difference at offset {index}: "
        f"{actual[index : index + 16].hex()} vs {expected[index : index + 16].hex()}"
    )


# pydicom's test files ------------------------------------------------------------------------


def pydicom_test_files() -> list[Path]:
    """Files shipped with pydicom (pydicom/data/test_files)."""
    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(root.glob("*.dcm"))


def pydicom_data_files() -> list[Path]:
    """Files of the pydicom-data package, when it is installed (never downloaded)."""
    from pydicom.data.data_manager import external_data_sources

    source = external_data_sources().get("pydicom-data")
    if source is None:
        return []
    return sorted(Path(p) for p in source.get_paths("*.dcm", 0))


def part10_corpus() -> dict[str, Path]:
    """Every Part 10 file of pydicom's test set and of pydicom-data, by file name."""
    corpus: dict[str, Path] = {}
    for path in [*pydicom_test_files(), *pydicom_data_files()]:
        if not is_part10(path):
            continue
        name = path.name if path.name not in corpus else f"{path.parent.name}/{path.name}"
        corpus[name] = path
    return corpus


def sample(name: str) -> Path:
    """One of pydicom's (or pydicom-data's) test files by name."""
    for path in [*pydicom_test_files(), *pydicom_data_files()]:
        if path.name == name:
            return path
    raise FileNotFoundError(f"{name} is in neither pydicom's test files nor pydicom-data")


# The dicomhub server -------------------------------------------------------------------------

INDEX_TABLES = ("patients", "studies", "series", "instances", "attachments", "changes")


@dataclass(frozen=True)
class StoredInstance:
    """An index row of ``instances`` with its study, series and attachment."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    blob_key: str
    size: int
    sha256: str
    content_sha256: str
    transfer_syntax_uid: str
    header: dict[str, Any]


@dataclass(frozen=True)
class StoreSnapshot:
    """What is in the index and the blob store at one moment."""

    rows: dict[str, int]
    blobs: frozenset[str]
    staging: frozenset[str]


class Hub:
    """A running ``dicomhub serve`` subprocess and read-only views of its data."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        ae_title: str,
        data_dir: Path,
        log_path: Path,
        http_port: int = 0,
    ) -> None:
        self.process = process
        self.host = HOST
        self.port = port
        self.http_port = http_port
        self.ae_title = ae_title
        self.data_dir = data_dir
        self.log_path = log_path

    @property
    def http_url(self) -> str:
        """Base URL of the hub's HTTP server (REST API, DICOMweb)."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def storage_dir(self) -> Path:
        """Root of the blob store."""
        return self.data_dir / "storage"

    @property
    def index_path(self) -> Path:
        """The SQLite index."""
        return self.data_dir / "index.sqlite"

    # Process ----------------------------------------------------------------------------

    def log(self) -> str:
        """Everything the server logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """The first match of ``pattern`` in the log after offset ``since``, waiting for it."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = regex.search(self.log()[since:])
            if match:
                found.append(match)
            return match is not None

        if not wait_until(seen, timeout):
            raise AssertionError(
                f"no dicomhub log line matches {pattern!r}; end of log:\n{self.log()[-3000:]}"
            )
        return found[0]

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait for the 'DICOM listener ... on HOST:PORT' line (fail if the process exits)."""
        ready = f"DICOM listener {self.ae_title} on {self.host}:{self.port}"
        deadline = time.monotonic() + timeout
        while ready not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dicomhub exited with {self.process.returncode} before listening:\n"
                    f"{self.log()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"dicomhub not listening after {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """Stop the server with SIGTERM (by PID); its exit code.  When the server runs under
        a wrapper (strace), the server itself is stopped first, so it ends cleanly and the
        wrapper with it."""
        children = children_of(self.process.pid)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        gone = wait_until(lambda: not any(Path(f"/proc/{c}").exists() for c in children), 30)
        for child in children if not gone else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        return stop_process(self.process)

    # Index and blobs --------------------------------------------------------------------

    @contextlib.contextmanager
    def index(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection to the SQLite index."""
        conn = sqlite3.connect(f"file:{self.index_path}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a query on the index."""
        with self.index() as conn:
            return list(conn.execute(sql, params))

    def count(self, table: str) -> int:
        """Number of rows of an index table."""
        assert table in INDEX_TABLES
        return int(self.rows(f"SELECT count(*) FROM {table}")[0][0])

    def instance(self, sop_instance_uid: str) -> StoredInstance | None:
        """The indexed instance with this SOP Instance UID, with its attachment."""
        found = self.rows(
            """
            SELECT i.sop_instance_uid, i.sop_class_uid, st.study_instance_uid,
                   se.series_instance_uid, a.blob_key, a.size, a.sha256, a.content_sha256,
                   a.transfer_syntax_uid, i.header
            FROM instances i
            JOIN series se ON i.series_fk = se.id
            JOIN studies st ON se.study_fk = st.id
            JOIN attachments a ON a.instance_fk = i.id
            WHERE i.sop_instance_uid = ?
            """,
            (sop_instance_uid,),
        )
        if not found:
            return None
        assert len(found) == 1, f"{len(found)} index rows for {sop_instance_uid}"
        row = found[0]
        header = row["header"]
        return StoredInstance(
            sop_instance_uid=row["sop_instance_uid"],
            sop_class_uid=row["sop_class_uid"],
            study_instance_uid=row["study_instance_uid"],
            series_instance_uid=row["series_instance_uid"],
            blob_key=row["blob_key"],
            size=int(row["size"]),
            sha256=row["sha256"],
            content_sha256=row["content_sha256"],
            transfer_syntax_uid=row["transfer_syntax_uid"],
            header=json.loads(header) if isinstance(header, str | bytes) else dict(header),
        )

    def blob(self, key: str) -> bytes:
        """A blob's bytes (the blob must exist), read through the store's own reader."""
        store = FilesystemBlobStore(self.storage_dir)
        assert store.exists(key), f"blob {key} named by the index is not in {self.storage_dir}"
        with store.open(key) as stream:
            return stream.read()

    def blob_keys(self) -> list[str]:
        """Every live blob (files and segment records; the staging area excluded)."""
        if not self.storage_dir.is_dir():
            return []
        return sorted(FilesystemBlobStore(self.storage_dir).all_keys())

    def staging_files(self) -> list[Path]:
        """Files left in the staging area."""
        staging = self.storage_dir / ".staging"
        return sorted(p for p in staging.rglob("*") if p.is_file()) if staging.is_dir() else []

    def snapshot(self) -> StoreSnapshot:
        """Row counts, blob files and staging files right now."""
        return StoreSnapshot(
            rows={table: self.count(table) for table in INDEX_TABLES},
            blobs=frozenset(self.blob_keys()),
            staging=frozenset(p.name for p in self.staging_files()),
        )


def dicomhub_command() -> list[str]:
    """The ``dicomhub`` console script of this virtualenv (or ``python -m dicomhub``)."""
    script = Path(sys.executable).with_name("dicomhub")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "dicomhub"]


@contextlib.contextmanager
def running_hub(
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    config: str | None = None,
    wrapper: Sequence[str] = (),
) -> Iterator[Hub]:
    """Run ``dicomhub serve`` on a free port with a data folder in ``workdir``.

    ``env`` adds or overrides DICOMHUB_* settings; ``config`` is the text of a TOML
    configuration file (passed as DICOMHUB_CONFIG); ``wrapper`` is a command the server is
    run under (strace).  The server is stopped with SIGTERM.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    environment.update(
        {
            "DICOMHUB_AE_TITLE": HUB_AE,
            "DICOMHUB_DICOM_PORT": str(free_port()),
            "DICOMHUB_HTTP_PORT": str(free_port()),
            "DICOMHUB_BIND": HOST,
            "DICOMHUB_DATA_DIR": str(workdir / "data"),
            "DICOMHUB_LOG_LEVEL": "INFO",
        }
    )
    if os.environ.get("DICOMHUB_INTEROP_ENGINE"):
        environment["DICOMHUB_ENGINE"] = ENGINE
    if config is not None:
        config_path = workdir / "dicomhub.toml"
        config_path.write_text(config, encoding="utf-8")
        environment["DICOMHUB_CONFIG"] = str(config_path)
    environment.update(env or {})
    log_path = workdir / "dicomhub.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*wrapper, *dicomhub_command(), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=workdir,
        )
    hub = Hub(
        process,
        int(environment["DICOMHUB_DICOM_PORT"]),
        environment["DICOMHUB_AE_TITLE"],
        Path(environment["DICOMHUB_DATA_DIR"]),
        log_path,
        int(environment["DICOMHUB_HTTP_PORT"]),
    )
    try:
        hub.wait_ready()
        yield hub
    finally:
        hub.stop()


class HubFactory(Protocol):
    """Starts a dicomhub with extra settings (stopped when the fixture ends)."""

    def __call__(self, env: Mapping[str, str] | None = None, *, config: str | None = None) -> Hub:
        """Start a hub."""
        ...


def assert_stored(
    hub: Hub, sop_instance_uid: str, *, dataset: bytes, transfer_syntax: str
) -> StoredInstance:
    """The instance is indexed, and its blob holds exactly ``dataset`` in ``transfer_syntax``.

    Checks the index row, the attachment (size, SHA-256 of the blob, SHA-256 of the data set
    bytes, transfer syntax) and the receiver-written file meta of the blob.
    """
    stored = hub.instance(sop_instance_uid)
    assert stored is not None, f"{sop_instance_uid} is not in the index"
    blob = hub.blob(stored.blob_key)
    part = split_part10(blob)
    assert stored.transfer_syntax_uid == transfer_syntax, (
        f"index records transfer syntax {stored.transfer_syntax_uid}, sent {transfer_syntax}"
    )
    assert part.transfer_syntax == transfer_syntax, "blob file meta names another transfer syntax"
    assert part.sop_instance_uid == sop_instance_uid, "blob file meta names another SOP instance"
    assert part.sop_class_uid == stored.sop_class_uid, "blob file meta names another SOP class"
    assert stored.size == len(blob), "attachment size differs from the blob's"
    # The whole blob's SHA-256 is recorded when it was computed: not for an object received
    # in memory, whose file meta dicomhub wrote itself (its data set's identifies it).
    assert stored.sha256 in {"", sha256(blob)}, "attachment sha256 is not the SHA-256 of the blob"
    assert stored.content_sha256 == sha256(part.dataset), "content_sha256 is not the data set's"
    difference = describe_difference(part.dataset, dataset)
    assert not difference, f"stored data set bytes differ from the bytes sent: {difference}"
    return stored


# dcmsend -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    """One file of a dcmsend transfer report (``+crf``)."""

    filename: str
    sop_instance_uid: str
    network_transfer_syntax: str
    status: int | None
    status_text: str


def parse_dcmsend_report(text: str) -> dict[str, SendOutcome]:
    """dcmsend's detailed report, by file name (status None: not sent)."""
    outcomes: dict[str, SendOutcome] = {}
    for block in re.split(r"\n\s*\n", text):
        fields = {
            m.group(1).strip(): m.group(2).strip()
            for m in re.finditer(r"^([A-Za-z][\w. ]*?)\s*: ?(.*)$", block, re.MULTILINE)
        }
        if "Filename" not in fields:
            continue
        status_text = fields.get("DIMSE Status", "")
        status = re.match(r"0x([0-9a-fA-F]{4})", status_text)
        outcomes[fields["Filename"]] = SendOutcome(
            filename=fields["Filename"],
            sop_instance_uid=fields.get("SOP Instance", ""),
            network_transfer_syntax=fields.get("Network Xfer", "").split(" = ")[0].strip(),
            status=int(status.group(1), 16) if status else None,
            status_text=status_text,
        )
    return outcomes


def dcmsend_argv(
    files: Sequence[Path], called_ae: str, port: int, report: Path, *options: str
) -> list[Arg]:
    """dcmsend of ``files`` (each proposed in its own transfer syntax) with a report file."""
    return [
        "dcmsend",
        "-nh",
        "-aet",
        "DCMSEND",
        "-aec",
        called_ae,
        "+crf",
        report,
        *options,
        HOST,
        str(port),
        *files,
    ]


def dcmsend(
    files: Sequence[Path], called_ae: str, port: int, workdir: Path, *options: str
) -> tuple[dict[str, SendOutcome], subprocess.CompletedProcess[str]]:
    """Send files with dcmsend; the per-file outcomes of its report and the process result."""
    handle, name = tempfile.mkstemp(prefix="dcmsend-", suffix=".txt", dir=workdir)
    os.close(handle)
    report = Path(name)
    result = run_tool(dcmsend_argv(files, called_ae, port, report, *options))
    text = report.read_text(encoding="utf-8", errors="replace") if report.exists() else ""
    return parse_dcmsend_report(text), result


# The DCMTK reference receiver ----------------------------------------------------------------

Sender = Callable[[str, int], Sequence[Arg]]
"""Builds a sender's command line for a called AE title and port."""


@dataclass(frozen=True)
class Reception:
    """Files a reference storescp wrote for one sender run, and the sender's output."""

    files: list[Path]
    output: str


class DcmtkReference:
    """DCMTK storescp receivers in bit-preserving mode (``+B``), one per preferred syntax.

    DCMTK senders re-encode many files on the wire (they drop group lengths, pad or re-deflate,
    convert between transfer syntaxes), so "the bytes DCMTK sent" are not always the bytes of
    the file.  Sending the same file with the same command to a storescp that negotiates the
    same transfer syntax and writes the received data set untouched (``+B``) yields exactly
    those bytes: DCMTK's encoding depends only on the data set and the transfer syntax.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._receivers: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = {}

    def _receiver(self, transfer_syntax: str) -> tuple[int, Path]:
        option = STORESCP_PREFERENCE.get(transfer_syntax, "+xa")
        if option in self._receivers:
            process, port, out = self._receivers[option]
            assert process.poll() is None, f"storescp {option} exited: {self._log(option)}"
            return port, out
        port = free_port()
        out = self.root / option.lstrip("+")
        out.mkdir(parents=True, exist_ok=True)
        with (self.root / f"storescp{option}.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    DCMTK["storescp"],
                    "-aet",
                    REFERENCE_AE,
                    "+B",
                    option,
                    "+uf",
                    "-dhl",
                    "-od",
                    str(out),
                    str(port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=tool_env(),
            )
        self._receivers[option] = (process, port, out)

        def answers() -> bool:
            assert process.poll() is None, f"storescp {option} exited: {self._log(option)}"
            echo = run_tool(["echoscu", "-aec", REFERENCE_AE, HOST, str(port)], timeout=10)
            return echo.returncode == 0

        assert wait_until(answers, 30, 0.1), f"storescp {option} does not answer C-ECHO"
        return port, out

    def _log(self, option: str) -> str:
        path = self.root / f"storescp{option}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def receive(self, sender: Sender, transfer_syntax: str) -> Reception:
        """Run ``sender`` against a storescp preferring ``transfer_syntax``; what it wrote."""
        port, out = self._receiver(transfer_syntax)
        before = set(out.iterdir())
        result = run_tool(sender(REFERENCE_AE, port))
        return Reception(sorted(set(out.iterdir()) - before), output_of(result))

    def close(self) -> None:
        """Stop every storescp (SIGTERM by PID)."""
        for process, _, _ in self._receivers.values():
            stop_process(process)
        self._receivers.clear()


# findscu -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindOutcome:
    """A findscu run: final status, ErrorComment, and the response identifiers."""

    status: int
    error_comment: str
    matches: list[Dataset]
    output: str


def findscu(
    hub: Hub,
    model: str,
    keys: Sequence[str | bytes],
    workdir: Path,
    *,
    calling_ae: str = "FINDSCU",
) -> FindOutcome:
    """C-FIND with DCMTK findscu (``-P`` patient root or ``-S`` study root).

    ``keys`` are findscu ``-k`` arguments (bytes for values in a non-UTF-8 character set).
    Responses are written by ``-X`` into a fresh folder and read back with pydicom.
    """
    assert model in {"P", "S"}
    out = Path(tempfile.mkdtemp(prefix="find-", dir=workdir))
    argv: list[Arg] = [
        "findscu",
        "-d",
        f"-{model}",
        "-aet",
        calling_ae,
        "-aec",
        hub.ae_title,
        "-X",
        "-od",
        out,
        HOST,
        str(hub.port),
    ]
    for key in keys:
        argv += ["-k", key]
    result = run_tool(argv, timeout=60)
    text = output_of(result)
    statuses = dimse_statuses(text)
    assert statuses, f"findscu got no C-FIND response:\n{text}"
    comment = re.findall(r"\(0000,0902\) LO \[(.*?)\]", text)
    matches: list[Dataset] = [pydicom.dcmread(p, force=True) for p in sorted(out.glob("rsp*.dcm"))]
    return FindOutcome(statuses[-1], comment[-1] if comment else "", matches, text)


def element_values(dataset: Dataset, keyword: str) -> list[str]:
    """An element's values as strings ([] when empty); KeyError when the element is absent."""
    if keyword not in dataset:
        raise KeyError(f"{keyword} not in the response")
    value = dataset[keyword].value
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes | int | float) or not hasattr(value, "__iter__"):
        return [str(value)]
    return [str(v) for v in value]


# pynetdicom as a precise SCU ------------------------------------------------------------------


def _nodelay(event: Any) -> None:
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@contextlib.contextmanager
def association(
    hub: Hub, contexts: Sequence[tuple[str, str]], *, calling_ae: str = "CRAFTER"
) -> Iterator[Any]:
    """A pynetdicom association with ``hub`` proposing (SOP class, transfer syntax) contexts."""
    from pynetdicom import AE, evt

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class, transfer_syntax in contexts:
        ae.add_requested_context(sop_class, transfer_syntax)
    assoc = ae.associate(
        HOST, hub.port, ae_title=hub.ae_title, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)]
    )
    assert assoc.is_established, f"dicomhub did not accept the association:\n{hub.log()[-2000:]}"
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def store_raw(hub: Hub, path: Path, *, calling_ae: str = "CRAFTER") -> Dataset:
    """C-STORE a Part 10 file's data set bytes exactly as they are (pynetdicom chunked mode).

    The command's Affected SOP Class/Instance UIDs are the file meta's (0002,0002)/(0002,0003),
    the presentation context is (meta SOP class, meta transfer syntax).  Returns the response
    status data set (empty when the association was aborted).
    """
    from pynetdicom import _config

    part = read_part10(path)
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        contexts = [(part.sop_class_uid, part.transfer_syntax)]
        with association(hub, contexts, calling_ae=calling_ae) as assoc:
            status: Dataset = assoc.send_c_store(path)
            return status
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def hub_cli(
    hub: Hub, *args: str, timeout: float = 180, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a ``dicomhub`` command on a running hub's data folder and configuration (with
    ``stdin`` as its standard input)."""
    environment = {k: v for k, v in tool_env().items() if not k.startswith("DICOMHUB_")}
    environment.update(
        {
            "DICOMHUB_DATA_DIR": str(hub.data_dir),
            "DICOMHUB_CONFIG": str(hub.data_dir.parent / "dicomhub.toml"),
            "DICOMHUB_DICOM_PORT": str(hub.port),
            "DICOMHUB_AE_TITLE": hub.ae_title,
            "COLUMNS": "250",
        }
    )
    return subprocess.run(
        [*dicomhub_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
        input=stdin if stdin is not None else "",
    )


# findscu -W ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistAnswers:
    """A findscu -W run: DIMSE statuses, the response identifiers and the tool's output."""

    statuses: list[int]
    answers: list[Dataset]
    output: str


def find_worklist(
    port: int,
    called: str,
    query: Path | None,
    *,
    keys: Sequence[str] = (),
    calling: str = "FINDSCU",
) -> WorklistAnswers:
    """C-FIND on the Modality Worklist model with DCMTK findscu; responses read back."""
    out = Path(tempfile.mkdtemp(prefix="wl-", dir=Path(tempfile.gettempdir())))
    try:
        argv: list[Arg] = ["findscu", "-d", "-W", "-aet", calling, "-aec", called, "-X"]
        argv += ["-od", out, HOST, str(port)]
        if query is not None:
            argv.append(query)
        for key in keys:
            argv += ["-k", key]
        result = run_tool(argv, timeout=60)
        text = output_of(result)
        answers: list[Dataset] = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
        return WorklistAnswers(dimse_statuses(text), answers, text)
    finally:
        shutil.rmtree(out, ignore_errors=True)
