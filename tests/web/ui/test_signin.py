"""The web UI with authentication on (``dicomhub users``), in headless Chromium: the browser
answers the server's HTTP Basic challenge with the user's credentials (Playwright sends them
only to a challenge Chromium understood); a read-only user sees everything but no control that
changes something, gets a clear sentence where it would, and the server refuses the change; an
admin sees the controls.  (What a browser without credentials is shown is tested over HTTP in
tests/web/test_auth.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.interop.support import Hub, hub_cli, running_hub, wait_until
from tests.web.ui.conftest import PageFactory, screenshot

pytestmark = [pytest.mark.interop]
READER = ("joe", "battery staple")
ADMIN = ("jane", "correct horse")


@pytest.fixture(scope="module")
def guarded_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A dicomhub with an admin user and a read-only user."""
    with running_hub(tmp_path_factory.mktemp("ui-auth"), config="") as hub:
        for (name, password), role in ((ADMIN, "admin"), (READER, "read")):
            added = hub_cli(
                hub, "users", "add", name, "--role", role, "--password-stdin", stdin=f"{password}\n"
            )
            assert added.returncode == 0, added.stderr
        # the server reads the credentials again within a few seconds
        assert wait_until(
            lambda: httpx.get(f"{hub.http_url}/api/whoami", timeout=10).status_code == 401, 30
        )
        yield hub


def test_read_only_user_cannot_change_anything(guarded_hub: Hub, open_page: PageFactory) -> None:
    page = open_page(guarded_hub.http_url, credentials=READER)
    page.goto("/ui/#/worklist")
    expect(page.locator("#who")).to_have_text("joe · read only")
    expect(page.locator("#banner")).to_contain_text("read-only access")
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    expect(page.get_by_role("link", name="New worklist item")).to_have_count(0)
    screenshot(page, "read-only")
    page.goto("/ui/#/worklist/new")
    expect(page.locator(".message.error")).to_contain_text(
        "signed in as joe with read-only access: scheduling and changing worklist items needs "
        "an admin user"
    )
    expect(page.locator("form")).to_have_count(0)
    page.goto("/ui/#/peers")
    expect(page.get_by_role("heading", name="Peers")).to_be_visible()
    expect(page.get_by_role("button", name="Add a peer")).to_have_count(0)
    page.goto("/ui/#/queue")
    expect(page.get_by_role("heading", name="Forwarding queue")).to_be_visible()
    expect(page.get_by_role("button", name="Retry all failed")).to_have_count(0)
    # the UI's own request path, had a control been there: the server's sentence is shown
    refused = page.evaluate(
        """() => import('/ui/js/api.js').then((api) =>
            api.post('/api/worklist', {patient_name: 'X', patient_id: 'Y'})
               .then(() => 'stored', (error) => [error.status, error.message]))"""
    )
    assert refused == [
        403,
        "joe may look but not change anything: this needs an admin user or token.",
    ]
    assert (
        httpx.get(f"{guarded_hub.http_url}/api/worklist", auth=ADMIN, timeout=10).json()["items"]
        == []
    )


def test_admin_sees_the_controls(guarded_hub: Hub, open_page: PageFactory) -> None:
    page = open_page(guarded_hub.http_url, credentials=ADMIN)
    page.goto("/ui/#/worklist")
    expect(page.locator("#who")).to_have_text("jane · admin")
    expect(page.locator("#banner")).to_be_hidden()
    expect(page.get_by_role("link", name="New worklist item")).to_be_visible()
