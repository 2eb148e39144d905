"""How a stored instance travels to a peer: which presentation context, which bytes.

An instance goes out as stored (the data set bytes after the file meta, unchanged) whenever
the receiver accepted its stored transfer syntax; otherwise it is transcoded to a syntax the
receiver accepted, and the log says so.  Shared by every sender: C-MOVE sub-operations and
forwarding (``dicom.scu``) and C-GET sub-operations on the asyncio engine.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from pydicom.uid import UID

from dicomhub.errors import CannotTranscode, CannotUnderstand, DicomhubError
from dicomhub.imaging.transcode import can_transcode, fallback_syntaxes, transcode
from dicomhub.index.repository import StoredInstance
from dicomhub.storage.base import BlobStore

LOG = logging.getLogger("dicomhub.dicom")
MAX_CONTEXTS = 128
LOSSLESS_TARGETS = (
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
)
"""Compressed syntaxes an instance may be converted to when a receiver takes only those."""
NO_CONTEXT = 0xA900
"""Sub-operation status when the receiver accepted no context the instance can use."""
UNREADABLE = 0xA701
"""Sub-operation status when the stored object cannot be read."""
CHUNK = 1 << 20
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UT", b"UC", b"UR"}


class Context(Protocol):
    """An accepted presentation context, as either side of an association sees it."""

    @property
    def context_id(self) -> int: ...

    @property
    def abstract_syntax(self) -> str: ...

    @property
    def transfer_syntax(self) -> UID: ...


@dataclass(frozen=True)
class SubOperation:
    """The outcome of sending one instance."""

    sop_instance_uid: str
    status: int
    comment: str = ""
    transfer_syntax_uid: str = ""
    """The syntax it travelled in (differs from the stored one when transcoded)."""

    @property
    def ok(self) -> bool:
        """Success or warning (0x0000, 0x0001, 0xB000-0xBFFF)."""
        return self.status in {0x0000, 0x0001} or self.warning

    @property
    def warning(self) -> bool:
        """A warning status."""
        return self.status == 0x0001 or self.status & 0xF000 == 0xB000


@dataclass(frozen=True)
class Route:
    """The context an instance goes out on, and whether its bytes must be transcoded."""

    context: Context
    transcode: bool

    @property
    def transfer_syntax_uid(self) -> str:
        """The syntax the data set travels in."""
        return str(self.context.transfer_syntax)


def proposals(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Presentation contexts to propose for instances of (SOP class, stored syntax) pairs.

    Each stored syntax gets a context of its own, so a receiver that accepts it is never
    asked to choose between it and a conversion; one more context per SOP class offers the
    syntaxes the objects can be converted to: uncompressed first, then the lossless
    compressed ones a codec can produce, for receivers that take only those.  At most
    ``MAX_CONTEXTS`` (PS3.8 limit).
    """
    own: dict[tuple[str, str], None] = {}
    fallbacks: dict[str, list[str]] = {}
    for sop_class, syntax in pairs:
        own[(sop_class, syntax)] = None
        wanted = fallbacks.setdefault(sop_class, [])
        convertible = [*fallback_syntaxes(syntax)]
        convertible += [t for t in LOSSLESS_TARGETS if t != syntax and can_transcode(syntax, t)]
        wanted.extend(t for t in convertible if t not in wanted)
    result = [(sop_class, [syntax]) for sop_class, syntax in own]
    for sop_class, syntaxes in fallbacks.items():
        extra = [t for t in syntaxes if (sop_class, t) not in own]
        if extra:
            result.append((sop_class, extra))
    return result[:MAX_CONTEXTS]


def route(contexts: Iterable[Context], sop_class: str, stored_syntax: str) -> Route | None:
    """The context to send an instance on: its own syntax first, else a convertible one."""
    candidates = [c for c in contexts if c.abstract_syntax == sop_class]
    for context in candidates:
        if context.transfer_syntax == stored_syntax:
            return Route(context, transcode=False)
    for preferred in fallback_syntaxes(stored_syntax):
        for context in candidates:
            if context.transfer_syntax == preferred:
                return Route(context, transcode=True)
    for context in candidates:
        if can_transcode(stored_syntax, str(context.transfer_syntax)):
            return Route(context, transcode=True)
    return None


def no_route_reason(sop_class: str, stored_syntax: str) -> str:
    """The sentence logged and reported when an instance has no usable context."""
    return (
        f"the receiver accepted no context for {UID(sop_class).name} in "
        f"{UID(stored_syntax).name} or a syntax it can be converted to"
    )


def dataset_offset(stream: BinaryIO) -> int:
    """Offset of the data set in a Part 10 object: just after the group 0002 elements.

    Reads the element headers only (explicit VR little endian, as PS3.10 requires); an object
    without the ``DICM`` preamble starts its data set at offset 0.
    """
    stream.seek(0)
    head = stream.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        return 0
    offset = 132
    while True:
        stream.seek(offset)
        element = stream.read(8)
        if len(element) < 8:
            return offset
        group = struct.unpack_from("<H", element)[0]
        if group != 0x0002:
            return offset
        vr = element[4:6]
        if vr in _LONG_VRS:
            more = stream.read(4)
            if len(more) < 4:
                raise CannotUnderstand("stored object is truncated in its file meta")
            offset += 12 + struct.unpack("<L", more)[0]
        else:
            offset += 8 + struct.unpack_from("<H", element, 6)[0]


@dataclass
class Outgoing:
    """The data set of one instance, ready to be written to the network in chunks."""

    length: int
    chunks: Iterator[bytes]


def outgoing(blobs: BlobStore, instance: StoredInstance, path: Route) -> Outgoing:
    """The bytes an instance travels as on ``path``: stored ones streamed, or transcoded."""
    stream = blobs.open(instance.blob_key)
    try:
        if path.transcode:
            stream.seek(0)
            data = transcode(stream.read(), path.transfer_syntax_uid)
            stream.close()
            LOG.info(
                "%s transcoded from %s to %s for sending",
                instance.sop_instance_uid,
                UID(instance.transfer_syntax_uid).name,
                UID(path.transfer_syntax_uid).name,
            )
            return Outgoing(len(data), _chunks_of(data))
        offset = dataset_offset(stream)
        stream.seek(0, io.SEEK_END)
        length = stream.tell() - offset
        stream.seek(offset)
    except CannotTranscode:
        raise
    except Exception:
        stream.close()
        raise
    return Outgoing(length, _streamed(stream, length))


def _chunks_of(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield bytes(view[start : start + CHUNK])


def _streamed(stream: BinaryIO, length: int) -> Iterator[bytes]:
    try:
        left = length
        while left > 0:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                raise CannotUnderstand("stored object is shorter than its index says")
            left -= len(chunk)
            yield chunk
    finally:
        stream.close()


def pairs_of(instances: Sequence[StoredInstance]) -> list[tuple[str, str]]:
    """The distinct (SOP class, stored syntax) pairs of some instances, in order."""
    seen: dict[tuple[str, str], None] = {}
    for instance in instances:
        seen[(instance.sop_class_uid, instance.transfer_syntax_uid)] = None
    return list(seen)


def prepare(
    blobs: BlobStore, contexts: Iterable[Context], instance: StoredInstance, peer: str
) -> tuple[Route, Outgoing] | SubOperation:
    """The context and bytes to send ``instance`` with, or the failed sub-operation saying
    why it cannot be sent (no usable context, no conversion, unreadable blob)."""
    uid = instance.sop_instance_uid
    path = route(contexts, instance.sop_class_uid, instance.transfer_syntax_uid)
    if path is None:
        reason = no_route_reason(instance.sop_class_uid, instance.transfer_syntax_uid)
        LOG.warning("%s not sent to %s: %s", uid, peer, reason)
        return SubOperation(uid, NO_CONTEXT, reason)
    try:
        return path, outgoing(blobs, instance, path)
    except CannotTranscode as exc:
        LOG.warning("%s not sent to %s: %s", uid, peer, exc)
        return SubOperation(uid, exc.dimse_status, str(exc))
    except (OSError, DicomhubError) as exc:
        LOG.error("%s not sent to %s: its stored object cannot be read: %s", uid, peer, exc)
        return SubOperation(uid, UNREADABLE, f"stored object unreadable: {exc}")
