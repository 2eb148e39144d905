"""The DICOM data dictionary over REST: keyword and name of tags.

The DICOM JSON model (PS3.18 F) names attributes by tag only; a client showing a header to a
person (the web UI's tag tree) asks here for the keywords and names of the tags it holds.  The
answer comes from pydicom's dictionary (repeating groups such as overlays included); private
tags are described as such (PS3.5 7.8.1: creators in elements 0x10-0xFF of an odd group).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydicom.datadict import get_entry

from dicomhub.errors import InvalidRequest

router = APIRouter(prefix="/api", tags=["Dictionary"])
MAX_TAGS = 2000


def describe(tag: int) -> dict[str, Any]:
    """Keyword, name, VR, VM and whether it is retired, of one tag."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2:
        creator = 0x0010 <= element <= 0x00FF
        return {
            "keyword": "PrivateCreator" if creator else "",
            "name": "Private Creator" if creator else "Private tag",
            "vr": "LO" if creator else "",
            "vm": "1" if creator else "",
            "retired": False,
            "private": True,
        }
    try:
        vr, vm, name, retired, keyword = get_entry(tag)
    except KeyError:
        return {
            "keyword": "",
            "name": "Unknown tag",
            "vr": "",
            "vm": "",
            "retired": False,
            "private": False,
        }
    return {
        "keyword": keyword,
        "name": name,
        "vr": vr,
        "vm": vm,
        "retired": retired == "Retired",
        "private": False,
    }


def parse_tags(text: str) -> list[int]:
    """``00100010,00100020`` as tags (8 hexadecimal digits each)."""
    found: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if len(part) != 8:
            raise InvalidRequest(f"{part!r} is not a tag: give 8 hexadecimal digits, e.g. 00100010")
        try:
            found.append(int(part, 16))
        except ValueError:
            raise InvalidRequest(
                f"{part!r} is not a tag: give 8 hexadecimal digits, e.g. 00100010"
            ) from None
    if not found:
        raise InvalidRequest("Say which tags to describe: tags=00100010,00100020")
    if len(found) > MAX_TAGS:
        raise InvalidRequest(f"At most {MAX_TAGS} tags can be described at once.")
    return found


@router.get("/dictionary", summary="Keywords and names of tags")
def dictionary(
    tags: str = Query(description="Tags as 8 hexadecimal digits, comma-separated."),
) -> dict[str, dict[str, Any]]:
    """For each tag asked (as in DICOM JSON, ``GGGGEEEE``): keyword, name, VR, VM, retired,
    private."""
    return {f"{tag:08X}": describe(tag) for tag in parse_tags(tags)}
