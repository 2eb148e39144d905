"""Media types and transfer syntaxes of DICOMweb answers (PS3.18 8.7): reading ``Accept``.

``Accept: multipart/related; type="application/dicom"; transfer-syntax=UID`` asks for
instances in that transfer syntax; ``transfer-syntax=*`` for instances as stored; without the
parameter the standard's default applies (Explicit VR Little Endian for instances, native
pixels for frames and bulk data).  Several media ranges are tried in order of their ``q``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import UID

from dicomhub.errors import NotAcceptable
from dicomhub.web.multipart import media_type

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
ANY_SYNTAX = "*"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"

FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
"""The media type of a compressed frame, by the transfer syntax it is encoded in."""


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    media_type: str
    part_type: str
    """The ``type`` parameter of a multipart range ('' when absent)."""
    transfer_syntax: str
    """The ``transfer-syntax`` parameter ('' when absent)."""
    quality: float


def accepted(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, best first (``*/*`` when there is none)."""
    if not header or not header.strip():
        return [MediaRange("*/*", "", "", 1.0)]
    ranges = []
    for index, entry in enumerate(_split(header)):
        main, params = media_type(entry)
        if not main:
            continue
        try:
            quality = float(params.get("q", "1") or 1)
        except ValueError:
            quality = 1.0
        ranges.append(
            (
                -quality,
                index,
                MediaRange(
                    main,
                    params.get("type", "").strip().lower(),
                    params.get("transfer-syntax", "").strip(),
                    quality,
                ),
            )
        )
    ranges.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in ranges if r[2].quality > 0]


def _split(header: str) -> list[str]:
    """Split on commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _wildcard(media: str) -> bool:
    return media in ("*/*", "multipart/*")


def instance_syntax(header: str | None) -> str | None:
    """For instances (multipart/related of application/dicom): the transfer syntax to send,
    None for as stored; ``NotAcceptable`` when no range allows instances."""
    for item in accepted(header):
        multipart = item.media_type == "multipart/related"
        if _wildcard(item.media_type) or (
            multipart and item.part_type in ("", DICOM, "application/*", "*/*")
        ):
            return _syntax(item.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN)
    raise NotAcceptable(
        'Instances are sent as multipart/related; type="application/dicom": the request\'s '
        "Accept header allows none of it."
    )


def _syntax(value: str, default: str) -> str | None:
    if value == ANY_SYNTAX:
        return None
    if not value:
        return default
    if not UID(value).is_transfer_syntax:
        raise NotAcceptable(f"{value} is not a transfer syntax dicomhub knows")
    return value


def json_accepted(header: str | None) -> None:
    """Refuse (406) unless the Accept header allows DICOM JSON."""
    for item in accepted(header):
        if item.media_type in (DICOM_JSON, "application/json", "application/*", "*/*"):
            return
    raise NotAcceptable("This resource is DICOM JSON (application/dicom+json) only.")


@dataclass(frozen=True)
class FrameChoice:
    """How frames or bulk data are sent: native pixels, or as stored."""

    native: bool


def frame_choice(header: str | None, stored_syntax: str) -> FrameChoice:
    """Native (application/octet-stream) or as stored (the stored syntax's image type, or
    ``transfer-syntax=*``); ``NotAcceptable`` otherwise."""
    stored_media = FRAME_MEDIA_TYPES.get(stored_syntax)
    for item in accepted(header):
        if _wildcard(item.media_type):
            return FrameChoice(native=not (item.transfer_syntax == ANY_SYNTAX and stored_media))
        if item.media_type != "multipart/related":
            continue
        part = item.part_type or OCTET_STREAM
        if part == OCTET_STREAM and item.transfer_syntax in ("", EXPLICIT_VR_LITTLE_ENDIAN):
            return FrameChoice(native=True)
        if part in ("*/*", "image/*") or part == stored_media:
            if stored_media is None:
                return FrameChoice(native=True)
            if item.transfer_syntax in ("", ANY_SYNTAX, stored_syntax):
                return FrameChoice(native=False)
    raise NotAcceptable(
        'Frames are sent as multipart/related; type="application/octet-stream" (native '
        "pixels) or in the compressed media type they are stored in"
        + (f" ({stored_media})" if stored_media else "")
        + ": the request's Accept header allows neither."
    )


def rendered_type(header: str | None, default: str = "image/jpeg") -> str:
    """image/jpeg or image/png for a rendered resource."""
    for item in accepted(header):
        if item.media_type in ("image/jpeg", "image/png"):
            return item.media_type
        if item.media_type in ("*/*", "image/*"):
            return default
    raise NotAcceptable("Rendered images are image/jpeg or image/png.")
