"""Orthanc as the Storage Commitment SCP, dicomhub as the SCU.

A ``dicomhub serve`` declares Orthanc as the peer "orthanc"; Orthanc knows dicomhub as its
modality "hub".  Orthanc answers the N-ACTION and sends its N-EVENT-REPORT on a NEW
association to the modality's declared address, so the report arrives on the running hub's
listener and is recorded there, whatever the requesting process was.

* ``dicomhub send orthanc UID... --commit`` (a CLI process on the hub's data folder) stores
  instances in Orthanc and asks it to commit to them: the transaction ends ``committed``.
* A commitment request for an instance Orthanc never received ends ``failed``, with the
  FailureReason Orthanc gives for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomhub.config import PeerConfig, load_settings
from dicomhub.dicom.bindings import storage_commitment
from dicomhub.dicom.commitment_scu import request_commitment
from dicomhub.index.commitments import State
from dicomhub.runtime import open_runtime
from tests.factories import make_dataset
from tests.interop.support import (
    ENGINE,
    HOST,
    UID_ROOT,
    Hub,
    hub_cli,
    needs_orthanc,
    output_of,
    store_raw,
    wait_until,
    write_part10,
)
from tests.interop.test_orthanc import Orthanc, hub_with_orthanc

pytestmark = [
    pytest.mark.interop,
    needs_orthanc,
    pytest.mark.skipif(
        ENGINE != "asyncio", reason="Storage Commitment is served by the asyncio engine only"
    ),
]

ROOT = f"{UID_ROOT}.31"
REPORT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def peered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Orthanc]]:
    """A hub and an Orthanc that know each other (see ``hub_with_orthanc``)."""
    with hub_with_orthanc(tmp_path_factory.mktemp("peered")) as pair:
        yield pair


@pytest.fixture(scope="module")
def hub(peered: tuple[Hub, Orthanc]) -> Hub:
    return peered[0]


@pytest.fixture(scope="module")
def orthanc(peered: tuple[Hub, Orthanc]) -> Orthanc:
    return peered[1]


def stored_in_hub(hub: Hub, folder: Path, label: str, count: int) -> list[Dataset]:
    """New instances C-STOREd into the running hub."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = []
    for number in range(1, count + 1):
        ds = make_dataset(
            study_uid=f"{ROOT}.{label}",
            series_uid=f"{ROOT}.{label}.1",
            sop_uid=f"{ROOT}.{label}.1.{number}",
            patient_id=f"COMMIT-{label}",
        )
        path = write_part10(folder / f"{label}-{number}.dcm", ds)
        status = store_raw(hub, path)
        assert status.Status == 0x0000, status
        stored.append(ds)
    return stored


def transaction_state(hub: Hub, transaction_uid: str) -> str:
    rows = hub.rows(
        "SELECT state FROM commitment_transactions WHERE role = 'scu' AND transaction_uid = ?",
        [transaction_uid],
    )
    return str(rows[0]["state"]) if rows else ""


def settled(hub: Hub, transaction_uid: str) -> str:
    """The transaction's state once it has left ``requested`` (waiting for the report)."""
    wait_until(
        lambda: transaction_state(hub, transaction_uid) not in {"", "requested"},
        REPORT_TIMEOUT,
        0.1,
    )
    return transaction_state(hub, transaction_uid)


def items(hub: Hub, transaction_uid: str) -> dict[str, tuple[str, int | None]]:
    """Instance UID -> (outcome, FailureReason) of a transaction's items."""
    rows = hub.rows(
        """
        SELECT i.sop_instance_uid, i.outcome, i.failure_reason
        FROM commitment_items i JOIN commitment_transactions t ON i.transaction_fk = t.id
        WHERE t.role = 'scu' AND t.transaction_uid = ?
        """,
        [transaction_uid],
    )
    return {r["sop_instance_uid"]: (r["outcome"], r["failure_reason"]) for r in rows}


def test_orthanc_commits_what_dicomhub_sent(hub: Hub, orthanc: Orthanc, tmp_path: Path) -> None:
    sent = stored_in_hub(hub, tmp_path, "1", 3)
    uids = [str(ds.SOPInstanceUID) for ds in sent]
    result = hub_cli(hub, "send", "orthanc", *uids, "--commit", "--wait", "30")
    text = output_of(result)
    assert result.returncode == 0, text + hub.log()[-3000:]
    assert "send: 3 sent, 0 with warnings, 0 failed" in result.stdout
    assert set(uids) <= set(orthanc_instance_uids(orthanc))
    rows = hub.rows(
        "SELECT transaction_uid FROM commitment_transactions WHERE role = 'scu' "
        "AND peer_ae_title = 'ORTHANC' ORDER BY id DESC LIMIT 1"
    )
    uid = str(rows[0]["transaction_uid"])
    assert f"storage commitment {uid} (ORTHANC)" in result.stdout
    assert settled(hub, uid) == "committed", hub.log()[-3000:] + orthanc.log()[-3000:]
    assert items(hub, uid) == dict.fromkeys(uids, ("committed", None))
    # The report came on a new association to the hub's listener.
    hub.wait_for_log(rf"storage commitment {uid} reported by ORTHANC@127\.0\.0\.1:\d+: committed")

    shown = hub_cli(hub, "commitments", "show", uid)
    assert shown.returncode == 0, output_of(shown)
    assert "role: scu (DICOMHUB asked ORTHANC to commit)" in shown.stdout
    assert "state: committed: 3 committed, 0 failed, 0 pending" in shown.stdout
    assert "report-received" in shown.stdout


def test_an_instance_orthanc_does_not_have_fails(
    hub: Hub, orthanc: Orthanc, tmp_path: Path
) -> None:
    (kept,) = stored_in_hub(hub, tmp_path, "2", 1)
    result = hub_cli(hub, "send", "orthanc", str(kept.SOPInstanceUID))
    assert result.returncode == 0, output_of(result)
    (never_sent,) = stored_in_hub(hub, tmp_path, "3", 1)
    references = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in (kept, never_sent)]
    # Requested by a process of its own on the hub's data folder, as `dicomhub send` does.
    settings = load_settings(None, data_dir=hub.data_dir, ae_title=hub.ae_title)
    runtime = open_runtime(settings)
    try:
        peer = PeerConfig(ae_title="ORTHANC", host=HOST, port=orthanc.dicom_port)
        transaction = request_commitment(
            settings, peer, references, storage_commitment(runtime), wait=0
        )
    finally:
        runtime.close()
    assert transaction.state is State.REQUESTED
    uid = transaction.transaction_uid
    assert settled(hub, uid) == "failed", hub.log()[-3000:] + orthanc.log()[-3000:]
    outcomes = items(hub, uid)
    assert outcomes[str(kept.SOPInstanceUID)] == ("committed", None)
    # Orthanc: "no such object instance" for an instance it does not store.
    assert outcomes[str(never_sent.SOPInstanceUID)] == ("failed", 0x0112)

    shown = hub_cli(hub, "commitments", "show", uid)
    assert shown.returncode == 0, output_of(shown)
    assert "0x0112" in shown.stdout
    assert "state: failed: 1 committed, 1 failed, 0 pending" in shown.stdout


def orthanc_instance_uids(orthanc: Orthanc) -> list[str]:
    """SOP Instance UIDs of every instance Orthanc stores."""
    answer = orthanc.post_json("/tools/find", {"Level": "Instance", "Query": {}, "Expand": True})
    return [str(i["MainDicomTags"]["SOPInstanceUID"]) for i in answer]
