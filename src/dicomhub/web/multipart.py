"""multipart/related (and multipart/form-data) bodies, read and written as streams.

``MultipartReader`` splits a body arriving in chunks into parts without holding more than one
chunk and a boundary's length in memory: each part's bytes go to a ``PartSink`` as they come
(STOW-RS and uploads spool them into the blob store's staging area).  ``multipart_stream``
writes parts produced one after the other (WADO-RS answers, read from the blob store in
chunks), so a study is never held in memory whole.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Protocol

from dicomhub.errors import InvalidRequest

MAX_PART_HEADER = 16 * 1024
"""Largest header block of one part."""
CHUNK = 1 << 20


class PartSink(Protocol):
    """Where the content of one part goes while it arrives."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """The part is complete."""
        ...


@dataclass
class PartHeaders:
    """The headers of one part (names in lower case)."""

    values: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """The part's media type without parameters, lower case ('' when absent)."""
        return media_type(self.values.get("content-type", ""))[0]

    @property
    def filename(self) -> str:
        """The file name of a form-data part ('' when none)."""
        return parameters(self.values.get("content-disposition", "")).get("filename", "")


def parameters(header: str) -> dict[str, str]:
    """The parameters of a header value such as ``multipart/related; type="..."``."""
    message = Message()
    message["content-type"] = header
    return {str(k).lower(): str(v) for k, v in (message.get_params(failobj=[]) or [])[1:] if k}


def media_type(header: str) -> tuple[str, dict[str, str]]:
    """(media type in lower case, its parameters) of a Content-Type value."""
    main = header.split(";", 1)[0].strip().lower()
    return main, parameters(header) if ";" in header else {}


class MultipartReader:
    """Feed chunks of a multipart body; each part is written to the sink ``open_part`` gives."""

    def __init__(self, boundary: str, open_part: Callable[[PartHeaders], PartSink]) -> None:
        if not boundary or len(boundary) > 200:
            raise InvalidRequest("the multipart body has no valid boundary parameter")
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._open_part = open_part
        self._buffer = bytearray(b"\r\n")  # the first delimiter has no CRLF before it
        self._state = "preamble"
        self._sink: PartSink | None = None
        self.parts = 0

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the body."""
        self._buffer += chunk
        while self._step():
            pass

    def finish(self) -> None:
        """The body ended: it must have ended with the closing delimiter."""
        if self._state != "epilogue":
            self._abandon()
            raise InvalidRequest(
                "the multipart body ended before its closing boundary: it is truncated"
            )

    def abort(self) -> None:
        """Stop reading (an error elsewhere); a part being written is left to its sink."""
        self._abandon()

    def _abandon(self) -> None:
        self._sink = None

    def _step(self) -> bool:
        """Process what the buffer allows; True when it may allow more."""
        if self._state == "preamble":
            at = self._buffer.find(self._delimiter)
            if at < 0:
                keep = len(self._delimiter)
                if len(self._buffer) > keep:
                    del self._buffer[: len(self._buffer) - keep]
                return False
            del self._buffer[: at + len(self._delimiter)]
            self._state = "after-delimiter"
            return True
        if self._state == "after-delimiter":
            if len(self._buffer) < 2:
                return False
            if self._buffer[:2] == b"--":
                self._state = "epilogue"
                self._buffer.clear()
                return False
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > 256:
                    raise InvalidRequest("a multipart boundary line is malformed")
                return False
            del self._buffer[: end + 2]  # transport padding and CRLF
            self._state = "headers"
            return True
        if self._state == "headers":
            end = self._buffer.find(b"\r\n\r\n")
            if self._buffer.startswith(b"\r\n"):
                end, skip = 0, 2
            else:
                skip = 4
            if end < 0:
                if len(self._buffer) > MAX_PART_HEADER:
                    raise InvalidRequest("a part of the multipart body has oversized headers")
                return False
            headers = _parse_headers(bytes(self._buffer[:end]))
            del self._buffer[: end + skip]
            self._sink = self._open_part(headers)
            self.parts += 1
            self._state = "body"
            return True
        if self._state == "body":
            assert self._sink is not None
            at = self._buffer.find(self._delimiter)
            if at < 0:
                safe = len(self._buffer) - len(self._delimiter)
                if safe > 0:
                    self._sink.write(bytes(self._buffer[:safe]))
                    del self._buffer[:safe]
                return False
            if at:
                self._sink.write(bytes(self._buffer[:at]))
            del self._buffer[: at + len(self._delimiter)]
            sink, self._sink = self._sink, None
            sink.close()
            self._state = "after-delimiter"
            return True
        self._buffer.clear()  # epilogue: ignored
        return False


def _parse_headers(block: bytes) -> PartHeaders:
    values: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise InvalidRequest(f"a part header line is malformed: {line[:80]!r}")
        values[name.strip().lower()] = value.strip()
    return PartHeaders(values)


async def read_multipart(body: AsyncIterator[bytes], reader: MultipartReader) -> None:
    """Feed a whole request body to ``reader`` (raises on a truncated body)."""
    try:
        async for chunk in body:
            reader.feed(chunk)
        reader.finish()
    except BaseException:
        reader.abort()
        raise


def new_boundary() -> str:
    """A boundary no DICOM object is likely to contain."""
    return f"dicomhub-{secrets.token_hex(16)}"


@dataclass
class Part:
    """One part to write: its Content-Type and its content, produced in chunks."""

    content_type: str
    chunks: Iterable[bytes]
    headers: dict[str, str] = field(default_factory=dict)


def multipart_stream(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The body of a multipart/related message of ``parts``, chunk by chunk."""
    for part in parts:
        head = [f"--{boundary}", f"Content-Type: {part.content_type}"]
        head += [f"{name}: {value}" for name, value in part.headers.items()]
        yield ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        yield from part.chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")
