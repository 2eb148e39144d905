"""The registry and the conformance statement do not drift."""

from __future__ import annotations

from pathlib import Path

from dicomhub.config import Service
from dicomhub.conformance import REGISTRY, render_conformance, service_of, supported

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def test_docs_conformance_is_generated_from_registry() -> None:
    assert DOC.read_text() == render_conformance() + "\n", (
        "docs/conformance.md is stale: run `dicomhub conformance > docs/conformance.md`"
    )


def test_registry_content() -> None:
    storage = supported(Service.STORAGE)
    assert len(storage) > 100
    assert service_of("1.2.840.10008.5.1.4.1.1.2") is Service.STORAGE
    assert service_of("1.2.840.10008.1.1") is Service.VERIFICATION
    assert service_of("1.2.840.10008.5.1.4.1.2.2.1") is Service.QUERY
    assert service_of("1.2.3.4") is None
    ct = next(e for e in REGISTRY if e.uid == "1.2.840.10008.5.1.4.1.1.2")
    assert "1.2.840.10008.1.2.4.90" in ct.transfer_syntaxes  # JPEG 2000 lossless
    assert "1.2.840.10008.1.2.5" in ct.transfer_syntaxes  # RLE
    assert ct.transfer_syntaxes[0] == "1.2.840.10008.1.2"
