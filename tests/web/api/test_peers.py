"""Peers over REST, with a second dicomhub as the real peer: add, edit, C-ECHO, send (C-STORE),
query (C-FIND) and retrieve (C-GET), remove."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset

from dicomhub.config import Settings
from dicomhub.dicom import qr_scu
from dicomhub.dicom.server import Listener, create_listener
from dicomhub.errors import PeerRefused
from dicomhub.runtime import Runtime, open_runtime
from tests.factories import make_dataset
from tests.ports import free_port
from tests.web.conftest import Web


@pytest.fixture
def peer(settings: Settings, tmp_path: Path) -> Iterator[tuple[Listener, Runtime]]:
    """Another dicomhub (its own SQLite index and storage) listening on a free port."""
    peer_settings = settings.model_copy(
        update={
            "ae_title": "PEERHUB",
            "dicom_port": 0,
            "engine": "asyncio",
            "data_dir": tmp_path / "peer",
            "database_url": f"sqlite:///{tmp_path / 'peer.sqlite'}",
        }
    )
    runtime = open_runtime(peer_settings)
    listener = create_listener(runtime)
    listener.start()
    try:
        yield listener, runtime
    finally:
        listener.stop()
        runtime.close()


def test_peer_list_add_edit_echo_remove(
    peer: tuple[Listener, Runtime], client: httpx.Client
) -> None:
    listener, _ = peer
    body = {"ae_title": "PEERHUB", "host": "127.0.0.1", "port": listener.port}
    added = client.post("/api/peers/archive", json=body)
    assert added.status_code == 201
    assert added.json()["source"] == "database"
    assert client.post("/api/peers/archive", json=body).status_code == 409
    changed = client.put("/api/peers/archive", json={**body, "services": ["storage", "query"]})
    assert changed.json()["services"] == ["storage", "query"]
    assert [p["name"] for p in client.get("/api/peers").json()["items"]] == ["archive"]
    echo = client.post("/api/peers/archive/echo").json()
    assert echo["status"] == 0 and echo["ok"] is True
    invalid = client.post("/api/peers/bad", json={**body, "ae_title": "A\\B"})
    assert invalid.status_code == 400
    assert "AE title" in invalid.json()["error"]
    assert client.delete("/api/peers/archive").json() == {"removed": "archive"}
    assert client.post("/api/peers/archive/echo").status_code == 404
    down = {"ae_title": "NOBODY", "host": "127.0.0.1", "port": free_port()}
    client.post("/api/peers/down", json=down)
    unreachable = client.post("/api/peers/down/echo")
    assert unreachable.status_code == 502
    assert "cannot connect" in unreachable.json()["error"]


def test_send_find_and_get(peer: tuple[Listener, Runtime], web: Web, client: httpx.Client) -> None:
    listener, peer_runtime = peer
    client.post(
        "/api/peers/archive",
        json={"ae_title": "PEERHUB", "host": "127.0.0.1", "port": listener.port},
    )
    first = make_dataset(patient_name="DOE^SENT")
    second = make_dataset(
        patient_name="DOE^SENT",
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
    )
    for dataset in (first, second):
        web.store(dataset)
    study = str(first.StudyInstanceUID)

    sent = client.post("/api/peers/archive/send", json={"uids": [study]}).json()
    assert (sent["sent"], sent["failed"]) == (2, 0)
    assert peer_runtime.repository.count_instances() == 2
    for instance in web.runtime.repository.iter_instances():
        copy = peer_runtime.repository.get_instance(instance.sop_instance_uid)
        assert copy is not None and copy.content_sha256 == instance.content_sha256
    assert client.post("/api/peers/archive/send", json={"uids": ["1.2.3"]}).status_code == 404
    for listed in (f"{study}\\{study}", "1.2.*", "1.2.?"):
        refused = client.post("/api/peers/archive/send", json={"uids": [listed]})
        assert refused.status_code == 400
        assert f'The UID to send "{listed}" is not a valid UID' in refused.json()["error"]
    assert peer_runtime.repository.count_instances() == 2

    found = client.post(
        "/api/peers/archive/find",
        json={"level": "STUDY", "keys": {"PatientName": "doe^*", "StudyInstanceUID": ""}},
    ).json()
    assert found["total"] == 1
    assert found["items"][0]["0020000D"]["Value"] == [study]

    deleted = client.delete(f"/api/studies/{study}").json()
    assert deleted == {"deleted": 2}
    got = client.post(
        "/api/peers/archive/retrieve",
        json={"level": "STUDY", "keys": {"StudyInstanceUID": study}, "method": "get"},
    ).json()
    assert (got["ok"], got["completed"], got["failed"]) == (True, 2, 0)
    assert web.runtime.repository.count_instances() == 2
    bad_level = client.post("/api/peers/archive/find", json={"level": "FRAME"})
    assert bad_level.status_code == 400


def test_a_refused_find_is_502_with_the_peers_status(
    peer: tuple[Listener, Runtime], web: Web, client: httpx.Client
) -> None:
    listener, _ = peer
    client.post(
        "/api/peers/archive",
        json={"ae_title": "PEERHUB", "host": "127.0.0.1", "port": listener.port},
    )
    # a SERIES query without the Study Instance UID: the peer answers 0xA900
    refused = client.post("/api/peers/archive/find", json={"level": "SERIES", "keys": {}})
    assert refused.status_code == 502
    assert refused.json()["error"].startswith("C-FIND on PEERHUB failed: 0xA900 ")
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    with pytest.raises(PeerRefused) as caught:
        list(qr_scu.find(web.runtime.settings, web.runtime.access.peers()["archive"], query))
    assert caught.value.dimse_status == 0xA900
    assert caught.value.http_status == 502
