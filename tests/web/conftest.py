"""Fixtures of the web tests: the app served by uvicorn on a free port, and HTTP clients.

``web`` is a real HTTP server (``web.server.HttpServer``) in front of a runtime on each index
backend (an SQLite file, and PostgreSQL when it answers); ``client`` talks to it over TCP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset

from dicomhub.index.credentials import CredentialRepository, Role
from dicomhub.ingest import IngestRequest, StoreResult
from dicomhub.runtime import Runtime
from dicomhub.web.app import create_app
from dicomhub.web.server import HttpServer
from tests.factories import write_file


@dataclass
class Web:
    """A running HTTP server and its runtime."""

    runtime: Runtime
    server: HttpServer
    tmp: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def store(self, dataset: Dataset, syntax: str | None = None) -> StoreResult:
        """Store a data set through the ingest path (as a C-STORE would)."""
        path = self.tmp / f"{dataset.SOPInstanceUID}.dcm"
        if syntax is None:
            write_file(dataset, path)
        else:
            write_file(dataset, path, syntax)
        return self.store_file(path)

    def store_file(self, path: Path) -> StoreResult:
        """Store a Part 10 file through the ingest path."""
        return self.runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))

    def token(self, name: str, role: Role) -> str:
        """A new Bearer token (this turns authentication on)."""
        _, token = CredentialRepository(self.runtime.db).add_token(name, role)
        self.server.app.state.context.authenticator.forget()
        return token


@pytest.fixture
def web(runtime: Runtime, tmp_path: Path) -> Iterator[Web]:
    """The app on a free loopback port, for each index backend."""
    server = HttpServer(create_app(runtime), "127.0.0.1", 0)
    server.start()
    try:
        yield Web(runtime, server, tmp_path)
    finally:
        server.stop()


@pytest.fixture
def client(web: Web) -> Iterator[httpx.Client]:
    """An HTTP client of ``web`` (no credentials)."""
    with web.client() as http:
        yield http
