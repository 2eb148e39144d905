"""The C-STORE service hands the engine's work on: checksums computed while receiving are
not computed again."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from pathlib import Path

import pytest

from dicomhub.dicom.engine.filemeta import part10_prefix
from dicomhub.dicom.peers import AssociationInfo
from dicomhub.dicom.services.store import StoreRequest, StoreService
from dicomhub.header import KnownMeta
from dicomhub.ingest import StoreStatus
from dicomhub.runtime import Runtime
from dicomhub.storage import base
from tests.factories import make_dataset, write_file

ASSOCIATION = AssociationInfo("SCU", "DICOMHUB", "127.0.0.1", 1)


def _received(tmp_path: Path) -> tuple[StoreRequest, str]:
    ds = make_dataset()
    data = write_file(ds, tmp_path / "a.dcm").read_bytes()
    data_set = data[144 + int.from_bytes(data[140:144], "little") :]
    prefix = part10_prefix(
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        implementation_class_uid="1.2.3",
        implementation_version_name="TEST",
        source_ae_title="SCU",
    )
    digest = hashlib.sha256(data_set).hexdigest()
    request = StoreRequest(
        str(ds.SOPClassUID),
        str(ds.SOPInstanceUID),
        None,
        content=bytearray(prefix + data_set),
        known=KnownMeta(len(prefix), "1.2.840.10008.1.2.1"),
    )
    return request, digest


def _hash_forbidden(*_args: object) -> str:
    raise AssertionError("the data set was hashed again")


def test_a_checksum_computed_while_receiving_is_used(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, digest = _received(tmp_path)
    service = StoreService(runtime.ingest, runtime.access)
    monkeypatch.setattr(base, "data_set_sha256", _hash_forbidden)
    received = StoreRequest(**{**request.__dict__, "content_sha256": digest})
    assert service.store(ASSOCIATION, received).status is StoreStatus.STORED
    stored = runtime.repository.get_instance(request.affected_sop_instance_uid)
    assert stored is not None and stored.content_sha256 == digest


def test_a_checksum_being_computed_elsewhere_is_awaited(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, digest = _received(tmp_path)
    service = StoreService(runtime.ingest, runtime.access)
    pending: Future[str] = Future()
    pending.set_result(digest)
    monkeypatch.setattr(base, "data_set_sha256", _hash_forbidden)
    received = StoreRequest(**{**request.__dict__, "content_digest": pending})
    assert service.store(ASSOCIATION, received).status is StoreStatus.STORED
    stored = runtime.repository.get_instance(request.affected_sop_instance_uid)
    assert stored is not None and stored.content_sha256 == digest
