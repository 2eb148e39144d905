"""Receiving DICOM objects over HTTP (STOW-RS and REST uploads) into the one ingest path.

The body is read as it arrives.  Each part goes into a spool of the blob store (memory while
small, a staging file once large), and each completed part is handed to ``Ingest.store`` before
the next chunk of the body is read, so at most one part is ever held at once, whatever the
number of parts.  When the body breaks off, is refused (too large) or malformed, the part being
received is discarded; parts already stored stay stored (each was answered by the archive).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from starlette.concurrency import run_in_threadpool

from dicomhub.errors import CannotUnderstand, DicomhubError, UnsupportedMediaType
from dicomhub.ingest import IngestRequest, StoreResult
from dicomhub.storage.spool import Spool, Spooled
from dicomhub.web.context import WebContext
from dicomhub.web.multipart import MultipartReader, PartHeaders

LOG = logging.getLogger("dicomhub.web")
DICOM = "application/dicom"


@dataclass(frozen=True)
class Identity:
    """The UIDs of a received object, as far as they could be read."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""


@dataclass(frozen=True)
class Outcome:
    """What became of one received part."""

    identity: Identity
    result: StoreResult | None
    error: DicomhubError | None
    filename: str = ""

    @property
    def ok(self) -> bool:
        """Stored (or already stored)."""
        return self.result is not None


Check = Callable[[Identity], None]
"""Raises a ``DicomhubError`` when an object must not be stored (e.g. another study)."""


def sniff(spooled: Spooled) -> Identity:
    """The SOP Class, SOP Instance and Study Instance UIDs of a spooled object, if readable."""
    source: object = spooled.path
    if spooled.content is not None:
        source = BytesIO(bytes(spooled.content))
    try:
        dataset = dcmread(
            source,  # type: ignore[arg-type]
            stop_before_pixels=True,
            specific_tags=[
                "SOPClassUID",
                "SOPInstanceUID",
                "StudyInstanceUID",
                "SeriesInstanceUID",
            ],
        )
    except Exception:
        return Identity()
    return Identity(
        str(dataset.get("SOPClassUID", "") or ""),
        str(dataset.get("SOPInstanceUID", "") or ""),
        str(dataset.get("StudyInstanceUID", "") or ""),
        str(dataset.get("SeriesInstanceUID", "") or ""),
    )


class _PartSink:
    """One part being spooled."""

    def __init__(self, spool: Spool, headers: PartHeaders, done: list[_PartSink]) -> None:
        self.spool = spool
        self.headers = headers
        self._done = done

    def write(self, data: bytes) -> None:
        self.spool.write(data)

    def close(self) -> None:
        self._done.append(self)


class Receiver:
    """Reads DICOM objects from a request body and stores each through the ingest path."""

    def __init__(
        self,
        ctx: WebContext,
        *,
        source: str,
        actor: str,
        check: Check | None = None,
        part_types: tuple[str, ...] = (DICOM,),
    ) -> None:
        self.ctx = ctx
        self.source = source
        self.actor = actor
        self.check = check
        self.part_types = part_types
        self.outcomes: list[Outcome] = []
        self._open: list[_PartSink] = []
        self._done: list[_PartSink] = []

    def _new_part(self, headers: PartHeaders) -> _PartSink:
        sink = _PartSink(Spool(self.ctx.runtime.blobs, b""), headers, self._done)
        self._open.append(sink)
        return sink

    async def multipart(self, body: AsyncIterator[bytes], boundary: str) -> list[Outcome]:
        """Store every part of a multipart body."""
        reader = MultipartReader(boundary, self._new_part)
        try:
            async for chunk in body:
                reader.feed(chunk)
                await self._store_done()
            reader.finish()
            await self._store_done()
        except BaseException:
            reader.abort()
            self._discard_all()
            raise
        return self.outcomes

    async def single(self, body: AsyncIterator[bytes], filename: str = "") -> list[Outcome]:
        """Store a body that is one object (``application/dicom``)."""
        sink = self._new_part(PartHeaders({"content-type": DICOM}))
        try:
            async for chunk in body:
                sink.write(chunk)
        except BaseException:
            self._discard_all()
            raise
        sink.close()
        await self._store_done(filename)
        return self.outcomes

    def _discard_all(self) -> None:
        for sink in self._open:
            sink.spool.discard()
        self._open.clear()
        self._done.clear()

    async def _store_done(self, filename: str = "") -> None:
        while self._done:
            sink = self._done.pop(0)
            self._open.remove(sink)
            outcome = await run_in_threadpool(self._store, sink, filename or sink.headers.filename)
            self.outcomes.append(outcome)

    def _store(self, sink: _PartSink, filename: str) -> Outcome:
        """Ingest one complete part (runs in a worker thread); the part is always consumed."""
        try:
            spooled = sink.spool.finish()
        except DicomhubError as exc:
            sink.spool.discard()
            return Outcome(Identity(), None, exc, filename)
        identity = sniff(spooled)
        try:
            kind = sink.headers.content_type or DICOM
            if kind not in self.part_types:
                raise UnsupportedMediaType(
                    f"a part of type {kind} was sent; this takes {', '.join(self.part_types)}"
                )
            if spooled.content is None and spooled.path is None:
                raise CannotUnderstand("the part is empty")
            if self.check is not None:
                self.check(identity)
            result = self.ctx.runtime.ingest.store(
                IngestRequest(
                    path=spooled.path,
                    take=True,
                    source=self.source,
                    content=spooled.content,
                )
            )
        except DicomhubError as exc:
            _remove(spooled.path)
            LOG.warning(
                "%s from %s: %s refused: %s",
                self.source,
                self.actor,
                identity.sop_instance_uid or filename or "an object",
                exc,
            )
            return Outcome(identity, None, exc, filename)
        LOG.info(
            "%s from %s: %s %s", self.source, self.actor, result.sop_instance_uid, result.status
        )
        stored = Identity(
            result.sop_class_uid,
            result.sop_instance_uid,
            result.study_instance_uid,
            identity.series_instance_uid,
        )
        return Outcome(stored, result, None, filename)


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
