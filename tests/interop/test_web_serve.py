"""``dicomhub serve`` and HTTP authentication from the command line: a server on a network
address refuses to start without HTTP users; users and tokens made with ``dicomhub users``
are required at once by the running server."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.interop.support import Hub, HubFactory, dicomhub_command, hub_cli
from tests.ports import free_port

pytestmark = [pytest.mark.interop]


def test_network_bind_without_users_is_refused(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    environment.update(
        {
            "DICOMHUB_BIND": "0.0.0.0",  # refused before anything is bound
            "DICOMHUB_DATA_DIR": str(tmp_path / "data"),
            "DICOMHUB_DICOM_PORT": str(free_port()),
            "DICOMHUB_HTTP_PORT": str(free_port()),
        }
    )
    result = subprocess.run(
        [*dicomhub_command(), "serve"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert result.returncode == 2
    assert "no HTTP user or token exists" in result.stderr
    assert "dicomhub users add NAME --role admin" in result.stderr


def test_users_and_tokens_from_the_command_line(start_hub: HubFactory) -> None:
    hub: Hub = start_hub(config="")
    hub.wait_for_log(r"HTTP server on http://")
    with httpx.Client(base_url=hub.http_url, timeout=30) as http:
        assert http.get("/api/studies").status_code == 200  # loopback, nobody declared: open
        made = hub_cli(hub, "users", "token", "ci", "--role", "read")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        added = hub_cli(
            hub,
            "users",
            "add",
            "jane",
            "--role",
            "admin",
            "--password-stdin",
            stdin="correct horse\n",
        )
        assert added.returncode == 0, added.stderr
        listed = hub_cli(hub, "users", "list")
        assert "jane" in listed.stdout and "ci" in listed.stdout and token not in listed.stdout

        def answered(**kwargs: object) -> int:
            # the server reads the credentials again within a few seconds
            deadline = time.monotonic() + 30
            while True:
                status = http.get("/api/studies", **kwargs).status_code  # type: ignore[arg-type]
                if status != 200 or time.monotonic() > deadline:
                    return status
                time.sleep(0.2)

        assert answered() == 401
        reader = {"Authorization": f"Bearer {token}"}
        assert http.get("/api/studies", headers=reader).status_code == 200
        assert http.post("/api/worklist", headers=reader, json={}).status_code == 403
        admin = http.post(
            "/api/worklist",
            auth=("jane", "correct horse"),
            json={"patient_name": "DOE^JANE", "patient_id": "P1", "modality": "CT"},
        )
        assert admin.status_code == 201
        assert http.get("/api/health").status_code == 200
        removed = hub_cli(hub, "users", "remove", "ci", "--token")
        assert removed.returncode == 0
    refused = hub_cli(hub, "users", "add", "x", "--password-stdin")
    assert refused.returncode == 1  # empty password from an empty standard input
