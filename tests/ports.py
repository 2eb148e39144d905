"""Free TCP ports for the servers and peers the tests start.

A port is chosen below the kernel's range of ephemeral ports: an outgoing connection (a
sender's, or a server's own) never takes one of those, so a port found free stays free until
the test binds it, even seconds later, after other connections came and went.  The port
``bind(0)`` gives is from the ephemeral range, and did collide so.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 12000
"""How many ports below the ephemeral range are drawn from."""


def _ephemeral_start() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port of the loopback interface that nobody uses right now, outside the
    ephemeral range (or, should that range start too low, one the kernel picks)."""
    start = _ephemeral_start()
    low = max(1024, start - _SPAN)
    for _ in range(200):
        port = random.randrange(low, start) if start > low else 0
        if port and _free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
