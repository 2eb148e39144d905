"""The study browser, the viewer and the tag tree in headless Chromium against ``dicomhub
serve``: search a patient, open the study, see the images rendered as the server renders them
(grey levels compared with the preview PNG), scroll slices and frames, change the window, read
tags and a sequence item."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom.data
import pytest
from numpy.typing import NDArray
from playwright.sync_api import Page, expect
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless, generate_uid

from tests.factories import make_dataset, write_file
from tests.interop.support import Hub, needs_dcmtk, run_tool
from tests.web.ui.conftest import PageFactory, canvas_grey, png_grey, screenshot

pytestmark = [pytest.mark.interop, needs_dcmtk]
SIZE = 64


def ct_slice(study: str, series: str, number: int) -> Dataset:
    """A 64x64 signed 12-bit CT slice: -1024 HU air, a ramp, and a bright square whose place
    depends on the slice; an anatomic region code in a sequence."""
    stored = np.zeros((SIZE, SIZE), dtype=np.int16)
    stored[:, :] = np.linspace(-800, 1500, SIZE, dtype=np.int16)[None, :]
    stored[8 * number : 8 * number + 16, 40:56] = 2000
    raw = (stored.astype(np.uint16) & 0x0FFF).astype(np.uint16)  # 12 bits stored, no sign bits
    data = make_dataset(
        patient_name="BROWSER^ALICE",
        patient_id="UI-ALICE",
        study_uid=study,
        series_uid=series,
        rows=SIZE,
        StudyDescription="UI BROWSER TEST",
        InstanceNumber=number,
        PixelRepresentation=1,
        RescaleIntercept=-1024,
        RescaleSlope=1,
        WindowCenter=40,
        WindowWidth=400,
    )
    region = Dataset()
    region.CodeValue = "51185008"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Chest"
    data.AnatomicRegionSequence = [region]
    data.PixelData = raw.tobytes()
    return data


@pytest.fixture(scope="module")
def study(ui_hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Three CT slices of BROWSER^ALICE (the second RLE compressed), a multi-frame MR and
    another patient, sent with DCMTK dcmsend."""
    folder = tmp_path_factory.mktemp("ui-study")
    study_uid, series_uid = generate_uid(), generate_uid()
    slices = [ct_slice(study_uid, series_uid, n) for n in (1, 2, 3)]
    for number, data in enumerate(slices, start=1):
        if number == 2:
            data.compress(RLELossless)
            write_file(data, folder / f"ct{number}.dcm", RLELossless)
        else:
            write_file(data, folder / f"ct{number}.dcm")
    write_file(make_dataset(patient_name="OTHER^BOB", patient_id="UI-BOB"), folder / "bob.dcm")
    mr = pydicom.data.get_testdata_file("emri_small.dcm")
    assert mr is not None
    (folder / "mr.dcm").write_bytes(Path(mr).read_bytes())
    sent = run_tool(
        [
            "dcmsend",
            "-aet",
            "MODALITY",
            "-aec",
            ui_hub.ae_title,
            ui_hub.host,
            str(ui_hub.port),
            "--scan-directories",
            folder,
        ]
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    mr_study = str(pydicom.dcmread(mr, stop_before_pixels=True).StudyInstanceUID)
    yield {
        "study": study_uid,
        "series": series_uid,
        "slices": ",".join(str(s.SOPInstanceUID) for s in slices),
        "mr_study": mr_study,
    }


def preview(hub: Hub, uid: str, **params: str) -> NDArray[np.uint8]:
    answer = httpx.get(f"{hub.http_url}/api/instances/{uid}/preview", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    return png_grey(answer.content)


def shown(page: Page, uid: str, frame: int = 1) -> None:
    """Wait until the viewer's canvas holds this frame."""
    canvas = page.locator(".viewer canvas")
    expect(canvas).to_have_attribute("data-instance", uid)
    expect(canvas).to_have_attribute("data-frame", str(frame))


def test_search_open_and_see_the_image(
    ui_hub: Hub, study: dict[str, str], open_page: PageFactory
) -> None:
    page = open_page(ui_hub.http_url)
    page.goto("/ui/")
    page.get_by_label("Patient name").fill("browser")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("BROWSER, ALICE")
    expect(rows.first).to_contain_text("UI BROWSER TEST")
    page.get_by_label("Modality").select_option("MR")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No study matches this search.")).to_be_visible()
    page.get_by_label("Modality").select_option("CT")
    page.get_by_label("Study date from").fill("2024-03-15")
    page.get_by_label("to", exact=True).fill("2024-03-15")
    page.get_by_role("button", name="Search").click()
    screenshot(page, "studies")
    page.get_by_role("link", name="BROWSER, ALICE").click()

    first, second, third = study["slices"].split(",")
    shown(page, first)
    expect(page.locator(".series-item img")).to_have_count(1)
    expect(page.get_by_label("Window center")).to_have_value("40")
    expect(page.get_by_label("Window width")).to_have_value("400")
    on_screen = canvas_grey(page)
    rendered = preview(ui_hub, first, format="png")
    assert on_screen.shape == (SIZE, SIZE)
    assert int(np.abs(on_screen.astype(int) - rendered.astype(int)).max()) <= 1
    assert on_screen[10, 45] == 255 and on_screen[40, 0] == 0  # the square, and air
    screenshot(page, "study")

    page.keyboard.press("ArrowDown")  # the RLE compressed slice
    shown(page, second)
    assert (
        int(np.abs(canvas_grey(page).astype(int) - preview(ui_hub, second).astype(int)).max()) <= 1
    )
    page.locator(".viewer .stage").hover()
    page.mouse.wheel(0, 120)
    shown(page, third)
    assert (
        int(np.abs(canvas_grey(page).astype(int) - preview(ui_hub, third).astype(int)).max()) <= 1
    )

    page.get_by_label("Window center").fill("1000")
    page.get_by_label("Window width").fill("1200")
    page.get_by_label("Window width").press("Enter")
    expect(page.locator(".viewer .overlay.br")).to_have_text("C 1000  W 1200")
    windowed = preview(ui_hub, third, window="1000,1200")
    assert int(np.abs(canvas_grey(page).astype(int) - windowed.astype(int)).max()) <= 1
    page.get_by_label("Window preset").select_option(label="Lung (-600/1500)")
    expect(page.get_by_label("Window center")).to_have_value("-600")
    lung = preview(ui_hub, third, window="-600,1500")
    assert int(np.abs(canvas_grey(page).astype(int) - lung.astype(int)).max()) <= 1
    before = canvas_grey(page)
    box = page.locator(".viewer .stage").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 100, box["y"] + 260, steps=4)
    page.mouse.up()
    assert page.get_by_label("Window center").input_value() != "-600"
    assert not np.array_equal(canvas_grey(page), before)


def test_tags_tree_with_a_sequence(
    ui_hub: Hub, study: dict[str, str], open_page: PageFactory
) -> None:
    page = open_page(ui_hub.http_url)
    page.goto(f"/ui/#/study/{study['study']}")
    shown(page, study["slices"].split(",")[0])
    page.get_by_role("button", name="Show tags").click()
    tags = page.locator("#tags")
    description = tags.locator('.row[data-tag="00081030"]')
    expect(description).to_contain_text("StudyDescription")
    expect(description).to_contain_text("UI BROWSER TEST")
    expect(tags.locator('.row[data-tag="00100010"]')).to_contain_text("BROWSER^ALICE")
    region = tags.locator("details", has=page.locator('.row[data-tag="00082218"]'))
    expect(region.locator("summary")).to_contain_text("AnatomicRegionSequence")
    expect(region.locator(".item-title")).to_have_text(["Item 1"])
    expect(region.locator('.row[data-tag="00080104"]')).to_contain_text("Chest")
    tags.get_by_label("Filter the tags").fill("codemeaning")
    expect(tags.locator(".row")).to_have_count(2)  # the sequence and the element inside it
    screenshot(page, "tags")
    page.locator(".viewer .stage").click()
    page.keyboard.press("ArrowDown")  # the tags follow the image shown
    expect(page.locator("#tags h2")).to_contain_text(study["slices"].split(",")[1])


def test_multi_frame_image_scrolls_its_frames(
    ui_hub: Hub, study: dict[str, str], open_page: PageFactory
) -> None:
    page = open_page(ui_hub.http_url)
    page.goto(f"/ui/#/study/{study['mr_study']}")
    uid = page.locator(".viewer canvas")
    expect(uid).to_have_attribute("data-frame", "1")
    instance = uid.get_attribute("data-instance")
    assert instance
    page.locator(".viewer .stage").click()
    page.keyboard.press("End")
    shown(page, instance, 10)
    expect(page.locator(".viewer .overlay.bl")).to_contain_text("frame 10/10")
    # the window chosen for the first frame stays while scrolling, as in any viewer
    center = page.get_by_label("Window center").input_value()
    window = f"{center},{page.get_by_label('Window width').input_value()}"
    last = preview(ui_hub, instance, frame="10", window=window)
    assert int(np.abs(canvas_grey(page).astype(int) - last.astype(int)).max()) <= 1
    page.get_by_label("Image number").fill("4")
    shown(page, instance, 4)
    fourth = preview(ui_hub, instance, frame="4", window=window)
    assert int(np.abs(canvas_grey(page).astype(int) - fourth.astype(int)).max()) <= 1
