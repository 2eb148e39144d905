"""The streaming multipart reader and writer: parts survive any split of the body."""

from __future__ import annotations

import pytest

from dicomhub.errors import InvalidRequest
from dicomhub.web.multipart import (
    MultipartReader,
    Part,
    PartHeaders,
    multipart_stream,
    parameters,
)


class _Collect:
    def __init__(self, found: list[tuple[str, bytes]], headers: PartHeaders) -> None:
        self.found = found
        self.headers = headers
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.found.append((self.headers.content_type, bytes(self.data)))


def _read(body: bytes, boundary: str, step: int) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    reader = MultipartReader(boundary, lambda headers: _Collect(found, headers))
    for start in range(0, len(body), step):
        reader.feed(body[start : start + step])
    reader.finish()
    return found


PAYLOADS = [b"\x00\x01--bound\r\n" * 50, b"", b"--boundary-like\r\n--boun", bytes(range(256)) * 9]


@pytest.mark.parametrize("step", [1, 2, 7, 64, 1000, 1 << 20])
def test_written_parts_read_back_whatever_the_chunks(step: int) -> None:
    body = b"".join(
        multipart_stream([Part("application/dicom", [p[:3], p[3:]]) for p in PAYLOADS], "bound")
    )
    assert _read(b"preamble\r\n" + body + b"epilogue", "bound", step) == [
        ("application/dicom", p) for p in PAYLOADS
    ]


def test_parts_without_headers_and_with_padding() -> None:
    body = b"--b  \r\n\r\nfirst\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--"
    assert _read(body, "b", 3) == [("", b"first"), ("text/plain", b"second")]


def test_truncated_and_malformed_bodies_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="truncated"):
        _read(b"--b\r\n\r\npart without end", "b", 5)
    with pytest.raises(InvalidRequest, match="malformed"):
        _read(b"--b\r\nno colon here\r\n\r\nx\r\n--b--", "b", 100)
    with pytest.raises(InvalidRequest):
        MultipartReader("", lambda headers: _Collect([], headers))


def test_header_parameters() -> None:
    params = parameters('multipart/related; type="application/dicom"; boundary=abc; start="<1>"')
    assert params == {"type": "application/dicom", "boundary": "abc", "start": "<1>"}
    assert (
        PartHeaders({"content-disposition": 'form-data; name="f"; filename="a b.dcm"'}).filename
        == "a b.dcm"
    )
