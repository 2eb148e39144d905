"""Reading Accept headers into what DICOMweb sends."""

from __future__ import annotations

import pytest

from dicomhub.errors import NotAcceptable
from dicomhub.web.dicomweb.media import (
    accepted,
    frame_choice,
    instance_syntax,
    json_accepted,
    rendered_type,
)

RLE = "1.2.840.10008.1.2.5"


def test_instance_transfer_syntax_negotiation() -> None:
    assert instance_syntax(None) == "1.2.840.10008.1.2.1"
    assert instance_syntax("*/*") == "1.2.840.10008.1.2.1"
    assert instance_syntax('multipart/related; type="application/dicom"; transfer-syntax=*') is None
    assert (
        instance_syntax(f'multipart/related; type="application/dicom"; transfer-syntax={RLE}')
        == RLE
    )
    preferred = (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2;q=0.5, '
        'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.9'
    )
    assert instance_syntax(preferred) is None
    with pytest.raises(NotAcceptable):
        instance_syntax("application/json")
    with pytest.raises(NotAcceptable):
        instance_syntax('multipart/related; type="application/dicom"; transfer-syntax=1.2.3')


def test_frames_json_and_rendered() -> None:
    assert frame_choice(None, RLE).native is True
    assert frame_choice('multipart/related; type="image/dicom-rle"', RLE).native is False
    assert frame_choice('multipart/related; type="application/octet-stream"', RLE).native is True
    assert frame_choice('multipart/related; type="application/octet-stream"', "").native is True
    with pytest.raises(NotAcceptable, match="image/dicom-rle"):
        frame_choice('multipart/related; type="image/jpeg"', RLE)
    json_accepted("application/dicom+json")
    with pytest.raises(NotAcceptable):
        json_accepted("application/dicom+xml")
    assert rendered_type("image/png") == "image/png"
    assert rendered_type(None) == "image/jpeg"
    with pytest.raises(NotAcceptable):
        rendered_type("image/gif")
    assert [r.media_type for r in accepted("a/b;q=0, c/d")] == ["c/d"]
