"""Sample objects of every transfer syntax, and multipart bodies, for the web tests."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from dicomhub.header import is_valid_uid
from tests.interop.support import sample

SYNTAX_SAMPLES = {
    "1.2.840.10008.1.2": "MR_small_implicit.dcm",
    "1.2.840.10008.1.2.1": "MR_small.dcm",
    "1.2.840.10008.1.2.2": "MR_small_bigendian.dcm",
    "1.2.840.10008.1.2.1.99": "image_dfl.dcm",
    "1.2.840.10008.1.2.5": "MR_small_RLE.dcm",
    "1.2.840.10008.1.2.4.50": "SC_rgb_jpeg_dcmtk.dcm",
    "1.2.840.10008.1.2.4.51": "JPGExtended.dcm",
    "1.2.840.10008.1.2.4.80": "MR_small_jpeg_ls_lossless.dcm",
    "1.2.840.10008.1.2.4.90": "MR_small_jp2klossless.dcm",
    "1.2.840.10008.1.2.4.91": "JPEG2000.dcm",
}
"""A storable pydicom test file in each transfer syntax pydicom decodes here (pydicom has
no JPEG-LS near-lossless file with the UIDs an archive needs: see the imaging unit tests)."""


def unique_copy(name: str, target: Path) -> Path:
    """A byte-identical copy of a pydicom test file whose SOP Instance UID is new (the UID is
    replaced by one of the same length, so no element length changes)."""
    data = sample(name).read_bytes()
    old = str(pydicom.dcmread(sample(name), stop_before_pixels=True).SOPInstanceUID)
    new = ""
    while len(new) != len(old) or not is_valid_uid(new):
        new = generate_uid()[: len(old)]
    if old.encode() in data:
        data = data.replace(old.encode(), new.encode())
    target.write_bytes(data)
    return target


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0und4ry") -> tuple[bytes, str]:
    """A multipart/related body of (content type, bytes) parts and its Content-Type."""
    body = b"".join(
        b"--"
        + boundary.encode()
        + b"\r\nContent-Type: "
        + kind.encode()
        + b"\r\n\r\n"
        + data
        + b"\r\n"
        for kind, data in parts
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def parts_of(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart answer into (headers, content) parts (a reader of our own tests; the
    interop tests use dicomweb-client's)."""
    boundary = content_type.split("boundary=")[1].split(";", maxsplit=1)[0].strip('"')
    found = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        found.append((headers, content[:-2]))
    return found
