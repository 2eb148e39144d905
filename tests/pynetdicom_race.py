"""A fix for a race in pynetdicom's requestor, so our SCU-driven tests do not flake.

pynetdicom's ``send_*`` methods pause the association's reactor thread before sending a
request, by clearing an event and waiting for the reactor's ``_is_paused`` flag.  The flag is
left ``True`` from the reactor's previous wait, so right after one request is answered the
next ``send_*`` can see it set while the reactor is still resuming; the reactor then takes
the next response off the DIMSE queue itself, logs "Received unexpected C-... service
message" and drops it, and the request waits out its DIMSE timeout.  A fast peer (one that
answers before the reactor thread has run) makes that likely on a busy machine.

Here a requestor's reactor hands such a response back to the front of the queue, where the
waiting ``send_*`` takes it.  Acceptors (dicomhub's ``pynetdicom`` engine) are untouched.
"""

from __future__ import annotations

from typing import Any

from pynetdicom.association import Association

_original = Association._serve_request


def _serve_request(self: Association, msg: Any, context_id: int) -> None:
    if self.is_requestor and msg is not None and not msg.is_valid_request:
        messages = self.dimse.msg_queue
        with messages.mutex:
            messages.queue.appendleft((context_id, msg))
            messages.not_empty.notify()
        return
    _original(self, msg, context_id)


def install() -> None:
    """Patch pynetdicom's Association (idempotent)."""
    setattr(Association, "_serve_request", _serve_request)  # noqa: B010
