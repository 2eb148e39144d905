"""Fixtures of the interoperability suite: dicomhub servers and DCMTK reference receivers.

``hub`` is one ``dicomhub serve`` per test module, on a free high port with its own data folder.
Its extra settings come from the ``hub_env`` fixture (override it in a module) or from indirect
parametrization::

    @pytest.mark.parametrize("hub", [{"DICOMHUB_DUPLICATE_POLICY": "replace"}], indirect=True)

``start_hub`` starts further servers (any environment, optional TOML configuration) inside one
test; they are stopped, by PID, when the test ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.interop.support import DcmtkReference, Hub, HubFactory, running_hub


@pytest.fixture(scope="module")
def hub_env() -> dict[str, str]:
    """Extra DICOMHUB_* settings of the module's ``hub`` (none by default)."""
    return {}


@pytest.fixture(scope="module")
def hub(
    request: pytest.FixtureRequest,
    hub_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hub]:
    """A running dicomhub shared by the tests of a module."""
    env = {**hub_env, **getattr(request, "param", {})}
    with running_hub(tmp_path_factory.mktemp("hub"), env) as running:
        yield running


@pytest.fixture
def start_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubFactory]:
    """Start dicomhub servers for one test; all are stopped when it ends."""
    with contextlib.ExitStack() as stack:

        def start(env: Mapping[str, str] | None = None, *, config: str | None = None) -> Hub:
            workdir = tmp_path_factory.mktemp("hub")
            return stack.enter_context(running_hub(workdir, env, config=config))

        yield start


@pytest.fixture(scope="session")
def dcmtk_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DcmtkReference]:
    """DCMTK storescp receivers (bit-preserving) to learn what a DCMTK sender puts on the wire."""
    reference = DcmtkReference(tmp_path_factory.mktemp("storescp"))
    try:
        yield reference
    finally:
        reference.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch folder for reports and response files."""
    return tmp_path
