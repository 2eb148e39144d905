"""``dicomhub serve`` with ``hl7_port`` set: the MLLP listener runs beside the DICOM listener,
orders sent to it become worklist items, and it stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dicomhub.config import load_settings
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.worklist import WorklistRepository, WorklistStatus
from tests.ports import free_port
from tests.unit.hl7.messages import END, frame, orm


def _connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=15)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_serve_runs_the_hl7_listener(tmp_path: Path) -> None:
    hl7_port = free_port()
    env = {
        **os.environ,
        "DICOMHUB_DATA_DIR": str(tmp_path / "data"),
        "DICOMHUB_DICOM_PORT": str(free_port()),
        "DICOMHUB_HTTP_PORT": str(free_port()),
        "DICOMHUB_HL7_PORT": str(hl7_port),
        "DICOMHUB_HL7_STATION_AE_TITLES": '{"CT": "CT7"}',
    }
    env.pop("DICOMHUB_CONFIG", None)
    env.pop("DICOMHUB_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "dicomhub", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with _connect(hl7_port, time.monotonic() + 60) as sock:
            sock.sendall(frame(orm()))
            answer = b""
            while not answer.endswith(END):
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
        assert b"MSA|AA|MSG0001" in answer
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            output, _ = process.communicate(timeout=30)
    log = output.decode(errors="replace")
    assert process.returncode == 0, log
    assert f"HL7 listener (MLLP) on 127.0.0.1:{hl7_port}" in log
    assert "HL7 ORM^O01 MSG0001" in log
    settings = load_settings(None, data_dir=tmp_path / "data")
    db = IndexDatabase(settings.effective_database_url)
    try:
        (item,) = WorklistRepository(db).list()
    finally:
        db.dispose()
    assert item.status is WorklistStatus.SCHEDULED
    assert item.dataset.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT7"
