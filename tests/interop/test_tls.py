"""DICOM over TLS with DCMTK: echoscu and storescu with certificates against dicomhub."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.factories import make_dataset, write_file
from tests.interop.support import (
    HOST,
    HUB_AE,
    HubFactory,
    dimse_statuses,
    output_of,
    run_tool,
)
from tests.tls import Certificates, make_certificates

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _tls_options(certificates: Certificates) -> list[str | Path]:
    return [
        "+tls",
        certificates.client_key,
        certificates.client_certificate,
        "+cf",
        certificates.ca,
    ]


def test_dcmtk_store_over_mutual_tls(
    start_hub: HubFactory, certificates: Certificates, tmp_path: Path
) -> None:
    hub = start_hub(
        {
            "DICOMHUB_TLS_CERTIFICATE": str(certificates.server_certificate),
            "DICOMHUB_TLS_PRIVATE_KEY": str(certificates.server_key),
            "DICOMHUB_TLS_CA_CERTIFICATES": str(certificates.ca),
        }
    )
    options = _tls_options(certificates)
    echo = run_tool(["echoscu", "-d", *options, "-aec", HUB_AE, HOST, str(hub.port)])
    assert echo.returncode == 0, output_of(echo)[-2000:]
    ds = make_dataset(rows=64)
    path = write_file(ds, tmp_path / "a.dcm")
    store = run_tool(["storescu", "-d", *options, "-aec", HUB_AE, HOST, str(hub.port), path])
    assert dimse_statuses(output_of(store)) == [0x0000], output_of(store)[-2000:]
    stored = hub.instance(str(ds.SOPInstanceUID))
    assert stored is not None
    data = hub.blob(stored.blob_key)
    original = path.read_bytes()
    offset = 144 + int.from_bytes(original[140:144], "little")
    assert hashlib.sha256(data[-(len(original) - offset) :]).digest() == (
        hashlib.sha256(original[offset:]).digest()
    )
    # Without a client certificate, or without TLS, nothing gets through.
    anonymous = run_tool(
        ["echoscu", "+tla", "+cf", certificates.ca, "-aec", HUB_AE, HOST, str(hub.port)]
    )
    assert anonymous.returncode != 0
    plain = run_tool(["echoscu", "-to", "5", "-aec", HUB_AE, HOST, str(hub.port)])
    assert plain.returncode != 0
    assert hub.count("instances") == 1
