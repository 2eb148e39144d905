"""Print Management SCP with DCMTK's print SCU, against ``dicomhub serve``.

``dcmpsprt`` renders images into a Stored Print object and Hardcopy Grayscale images (layout,
border and empty-image densities, Presentation LUT, annotation, requested image size and
decimate/crop behaviour), ``dcmprscu`` sends them to dicomhub as the printer: Printer N-GET,
Presentation LUT N-CREATE, Film Session and Film Box N-CREATE, Image Box and Annotation Box
N-SET, N-ACTION on the Film Box or on the Film Session, N-DELETEs.  dcmprscu exits 0 even when
printing failed: its output is read for ``E:`` lines and for the statuses it received.  Each
printed film must be in the archive as a Secondary Capture image that ``dciodvfy`` accepts, and
the synthetic test pattern printed in STANDARD\\2,2 must land in the right quadrants with the
right polarity.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom.data
import pytest
from numpy.typing import NDArray
from pydicom import dcmread

from tests.interop.printing import DCMPSTAT_CFG, Printer, pattern
from tests.interop.support import ENGINE, Hub, run_tool, wait_until

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

pytestmark = [
    pytest.mark.skipif(
        not (shutil.which("dcmpsprt") and shutil.which("dcmprscu") and DCMPSTAT_CFG.exists()),
        reason="DCMTK dcmpsprt/dcmprscu not installed (apt-get install dcmtk)",
    ),
    pytest.mark.skipif(ENGINE != "asyncio", reason="Print is served by the asyncio engine only"),
]


def _stored_film(hub: Hub, workdir: Path, film: Any) -> Path:
    """The stored Secondary Capture of a printed film, checked with dciodvfy, as a file."""
    (row,) = hub.rows(
        "SELECT i.sop_class_uid, a.blob_key FROM instances i "
        "JOIN attachments a ON a.instance_fk = i.id WHERE i.sop_instance_uid = ?",
        (film["sop_instance_uid"],),
    )
    assert row["sop_class_uid"] == SECONDARY_CAPTURE
    stored = workdir / f"film-{film['position']}.dcm"
    stored.write_bytes(hub.blob(row["blob_key"]))
    checked = run_tool(["dciodvfy", stored], cwd=workdir)
    report = checked.stdout + checked.stderr
    assert "SCImage" in report.splitlines(), report  # dciodvfy recognised the IOD
    assert not [line for line in report.splitlines() if line.startswith("Error")], report
    png = hub.data_dir / film["png"]
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    return stored


def _no_errors(output: str) -> None:
    assert not [line for line in output.splitlines() if line.startswith("E:")], output


def test_film_box_print_of_a_ct_image(hub: Hub, tmp_path: Path) -> None:
    printer = Printer(hub, tmp_path)
    image = pydicom.data.get_testdata_file("CT_small.dcm")
    assert image is not None
    done = printer.print([Path(image)], [], ["--copies", "2"])
    _no_errors(done.output)
    assert "N-ACTION RSP" in done.output and "BasicFilmBoxSOPClass" in done.output
    assert "PrinterStatus" in done.output
    (film,) = done.films
    (job,) = hub.rows("SELECT * FROM print_jobs WHERE id = ?", (film["job_fk"],))
    assert job["status"] == "DONE"
    assert job["calling_ae_title"] == "DCMPSTATE"
    assert job["number_of_copies"] == 2
    assert film["image_display_format"] == "STANDARD\\1,1"
    assert film["image_boxes"] == 1
    _stored_film(hub, tmp_path, film)
    hub.wait_for_log(r"print job .*: film \d+x\d+ stored as " + film["sop_instance_uid"])
    # dcmprscu deleted what it created; nothing of the session is left
    assert hub.rows("SELECT id FROM print_objects") == []


def test_test_pattern_in_four_quadrants_by_film_session(hub: Hub, tmp_path: Path) -> None:
    printer = Printer(hub, tmp_path)
    images = printer.images(*(pattern(corner) for corner in range(4)))
    render = ["-l", "2", "2", "--border", "BLACK", "--empty-image", "BLACK", "--identity"]
    done = printer.print(images, [*render, "-a", "PATTERN"], ["--session-print"])
    _no_errors(done.output)
    assert "Requested SOP Class UID       : BasicFilmSessionSOPClass" in done.output
    assert "CS [IDENTITY]" in done.output  # the Presentation LUT N-CREATE
    (film,) = done.films
    assert (film["image_display_format"], film["image_boxes"]) == ("STANDARD\\2,2", 4)
    stored = dcmread(_stored_film(hub, tmp_path, film))
    assert "PATTERN" in stored.ImageComments
    pixels: NDArray[np.uint8] = stored.pixel_array
    rows, columns = pixels.shape
    band = round(0.3 * 100)  # the annotation band at the bottom of the film
    assert (pixels[rows - band :] == 255).any()  # the annotation text is burned in
    image_rows = rows - band
    for quadrant in range(4):
        top = (quadrant // 2) * image_rows // 2
        left = (quadrant % 2) * columns // 2
        cell = pixels[top : top + image_rows // 2, left : left + columns // 2]
        bright = np.argwhere(cell > 200)
        assert bright.size, f"quadrant {quadrant} is empty"
        centre_y, centre_x = bright.mean(axis=0)
        # the white square of pattern q is in corner q of its cell: right place, right polarity
        assert (centre_y > cell.shape[0] / 2) == (quadrant >= 2), quadrant
        assert (centre_x > cell.shape[1] / 2) == (quadrant % 2 == 1), quadrant
        assert (cell < 50).mean() > 0.5  # the rest of the pattern and the border are black


@pytest.mark.parametrize(
    ("layout", "images", "options"),
    [
        (["1", "2"], 2, ["--identity"]),
        (["3", "4"], 5, []),
        (["2", "3"], 6, ["--identity", "--img-polarity", "REVERSE"]),
    ],
    ids=["1x2-identity-lut", "3x4-no-lut", "2x3-reverse-identity-lut"],
)
def test_display_formats(
    hub: Hub, tmp_path: Path, layout: list[str], images: int, options: list[str]
) -> None:
    printer = Printer(hub, tmp_path, presentation_lut="--identity" in options)
    paths = printer.images(*(pattern(index % 4) for index in range(images)))
    render = ["-l", *layout, "--border", "WHITE", "--empty-image", "WHITE", *options]
    done = printer.print(paths, render)
    _no_errors(done.output)
    assert ("PresentationLUTShape" in done.output) == ("--identity" in options)
    (film,) = done.films
    assert film["image_display_format"] == f"STANDARD\\{layout[0]},{layout[1]}"
    assert film["image_boxes"] == images
    pixels = dcmread(_stored_film(hub, tmp_path, film)).pixel_array
    cells = int(layout[0]) * int(layout[1])
    dark = (pixels < 50).mean()
    # each pattern is three quarters black (a quarter when reversed) on a white film
    if "REVERSE" in options:
        assert 0.02 < dark < 0.25 * images / cells + 0.05
    else:
        assert 0.05 < dark < 0.75 * images / cells + 0.05


def test_image_larger_than_its_box_is_refused(hub: Hub, tmp_path: Path) -> None:
    printer = Printer(hub, tmp_path)
    paths = printer.images(pattern(0))
    render = ["-l", "1", "1", "--img-request-size", "400", "--request-fail"]
    before = hub.count("instances")
    done = printer.print(paths, render)
    assert "DIMSE Status                  : 0xc603" in done.output
    errors = [line for line in done.output.splitlines() if line.startswith("E:")]
    assert errors and "image box" in errors[0], done.output
    assert done.films == []  # dcmprscu gave up before printing
    assert hub.count("instances") == before
    hub.wait_for_log(r"N-SET .* refused: 0xC603 image box 1: image 1024x1024 larger than its box")
    # the session dcmprscu left behind ended with its association
    assert wait_until(lambda: hub.rows("SELECT id FROM print_objects") == [], 10)
    # CROP prints the centre of the image, with the warning
    done = printer.print(paths, ["-l", "1", "1", "--img-request-size", "400", "--request-crop"])
    _no_errors(done.output)
    assert "DIMSE Status                  : 0xb609" in done.output
    (film,) = done.films
    _stored_film(hub, tmp_path, film)
