"""``dicomhub send --commit`` and ``dicomhub commitments`` against a second, in-process dicomhub.

The remote dicomhub ("REMOTE", asyncio engine) is the Storage Commitment SCP and reports on
the requesting association; a pynetdicom SCP that never reports stands for a peer whose report
is still to come.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.config import load_settings
from dicomhub.dicom.commitment_scu import request_dataset
from dicomhub.dicom.server import Listener, create_listener
from dicomhub.dicom.services.storage_commitment import parse_request
from dicomhub.index.commitments import Role, State
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime, open_runtime
from tests.factories import make_dataset, write_file
from tests.ports import free_port

COMMITMENT = "1.2.840.10008.1.20.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


class Remote:
    """A dicomhub playing the remote archive ("REMOTE")."""

    def __init__(self, folder: Path, **overrides: Any) -> None:
        settings = load_settings(
            None, ae_title="REMOTE", data_dir=folder, dicom_port=0, engine="asyncio", **overrides
        )
        self.runtime: Runtime = open_runtime(settings)
        self.listener: Listener = create_listener(self.runtime)
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()
        self.runtime.close()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    hub = Remote(tmp_path / "remote")
    yield hub
    hub.stop()


@pytest.fixture
def silent_scp() -> Iterator[int]:
    """A pynetdicom archive that stores CT images, accepts storage commitment requests and
    never reports; its port."""
    ae = AE(ae_title="SILENT")
    ae.add_supported_context(CT_IMAGE_STORAGE)
    ae.add_supported_context(COMMITMENT, scu_role=True, scp_role=True)

    def success(event: Any) -> tuple[int, None] | int:
        return (0x0000, None) if event.event is evt.EVT_N_ACTION else 0x0000

    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_N_ACTION, success), (evt.EVT_C_STORE, success)],
    )
    assert server is not None
    yield int(server.server_address[1])
    server.shutdown()


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, peers: str) -> Path:
    path = tmp_path / "local.toml"
    path.write_text(
        f'ae_title = "LOCAL"\ndata_dir = "{tmp_path / "local"}"\n'
        f'dicom_port = {free_port()}\nlog_level = "WARNING"\n{peers}'
    )
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("DICOMHUB_DATABASE_URL", database_url)
    for name in ("DICOMHUB_CONFIG", "DICOMHUB_DATA_DIR", "DICOMHUB_DICOM_PORT"):
        monkeypatch.delenv(name, raising=False)
    return path


def _peer(name: str, ae_title: str, port: int) -> str:
    return f'[peers.{name}]\nae_title = "{ae_title}"\nhost = "127.0.0.1"\nport = {port}\n'


def _store(config: Path, tmp_path: Path, count: int) -> list[str]:
    runtime = open_runtime(load_settings(config))
    uids = []
    try:
        for _ in range(count):
            ds = make_dataset()
            path = write_file(ds, tmp_path / "files" / f"{ds.SOPInstanceUID}.dcm")
            runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
            uids.append(str(ds.SOPInstanceUID))
    finally:
        runtime.close()
    return uids


def _run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.output


def _transactions(config: Path) -> list[Any]:
    runtime = open_runtime(load_settings(config))
    try:
        return runtime.commitments.list(Role.SCU)
    finally:
        runtime.close()


def test_send_commit_reports_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, remote: Remote
) -> None:
    config = _config(
        tmp_path, monkeypatch, database_url, _peer("remote", "REMOTE", remote.listener.port)
    )
    uids = _store(config, tmp_path, 2)
    code, output = _run(config, "send", "remote", *uids, "--commit", "--wait", "60")
    assert code == 0, output
    assert "send: 2 sent, 0 with warnings, 0 failed" in output
    (transaction,) = _transactions(config)
    assert transaction.state is State.COMMITTED
    assert f"storage commitment {transaction.transaction_uid} (REMOTE): committed, 2 instances" in (
        output
    )

    code, output = _run(config, "commitments", "list", "--role", "scu")
    assert code == 0, output
    for title in ("role", "transaction UID", "peer", "state", "committed", "pending", "created"):
        assert title in output
    assert transaction.transaction_uid in output
    assert "REMOTE" in output and "committed" in output

    code, output = _run(config, "commitments", "show", transaction.transaction_uid)
    assert code == 0, output
    assert f"transaction {transaction.transaction_uid} (id {transaction.id})" in output
    assert "role: scu (LOCAL asked REMOTE to commit)" in output
    assert "state: committed: 2 committed, 0 failed, 0 pending" in output
    for uid in uids:
        assert uid in output
    assert "requested" in output and "report-received" in output
    code, by_id = _run(config, "commitments", "show", str(transaction.id))
    assert code == 0 and transaction.transaction_uid in by_id


def test_send_commit_lists_instances_not_committed_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    # A remote that commits only what it forwarded, and forwards nothing: every instance
    # fails with 0x0110 once commitment_forward_wait has passed.
    remote = Remote(
        tmp_path / "remote", commitment_policy="forwarded", commitment_forward_wait=0.001
    )
    try:
        config = _config(
            tmp_path, monkeypatch, database_url, _peer("remote", "REMOTE", remote.listener.port)
        )
        uids = _store(config, tmp_path, 2)
        code, output = _run(config, "send", "remote", *uids, "--commit", "--wait", "60")
    finally:
        remote.stop()
    assert code == 1, output
    (transaction,) = _transactions(config)
    assert transaction.state is State.FAILED
    assert f"storage commitment {transaction.transaction_uid} (REMOTE): failed: 0 committed, " in (
        output
    )
    for uid in uids:
        assert f"  {uid}: FailureReason 0x0110 reported failed by the peer" in output

    code, output = _run(config, "commitments", "show", transaction.transaction_uid)
    assert code == 0, output
    assert output.count("0x0110") == 2
    assert "state: failed: 0 committed, 2 failed, 0 pending" in output
    code, output = _run(config, "commitments", "list", "--state", "failed")
    assert code == 0 and transaction.transaction_uid in output
    code, output = _run(config, "commitments", "--state", "committed")
    assert code == 0 and "no storage commitment transactions" in output


def test_send_commit_without_a_report_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, silent_scp: int
) -> None:
    config = _config(tmp_path, monkeypatch, database_url, _peer("silent", "SILENT", silent_scp))
    uids = _store(config, tmp_path, 1)
    code, output = _run(config, "send", "silent", *uids, "--commit", "--wait", "0.2")
    assert code == 0, output
    (transaction,) = _transactions(config)
    assert transaction.state is State.REQUESTED
    assert transaction.peer_ae_title == "SILENT"
    assert (
        f"storage commitment {transaction.transaction_uid} (SILENT): requested for 1 "
        "instances, no report yet" in output
    )
    assert "see `dicomhub commitments`" in output
    code, output = _run(config, "commitments", "list", "--role", "scu", "--state", "requested")
    assert code == 0 and transaction.transaction_uid in output


def test_send_commit_to_a_peer_that_does_not_answer_commitment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, remote: Remote
) -> None:
    """A peer that stores but has no Storage Commitment: the request fails, exit status 1."""
    store_only = AE(ae_title="STOREONLY")
    store_only.add_supported_context(CT_IMAGE_STORAGE)

    def stored(event: Any) -> int:
        return 0x0000

    server = store_only.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, stored)]
    )
    assert server is not None
    try:
        config = _config(
            tmp_path,
            monkeypatch,
            database_url,
            _peer("storeonly", "STOREONLY", int(server.server_address[1])),
        )
        uids = _store(config, tmp_path, 1)
        code, output = _run(config, "send", "storeonly", *uids, "--commit", "--wait", "5")
    finally:
        server.shutdown()
    assert code == 1, output
    assert "send: 1 sent" in output
    assert "failed: storage commitment not requested" in output
    (transaction,) = _transactions(config)
    assert transaction.state is State.FAILED
    assert "accepted none of the proposed presentation contexts" in transaction.last_error


def test_show_an_unknown_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    config = _config(tmp_path, monkeypatch, database_url, "")
    code, output = _run(config, "commitments")
    assert code == 0 and "no storage commitment transactions" in output
    code, output = _run(config, "commitments", "show", "1.2.3.4")
    assert code == 1
    assert "no storage commitment transaction has the id or UID 1.2.3.4" in output


def test_the_request_is_what_the_scp_side_parses() -> None:
    data = request_dataset("1.2.3", [(CT_IMAGE_STORAGE, "1.2.3.4")])
    parsed = parse_request(1, data)
    assert parsed.transaction_uid == "1.2.3"
    assert parsed.references == [(CT_IMAGE_STORAGE, "1.2.3.4")]
