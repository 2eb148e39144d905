"""Print Management SCP with DCMTK's print SCU: ``dcmpsprt`` renders a Stored Print object and a
hardcopy grayscale image from a CT image, ``dcmprscu`` sends it to dicomhub as the printer
(Printer N-GET, Presentation LUT, Film Session and Film Box N-CREATE, Image Box N-SET, Film Box
N-ACTION, N-DELETEs).  dcmprscu exits 0 even when printing failed: its output must have no
``E:`` line, and the print job must be recorded in dicomhub's index.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pydicom.data
import pytest

from tests.interop.support import ENGINE, Hub, run_tool

DCMPSTAT_CFG = Path("/etc/dcmtk/dcmpstat.cfg")

pytestmark = [
    pytest.mark.skipif(
        not (shutil.which("dcmpsprt") and shutil.which("dcmprscu") and DCMPSTAT_CFG.exists()),
        reason="DCMTK dcmpsprt/dcmprscu not installed (apt-get install dcmtk)",
    ),
    pytest.mark.skipif(ENGINE != "asyncio", reason="Print is served by the asyncio engine only"),
]


def _configuration(workdir: Path, hub: Hub) -> Path:
    """A copy of DCMTK's dcmpstat.cfg whose IHEFULL printer is dicomhub."""
    text = DCMPSTAT_CFG.read_text()
    text = re.sub(
        r"\[IHEFULL\]\nAetitle = IHEFULL\n(Description = [^\n]*\n)Hostname = localhost\n"
        r"Port = 10005\nType = LOCALPRINTER",
        f"[IHEFULL]\nAetitle = {hub.ae_title}\n\\1Hostname = {hub.host}\nPort = {hub.port}\n"
        "Type = PRINTER",
        text,
    )
    assert f"Port = {hub.port}" in text, "IHEFULL entry of dcmpstat.cfg not found"
    for folder in ("spool", "database", "log", "lut", "reports"):
        (workdir / folder).mkdir(exist_ok=True)
        text = re.sub(rf"(?m)^Directory = {folder}$", f"Directory = {workdir / folder}", text)
    text = re.sub(r"(?m)^LogDirectory = log$", f"LogDirectory = {workdir / 'log'}", text)
    path = workdir / "dcmpstat.cfg"
    path.write_text(text)
    return path


def test_dcmprscu_prints_to_dicomhub(hub: Hub, tmp_path: Path) -> None:
    config = _configuration(tmp_path, hub)
    image = pydicom.data.get_testdata_file("CT_small.dcm")
    assert image is not None
    rendered = run_tool(["dcmpsprt", "-c", config, "-p", "IHEFULL", image], cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    (stored_print,) = (tmp_path / "database").glob("SP_*.dcm")

    sent = run_tool(["dcmprscu", "-c", config, "-p", "IHEFULL", "-d", stored_print], cwd=tmp_path)
    output = sent.stdout + sent.stderr
    assert sent.returncode == 0, output
    assert not [line for line in output.splitlines() if line.startswith("E:")], output
    assert "N-ACTION RSP" in output
    assert "PrinterStatus" in output

    jobs = hub.rows("SELECT status, layout, calling_ae_title, film_box_uids FROM print_jobs")
    assert len(jobs) == 1
    assert jobs[0]["status"] == "DONE"
    assert jobs[0]["calling_ae_title"] == "DCMPSTATE"
    assert "STANDARD" in jobs[0]["layout"]
    # dcmprscu deleted what it created.
    assert hub.rows("SELECT id FROM print_objects") == []
    # Print-to-archive: the film is a Secondary Capture in the archive, valid, with its PNG.
    (film,) = hub.rows(
        "SELECT i.sop_instance_uid, i.sop_class_uid, a.blob_key FROM instances i "
        "JOIN attachments a ON a.instance_fk = i.id WHERE i.source = 'print'"
    )
    assert film["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.7"
    stored = tmp_path / "film.dcm"
    stored.write_bytes(hub.blob(film["blob_key"]))
    checked = run_tool(["dciodvfy", stored], cwd=tmp_path)
    report = checked.stdout + checked.stderr
    assert "SCImage" in report.splitlines(), report  # dciodvfy recognised the IOD
    assert not [line for line in report.splitlines() if line.startswith("Error")], report
    png = hub.data_dir / "print" / f"{film['sop_instance_uid']}.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    hub.wait_for_log(r"print job .*: film \d+x\d+ stored as " + film["sop_instance_uid"])
