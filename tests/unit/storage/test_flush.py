"""Flushes started now and waited for later: the C library's asynchronous flush where it
exists, a Python thread elsewhere, and a refusal from the disk raised on ``wait`` by both."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhub.storage import flush


@pytest.fixture
def written(tmp_path: Path) -> Iterator[int]:
    """A descriptor of a file with data not yet flushed."""
    fd = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT, 0o640)
    os.pwrite(fd, b"x" * 300_000, 0)
    yield fd
    os.close(fd)


@pytest.fixture(params=["aio", "thread"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way of flushing: the C library's where this machine has it, and the thread."""
    if request.param == "aio" and flush._LIBC is None:
        pytest.skip("this C library has no usable aio_fsync (not glibc on 64-bit Linux)")
    if request.param == "thread":
        monkeypatch.setattr(flush, "_LIBC", None)
    return str(request.param)


def test_glibc_on_64_bit_linux_flushes_without_a_python_thread() -> None:
    """The machines dicomhub is measured on (Debian, x86_64) use the C library's flush."""
    if os.uname().sysname != "Linux" or os.uname().machine not in {"x86_64", "aarch64"}:
        pytest.skip("not 64-bit Linux")
    assert flush._LIBC is not None


def test_a_flush_completes_and_can_be_waited_for_twice(written: int, way: str) -> None:
    started = flush.start_flush(written)
    assert type(started).__name__ == ("_AioFlush" if way == "aio" else "_ThreadFlush")
    started.wait()
    started.wait()
    assert os.pread(written, 3, 299_997) == b"xxx"


def test_a_flush_not_waited_for_keeps_its_control_block(written: int) -> None:
    """The C library writes into the control block until the flush is done, so the block
    lives until a ``wait`` has seen it finish, whoever still holds the flush."""
    if flush._LIBC is None:
        pytest.skip("this C library has no usable aio_fsync (not glibc on 64-bit Linux)")
    started = flush.start_flush(written)
    assert started in flush._IN_FLIGHT
    started.wait()
    assert started not in flush._IN_FLIGHT


def test_a_refused_flush_raises_its_error_on_wait(way: str) -> None:
    """A pipe is open for writing but cannot be flushed: fdatasync says EINVAL, and so does
    ``wait``, from the C library's thread as from Python's."""
    read_end, write_end = os.pipe()
    try:
        started = flush.start_flush(write_end)
        with pytest.raises(OSError) as raised:
            started.wait()
        assert raised.value.errno == errno.EINVAL
        with pytest.raises(OSError):  # a second waiter hears the same
            started.wait()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_bad_descriptor_is_refused(way: str) -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as raised:
        flush.start_flush(fd).wait()
    assert raised.value.errno == errno.EBADF


def test_several_threads_wait_for_one_flush(written: int, way: str) -> None:
    started = flush.start_flush(written)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            started.wait()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def test_done_has_nothing_to_wait_for() -> None:
    flush.done().wait()
