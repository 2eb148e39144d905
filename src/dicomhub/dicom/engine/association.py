"""One association on the asyncio engine: PS3.8 state handling and DIMSE message assembly.

The reader loop takes PDUs off the socket (each bounded by the negotiated maximum), streams
C-STORE data set fragments into a staging file as they arrive, notes C-CANCELs at once, and
queues complete requests for a worker task that runs the services in the thread pool and
writes the responses.  Protocol violations end in an A-ABORT; nothing half-received is kept.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from dicomhub.config import Service
from dicomhub.conformance import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    MODALITY_WORKLIST_FIND,
    PATIENT_ROOT,
    command_sop_classes,
    service_of,
)
from dicomhub.dicom.bindings import Services
from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.engine import pdu
from dicomhub.dicom.engine.filemeta import part10_prefix
from dicomhub.dicom.engine.negotiation import (
    AcceptedContext,
    ApplicationContextNotSupported,
    Negotiator,
    reject,
)
from dicomhub.dicom.engine.stream import PduStream
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.dicom.sending import SubOperation, prepare
from dicomhub.dicom.services.print import PrintRequest
from dicomhub.dicom.services.retrieve import RetrieveResponse
from dicomhub.dicom.services.storage_commitment import (
    STORAGE_COMMITMENT,
    STORAGE_COMMITMENT_INSTANCE,
    report_dataset,
)
from dicomhub.dicom.services.store import StoreRequest
from dicomhub.dicom.status import PENDING, status_of, unexpected
from dicomhub.errors import CannotUnderstand, DicomhubError, NoSuchInstance, PeerUnavailable
from dicomhub.header import KnownMeta
from dicomhub.index.commitments import State as CommitmentState
from dicomhub.index.commitments import Transaction
from dicomhub.index.query import InformationModel
from dicomhub.index.repository import StoredInstance
from dicomhub.ingest import Prepared, StoreResult
from dicomhub.storage.base import data_set_sha256
from dicomhub.storage.filesystem import FilesystemBlobStore
from dicomhub.storage.spool import MEMORY_LIMIT, Spool

LOG = logging.getLogger("dicomhub.dicom")
CONTROL_PDU_LIMIT = 1 << 20
UNLIMITED_PDU_GUARD = 64 << 20
IDENTIFIER_LIMIT = 16 << 20
MAX_PENDING = 8
STREAM_WINDOW = 8
"""Responses of a C-FIND, C-MOVE or C-GET that may wait to be sent."""
QUEUED_MEMORY_LIMIT = 16 << 20
"""Bytes of received objects an association may hold in memory while they wait their turn."""
HASH_APART = 256 << 10
"""An object received in memory by a busy loop and larger than this is hashed by the
engine's hashing threads while it is parsed and queued (hashlib runs without the GIL), not
by the group commit's thread when its batch comes."""


@dataclass
class EngineContext:
    """What every association of one acceptor shares."""

    services: Services
    access: AccessPolicy
    blobs: FilesystemBlobStore
    executor: concurrent.futures.ThreadPoolExecutor
    contexts: list[Any]
    negotiator: Negotiator
    max_pdu: int
    acse_timeout: float
    dimse_timeout: float
    network_timeout: float
    hasher: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(
            2, thread_name_prefix="dicomhub-hash"
        )
    )
    memory_object_limit: int = MEMORY_LIMIT
    inline_stores: bool = False
    """In-memory objects of a lone association may be stored in the event loop's thread
    (an embedded SQLite index: no network round trip blocks the loop)."""
    active: set[Association] = field(default_factory=set)


@dataclass
class Message:
    """A DIMSE request being received or ready to run."""

    context: AcceptedContext
    command: dict[str, Any]
    data: bytearray = field(default_factory=bytearray)
    writer: Spool | None = None
    response: bool = False
    """A response to a request dicomhub sent (its data set, if any, is not used)."""


class Association:
    """Acceptor side of one TCP connection."""

    def __init__(self, engine: EngineContext, stream: PduStream) -> None:
        self.engine = engine
        self.stream = stream
        host, port = (stream.get_extra_info("peername") or ("?", 0))[:2]
        self.info = AssociationInfo("?", "?", str(host), int(port))
        self.contexts: dict[int, AcceptedContext] = {}
        self.peer_max_pdu = 0
        self.command_buffer = bytearray()
        self.current: Message | None = None
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.cancelled: set[int] = set()
        self.closed = threading.Event()
        self.worker: asyncio.Task[None] | None = None
        self.busy = False
        self.running_message_id: int | None = None
        self.awaiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.releasing = False
        self.handlers: dict[int, Callable[[Message], Awaitable[None]]] = {
            cmd.C_STORE_RQ: self._c_store,
            cmd.C_ECHO_RQ: self._c_echo,
            cmd.C_FIND_RQ: self._c_find,
            cmd.C_MOVE_RQ: self._c_retrieve,
            cmd.C_GET_RQ: self._c_retrieve,
            cmd.N_ACTION_RQ: self._n_action,
            cmd.N_EVENT_REPORT_RQ: self._n_event_report,
            cmd.N_CREATE_RQ: self._n_create,
            cmd.N_SET_RQ: self._n_set,
        }
        """The handler of each request (print requests go to ``_n_print`` whatever they are)."""
        """The peer asked for the release: requests from dicomhub are no longer sent."""
        self.sub_message_id = 0
        self.used_print = False
        """A Print Management request was served: its film sessions end with the association."""

    # Life cycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Negotiate, then serve until release, abort, timeout or a protocol error."""
        self.engine.active.add(self)
        try:
            try:
                established = await self._associate()
            except TimeoutError:
                # ARTIM expired in Sta2: close the transport, no A-ABORT (PS3.8 AA-2).
                LOG.warning(
                    "connection from %s sent no A-ASSOCIATE-RQ within %.0f s; closed",
                    self.info,
                    self.engine.acse_timeout,
                )
                return
            if established:
                self.worker = asyncio.create_task(self._work())
                await self._serve()
        except pdu.ProtocolError as exc:
            LOG.warning("association %s aborted: %s", self.info, exc)
            self._send_abort(exc.reason)
        except TimeoutError:
            LOG.warning("association %s timed out waiting for the peer; aborted", self.info)
            self._send_abort(pdu.REASON_NOT_SPECIFIED)
        except asyncio.IncompleteReadError as exc:
            if self.info.calling_ae_title == "?" and not exc.partial:
                LOG.info("connection from %s closed without a request", self.info)
            else:
                LOG.warning("association %s: connection lost (IncompleteReadError)", self.info)
        except ConnectionError as exc:
            LOG.warning("association %s: connection lost (%s)", self.info, type(exc).__name__)
        except Exception:
            LOG.exception("association %s aborted after an internal error", self.info)
            self._send_abort(pdu.REASON_NOT_SPECIFIED)
        finally:
            await self._close()

    async def _close(self) -> None:
        self.closed.set()
        for waiting in self.awaiting.values():
            waiting.cancel()
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        if self.current is not None and self.current.writer is not None:
            self.current.writer.discard()
        while not self.queue.empty():
            stale = self.queue.get_nowait()
            if stale.writer is not None:
                stale.writer.discard()
        if self.used_print:
            with contextlib.suppress(Exception):
                await self._run(self.engine.services.print_management.association_ended, self.info)
        self.engine.active.discard(self)
        self.stream.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.stream.wait_closed()

    async def _await_peer_close(self) -> None:
        """After A-ASSOCIATE-RJ or A-RELEASE-RP the requestor closes the transport (PS3.8
        Sta13); wait for that, at most the ARTIM time, so it reads our answer first."""
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            await self.stream.read_to_end(self.engine.acse_timeout)

    def _send_abort(self, reason: int) -> None:
        if not self.stream.is_closing():
            self.stream.write(pdu.abort(pdu.SOURCE_PROVIDER, reason))

    # PDUs ---------------------------------------------------------------------------------

    async def _read_pdu(self, timeout: float | None, limit: int) -> tuple[int, bytes, memoryview]:
        """The next PDU; its body is a view valid until the next read (see ``stream``)."""
        return await self.stream.read_pdu(timeout, limit, CONTROL_PDU_LIMIT)

    async def _associate(self) -> bool:
        pdu_type, header, body = await self._read_pdu(self.engine.acse_timeout, CONTROL_PDU_LIMIT)
        if pdu_type != pdu.A_ASSOCIATE_RQ:
            raise pdu.ProtocolError(
                f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02X}", pdu.REASON_UNEXPECTED_PDU
            )
        try:
            request = self.engine.negotiator.request(header + body)
        except ApplicationContextNotSupported as exc:
            LOG.warning("association from %s refused: %s", self.info, exc)
            self.stream.write(reject(1, 1, 2))
            await self.stream.drain()
            await self._await_peer_close()
            return False
        self.info = AssociationInfo(
            request.calling_ae_title,
            request.called_ae_title,
            self.info.peer_host,
            self.info.peer_port,
        )
        refusal = self.engine.access.check_association(self.info, len(self.engine.active) - 1)
        if refusal is not None:
            LOG.warning(
                "association from %s to %s refused: %s",
                self.info,
                request.called_ae_title,
                refusal.reason,
            )
            self.stream.write(reject(refusal.result, refusal.source, refusal.diagnostic))
            await self.stream.drain()
            await self._await_peer_close()
            return False
        answer, self.contexts = request.accept()
        self.peer_max_pdu = request.peer_max_pdu
        self.stream.write(answer)
        await self.stream.drain()
        proposed = request.proposed
        LOG.info(
            "association accepted: %s -> %s (%d contexts accepted, %d rejected)",
            self.info,
            request.called_ae_title,
            len(self.contexts),
            proposed - len(self.contexts),
        )
        return True

    def _read_timeout(self) -> float | None:
        """How long the peer may stay silent now.

        Inside a message: the DIMSE timeout.  While a request is queued or running the peer is
        waiting for our answer, so no limit.  Otherwise: the idle (network) timeout.
        """
        if self.current is not None or self.command_buffer:
            return self.engine.dimse_timeout
        if self.queue.qsize() or self.busy:
            return None
        return self.engine.network_timeout

    async def _serve(self) -> None:
        limit = self.engine.max_pdu or UNLIMITED_PDU_GUARD
        while True:
            pdu_type, _, body = await self._read_pdu(self._read_timeout(), limit)
            if pdu_type == pdu.P_DATA_TF:
                self._on_p_data(body)
                while self._backlogged() and not self.closed.is_set():
                    await asyncio.sleep(0.005)  # a pipelining peer waits for the backlog
            elif pdu_type == pdu.A_RELEASE_RQ:
                if self.current is not None or self.command_buffer:
                    raise pdu.ProtocolError(
                        "A-RELEASE-RQ in the middle of a DIMSE message", pdu.REASON_UNEXPECTED_PDU
                    )
                # A request dicomhub sent will not be answered any more: the requests
                # waiting for it give up now, and no new one is sent (a storage
                # commitment report then goes on a new association).
                self.releasing = True
                for waiting in self.awaiting.values():
                    if not waiting.done():
                        waiting.set_exception(
                            PeerUnavailable(f"{self.info} released the association first")
                        )
                await self.queue.join()
                self.stream.write(pdu.release_rp())
                await self.stream.drain()
                LOG.info("association released: %s", self.info)
                await self._await_peer_close()
                return
            elif pdu_type == pdu.A_ABORT:
                LOG.warning("association aborted by the peer: %s", self.info)
                return
            else:
                raise pdu.ProtocolError(
                    f"unexpected PDU type 0x{pdu_type:02X}", pdu.REASON_UNEXPECTED_PDU
                )

    def _backlogged(self) -> bool:
        """Too many requests, or too many bytes of them, wait to be run."""
        waiting = self.queue.qsize()
        if waiting >= MAX_PENDING:
            return True
        if not waiting:
            return False
        queued = list(self.queue._queue)  # type: ignore[attr-defined]
        held = sum(m.writer.in_memory for m in queued if m.writer is not None)
        return bool(held > QUEUED_MEMORY_LIMIT)

    # DIMSE message assembly -----------------------------------------------------------------

    def _on_p_data(self, body: memoryview) -> None:
        for item in pdu.iter_pdvs(body):
            context = self.contexts.get(item.context_id)
            if context is None:
                raise pdu.ProtocolError(
                    f"PDV on presentation context {item.context_id}, which was not accepted"
                )
            if item.is_command:
                self._on_command_fragment(context, item)
            else:
                self._on_data_fragment(context, item)

    def _on_command_fragment(self, context: AcceptedContext, item: pdu.PDV) -> None:
        if self.current is not None:
            raise pdu.ProtocolError("command fragment while a data set was expected")
        self.command_buffer += item.data
        if len(self.command_buffer) > CONTROL_PDU_LIMIT:
            raise pdu.ProtocolError("command set too large")
        if not item.is_last:
            return
        command = cmd.decode_command(bytes(self.command_buffer))
        self.command_buffer.clear()
        field_ = command.get("CommandField")
        if isinstance(field_, int) and field_ & 0x8000:
            if command.get("CommandDataSetType", cmd.NO_DATA_SET) == cmd.NO_DATA_SET:
                self._on_response(command)
            else:
                self.current = Message(context, command, response=True)
            return
        if field_ == cmd.C_CANCEL_RQ:
            target = int(command.get("MessageIDBeingRespondedTo") or 0)
            if target == self.running_message_id or any(
                m.command.get("MessageID") == target
                for m in list(self.queue._queue)  # type: ignore[attr-defined]
            ):
                self.cancelled.add(target)
            else:
                LOG.debug("C-CANCEL for message %d, which is not running, ignored", target)
            return
        message = Message(context, command)
        if command.get("CommandDataSetType", cmd.NO_DATA_SET) == cmd.NO_DATA_SET:
            self.queue.put_nowait(message)
            return
        if field_ == cmd.C_STORE_RQ:
            message.writer = self._open_staging(context, command)
        self.current = message

    def _on_response(self, command: dict[str, Any]) -> None:
        """A response to a request dicomhub sent on this association (C-GET sub-operations,
        N-EVENT-REPORT).  Some peers leave out MessageIDBeingRespondedTo: the response then
        answers the one request waiting, if there is exactly one."""
        target = int(command.get("MessageIDBeingRespondedTo") or 0)
        if not target and len(self.awaiting) == 1:
            target = next(iter(self.awaiting))
        waiting = self.awaiting.pop(target, None)
        if waiting is None or waiting.done():
            LOG.warning(
                "%s: response to message %d, which was not sent; ignored", self.info, target
            )
            return
        waiting.set_result(command)

    def _open_staging(self, context: AcceptedContext, command: dict[str, Any]) -> Spool:
        uids = [str(command.get(k, "")) for k in ("AffectedSOPClassUID", "AffectedSOPInstanceUID")]
        if any(len(uid) > 64 for uid in uids):
            raise pdu.ProtocolError("C-STORE-RQ with a UID longer than 64 characters")
        prefix = part10_prefix(
            sop_class_uid=uids[0],
            sop_instance_uid=uids[1],
            transfer_syntax_uid=str(context.transfer_syntax),
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version_name=IMPLEMENTATION_VERSION,
            source_ae_title=self.info.calling_ae_title,
        )
        return Spool(
            self.engine.blobs,
            prefix,
            self.engine.memory_object_limit,
            hash_content=self._alone(),
        )

    def _on_data_fragment(self, context: AcceptedContext, item: pdu.PDV) -> None:
        message = self.current
        if message is None:
            raise pdu.ProtocolError("data set fragment without a command")
        if context.context_id != message.context.context_id:
            raise pdu.ProtocolError("data set fragment on another presentation context")
        if message.writer is not None:
            message.writer.write(item.data)
        else:
            message.data += item.data
            if len(message.data) > IDENTIFIER_LIMIT:
                raise pdu.ProtocolError("identifier data set too large")
        if item.is_last:
            self.current = None
            if message.response:
                self._on_response(message.command)
                return
            self.queue.put_nowait(message)

    # Running requests -------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            message = await self.queue.get()
            self.busy = True
            self.running_message_id = message.command.get("MessageID")
            try:
                await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = unexpected(exc, f"request from {self.info}")
                field_ = message.command.get("CommandField")
                if isinstance(field_, int) and not field_ & 0x8000:
                    with contextlib.suppress(ConnectionError, OSError):
                        await self._respond(message, field_ | 0x8000, *status_of(failure))
            finally:
                if message.writer is not None:
                    message.writer.discard()
                self.busy = False
                self.running_message_id = None
                self.queue.task_done()

    async def _dispatch(self, message: Message) -> None:
        field_ = message.command.get("CommandField")
        refusal = _command_refusal(message)
        if refusal is not None:
            status, comment = refusal
            LOG.warning("%s: %s", self.info, comment)
            if message.writer is not None:
                message.writer.discard()
            if isinstance(field_, int) and not field_ & 0x8000:
                await self._respond(message, field_ | 0x8000, status, comment)
            return
        if service_of(message.context.abstract_syntax) is Service.PRINT:
            await self._n_print(message)
            return
        await self.handlers[int(field_ or 0)](message)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.engine.executor, function, *args)

    async def _c_echo(self, message: Message) -> None:
        try:
            await self._run(self.engine.services.echo.echo, self.info)
        except DicomhubError as exc:
            LOG.warning("C-ECHO from %s: 0x%04X %s", self.info, exc.dimse_status, exc)
            await self._respond(message, cmd.C_ECHO_RSP, *status_of(exc))
            return
        LOG.info("C-ECHO from %s: 0x0000", self.info)
        await self._respond(message, cmd.C_ECHO_RSP, 0x0000)

    async def _committed(self, prepared: Prepared) -> StoreResult:
        """Hand a prepared object to the group commit and wait for its outcome without
        holding a thread (the commit thread calls back into the loop)."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[StoreResult | DicomhubError] = loop.create_future()

        def done(result: StoreResult | DicomhubError) -> None:
            with contextlib.suppress(RuntimeError):  # the listener stopped meanwhile
                loop.call_soon_threadsafe(_resolve, outcome, result)

        self.engine.services.store.commit(prepared, done)
        result = await outcome
        if isinstance(result, DicomhubError):
            raise result
        return result

    def _alone(self) -> bool:
        """Whether a received object is best stored right here in the event loop: with one
        association and an embedded index, nobody else waits for the loop, and two thread
        hand-overs would cost more than the store itself."""
        return self.engine.inline_stores and len(self.engine.active) == 1

    async def _c_store(self, message: Message) -> None:
        sop_instance = str(message.command.get("AffectedSOPInstanceUID", ""))
        writer = message.writer
        try:
            if writer is None:
                raise CannotUnderstand("C-STORE request without a data set")
            spooled = writer.finish() if writer.in_memory else await self._run(writer.finish)
            digest = None
            content = spooled.content
            if content is not None and spooled.content_sha256 is None and len(content) > HASH_APART:
                digest = self.engine.hasher.submit(data_set_sha256, content, writer.prefix_length)
            request = StoreRequest(
                str(message.command.get("AffectedSOPClassUID", "")),
                sop_instance,
                spooled.path,
                spooled.hashed,
                spooled.content,
                KnownMeta(writer.prefix_length, str(message.context.transfer_syntax)),
                spooled.content_sha256,
                digest,
            )
            service = self.engine.services.store
            if not writer.in_memory:
                result = await self._run(service.store, self.info, request)
            elif self._alone():
                result = service.store(self.info, request)
            else:
                result = await self._committed(service.prepare(self.info, request))
        except DicomhubError as exc:
            LOG.warning(
                "C-STORE %s from %s refused: 0x%04X %s",
                sop_instance,
                self.info,
                exc.dimse_status,
                exc,
            )
            await self._respond(message, cmd.C_STORE_RSP, *status_of(exc))
            return
        except Exception as exc:
            failure = unexpected(exc, f"C-STORE {sop_instance} from {self.info}")
            await self._respond(message, cmd.C_STORE_RSP, *status_of(failure))
            return
        finally:
            if writer is not None:
                writer.discard()
        LOG.info(
            "C-STORE %s from %s: %s (%s, %d bytes, %s) 0x0000",
            sop_instance,
            self.info,
            result.status.value,
            result.sop_class_uid,
            result.size,
            result.transfer_syntax_uid,
        )
        await self._respond(message, cmd.C_STORE_RSP, 0x0000)

    async def _n_action(self, message: Message) -> None:
        """N-ACTION: Request Storage Commitment; the report follows (see the service)."""
        commitment = self.engine.services.storage_commitment
        command = message.command
        report_here = message.context.scu
        try:
            if command.get("RequestedSOPInstanceUID") != STORAGE_COMMITMENT_INSTANCE:
                raise NoSuchInstance(
                    f"Requested SOP Instance UID must be {STORAGE_COMMITMENT_INSTANCE}"
                )
            data = self._identifier(message)
            transaction = await self._run(
                partial(
                    commitment.request,
                    self.info,
                    int(command.get("ActionTypeID") or 0),
                    data,
                    report_here=report_here,
                )
            )
        except DicomhubError as exc:
            LOG.warning("N-ACTION from %s refused: 0x%04X %s", self.info, exc.dimse_status, exc)
            await self._respond(message, cmd.N_ACTION_RSP, *status_of(exc))
            return
        await self._respond(
            message, cmd.N_ACTION_RSP, 0x0000, ActionTypeID=command.get("ActionTypeID")
        )
        if report_here:
            await self._report_here(message.context, transaction)

    async def _report_here(self, context: AcceptedContext, transaction: Transaction) -> None:
        """Check the instances and send the report on this association; when that fails
        the background reporter delivers it on a new association."""
        commitment = self.engine.services.storage_commitment
        try:
            checked = await self._run(commitment.check, transaction)
            if checked.state is not CommitmentState.CHECKED:
                await self._run(commitment.commitments.release, transaction.id)
                return
            event_type, data = report_dataset(checked)
            encoded = encode(
                data,
                context.transfer_syntax.is_implicit_VR,
                context.transfer_syntax.is_little_endian,
                context.transfer_syntax.is_deflated,
            )
            self.sub_message_id = self.sub_message_id % 0xFFFF + 1
            message_id = self.sub_message_id
            command = cmd.encode_command(
                AffectedSOPClassUID=STORAGE_COMMITMENT,
                CommandField=cmd.N_EVENT_REPORT_RQ,
                MessageID=message_id,
                CommandDataSetType=cmd.DATA_SET_PRESENT,
                AffectedSOPInstanceUID=STORAGE_COMMITMENT_INSTANCE,
                EventTypeID=event_type,
            )
            response = await self._request(context.context_id, message_id, command, encoded)
            status = int(response.get("Status") or 0)
            if status != 0x0000:
                raise PeerUnavailable(f"the requester answered the report with 0x{status:04X}")
        except (PeerUnavailable, TimeoutError, ConnectionError, OSError) as exc:
            LOG.warning(
                "storage commitment %s: report on the association with %s failed (%s); "
                "it will be sent on a new association",
                transaction.transaction_uid,
                self.info,
                str(exc) or type(exc).__name__,
            )
            await self._run(commitment.commitments.release, transaction.id)
            commitment.wake.set()
            return
        await self._run(
            commitment.commitments.finish,
            transaction.id,
            CommitmentState.REPORTED,
            "report-sent",
            f"event type {event_type} on the requesting association",
        )
        LOG.info(
            "storage commitment %s reported to %s on its association (event type %d)",
            transaction.transaction_uid,
            self.info,
            event_type,
        )

    async def _request(
        self, context_id: int, message_id: int, command: bytes, data: bytes | None
    ) -> dict[str, Any]:
        """Send a request to the peer and wait for its response (DIMSE timeout)."""
        if self.closed.is_set() or self.releasing:
            raise PeerUnavailable(f"association {self.info} is closed or being released")
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.awaiting[message_id] = waiting
        try:
            for chunk in pdu.p_data(context_id, True, command, self.peer_max_pdu):
                self.stream.write(chunk)
            if data is not None:
                for chunk in pdu.p_data(context_id, False, data, self.peer_max_pdu):
                    self.stream.write(chunk)
            await self.stream.drain()
            async with asyncio.timeout(self.engine.dimse_timeout):
                return await waiting
        except asyncio.CancelledError as exc:
            if self.closed.is_set():
                raise PeerUnavailable(f"association {self.info} closed") from exc
            raise
        finally:
            self.awaiting.pop(message_id, None)

    async def _n_event_report(self, message: Message) -> None:
        """N-EVENT-REPORT: a storage commitment report for a request dicomhub made."""
        commitment = self.engine.services.storage_commitment
        event_type = int(message.command.get("EventTypeID") or 0)
        try:
            data = self._identifier(message)
            await self._run(commitment.receive_report, self.info, event_type, data)
        except DicomhubError as exc:
            LOG.warning(
                "N-EVENT-REPORT from %s refused: 0x%04X %s", self.info, exc.dimse_status, exc
            )
            await self._respond(message, cmd.N_EVENT_REPORT_RSP, *status_of(exc))
            return
        await self._respond(message, cmd.N_EVENT_REPORT_RSP, 0x0000, EventTypeID=event_type or None)

    async def _n_create(self, message: Message) -> None:
        """N-CREATE: a Modality Performed Procedure Step starts (see ``services.mpps``)."""
        requested = str(message.command.get("AffectedSOPInstanceUID") or "") or None
        try:
            data = self._identifier(message) if message.data else Dataset()
            uid, attributes = await self._run(
                self.engine.services.mpps.create, self.info, requested, data
            )
        except DicomhubError as exc:
            LOG.warning(
                "N-CREATE %s from %s refused: 0x%04X %s",
                requested or "(SOP Instance UID to assign)",
                self.info,
                exc.dimse_status,
                exc,
            )
            await self._refuse(message, cmd.N_CREATE_RSP, exc)
            return
        message.command["AffectedSOPInstanceUID"] = uid  # assigned when the SCU gave none
        await self._respond(
            message, cmd.N_CREATE_RSP, 0x0000, data=self._encode(message, attributes)
        )

    async def _n_set(self, message: Message) -> None:
        """N-SET: a Modality Performed Procedure Step is updated (see ``services.mpps``)."""
        uid = str(message.command.get("RequestedSOPInstanceUID") or "")
        try:
            if not uid:
                raise NoSuchInstance("N-SET without a Requested SOP Instance UID")
            data = self._identifier(message) if message.data else Dataset()
            await self._run(self.engine.services.mpps.set, self.info, uid, data)
        except DicomhubError as exc:
            LOG.warning(
                "N-SET %s from %s refused: 0x%04X %s", uid, self.info, exc.dimse_status, exc
            )
            await self._refuse(message, cmd.N_SET_RSP, exc)
            return
        await self._respond(message, cmd.N_SET_RSP, 0x0000)

    async def _n_print(self, message: Message) -> None:
        """N-CREATE, N-SET, N-ACTION, N-DELETE or N-GET of Print Management (``services.print``)."""
        command = message.command
        field_ = int(command.get("CommandField") or 0)
        identifiers = bytes(command.get("AttributeIdentifierList") or b"")
        request = PrintRequest(
            operation=_N_OPERATIONS[field_],
            sop_class_uid=str(
                command.get("AffectedSOPClassUID") or command.get("RequestedSOPClassUID") or ""
            ),
            sop_instance_uid=str(
                command.get("AffectedSOPInstanceUID")
                or command.get("RequestedSOPInstanceUID")
                or ""
            )
            or None,
            context_sop_class_uid=str(message.context.abstract_syntax),
            action_type_id=command.get("ActionTypeID"),
            attribute_identifiers=[
                int.from_bytes(identifiers[i : i + 2], "little") << 16
                | int.from_bytes(identifiers[i + 2 : i + 4], "little")
                for i in range(0, len(identifiers) - 3, 4)
            ],
        )
        self.used_print = True
        try:
            request.data = self._identifier(message) if message.data else None
            result = await self._run(
                self.engine.services.print_management.handle, self.info, request
            )
        except DicomhubError as exc:
            LOG.warning(
                "%s %s from %s refused: 0x%04X %s",
                request.operation,
                request.sop_instance_uid or "(SOP Instance UID to assign)",
                self.info,
                exc.dimse_status,
                exc,
            )
            await self._refuse(message, field_ | 0x8000, exc)
            return
        if result.sop_instance_uid:
            command["AffectedSOPInstanceUID"] = result.sop_instance_uid
        await self._respond(
            message,
            field_ | 0x8000,
            result.status,
            result.comment or None,
            data=self._encode(message, result.data),
            ActionTypeID=request.action_type_id if field_ == cmd.N_ACTION_RQ else None,
        )

    async def _refuse(self, message: Message, response_field: int, exc: DicomhubError) -> None:
        """A failure response with the error's Error ID and Attribute List, when it has them."""
        attribute_list = getattr(exc, "attribute_list", None)
        await self._respond(
            message,
            response_field,
            *status_of(exc),
            data=self._encode(message, attribute_list),
            ErrorID=exc.error_id,
            AttributeIdentifierList=getattr(exc, "identifiers", None) or None,
        )

    @staticmethod
    def _encode(message: Message, dataset: Dataset | None) -> bytes | None:
        """A response data set in the context's transfer syntax; None when there is none."""
        if dataset is None or not len(dataset):
            return None
        syntax = message.context.transfer_syntax
        encoded = encode(
            dataset, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
        )
        return None if encoded is None else bytes(encoded)

    def _model(self, message: Message) -> InformationModel:
        if message.command.get("AffectedSOPClassUID") in PATIENT_ROOT:
            return InformationModel.PATIENT_ROOT
        return InformationModel.STUDY_ROOT

    def _identifier(self, message: Message) -> Dataset:
        syntax = message.context.transfer_syntax
        try:
            return decode(
                BytesIO(bytes(message.data)),
                syntax.is_implicit_VR,
                syntax.is_little_endian,
                syntax.is_deflated,
            )
        except Exception as exc:
            raise CannotUnderstand(f"identifier cannot be decoded: {exc}") from exc

    def _is_cancelled(self, message: Message) -> Callable[[], bool]:
        message_id = int(message.command.get("MessageID") or 0)
        return lambda: message_id in self.cancelled or self.closed.is_set()

    async def _c_find(self, message: Message) -> None:
        """C-FIND: Query/Retrieve (Patient or Study Root) or Modality Worklist, matches
        streamed as they are found."""
        services = self.engine.services
        cancelled = self._is_cancelled(message)
        if message.context.abstract_syntax == MODALITY_WORKLIST_FIND:
            label = "worklist"

            def matches() -> Iterator[tuple[int, Dataset | None]]:
                return services.worklist.find(self.info, self._identifier(message), cancelled)
        else:
            model = self._model(message)
            label = f"{model.value} root"

            def matches() -> Iterator[tuple[int, Dataset | None]]:
                return services.query.find(self.info, self._identifier(message), model, cancelled)

        def produce() -> Iterator[_Response]:
            for status, match in matches():
                yield _Response(status, match)

        found = 0
        async for response in self._stream(message, produce, cmd.C_FIND_RSP, "C-FIND"):
            if response.status == PENDING:
                found += 1
            else:
                LOG.info(
                    "C-FIND %s from %s: %d matches, 0x%04X",
                    label,
                    self.info,
                    found,
                    response.status,
                )

    async def _c_retrieve(self, message: Message) -> None:
        """C-MOVE or C-GET: sub-operations run by the retrieve service, responses streamed."""
        model = self._model(message)
        is_move = message.command.get("CommandField") == cmd.C_MOVE_RQ
        name = "C-MOVE" if is_move else "C-GET"
        retrieve = self.engine.services.retrieve
        sender = self._sub_operation_sender()

        def produce() -> Iterator[_Response]:
            identifier = self._identifier(message)
            cancelled = self._is_cancelled(message)
            if is_move:
                responses = retrieve.move(
                    self.info,
                    identifier,
                    model,
                    str(message.command.get("MoveDestination") or ""),
                    int(message.command.get("MessageID") or 0),
                    cancelled,
                )
            else:
                responses = retrieve.get(self.info, identifier, model, sender, cancelled)
            for response in responses:
                yield _Response.of(response)

        rsp = cmd.C_MOVE_RSP if is_move else cmd.C_GET_RSP
        async for _ in self._stream(message, produce, rsp, name):
            pass

    async def _stream(
        self,
        message: Message,
        produce: Callable[[], Iterator[_Response]],
        response_field: int,
        name: str,
    ) -> AsyncIterator[_Response]:
        """Run ``produce`` in the thread pool and send each response it yields, in order.

        The producer waits while ``STREAM_WINDOW`` responses wait to be sent, so a slow peer
        holds back the query, and a C-CANCEL is seen between two responses.
        """
        syntax = message.context.transfer_syntax
        loop = asyncio.get_running_loop()
        results: asyncio.Queue[_Response | DicomhubError | None] = asyncio.Queue()
        slots = threading.Semaphore(STREAM_WINDOW)
        stopped = threading.Event()

        def put(item: _Response | DicomhubError | None) -> bool:
            # A free slot is taken without waiting for the event loop: the producer runs
            # ahead by up to STREAM_WINDOW responses, and only a slow peer makes it wait.
            while not slots.acquire(timeout=0.5):
                if stopped.is_set() or self.closed.is_set():
                    return False
            loop.call_soon_threadsafe(results.put_nowait, item)
            return True

        def run() -> None:
            try:
                for item in produce():
                    if not put(item):
                        return
            except DicomhubError as exc:
                put(exc)
            except Exception as exc:
                put(unexpected(exc, f"{name} from {self.info}"))
            put(None)

        producer = loop.run_in_executor(self.engine.executor, run)
        try:
            while (item := await results.get()) is not None:
                slots.release()
                if isinstance(item, DicomhubError):
                    LOG.warning(
                        "%s from %s refused: 0x%04X %s", name, self.info, item.dimse_status, item
                    )
                    await self._respond(message, response_field, *status_of(item))
                    continue
                data = None
                if item.identifier is not None:
                    data = encode(
                        item.identifier,
                        syntax.is_implicit_VR,
                        syntax.is_little_endian,
                        syntax.is_deflated,
                    )
                    if data is None:
                        raise DicomhubError("a response identifier could not be encoded")
                await self._respond(
                    message,
                    response_field,
                    item.status,
                    item.comment or None,
                    data=data,
                    **item.counts,
                )
                yield item
        finally:
            stopped.set()
            self.cancelled.discard(int(message.command.get("MessageID") or 0))
            await producer

    # C-GET sub-operations: C-STORE requests dicomhub sends on this association ------------

    def _sub_operation_sender(self) -> Callable[[StoredInstance], SubOperation]:
        """A function, called in the thread pool, that C-STOREs one instance to the peer."""
        loop = asyncio.get_running_loop()

        def send(instance: StoredInstance) -> SubOperation:
            uid = instance.sop_instance_uid
            contexts = [c for c in self.contexts.values() if c.scu]
            ready = prepare(self.engine.blobs, contexts, instance, str(self.info))
            if isinstance(ready, SubOperation):
                return ready
            path, data = ready
            self.sub_message_id = self.sub_message_id % 0xFFFF + 1
            message_id = self.sub_message_id
            context_id = path.context.context_id
            command = cmd.encode_command(
                AffectedSOPClassUID=instance.sop_class_uid,
                CommandField=cmd.C_STORE_RQ,
                MessageID=message_id,
                Priority=0,
                CommandDataSetType=cmd.DATA_SET_PRESENT,
                AffectedSOPInstanceUID=uid,
            )
            answer = asyncio.run_coroutine_threadsafe(self._expect(message_id), loop)
            self._write_from_thread(loop, list(pdu.p_data(context_id, True, command, 0)))
            room = max((self.peer_max_pdu or 1 << 20) - 6, 1)
            pending = bytearray()
            left = data.length
            for chunk in data.chunks:
                pending += chunk
                batch = []
                while len(pending) >= room and left > room:
                    batch.append(pdu.data_pdu(context_id, pending[:room], last=False))
                    del pending[:room]
                    left -= room
                if batch:
                    self._write_from_thread(loop, batch)
            batch = []
            while pending or not batch:
                piece = pending[:room]
                del pending[:room]
                batch.append(pdu.data_pdu(context_id, piece, last=not pending))
            self._write_from_thread(loop, batch)
            try:
                response = answer.result(timeout=self.engine.dimse_timeout + 1)
            except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError) as exc:
                raise PeerUnavailable(f"no C-STORE response from {self.info} for {uid}") from exc
            return SubOperation(
                uid,
                int(response.get("Status") or 0),
                str(response.get("ErrorComment") or ""),
                path.transfer_syntax_uid,
            )

        return send

    async def _expect(self, message_id: int) -> dict[str, Any]:
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.awaiting[message_id] = waiting
        try:
            async with asyncio.timeout(self.engine.dimse_timeout):
                return await waiting
        finally:
            self.awaiting.pop(message_id, None)

    def _write_from_thread(self, loop: asyncio.AbstractEventLoop, pieces: list[bytes]) -> None:
        if self.closed.is_set() or self.releasing:
            raise PeerUnavailable(f"association {self.info} is closed")

        async def write() -> None:
            for piece in pieces:
                self.stream.write(piece)
            await self.stream.drain()

        try:
            asyncio.run_coroutine_threadsafe(write(), loop).result(
                timeout=self.engine.dimse_timeout
            )
        except (ConnectionError, OSError, concurrent.futures.TimeoutError) as exc:
            raise PeerUnavailable(f"connection to {self.info} lost while sending") from exc

    async def _respond(
        self,
        message: Message,
        command_field: int,
        status: int,
        comment: str | None = None,
        data: bytes | None = None,
        **counts: Any,
    ) -> None:
        request = message.command
        command = cmd.encode_command(
            AffectedSOPClassUID=request.get("AffectedSOPClassUID")
            or request.get("RequestedSOPClassUID"),
            CommandField=command_field,
            MessageIDBeingRespondedTo=request.get("MessageID"),
            CommandDataSetType=cmd.DATA_SET_PRESENT if data is not None else cmd.NO_DATA_SET,
            Status=status,
            AffectedSOPInstanceUID=request.get("AffectedSOPInstanceUID")
            or request.get("RequestedSOPInstanceUID"),
            ErrorComment=comment,
            **counts,
        )
        context_id = message.context.context_id
        for chunk in pdu.p_data(context_id, True, command, self.peer_max_pdu):
            self.stream.write(chunk)
        if data is not None:
            for chunk in pdu.p_data(context_id, False, data, self.peer_max_pdu):
                self.stream.write(chunk)
        await self.stream.drain()


_COMMAND_SERVICES: dict[int, frozenset[Service]] = {
    cmd.C_ECHO_RQ: frozenset({Service.VERIFICATION}),
    cmd.C_STORE_RQ: frozenset({Service.STORAGE}),
    cmd.C_FIND_RQ: frozenset({Service.QUERY, Service.WORKLIST}),
    cmd.C_MOVE_RQ: frozenset({Service.RETRIEVE}),
    cmd.C_GET_RQ: frozenset({Service.RETRIEVE}),
    cmd.N_ACTION_RQ: frozenset({Service.STORAGE_COMMITMENT, Service.PRINT}),
    cmd.N_EVENT_REPORT_RQ: frozenset({Service.STORAGE_COMMITMENT}),
    cmd.N_CREATE_RQ: frozenset({Service.MPPS, Service.PRINT}),
    cmd.N_SET_RQ: frozenset({Service.MPPS, Service.PRINT}),
    cmd.N_GET_RQ: frozenset({Service.PRINT}),
    cmd.N_DELETE_RQ: frozenset({Service.PRINT}),
}
"""The services whose SOP classes define each command; the context's service picks the
handler (N-CREATE: MPPS or Print Management, ...)."""
_N_OPERATIONS = {
    cmd.N_CREATE_RQ: "N-CREATE",
    cmd.N_SET_RQ: "N-SET",
    cmd.N_ACTION_RQ: "N-ACTION",
    cmd.N_DELETE_RQ: "N-DELETE",
    cmd.N_GET_RQ: "N-GET",
}


@dataclass(frozen=True)
class _Response:
    """One response of a C-FIND, C-MOVE or C-GET stream, ready to encode."""

    status: int
    identifier: Dataset | None = None
    comment: str = ""
    counts: dict[str, int | None] = field(default_factory=dict)

    @classmethod
    def of(cls, response: RetrieveResponse) -> _Response:
        return cls(
            response.status,
            response.identifier,
            response.comment,
            {
                "NumberOfRemainingSuboperations": response.remaining,
                "NumberOfCompletedSuboperations": response.completed,
                "NumberOfFailedSuboperations": response.failed,
                "NumberOfWarningSuboperations": response.warning,
            },
        )


def _resolve(
    outcome: asyncio.Future[StoreResult | DicomhubError], result: StoreResult | DicomhubError
) -> None:
    if not outcome.done():  # the association may have been cut meanwhile
        outcome.set_result(result)


def _command_refusal(message: Message) -> tuple[int, str] | None:
    """(status, comment) when the command does not fit its presentation context."""
    field_ = message.command.get("CommandField")
    if field_ not in _COMMAND_SERVICES:
        return 0x0211, f"unrecognised operation 0x{field_ or 0:04X}"
    sop_class = message.command.get("AffectedSOPClassUID") or message.command.get(
        "RequestedSOPClassUID"
    )
    if sop_class not in command_sop_classes(message.context.abstract_syntax):
        return 0x0122, f"SOP class {sop_class} is not the presentation context's"
    if service_of(message.context.abstract_syntax) not in _COMMAND_SERVICES[field_]:
        return 0x0211, f"operation 0x{field_:04X} is not defined for {sop_class}"
    return None
