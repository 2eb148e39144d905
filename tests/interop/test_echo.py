"""C-ECHO with DCMTK's echoscu against a default dicomhub (bound to loopback)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.interop.support import HOST, Hub, echo_statuses, needs_dcmtk, output_of, run_tool

pytestmark = [pytest.mark.interop, needs_dcmtk]


def echoscu(hub: Hub, *options: str) -> subprocess.CompletedProcess[str]:
    """echoscu (verbose: it reports every echo response) against ``hub``."""
    return run_tool(["echoscu", "-v", *options, HOST, str(hub.port)], timeout=30)


def test_echoscu_succeeds_and_is_logged(hub: Hub) -> None:
    result = echoscu(hub, "-aet", "ECHOTEST", "-aec", hub.ae_title)

    assert result.returncode == 0, output_of(result)
    assert echo_statuses(output_of(result)) == [0x0000]
    hub.wait_for_log(r"association accepted: ECHOTEST@127\.0\.0\.1:\d+ -> DICOMHUB")
    hub.wait_for_log(r"C-ECHO from ECHOTEST@127\.0\.0\.1:\d+: 0x0000")
    hub.wait_for_log(r"association released: ECHOTEST@127\.0\.0\.1:\d+")


def test_repeated_echoes_on_one_association(hub: Hub) -> None:
    result = echoscu(hub, "-aet", "REPEATER", "-aec", hub.ae_title, "--repeat", "5")

    assert result.returncode == 0, output_of(result)
    assert echo_statuses(output_of(result)) == [0x0000] * 5
    hub.wait_for_log(r"association released: REPEATER@")
    echoes = re.findall(r"C-ECHO from REPEATER@127\.0\.0\.1:(\d+): 0x0000", hub.log())
    assert len(echoes) == 5
    assert len(set(echoes)) == 1, "the five echoes should share one association (one port)"


def test_loopback_defaults_accept_any_calling_and_called_ae(hub: Hub) -> None:
    # Bound to 127.0.0.1 with no settings: unknown calling AEs are accepted and the called AE
    # title is not checked (README "Configuration").
    result = echoscu(hub, "-aet", "SOMEONE", "-aec", "NOT-DICOMHUB")

    assert result.returncode == 0, output_of(result)
    assert echo_statuses(output_of(result)) == [0x0000]
    hub.wait_for_log(r"C-ECHO from SOMEONE@127\.0\.0\.1:\d+: 0x0000")
    assert "refused" not in hub.log()
