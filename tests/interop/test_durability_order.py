"""The order of a store, seen by the kernel: blob flushed, then index committed, then Success.

ARCHITECTURE principle 2 says a C-STORE-RSP with status Success is sent only once the object
is on stable storage and its index row is committed.  Here ``dicomhub serve`` runs under
strace while DCMTK storescu sends, once over one association (objects are stored in the
event loop) and once over three at a time (the group commit's own thread stores them, many
to a flush).  For every object acknowledged, in the order the system calls completed:

1. its record (found by its SOP Instance UID in the file meta written with it) is written to
   a segment file with ``pwrite64``;
2. an ``fdatasync`` of that segment file starts after that write and returns 0;
3. SQLite writes its commit to the index's write-ahead log (``pwrite64`` on ``-wal``);
4. the P-DATA-TF carrying the C-STORE-RSP with status 0x0000 for that SOP Instance UID is
   written to the association's socket.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.factories import make_dataset, write_file
from tests.interop.support import Hub, running_hub, start_storescu, wait_until

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed"),
]

_LINE = re.compile(r"^(\d+) +[\d:.]+ (.*)$")
_CALL = re.compile(r"^(\w+)\((\d+)")
_BUFFER = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
_OPEN = re.compile(r'^openat\(AT_FDCWD, "((?:\\x[0-9a-f]{2})*)"')
_UID = re.compile(rb"[0-9.]{8,64}")
C_STORE_RSP = b"\x00\x00\x00\x01\x02\x00\x00\x00\x01\x80"
"""(0000,0100) CommandField, length 2, value 0x8001, as a command set encodes it."""


@dataclass
class Trace:
    """What the server's system calls did, in the order they completed."""

    record_written: dict[str, int] = field(default_factory=dict)
    flushes: list[tuple[int, int, int]] = field(default_factory=list)
    """(started, finished, fd) of every successful fdatasync."""
    segment_fds: set[int] = field(default_factory=set)
    wal_writes: list[int] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)


def _bytes(escaped: str) -> bytes:
    return bytes.fromhex(escaped.replace("\\x", ""))


def _sop_instance_uid(meta: bytes) -> str | None:
    """(0002,0003) MediaStorageSOPInstanceUID of a file meta that starts the payload."""
    at = meta.find(b"\x02\x00\x03\x00UI")
    if at < 0:
        return None
    length = int.from_bytes(meta[at + 6 : at + 8], "little")
    return meta[at + 8 : at + 8 + length].rstrip(b"\0").decode("ascii")


def _response_uid(data: bytes) -> str | None:
    """The Affected SOP Instance UID of a successful C-STORE-RSP in a written buffer."""
    if C_STORE_RSP not in data:
        return None
    status = data.find(b"\x00\x00\x00\x09\x02\x00\x00\x00")  # (0000,0900) Status, length 2
    if status < 0 or data[status + 8 : status + 10] != b"\x00\x00":
        return None
    at = data.find(b"\x00\x00\x00\x10")  # (0000,1000) AffectedSOPInstanceUID
    if at < 0:
        return None
    length = int.from_bytes(data[at + 4 : at + 8], "little")
    return data[at + 8 : at + 8 + length].rstrip(b"\0").decode("ascii")


def _calls(path: Path) -> Iterator[tuple[int, int, str, str]]:
    """(started, finished, call, result) of every traced call, in the order they finished.

    A call another thread's call interrupted is logged in two lines by ``strace -f``
    (``call(args <unfinished ...>`` then ``<... call resumed>) = result``): they are joined.
    """
    unfinished: dict[int, tuple[int, str]] = {}
    for order, line in enumerate(path.read_text(errors="replace").splitlines()):
        match = _LINE.match(line)
        if match is None:
            continue
        thread, text = int(match.group(1)), match.group(2)
        if text.endswith("<unfinished ...>"):
            unfinished[thread] = (order, text.removesuffix("<unfinished ...>"))
        elif text.startswith("<... "):
            started, call = unfinished.pop(thread, (order, ""))
            yield started, order, call, text.rsplit("=", 1)[-1].strip()
        elif " = " in text:
            call, result = text.rsplit(" = ", 1)
            yield order, order, call, result.split(" ")[0]


def parse(path: Path) -> Trace:
    trace = Trace()
    wal_fds: set[int] = set()
    for started, finished, call, result in _calls(path):
        opened = _OPEN.match(call)
        if opened:
            if not result.isdigit():
                continue
            name, fd = _bytes(opened.group(1)).decode(errors="replace"), int(result)
            if name.endswith(".seg"):
                trace.segment_fds.add(fd)
            elif name.endswith("-wal"):
                wal_fds.add(fd)
            continue
        named = _CALL.match(call)
        if named is None or result.startswith("-"):
            continue
        name, fd = named.group(1), int(named.group(2))
        if name == "fdatasync":
            if result == "0":
                trace.flushes.append((started, finished, fd))
            continue
        data = b"".join(_bytes(b) for b in _BUFFER.findall(call))  # writev: every iov_base
        if name == "pwrite64" and fd in trace.segment_fds:
            uid = _sop_instance_uid(data)
            if uid is not None:
                trace.record_written.setdefault(uid, finished)
        elif name == "pwrite64" and fd in wal_fds:
            trace.wal_writes.append(finished)
        elif name in {"write", "sendto", "writev", "sendmsg"}:
            uid = _response_uid(data)
            if uid is not None:
                trace.acknowledged.setdefault(uid, started)
    return trace


def check(trace: Trace, expected: set[str]) -> None:
    assert set(trace.acknowledged) == expected, "every object acknowledged once, and only those"
    for uid, answered in trace.acknowledged.items():
        written = trace.record_written.get(uid)
        assert written is not None and written < answered, f"{uid}: no record before its Success"
        flushed = [
            finished
            for started, finished, fd in trace.flushes
            if fd in trace.segment_fds and started > written and finished < answered
        ]
        assert flushed, f"{uid}: Success without an fdatasync of its segment after the write"
        committed = [w for w in trace.wal_writes if min(flushed) < w < answered]
        assert committed, f"{uid}: Success without an index commit after the flush"


def _traced_hub(workdir: Path, trace: Path) -> contextlib.AbstractContextManager[Hub]:
    wrapper = [
        "strace",
        "-f",
        "-tt",
        "-xx",
        "-s",
        "400",
        "-e",
        "trace=openat,pwrite64,fdatasync,write,writev,sendto,sendmsg",
        "-o",
        str(trace),
    ]
    return running_hub(workdir, wrapper=wrapper)


@pytest.mark.parametrize(("associations", "per_association"), [(1, 12), (3, 10)])
def test_flush_then_commit_then_success(
    tmp_path: Path, associations: int, per_association: int
) -> None:
    batches = [
        [
            write_file(make_dataset(rows=16), tmp_path / f"a{a}" / f"{n}.dcm")
            for n in range(per_association)
        ]
        for a in range(associations)
    ]
    expected = {
        str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for files in batches for f in files
    }
    trace_path = tmp_path / "trace.txt"
    with _traced_hub(tmp_path / "hub", trace_path) as hub:
        senders = [
            start_storescu(files, hub.port, calling=f"SCU{n}") for n, files in enumerate(batches)
        ]
        for sender in senders:
            output, _ = sender.communicate(timeout=180)
            assert sender.returncode == 0, output.decode(errors="replace")[-2000:]
        assert wait_until(lambda: hub.count("instances") == len(expected), 30)
    trace = parse(trace_path)
    assert trace.segment_fds, "the objects were not written to a segment"
    check(trace, expected)


def test_the_check_catches_a_success_before_the_flush(tmp_path: Path) -> None:
    """The parser and the check on a hand-written trace: answering before the flush fails."""
    meta = b"\x02\x00\x03\x00UI\x08\x001.2.3.4\x00"
    response = C_STORE_RSP + b"\x00\x00\x00\x09\x02\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x10"
    response += (8).to_bytes(4, "little") + b"1.2.3.4\x00"

    def hexed(data: bytes) -> str:
        return "".join(f"\\x{b:02x}" for b in data)

    opened = [
        f'1 10:00:00.000001 openat(AT_FDCWD, "{hexed(b"/d/segments/x.seg")}", O_RDWR) = 7',
        f'1 10:00:00.000002 openat(AT_FDCWD, "{hexed(b"/d/index.sqlite-wal")}", O_RDWR) = 8',
        f'1 10:00:00.000003 pwrite64(7, "{hexed(meta)}", 20, 64) = 20',
    ]
    answered = (
        f'1 10:00:00.000009 writev(9, [{{iov_base="{hexed(response)}", iov_len=40}}], 1) = 40'
    )
    flushed = [
        "2 10:00:00.000004 fdatasync(7 <unfinished ...>",
        "2 10:00:00.000005 <... fdatasync resumed>) = 0",
    ]
    committed = '1 10:00:00.000006 pwrite64(8, "\\x00", 1, 0) = 1'
    path = tmp_path / "trace.txt"
    path.write_text("\n".join([*opened, answered, *flushed, committed]))
    trace = parse(path)
    assert trace.acknowledged == {"1.2.3.4": 3}
    with pytest.raises(AssertionError, match="without an fdatasync"):
        check(trace, {"1.2.3.4"})
    path.write_text("\n".join([*opened, *flushed, answered, committed]))
    with pytest.raises(AssertionError, match="without an index commit"):
        check(parse(path), {"1.2.3.4"})
    path.write_text("\n".join([*opened, *flushed, committed, answered]))
    check(parse(path), {"1.2.3.4"})
