"""Who holds a lease on shared work (forwarding queue items, commitment transactions).

A lease holder is named ``host:pid:random``; the random part makes a reused pid a new holder.
When a process dies, its leases would keep its work until they expire: a process starting on
the same host releases at once the leases of holders whose pid no longer runs.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable

from dicomhub.storage.filesystem import process_alive


def owner_id() -> str:
    """This process as a lease holder: ``host:pid:random``."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_local_holders(holders: Iterable[str], own: str) -> list[str]:
    """The holders among ``holders`` that ran on this host and whose process is gone."""
    host = socket.gethostname()[:100]
    dead = []
    for holder in holders:
        parts = holder.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if holder == own or pid == os.getpid() or process_alive(pid):
            continue
        dead.append(holder)
    return dead
