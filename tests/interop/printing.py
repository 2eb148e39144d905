"""DCMTK's print SCU (``dcmpsprt`` renders, ``dcmprscu`` sends) against a running hub, and a
synthetic test pattern to print: used by the print interoperability tests and the web UI's."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from tests.factories import make_dataset
from tests.interop.support import Hub, run_tool, write_part10

DCMPSTAT_CFG = Path("/etc/dcmtk/dcmpstat.cfg")


def _configuration(workdir: Path, hub: Hub, presentation_lut: bool) -> Path:
    """A copy of DCMTK's dcmpstat.cfg whose IHEFULL printer is dicomhub, with annotations (and
    without the Presentation LUT SOP Class when ``presentation_lut`` is false)."""
    text = DCMPSTAT_CFG.read_text()
    text = re.sub(
        r"\[IHEFULL\]\nAetitle = IHEFULL\n(Description = [^\n]*\n)Hostname = localhost\n"
        r"Port = 10005\nType = LOCALPRINTER",
        f"[IHEFULL]\nAetitle = {hub.ae_title}\n\\1Hostname = {hub.host}\nPort = {hub.port}\n"
        "Type = PRINTER\nAnnotation = 1\\\\ANNOTATION",
        text,
    )
    assert f"Port = {hub.port}" in text, "IHEFULL entry of dcmpstat.cfg not found"
    if not presentation_lut:
        start = text.index("[IHEFULL]")
        end = text.index("\n[", start)
        section = text[start:end].replace(
            "SupportsPresentationLUT = true", "SupportsPresentationLUT = false"
        )
        text = text[:start] + section + text[end:]
    for folder in ("spool", "database", "log", "lut", "reports"):
        (workdir / folder).mkdir(exist_ok=True)
        text = re.sub(rf"(?m)^Directory = {folder}$", f"Directory = {workdir / folder}", text)
    text = re.sub(r"(?m)^LogDirectory = log$", f"LogDirectory = {workdir / 'log'}", text)
    path = workdir / "dcmpstat.cfg"
    path.write_text(text)
    return path


def pattern(corner: int, size: int = 64) -> Dataset:
    """A 64x64 8-bit MONOCHROME2 image: black, with a white square in one corner
    (0 top left, 1 top right, 2 bottom left, 3 bottom right)."""
    pixels = np.zeros((size, size), dtype=np.uint8)
    half = size // 2
    top, left = (corner // 2) * half, (corner % 2) * half
    pixels[top : top + half, left : left + half] = 255
    image = make_dataset(
        modality="OT", patient_id="PRINT-PATTERN", sop_class="1.2.840.10008.5.1.4.1.1.7"
    )
    image.SamplesPerPixel = 1
    image.PhotometricInterpretation = "MONOCHROME2"
    image.Rows = image.Columns = size
    image.BitsAllocated = image.BitsStored = 8
    image.HighBit = 7
    image.PixelRepresentation = 0
    image.WindowCenter = 127.5
    image.WindowWidth = 256
    image.PixelData = pixels.tobytes()
    return image


@dataclass
class Printed:
    """What one dcmpsprt + dcmprscu run did."""

    output: str
    films: list[Any]


class Printer:
    """dcmpsprt + dcmprscu against the module's hub, in one scratch folder."""

    def __init__(self, hub: Hub, workdir: Path, *, presentation_lut: bool = True) -> None:
        self.hub = hub
        self.workdir = workdir
        self.config = _configuration(workdir, hub, presentation_lut)

    def images(self, *datasets: Dataset) -> list[Path]:
        paths = []
        for index, data in enumerate(datasets):
            paths.append(write_part10(self.workdir / f"image{index}.dcm", data))
        return paths

    def print(self, images: list[Path], render: list[str], send: Sequence[str] = ()) -> Printed:
        before = {row["id"] for row in self.hub.rows("SELECT id FROM print_jobs")}
        for old in (self.workdir / "database").glob("*.dcm"):
            old.unlink()
        rendered = run_tool(
            ["dcmpsprt", "-c", self.config, "-p", "IHEFULL", *render, *images], cwd=self.workdir
        )
        assert rendered.returncode == 0, rendered.stdout + rendered.stderr
        (stored_print,) = (self.workdir / "database").glob("SP_*.dcm")
        sent = run_tool(
            ["dcmprscu", "-c", self.config, "-p", "IHEFULL", "-d", *send, stored_print],
            cwd=self.workdir,
        )
        output = sent.stdout + sent.stderr
        assert sent.returncode == 0, output
        jobs = [
            row
            for row in self.hub.rows("SELECT id, status, layout FROM print_jobs")
            if row["id"] not in before
        ]
        films = []
        for job in jobs:
            films += self.hub.rows(
                "SELECT * FROM print_films WHERE job_fk = ? ORDER BY position", (job["id"],)
            )
        return Printed(output, films)
