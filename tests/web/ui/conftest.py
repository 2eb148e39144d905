"""Fixtures of the browser tests: headless Chromium (Debian's ``chromium``) driven by
Playwright, against ``dicomhub serve`` subprocesses.

One browser serves the whole session; each test gets a fresh browser context (no cookies, no
cached credentials) and fails when the page raised a JavaScript error.  ``ui_hub`` is one
dicomhub shared by the module that asks for it, with a forwarding rule to the ``archive``
peer (a DCMTK ``storescp`` the tests start on ``archive_port`` when they need it) and only one
forwarding attempt, so a failed delivery is in the failed state at once.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from tests.interop.support import Hub, running_hub
from tests.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
"""Longest wait for an element or an answer (a bound, not a measurement)."""
SCREENSHOTS = os.environ.get("DICOMHUB_UI_SCREENSHOTS", "")
"""A folder to keep a screenshot of every page a test looked at (empty: none)."""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the whole session."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


PageFactory = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[PageFactory]:
    """Open pages of a hub in fresh browser contexts; JavaScript errors fail the test."""
    contexts = []
    errors: list[str] = []

    def open_one(base_url: str, *, credentials: tuple[str, str] | None = None) -> Page:
        context = browser.new_context(
            base_url=base_url,
            viewport={"width": 1360, "height": 900},
            http_credentials=(
                {"username": credentials[0], "password": credentials[1]} if credentials else None
            ),
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield open_one
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def screenshot(page: Page, name: str) -> None:
    """Keep a screenshot of the page when DICOMHUB_UI_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def canvas_grey(page: Page) -> NDArray[np.uint8]:
    """The viewer's canvas as grey levels (its red channel), rows x columns."""
    size, data = page.evaluate(
        """() => {
            const canvas = document.querySelector('.viewer canvas');
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
            return [[canvas.height, canvas.width], Array.from(pixels.data)];
        }"""
    )
    rgba = np.asarray(data, dtype=np.uint8).reshape(size[0], size[1], 4)
    return rgba[:, :, 0]


def png_grey(data: bytes) -> NDArray[np.uint8]:
    """A PNG as grey levels."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint8)


@pytest.fixture(scope="module")
def archive_port() -> int:
    """The port the ``archive`` peer (a DCMTK storescp) listens on once a test starts it."""
    return free_port()


@pytest.fixture(scope="module")
def ui_hub(tmp_path_factory: pytest.TempPathFactory, archive_port: int) -> Iterator[Hub]:
    """A dicomhub forwarding the patient UI^FORWARD to the ``archive`` peer (one attempt)."""
    config = f"""
[peers.archive]
ae_title = "ARCHIVE"
host = "127.0.0.1"
port = {archive_port}

[[forward]]
name = "to-archive"
destinations = ["archive"]
attributes = {{ PatientID = "UI-FORWARD" }}
"""
    env = {"DICOMHUB_FORWARD_MAX_ATTEMPTS": "1"}
    with running_hub(tmp_path_factory.mktemp("ui-hub"), env, config=config) as hub:
        hub.wait_for_log(r"HTTP server on http://")
        yield hub
