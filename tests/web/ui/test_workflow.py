"""The workflow pages in headless Chromium against ``dicomhub serve``, with real peers:
a worklist item scheduled, changed and cancelled in the browser is seen (and then no longer
seen) by DCMTK ``findscu -W``; a peer added in the browser is tested with C-ECHO against a
DCMTK ``storescp`` and against a closed port; a forwarding row that failed is retried once the
peer runs, then dropped; a film printed by DCMTK ``dcmprscu`` is shown on the print jobs page."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.factories import make_dataset, write_file
from tests.interop.printing import DCMPSTAT_CFG, Printer, pattern
from tests.interop.support import (
    DCMTK,
    ENGINE,
    HOST,
    Hub,
    find_worklist,
    needs_dcmtk,
    run_tool,
    stop_process,
    tool_env,
    wait_until,
)
from tests.ports import free_port
from tests.web.ui.conftest import PageFactory, png_grey, screenshot

pytestmark = [pytest.mark.interop, needs_dcmtk]
WORKLIST_KEYS = [
    "PatientName",
    "PatientID=UI-WL-1",
    "AccessionNumber",
    "RequestedProcedureDescription",
    "StudyInstanceUID",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
]


@contextlib.contextmanager
def storescp(port: int, folder: Path) -> Iterator[Path]:
    """DCMTK storescp as the AE title ARCHIVE on ``port``, writing into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [DCMTK["storescp"], "-aet", "ARCHIVE", "+xa", "-od", str(folder), str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=tool_env(),
    )
    try:

        def answers() -> bool:
            assert process.poll() is None, "storescp exited"
            return (
                run_tool(["echoscu", "-aec", "ARCHIVE", HOST, str(port)], timeout=10).returncode
                == 0
            )

        assert wait_until(answers, 30, 0.1), "storescp does not answer C-ECHO"
        yield folder
    finally:
        stop_process(process)


def test_worklist_item_scheduled_changed_and_cancelled(ui_hub: Hub, open_page: PageFactory) -> None:
    page = open_page(ui_hub.http_url)
    page.goto("/ui/#/worklist")
    page.get_by_role("link", name="New worklist item").click()
    page.get_by_label("Patient name (FAMILY^GIVEN) *").fill("UI^WORKLIST")
    page.get_by_label("Patient ID *").fill("UI-WL-1")
    page.get_by_label("Accession number").fill("UI-ACC-1")
    page.get_by_label("Requested procedure", exact=True).fill("CT CHEST")
    page.get_by_label("Modality *").fill("ct")
    page.get_by_label("Station AE title").fill("CT7")
    page.get_by_label("Start date *").fill("2026-12-01")
    page.get_by_label("Start time").fill("09:30")
    screenshot(page, "worklist-new")
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("heading", name="Worklist item")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("SCHEDULED")

    found = find_worklist(ui_hub.port, ui_hub.ae_title, None, keys=WORKLIST_KEYS, calling="CT7")
    (answer,) = found.answers
    step = answer.ScheduledProcedureStepSequence[0]
    assert str(answer.PatientName) == "UI^WORKLIST" and answer.AccessionNumber == "UI-ACC-1"
    assert answer.RequestedProcedureDescription == "CT CHEST"
    assert (step.Modality, step.ScheduledStationAETitle) == ("CT", "CT7")
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261201",
        "0930",
    )
    study_uid = answer.StudyInstanceUID

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Patient ID *")).to_have_value("UI-WL-1")
    page.get_by_label("Requested procedure", exact=True).fill("CT CHEST WITH CONTRAST")
    page.get_by_label("Start time").fill("10:45")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("dl.facts")).to_contain_text("CT CHEST WITH CONTRAST")
    (changed,) = find_worklist(
        ui_hub.port, ui_hub.ae_title, None, keys=WORKLIST_KEYS, calling="CT7"
    ).answers
    assert changed.RequestedProcedureDescription == "CT CHEST WITH CONTRAST"
    assert changed.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "1045"
    assert changed.StudyInstanceUID == study_uid and changed.AccessionNumber == "UI-ACC-1"

    page.get_by_role("button", name="Cancel").click()  # the confirmation is accepted
    expect(page.locator("dl.facts")).to_contain_text("CANCELLED")
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    gone = find_worklist(ui_hub.port, ui_hub.ae_title, None, keys=WORKLIST_KEYS, calling="CT7")
    assert gone.answers == [] and gone.statuses[-1] == 0x0000
    page.goto("/ui/#/worklist?status=CANCELLED")
    expect(page.locator("tbody tr", has_text="UI-WL-1")).to_contain_text("CANCELLED")
    screenshot(page, "worklist")


def test_peer_added_and_echoed(
    ui_hub: Hub, open_page: PageFactory, archive_port: int, tmp_path: Path
) -> None:
    page = open_page(ui_hub.http_url)
    page.goto("/ui/#/peers")
    expect(page.locator("tbody tr", has_text="archive")).to_contain_text("configuration file")
    page.get_by_role("button", name="Add a peer").click()
    page.get_by_label("Name *").fill("store-scp")
    page.get_by_label("AE title *").fill("ARCHIVE")
    page.get_by_label("Host *").fill(HOST)
    page.get_by_label("Port *").fill(str(archive_port))
    page.get_by_role("button", name="Add peer").click()
    expect(page.get_by_text("Peer store-scp was added.")).to_be_visible()
    row = page.locator("tbody tr", has_text="store-scp")
    with storescp(archive_port, tmp_path / "received"):
        row.get_by_role("button", name="Test (C-ECHO)").click()
        expect(row.locator(".echo-result")).to_contain_text(
            f"Echo succeeded: ARCHIVE at {HOST}:{archive_port} answered in"
        )
        screenshot(page, "peers")

    closed = free_port()
    row.get_by_role("button", name="Edit").click()
    page.get_by_label("Port *").fill(str(closed))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Peer store-scp was changed.")).to_be_visible()
    row = page.locator("tbody tr", has_text="store-scp")
    expect(row).to_contain_text(f"{HOST}:{closed}")
    row.get_by_role("button", name="Test (C-ECHO)").click()
    failure = row.locator(".echo-result")
    expect(failure).to_contain_text(f"Echo failed: ARCHIVE at {HOST}:{closed} did not answer")
    expect(failure).to_contain_text("Check the host, the port and the AE title")
    row.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("Peer store-scp was removed.")).to_be_visible()
    expect(page.locator("tbody tr", has_text="store-scp")).to_have_count(0)
    bad = page.get_by_role("button", name="Add a peer")
    bad.click()
    page.get_by_label("Name *").fill("bad")
    page.get_by_label("AE title *").fill("A\\B")
    page.get_by_label("Host *").fill(HOST)
    page.get_by_role("button", name="Add peer").click()
    expect(page.locator("#peer-form .message.error")).to_contain_text("AE title")


def test_forwarding_row_retried_then_dropped(
    ui_hub: Hub, open_page: PageFactory, archive_port: int, tmp_path: Path
) -> None:
    data = make_dataset(patient_name="UI^FORWARD", patient_id="UI-FORWARD")
    sent = run_tool(
        [
            "storescu",
            "-aec",
            ui_hub.ae_title,
            HOST,
            str(ui_hub.port),
            write_file(data, tmp_path / "forward.dcm"),
        ]
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    api = httpx.Client(base_url=ui_hub.http_url, timeout=30)

    def state() -> str:
        rows = api.get("/api/queue").json()["items"]
        mine = [r for r in rows if r["sop_instance_uid"] == data.SOPInstanceUID]
        return str(mine[0]["state"]) if mine else ""

    assert wait_until(lambda: state() == "failed", 60), "the row did not fail"
    page = open_page(ui_hub.http_url)
    page.goto("/ui/#/queue")
    row = page.locator("tbody tr", has_text=str(data.SOPInstanceUID))
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("archive")
    expect(page.locator(".counts")).to_contain_text("failed: 1")
    screenshot(page, "queue")
    with storescp(archive_port, tmp_path / "received") as received:
        row.get_by_role("button", name="Retry").click()
        expect(page.locator(".message.ok")).to_contain_text("will be sent again now")
        assert wait_until(lambda: state() == "done", 60), "the retried row was not delivered"
        assert wait_until(lambda: any(received.iterdir()), 10)
    page.reload()
    row = page.locator("tbody tr", has_text=str(data.SOPInstanceUID))
    expect(row).to_contain_text("done")
    row.get_by_role("button", name="Drop").click()  # the confirmation is accepted
    expect(page.locator(".message.ok")).to_contain_text("was dropped")
    expect(page.locator("tbody tr", has_text=str(data.SOPInstanceUID))).to_have_count(0)
    assert state() == ""
    api.close()


@pytest.mark.skipif(
    not (shutil.which("dcmpsprt") and shutil.which("dcmprscu") and DCMPSTAT_CFG.exists()),
    reason="DCMTK dcmpsprt/dcmprscu not installed (apt-get install dcmtk)",
)
@pytest.mark.skipif(ENGINE != "asyncio", reason="Print is served by the asyncio engine only")
def test_print_job_shows_its_film(ui_hub: Hub, open_page: PageFactory, tmp_path: Path) -> None:
    printer = Printer(ui_hub, tmp_path)
    images = printer.images(*(pattern(corner) for corner in range(4)))
    printed = printer.print(images, ["-l", "2", "2", "--border", "BLACK", "--identity"])
    assert not [line for line in printed.output.splitlines() if line.startswith("E:")]
    (film,) = printed.films
    page = open_page(ui_hub.http_url)
    page.goto("/ui/#/print-jobs")
    job = page.locator("tbody tr", has_text="DCMPSTATE")
    expect(job).to_contain_text("DONE")
    expect(job).to_contain_text("STANDARD\\2,2")
    image = job.locator("img.film")
    expect(image).to_have_count(1)
    page.wait_for_function("() => document.querySelector('img.film').complete")
    width = image.evaluate("img => img.naturalWidth")
    assert width == film["columns"]
    source = image.get_attribute("src")
    assert source is not None
    shown = httpx.get(source if source.startswith("http") else ui_hub.http_url + source, timeout=30)
    kept = (ui_hub.data_dir / film["png"]).read_bytes()
    assert shown.content == kept
    assert png_grey(kept).shape == (film["rows"], film["columns"])
    link = job.get_by_role("link", name="in archive")
    expect(link).to_have_attribute(
        "href", f"#/study/{film['study_instance_uid']}?series={film['series_instance_uid']}"
    )
    screenshot(page, "print-jobs")
