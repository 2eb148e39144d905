"""Request body limits: a body over its route's limit is 413 with the error body, whether its
length is declared (Content-Length) or it arrives chunked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from dicomhub.web.limits import JSON_LIMIT

JSON = {"Content-Type": "application/json"}


def _chunked(size: int) -> Iterator[bytes]:
    """A JSON body of ``size`` bytes sent without a Content-Length (chunked)."""
    yield b"{"
    sent = 2
    while sent < size:
        piece = min(64 << 10, size - sent)
        yield b" " * piece
        sent += piece
    yield b"}"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/worklist"), ("PUT", "/api/peers/CT1"), ("POST", "/api/peers/CT1/find")],
)
def test_chunked_json_body_over_the_limit_is_413(
    client: httpx.Client, method: str, path: str
) -> None:
    answer = client.request(method, path, content=_chunked(JSON_LIMIT + 4096), headers=JSON)
    assert answer.status_code == 413, answer.text
    assert answer.json() == {
        "error": "The request is larger than the 1.0 MiB this server takes here; nothing of it "
        "was kept.",
        "status": 413,
    }


def test_declared_json_body_over_the_limit_is_413(client: httpx.Client) -> None:
    body = b"{" + b" " * JSON_LIMIT + b"}"
    answer = client.post("/api/worklist", content=body, headers=JSON)
    assert answer.status_code == 413
    assert answer.json()["error"] == (
        "The request is 1.0 MiB; this server takes at most 1.0 MiB here."
    )


def test_chunked_json_body_under_the_limit_is_read(client: httpx.Client) -> None:
    answer = client.post("/api/worklist", content=_chunked(JSON_LIMIT - 16), headers=JSON)
    assert answer.status_code == 422  # read whole, then found to hold no worklist item
    assert "PatientName" in answer.json()["error"]


def test_a_refusal_is_logged_once(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "dicomhub.web"):
        answer = client.post(
            "/api/instances",
            content=_chunked(JSON_LIMIT + 4096),
            headers={"Content-Type": "application/dicom"},
        )
        assert answer.status_code != 413  # an upload may be as large as http_max_upload
        caplog.clear()
        refused = client.post("/api/worklist", content=_chunked(JSON_LIMIT + 1), headers=JSON)
        assert refused.status_code == 413
    assert [r.message for r in caplog.records if "413" in r.message] == [
        "POST /api/worklist: 413 The request is larger than the 1.0 MiB this server takes "
        "here; nothing of it was kept."
    ]
