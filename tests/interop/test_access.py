"""Who may associate and use which service: declared peers, calling and called AE titles.

Two servers: one with declared peers (TOML ``[peers.NAME]`` tables) and
DICOMHUB_ALLOW_UNKNOWN_CALLING_AE=false, one with DICOMHUB_CHECK_CALLED_AE=true.  Refused
associations must get an A-ASSOCIATE-RJ with the matching reason (PS3.8 9.3.4) and a log line
saying why; a declared peer may use only the services it lists (0x0124 otherwise).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.support import (
    HOST,
    Hub,
    echo_statuses,
    findscu,
    needs_dcmtk,
    output_of,
    run_tool,
    running_hub,
    sample,
)
from tests.interop.support import dcmsend as send_files

pytestmark = [pytest.mark.interop, needs_dcmtk]

PEERS = """
[peers.modality]
ae_title = "MODALITY1"
host = "127.0.0.1"
port = 104
services = ["verification", "storage"]

[peers.viewer]
ae_title = "VIEWER1"
host = "127.0.0.1"
port = 105
services = ["query"]
"""


@pytest.fixture(scope="module")
def guarded_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Only the declared peers MODALITY1 and VIEWER1 may associate."""
    env = {"DICOMHUB_ALLOW_UNKNOWN_CALLING_AE": "false"}
    with running_hub(tmp_path_factory.mktemp("guarded"), env, config=PEERS) as hub:
        yield hub


@pytest.fixture(scope="module")
def called_checked_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Any calling AE, but the called AE title must be DICOMHUB."""
    env = {"DICOMHUB_CHECK_CALLED_AE": "true"}
    with running_hub(tmp_path_factory.mktemp("called"), env) as hub:
        yield hub


def echoscu(hub: Hub, calling: str, called: str) -> subprocess.CompletedProcess[str]:
    return run_tool(
        ["echoscu", "-v", "-aet", calling, "-aec", called, HOST, str(hub.port)], timeout=30
    )


def test_unknown_calling_ae_is_refused_with_reason(guarded_hub: Hub) -> None:
    result = echoscu(guarded_hub, "STRANGER", guarded_hub.ae_title)
    text = output_of(result)

    assert result.returncode != 0, text
    assert "Association Rejected" in text
    assert "Rejected Permanent, Source: Service User" in text
    assert "Reason: Calling AE Title Not Recognized" in text
    assert echo_statuses(text) == []
    guarded_hub.wait_for_log(
        r"association from STRANGER@127\.0\.0\.1:\d+ to DICOMHUB refused: "
        r"calling AE title 'STRANGER' is not a declared peer"
    )
    assert "C-ECHO from STRANGER" not in guarded_hub.log()


def test_declared_peer_is_accepted(guarded_hub: Hub) -> None:
    result = echoscu(guarded_hub, "MODALITY1", guarded_hub.ae_title)

    assert result.returncode == 0, output_of(result)
    assert echo_statuses(output_of(result)) == [0x0000]
    guarded_hub.wait_for_log(r"C-ECHO from MODALITY1@127\.0\.0\.1:\d+: 0x0000")


def test_peer_without_verification_service_is_not_authorized(guarded_hub: Hub) -> None:
    result = echoscu(guarded_hub, "VIEWER1", guarded_hub.ae_title)

    assert echo_statuses(output_of(result)) == [0x0124]
    guarded_hub.wait_for_log(r"C-ECHO from VIEWER1@127\.0\.0\.1:\d+: 0x0124")


def test_peer_without_storage_service_cannot_store(guarded_hub: Hub, workdir: Path) -> None:
    before = guarded_hub.snapshot()
    outcomes, result = send_files(
        [sample("CT_small.dcm")],
        guarded_hub.ae_title,
        guarded_hub.port,
        workdir,
        "-aet",
        "VIEWER1",
    )

    (outcome,) = outcomes.values()
    assert outcome.status == 0x0124, output_of(result)
    assert guarded_hub.snapshot() == before
    guarded_hub.wait_for_log(r"C-STORE \S+ from VIEWER1@127\.0\.0\.1:\d+ refused: 0x0124")


def test_peer_with_storage_service_can_store(guarded_hub: Hub, workdir: Path) -> None:
    outcomes, result = send_files(
        [sample("CT_small.dcm")],
        guarded_hub.ae_title,
        guarded_hub.port,
        workdir,
        "-aet",
        "MODALITY1",
    )

    (outcome,) = outcomes.values()
    assert outcome.status == 0x0000, output_of(result)
    assert guarded_hub.instance("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322") is not None


def test_query_service_is_restricted_to_peers_listing_it(guarded_hub: Hub, workdir: Path) -> None:
    keys = ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"]

    refused = findscu(guarded_hub, "S", keys, workdir, calling_ae="MODALITY1")
    allowed = findscu(guarded_hub, "S", keys, workdir, calling_ae="VIEWER1")

    assert refused.status == 0x0124
    assert refused.matches == []
    assert allowed.status == 0x0000
    guarded_hub.wait_for_log(r"C-FIND from MODALITY1@127\.0\.0\.1:\d+ refused: 0x0124")


def test_wrong_called_ae_is_refused_when_checked(called_checked_hub: Hub) -> None:
    result = echoscu(called_checked_hub, "ANYONE", "WRONGAE")
    text = output_of(result)

    assert result.returncode != 0, text
    assert "Association Rejected" in text
    assert "Reason: Called AE Title Not Recognized" in text
    called_checked_hub.wait_for_log(
        r"association from ANYONE@127\.0\.0\.1:\d+ to WRONGAE refused: "
        r"called AE title 'WRONGAE' is not 'DICOMHUB'"
    )


def test_right_called_ae_is_accepted_when_checked(called_checked_hub: Hub) -> None:
    result = echoscu(called_checked_hub, "ANYONE", "DICOMHUB")

    assert result.returncode == 0, output_of(result)
    assert echo_statuses(output_of(result)) == [0x0000]
