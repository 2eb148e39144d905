"""UIDs and Patient IDs in request paths: every route of the app that takes one refuses a list,
a wildcard or anything else that is not a UID with 400, before it does anything.

The routes are taken from the app itself (as in ``test_auth``), so a route added later with
a ``study``, ``series``, ``instance``, ``uid`` or ``patient_id`` parameter is tested too.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import APIRoute
from pydicom.uid import generate_uid

from dicomhub.web.paths import PATH_UIDS, checked_patient_id, checked_uid
from tests.factories import make_dataset
from tests.web.conftest import Web
from tests.web.test_auth import _walk

GOOD = "1.2.826.0.1.3680043.10.3.7"
BAD_UIDS = [
    "1.2.3\\1.2.4",  # a list of two
    "1.2.*",
    "1.2.?",
    "*",
    "1.02.3",  # a leading zero
    "1.2.3.",
    "DOE",
    "1." + "2" * 70,  # longer than 64 characters
]
NAMES = {"study": "Study", "series": "Series", "instance": "SOP", "uid": "SOP"}


def _uid_routes(web: Web) -> list[tuple[str, str, list[str]]]:
    """(method, path template, UID parameters) of every route with a UID in its path."""
    found = []
    for route in _walk(web.server.app.routes):
        if not isinstance(route, APIRoute):
            continue
        names = [n for n in re.findall(r"\{(\w+)\}", route.path) if n in PATH_UIDS]
        for method in sorted(route.methods or ()):
            if names:
                found.append((method, route.path, names))
    return found


def _fill(template: str, values: dict[str, str]) -> str:
    """The path with its parameters filled in, percent-encoded ('?' would end the path)."""
    return re.sub(r"\{(\w+)\}", lambda m: quote(values.get(m.group(1), "1"), safe=""), template)


def test_every_route_with_a_uid_refuses_a_bad_one(web: Web, client: httpx.Client) -> None:
    routes = _uid_routes(web)
    templates = {path for _, path, _ in routes}
    for expected in (
        "/api/studies/{study}",
        "/api/instances/{uid}",
        "/api/series/{series}/preview",
        "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{numbers}",
        "/dicom-web/studies/{study}/series/{series}/instances",
        "/dicom-web/studies/{study}",
    ):
        assert expected in templates
    assert len(routes) > 20
    for method, template, names in routes:
        for bad in names:
            for value in ("1.2.3\\1.2.4", "1.2.*", "1.2.?"):
                values = dict.fromkeys(names, GOOD) | {bad: value}
                answer = client.request(method, _fill(template, values))
                assert answer.status_code == 400, f"{method} {template} {bad}={value}"
                assert answer.json()["status"] == 400
                assert f'"{value}" is not a valid UID' in answer.json()["error"]
                assert PATH_UIDS[bad] in answer.json()["error"]


@pytest.mark.parametrize("bad", BAD_UIDS)
def test_bad_uids_are_named_in_the_answer(client: httpx.Client, bad: str) -> None:
    answer = client.get(f"/api/studies/{quote(bad, safe='')}")
    assert answer.status_code == 400
    shown = bad if len(bad) <= 80 else bad[:80] + "..."
    assert answer.json() == {
        "error": f'The Study Instance UID "{shown}" is not a valid UID: a UID is digits and '
        "dots, at most 64 characters, and names one object (no list with '\\', no wildcard "
        "'*' or '?').",
        "status": 400,
    }


def test_delete_of_a_uid_list_deletes_nothing(web: Web, client: httpx.Client) -> None:
    first, second = generate_uid(), generate_uid()
    series = generate_uid()
    web.store(make_dataset(study_uid=first))
    web.store(make_dataset(study_uid=second, series_uid=series))
    for path in (
        f"/api/studies/{first}\\{second}",
        "/api/studies/*",
        f"/api/series/{series}\\{generate_uid()}",
        "/api/series/*",
        "/api/instances/*",
        "/api/patients/*",
        "/api/patients/P1\\P2",
        "/api/patients/P%3F",
    ):
        assert client.delete(path).status_code == 400, path
    assert client.get("/api/studies").json()["total"] == 2
    assert client.delete(f"/api/studies/{first}").json() == {"deleted": 1}
    assert client.get("/api/studies").json()["total"] == 1


def test_get_of_a_uid_list_or_wildcard_answers_nothing(web: Web, client: httpx.Client) -> None:
    first, second = generate_uid(), generate_uid()
    web.store(make_dataset(study_uid=first))
    web.store(make_dataset(study_uid=second))
    for path in (
        f"/api/studies/{first}\\{second}",
        "/api/studies/1.2.*/series",
        f"/dicom-web/studies/{first}\\{second}/metadata",
        f"/dicom-web/studies/{first}\\{second}",
        "/dicom-web/studies/*/series",
        "/dicom-web/studies/%3F/instances",
        f"/dicom-web/studies/{first}/series/*/instances",
        "/api/patients/DOE*/studies",
    ):
        answer = client.get(path)
        assert answer.status_code == 400, path
        assert answer.headers["content-type"] == "application/json"
    assert client.get(f"/dicom-web/studies/{first}/metadata").status_code == 200
    assert client.get(f"/api/studies/{first}").json()["StudyInstanceUID"] == first


def test_wado_uri_uids_are_checked(web: Web, client: httpx.Client) -> None:
    dataset = make_dataset()
    web.store(dataset)
    query = {
        "requestType": "WADO",
        "studyUID": dataset.StudyInstanceUID,
        "seriesUID": dataset.SeriesInstanceUID,
        "objectUID": dataset.SOPInstanceUID,
        "contentType": "application/dicom",
    }
    assert client.get("/wado", params=query).status_code == 200
    for key, value in (
        ("objectUID", f"{dataset.SOPInstanceUID}\\{generate_uid()}"),
        ("seriesUID", "*"),
        ("studyUID", "1.2.?"),
    ):
        answer = client.get("/wado", params={**query, key: value})
        assert answer.status_code == 400
        assert f'The {key} "{value}" is not a valid UID' in answer.json()["error"]


def test_checks() -> None:
    assert checked_uid(GOOD, "Study Instance UID") == GOOD
    assert checked_patient_id("DOE-1^2 3") == "DOE-1^2 3"
    for bad in ("P1\\P2", "P*", "P?"):
        with pytest.raises(Exception, match="cannot name one patient"):
            checked_patient_id(bad)
