"""``dicomhub echo / find / send / retrieve`` against a second, in-process dicomhub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.config import PeerConfig, load_settings
from dicomhub.dicom.server import Listener, create_listener
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime, open_runtime
from tests.factories import make_dataset, write_file
from tests.ports import free_port


class Remote:
    """A dicomhub playing the remote archive ("REMOTE"), which knows the local one."""

    def __init__(self, tmp_path: Path, local_port: int) -> None:
        settings = load_settings(
            None,
            ae_title="REMOTE",
            data_dir=tmp_path / "remote",
            dicom_port=0,
            peers={"local": PeerConfig(ae_title="LOCAL", host="127.0.0.1", port=local_port)},
        )
        self.runtime: Runtime = open_runtime(settings)
        self.listener: Listener = create_listener(self.runtime)
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()
        self.runtime.close()


@pytest.fixture
def local_port() -> int:
    return free_port()


@pytest.fixture
def remote(tmp_path: Path, local_port: int) -> Iterator[Remote]:
    hub = Remote(tmp_path, local_port)
    yield hub
    hub.stop()


@pytest.fixture
def config(
    tmp_path: Path, remote: Remote, local_port: int, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The local dicomhub's configuration, declaring the remote one."""
    path = tmp_path / "local.toml"
    path.write_text(
        f'ae_title = "LOCAL"\ndata_dir = "{tmp_path / "local"}"\ndicom_port = {local_port}\n'
        'log_level = "WARNING"\n'
        f'[peers.remote]\nae_title = "REMOTE"\nhost = "127.0.0.1"\nport = {remote.listener.port}\n'
    )
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("DICOMHUB_CONFIG", "DICOMHUB_DATA_DIR", "DICOMHUB_DICOM_PORT"):
        monkeypatch.delenv(name, raising=False)
    return path


def _store(runtime: Runtime, tmp_path: Path, count: int, **keys: Any) -> list[str]:
    uids = []
    for n in range(count):
        ds = make_dataset(**keys)
        path = write_file(ds, tmp_path / "files" / f"{ds.SOPInstanceUID}.dcm")
        runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
        uids.append(str(ds.SOPInstanceUID))
        del n
    return uids


def _local(config: Path) -> Runtime:
    return open_runtime(load_settings(config))


def _run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.output


def test_echo_by_name_and_by_address(config: Path, remote: Remote) -> None:
    code, output = _run(config, "echo", "remote")
    assert code == 0, output
    assert "C-ECHO REMOTE@127.0.0.1" in output
    assert "status 0x0000" in output
    code, output = _run(config, "echo", f"REMOTE@127.0.0.1:{remote.listener.port}")
    assert code == 0, output


def test_echo_of_a_peer_that_is_down(config: Path) -> None:
    code, output = _run(config, "echo", f"NOBODY@127.0.0.1:{free_port()}")
    assert code == 2
    assert "cannot connect to NOBODY@127.0.0.1" in output


def test_unknown_peer_is_a_clear_error(config: Path) -> None:
    code, output = _run(config, "echo", "nowhere")
    assert code == 2
    assert "unknown peer 'nowhere'" in output
    assert "remote" in output


def test_find_prints_the_matches(config: Path, remote: Remote, tmp_path: Path) -> None:
    _store(remote.runtime, tmp_path, 2, patient_name="SMITH^ANNA", patient_id="P77")
    code, output = _run(
        config,
        "find",
        "remote",
        "-k",
        "PatientName=SMITH*",
        "-k",
        "PatientID",
        "-k",
        "StudyInstanceUID",
    )
    assert code == 0, output
    assert "SMITH^ANNA" in output
    assert "2 matches from REMOTE" in output


def test_find_with_a_bad_identifier_reports_the_failure(config: Path) -> None:
    code, output = _run(config, "find", "remote", "-l", "SERIES", "-k", "Modality=CT")
    assert code == 2
    assert "0xA900" in output


def test_retrieve_by_get_and_by_move(config: Path, remote: Remote, tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.10.77.1"
    uids = _store(remote.runtime, tmp_path, 3, study_uid=study)
    code, output = _run(
        config, "retrieve", "remote", "--method", "get", "-k", f"StudyInstanceUID={study}"
    )
    assert code == 0, output
    assert "GET from REMOTE: status 0x0000, 3 completed, 0 failed" in output
    local = _local(config)
    try:
        for uid in uids:
            here, there = (
                local.repository.get_instance(uid),
                remote.runtime.repository.get_instance(uid),
            )
            assert here is not None and there is not None
            assert here.content_sha256 == there.content_sha256
            assert here.transfer_syntax_uid == there.transfer_syntax_uid
    finally:
        local.close()
    more = _store(remote.runtime, tmp_path, 2, study_uid=study)
    code, output = _run(config, "retrieve", "remote", "-k", f"StudyInstanceUID={study}")
    assert code == 0, output
    assert "MOVE from REMOTE: status 0x0000, 5 completed" in output
    local = _local(config)
    try:
        assert all(local.repository.get_instance(uid) is not None for uid in more)
    finally:
        local.close()


def test_send_by_uid_and_by_query(config: Path, remote: Remote, tmp_path: Path) -> None:
    local = _local(config)
    try:
        first = _store(local, tmp_path, 2, patient_id="SEND1")
        second = _store(local, tmp_path, 1, patient_id="SEND2", modality="MR")
    finally:
        local.close()
    code, output = _run(config, "send", "remote", first[0])
    assert code == 0, output
    assert "send: 1 sent, 0 with warnings, 0 failed" in output
    code, output = _run(config, "send", "remote", "-k", "PatientID=SEND2")
    assert code == 0, output
    assert "send: 1 sent" in output
    assert remote.runtime.repository.get_instance(second[0]) is not None
    code, output = _run(config, "send", "remote", "1.2.3.4.5.6.7")
    assert code == 2
    assert "no stored study, series or instance has the UID 1.2.3.4.5.6.7" in output
