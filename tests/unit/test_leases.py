"""Lease holders: which ones belong to processes of this host that are gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from dicomhub.leases import dead_local_holders, owner_id


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def test_owner_id_names_this_host_and_process() -> None:
    host, pid, random = owner_id().rsplit(":", 2)
    assert host == socket.gethostname()[:100]
    assert int(pid) == os.getpid()
    assert len(random) == 8
    assert owner_id() != owner_id()


def test_only_local_holders_whose_process_is_gone_are_dead() -> None:
    host = socket.gethostname()[:100]
    dead = f"{host}:{_dead_pid()}:aaaa0000"
    alive = f"{host}:{os.getppid()}:bbbb1111"
    other_host = f"elsewhere.example:{_dead_pid()}:cccc2222"
    garbage = "not a holder"
    own = owner_id()
    assert dead_local_holders([dead, alive, other_host, garbage, own], own) == [dead]
