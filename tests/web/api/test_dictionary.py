"""The data dictionary over REST: keywords and names of the tags a DICOM JSON header holds."""

from __future__ import annotations

import httpx

from tests.web.conftest import Web


def test_keywords_names_and_private_tags(web: Web, client: httpx.Client) -> None:
    answer = client.get(
        "/api/dictionary", params={"tags": "00100010,00082218,60003000,00090010,00091010,7FE00010"}
    )
    assert answer.status_code == 200
    found = answer.json()
    assert found["00100010"] == {
        "keyword": "PatientName",
        "name": "Patient's Name",
        "vr": "PN",
        "vm": "1",
        "retired": False,
        "private": False,
    }
    assert found["00082218"]["keyword"] == "AnatomicRegionSequence"
    assert found["60003000"]["keyword"] == "OverlayData"  # a repeating group
    assert (found["00090010"]["keyword"], found["00090010"]["private"]) == ("PrivateCreator", True)
    assert (found["00091010"]["name"], found["00091010"]["private"]) == ("Private tag", True)
    assert found["7FE00010"]["keyword"] == "PixelData"
    assert client.get("/api/dictionary", params={"tags": "00100010"}).json().keys() == {"00100010"}
    unknown = client.get("/api/dictionary", params={"tags": "00100011"}).json()
    assert unknown["00100011"]["name"] == "Unknown tag"


def test_bad_tags_are_refused(web: Web, client: httpx.Client) -> None:
    for tags, sentence in (
        ("0010,0010", "'0010' is not a tag: give 8 hexadecimal digits, e.g. 00100010"),
        ("0010001G", "'0010001G' is not a tag"),
        (",", "Say which tags to describe"),
    ):
        answer = client.get("/api/dictionary", params={"tags": tags})
        assert answer.status_code == 400
        assert sentence in answer.json()["error"]
    assert client.get("/api/dictionary").status_code == 400
    many = ",".join(f"0010{n:04X}" for n in range(2001))
    assert client.get("/api/dictionary", params={"tags": many}).status_code == 400
