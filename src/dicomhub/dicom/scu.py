"""Outbound associations: dicomhub as the requestor (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET).

A small blocking client on the engine's own PDU and command codecs: one socket with
TCP_NODELAY, P-DATA PDUs as large as the peer accepts, data sets streamed from the blob store
without decoding.  pynetdicom's PDU classes encode the A-ASSOCIATE-RQ and decode the answer.
Every failure of the peer or the network is a ``PeerUnavailable`` whose text says what
happened; per-operation statuses are returned, not raised.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import pdu as pdus
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext

from dicomhub.config import PeerConfig, Settings
from dicomhub.conformance import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.engine import pdu
from dicomhub.dicom.engine.negotiation import APPLICATION_CONTEXT
from dicomhub.dicom.sending import Outgoing, SubOperation, pairs_of, prepare, proposals
from dicomhub.errors import DicomhubError, PeerUnavailable
from dicomhub.index.repository import StoredInstance
from dicomhub.storage.base import BlobStore

__all__ = ["Association", "OutboundContext", "StoreSCU", "SubOperation"]
LOG = logging.getLogger("dicomhub.dicom")
DEFAULT_MAX_PDU = 1 << 20
"""Largest PDU dicomhub receives on its outbound associations."""
UNLIMITED_SEND = 1 << 20
"""PDU size used towards a peer that declares no maximum."""
RESPONSE_LIMIT = 64 << 20
_REJECT_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


@dataclass(frozen=True)
class OutboundContext:
    """A presentation context the peer accepted, with the roles dicomhub plays on it."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: UID
    scu: bool = True
    scp: bool = False


@dataclass
class Message:
    """A DIMSE message received from the peer."""

    context: OutboundContext
    command: dict[str, Any]
    data: bytes | None = None

    @property
    def status(self) -> int:
        """The response's Status (0 when absent)."""
        return int(self.command.get("Status") or 0)


class Sink(Protocol):
    """Where the data set of a C-STORE-RQ the peer sends (C-GET) goes while it arrives."""

    def write(self, data: memoryview) -> None: ...

    def finish(self) -> tuple[int, str]:
        """Store what arrived; (Status, ErrorComment) for the C-STORE-RSP."""
        ...

    def discard(self) -> None: ...


SinkFactory = Callable[[dict[str, Any], OutboundContext], Sink]


@dataclass
class _Assembly:
    context: OutboundContext | None = None
    command: bytearray = field(default_factory=bytearray)
    decoded: dict[str, Any] | None = None
    data: bytearray = field(default_factory=bytearray)
    sink: Sink | None = None


class Association:
    """One association dicomhub requests of a peer; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        peer: PeerConfig,
        contexts: Sequence[tuple[str, Sequence[str]]],
        *,
        scp_roles: Sequence[str] = (),
        both_roles: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.peer = peer
        self.proposed = list(contexts)
        self.scp_roles = list(dict.fromkeys(scp_roles))
        self.both_roles = [c for c in dict.fromkeys(both_roles) if c not in self.scp_roles]
        """SOP classes where dicomhub proposes the SCU and the SCP role: it sends requests
        and accepts the peer's (a storage commitment report on the requesting association)."""
        self.accepted: dict[int, OutboundContext] = {}
        self.peer_max_pdu = 0
        self.sock: socket.socket | None = None
        self._message_id = 0
        self._buffer = bytearray()

    def __str__(self) -> str:
        return f"{self.peer.ae_title}@{self.peer.host}:{self.peer.port}"

    # Life cycle -----------------------------------------------------------------------------

    def __enter__(self) -> Association:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.release()
        else:
            self.abort()

    def open(self) -> None:
        """Connect and negotiate; raise ``PeerUnavailable`` saying why it failed."""
        address = (self.peer.host, self.peer.port)
        try:
            sock = socket.create_connection(address, timeout=self.settings.acse_timeout)
        except OSError as exc:
            raise PeerUnavailable(f"cannot connect to {self}: {exc.strerror or exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        try:
            self._send(self._request_pdu())
            pdu_type, body = self._read_pdu()
            if pdu_type == pdu.A_ASSOCIATE_RJ:
                result, source, reason = body[1], body[2], body[3]
                text = _REJECT_REASONS.get((source, reason), f"reason {reason}")
                raise PeerUnavailable(
                    f"{self} rejected the association "
                    f"({'permanent' if result == 1 else 'transient'}: {text})"
                )
            if pdu_type == pdu.A_ABORT:
                raise PeerUnavailable(f"{self} aborted the association request")
            if pdu_type != pdu.A_ASSOCIATE_AC:
                raise PeerUnavailable(f"{self} answered with PDU type 0x{pdu_type:02X}")
            self._on_accept(body)
        except PeerUnavailable:
            self._close()
            raise
        except (OSError, ValueError) as exc:
            self._close()
            raise PeerUnavailable(f"association with {self} failed: {exc}") from exc
        if not self.accepted:
            self.abort()
            raise PeerUnavailable(f"{self} accepted none of the proposed presentation contexts")
        sock.settimeout(self.settings.dimse_timeout)

    def _request_pdu(self) -> bytes:
        request = A_ASSOCIATE()
        request.application_context_name = APPLICATION_CONTEXT
        request.calling_ae_title = self.settings.ae_title
        request.called_ae_title = self.peer.ae_title
        contexts = []
        for index, (abstract, syntaxes) in enumerate(self.proposed):
            context = PresentationContext()
            context.context_id = 2 * index + 1
            context.abstract_syntax = UID(abstract)
            context.transfer_syntax = [UID(t) for t in syntaxes]
            contexts.append(context)
        request.presentation_context_definition_list = contexts
        maximum = MaximumLengthNotification()
        maximum.maximum_length_received = DEFAULT_MAX_PDU
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = IMPLEMENTATION_VERSION
        items: list[Any] = [maximum, implementation, version]
        for sop_class in [*self.scp_roles, *self.both_roles]:
            role = SCP_SCU_RoleSelectionNegotiation()
            role.sop_class_uid = UID(sop_class)
            role.scu_role = sop_class in self.both_roles
            role.scp_role = True
            items.append(role)
        request.user_information = items
        encoded = pdus.A_ASSOCIATE_RQ()
        encoded.from_primitive(request)
        return bytes(encoded.encode())

    def _on_accept(self, body: bytes) -> None:
        answer = pdus.A_ASSOCIATE_AC()
        answer.decode(pdu.HEADER.pack(pdu.A_ASSOCIATE_AC, 0, len(body)) + body)
        primitive = answer.to_primitive()
        roles = {
            str(item.sop_class_uid): (bool(item.scu_role), bool(item.scp_role))
            for item in primitive.user_information
            if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
        }
        for item in primitive.user_information:
            if isinstance(item, MaximumLengthNotification):
                self.peer_max_pdu = int(item.maximum_length_received or 0)
        proposed = {2 * i + 1: abstract for i, (abstract, _) in enumerate(self.proposed)}
        for result in primitive.presentation_context_definition_results_list:
            context_id = int(result.context_id or 0)
            if result.result != 0x00 or context_id not in proposed:
                continue
            abstract = proposed[context_id]
            # Role items name the requestor's roles: the default is SCU only; with SCP
            # accepted the peer may send us C-STORE-RQs on it (C-GET).
            scu, scp = roles.get(abstract, (True, False))
            self.accepted[context_id] = OutboundContext(
                context_id, abstract, UID(result.transfer_syntax[0]), scu, scp
            )

    def release(self) -> None:
        """A-RELEASE; the socket is closed whatever the peer answers."""
        if self.sock is None:
            return
        try:
            self._send(pdu.HEADER.pack(pdu.A_RELEASE_RQ, 0, 4) + b"\0\0\0\0")
            while True:
                pdu_type, _ = self._read_pdu()
                if pdu_type in {pdu.A_RELEASE_RP, pdu.A_ABORT}:
                    break
        except (OSError, PeerUnavailable):
            pass
        finally:
            self._close()

    def abort(self) -> None:
        """A-ABORT and close."""
        if self.sock is None:
            return
        try:
            self._send(pdu.abort(pdu.SOURCE_USER, pdu.REASON_NOT_SPECIFIED))
        except OSError:
            pass
        finally:
            self._close()

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    # PDUs -------------------------------------------------------------------------------------

    def _send(self, data: bytes | bytearray) -> None:
        if self.sock is None:
            raise PeerUnavailable(f"association with {self} is closed")
        self.sock.sendall(data)

    def _recv_exact(self, count: int) -> bytes:
        assert self.sock is not None
        while len(self._buffer) < count:
            try:
                chunk = self.sock.recv(max(count - len(self._buffer), 1 << 16))
            except TimeoutError as exc:
                raise PeerUnavailable(f"{self} did not answer in time") from exc
            except OSError as exc:
                raise PeerUnavailable(f"connection to {self} lost: {exc}") from exc
            if not chunk:
                raise PeerUnavailable(f"{self} closed the connection")
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _read_pdu(self) -> tuple[int, bytes]:
        if self.sock is None:
            raise PeerUnavailable(f"association with {self} is closed")
        pdu_type, _, length = pdu.HEADER.unpack(self._recv_exact(6))
        if length > max(self.settings.max_pdu_size, DEFAULT_MAX_PDU) + 16:
            self.abort()
            raise PeerUnavailable(f"{self} sent a PDU of {length} bytes")
        return pdu_type, self._recv_exact(length)

    def _room(self) -> int:
        return self.peer_max_pdu or UNLIMITED_SEND

    def _send_message(
        self,
        context: OutboundContext,
        command: bytes,
        data: bytes | Outgoing | None = None,
    ) -> None:
        pieces = [b"".join(pdu.p_data(context.context_id, True, command, self._room()))]
        if isinstance(data, bytes):
            pieces.extend(pdu.p_data(context.context_id, False, data, self._room()))
        try:
            for piece in pieces:
                self._send(piece)
            if isinstance(data, Outgoing):
                self._send_stream(context.context_id, data)
        except OSError as exc:
            self._close()
            raise PeerUnavailable(f"connection to {self} lost while sending: {exc}") from exc

    def _send_stream(self, context_id: int, data: Outgoing) -> None:
        """Send a data set in PDUs of the peer's size, read from its chunks as they come."""
        room = max(self._room() - 6, 1)
        left = data.length
        pending = bytearray()
        for chunk in data.chunks:
            pending += chunk
            while len(pending) >= room and left > room:
                self._send(pdu.data_pdu(context_id, pending[:room], last=False))
                del pending[:room]
                left -= room
        while pending:
            piece = pending[:room]
            del pending[:room]
            left -= len(piece)
            self._send(pdu.data_pdu(context_id, piece, last=not pending))
        if data.length == 0:
            self._send(pdu.data_pdu(context_id, b"", last=True))

    def poll(self, timeout: float) -> bool:
        """Whether the peer sent something within ``timeout`` seconds (nothing is read)."""
        if self._buffer:
            return True
        if self.sock is None:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
        except (OSError, ValueError):
            return True  # the next read says what happened
        return bool(readable)

    def next_message_id(self) -> int:
        """A fresh Message ID (1-65535, wrapping)."""
        self._message_id = self._message_id % 0xFFFF + 1
        return self._message_id

    def receive(self, sinks: SinkFactory | None = None) -> Message:
        """The next complete DIMSE message; C-STORE-RQ data sets stream into ``sinks``."""
        part = _Assembly()
        while True:
            pdu_type, body = self._read_pdu()
            if pdu_type == pdu.A_ABORT:
                self._close()
                raise PeerUnavailable(f"{self} aborted the association")
            if pdu_type == pdu.A_RELEASE_RQ:
                self._send(pdu.release_rp())
                self._close()
                raise PeerUnavailable(f"{self} released the association before answering")
            if pdu_type != pdu.P_DATA_TF:
                self.abort()
                raise PeerUnavailable(f"{self} sent an unexpected PDU type 0x{pdu_type:02X}")
            try:
                message = self._assemble(part, body, sinks)
            except pdu.ProtocolError as exc:
                if part.sink is not None:
                    part.sink.discard()
                self.abort()
                raise PeerUnavailable(f"{self} broke the protocol: {exc}") from exc
            if message is not None:
                return message

    def _assemble(self, part: _Assembly, body: bytes, sinks: SinkFactory | None) -> Message | None:
        for item in pdu.iter_pdvs(body):
            context = self.accepted.get(item.context_id)
            if context is None:
                raise pdu.ProtocolError(f"PDV on unaccepted context {item.context_id}")
            if item.is_command:
                part.command += item.data
                if len(part.command) > RESPONSE_LIMIT:
                    raise pdu.ProtocolError("command set too large")
                if not item.is_last:
                    continue
                part.context = context
                part.decoded = cmd.decode_command(bytes(part.command))
                if part.decoded.get("CommandDataSetType", cmd.NO_DATA_SET) == cmd.NO_DATA_SET:
                    return Message(context, part.decoded)
                if part.decoded.get("CommandField") == cmd.C_STORE_RQ and sinks is not None:
                    part.sink = sinks(part.decoded, context)
                continue
            if part.decoded is None or part.context is None:
                raise pdu.ProtocolError("data set fragment before its command")
            if part.sink is not None:
                part.sink.write(item.data)
            else:
                part.data += item.data
                if len(part.data) > RESPONSE_LIMIT:
                    raise pdu.ProtocolError("response data set too large")
            if item.is_last:
                message = Message(part.context, part.decoded, bytes(part.data))
                if part.sink is not None:
                    message.data = None
                    self._answer_store(message, part.sink)
                return message
        return None

    def _answer_store(self, message: Message, sink: Sink) -> None:
        try:
            status, comment = sink.finish()
        except DicomhubError as exc:
            status, comment = exc.dimse_status, exc.error_comment
        message.command["Status"] = status
        self._send_message(
            message.context,
            cmd.encode_command(
                AffectedSOPClassUID=message.command.get("AffectedSOPClassUID"),
                CommandField=cmd.C_STORE_RSP,
                MessageIDBeingRespondedTo=message.command.get("MessageID"),
                CommandDataSetType=cmd.NO_DATA_SET,
                Status=status,
                AffectedSOPInstanceUID=message.command.get("AffectedSOPInstanceUID"),
                ErrorComment=comment or None,
            ),
        )

    def context_for(self, sop_class: str) -> OutboundContext:
        """An accepted context of ``sop_class`` where dicomhub is the SCU."""
        for context in self.accepted.values():
            if context.abstract_syntax == sop_class and context.scu:
                return context
        raise PeerUnavailable(f"{self} did not accept {UID(sop_class).name}")

    # Operations --------------------------------------------------------------------------------

    def request(
        self,
        sop_class: str,
        command_field: int,
        identifier: bytes | None = None,
        **elements: Any,
    ) -> tuple[OutboundContext, int]:
        """Send a request on the SOP class's context; return the context and Message ID."""
        context = self.context_for(sop_class)
        message_id = self.next_message_id()
        command = cmd.encode_command(
            AffectedSOPClassUID=sop_class,
            CommandField=command_field,
            MessageID=message_id,
            CommandDataSetType=cmd.DATA_SET_PRESENT if identifier is not None else cmd.NO_DATA_SET,
            **elements,
        )
        self._send_message(context, command, identifier)
        return context, message_id

    def responses(self, message_id: int, sinks: SinkFactory | None = None) -> Iterator[Message]:
        """Responses to ``message_id`` until the final one.

        Requests the peer sends meanwhile are yielded too: C-STOREs of a C-GET (answered
        already) and others, such as an N-EVENT-REPORT sent before the N-ACTION response,
        which the caller answers with ``answer``.
        """
        while True:
            message = self.receive(sinks)
            field_ = message.command.get("CommandField")
            if isinstance(field_, int) and not field_ & 0x8000:
                yield message
                continue
            if message.command.get("MessageIDBeingRespondedTo") not in {message_id, None}:
                LOG.warning("%s answered message %s, not %d; ignored", self, field_, message_id)
                continue
            yield message
            if message.status not in {0xFF00, 0xFF01}:
                return

    def answer(self, request: Message, status: int, **elements: Any) -> None:
        """Send the response to a request the peer made on this association."""
        field_ = int(request.command.get("CommandField") or 0)
        self._send_message(
            request.context,
            cmd.encode_command(
                AffectedSOPClassUID=request.command.get("AffectedSOPClassUID"),
                CommandField=field_ | 0x8000,
                MessageIDBeingRespondedTo=request.command.get("MessageID"),
                CommandDataSetType=cmd.NO_DATA_SET,
                Status=status,
                AffectedSOPInstanceUID=request.command.get("AffectedSOPInstanceUID"),
                **elements,
            ),
        )

    def event_report(
        self, sop_class: str, sop_instance: str, event_type: int, data: bytes
    ) -> Message:
        """N-EVENT-REPORT on a context of ``sop_class`` (dicomhub in the SCP role); the
        response (peers that leave out MessageIDBeingRespondedTo are understood)."""
        context = next((c for c in self.accepted.values() if c.abstract_syntax == sop_class), None)
        if context is None:
            raise PeerUnavailable(f"{self} did not accept {UID(sop_class).name}")
        message_id = self.next_message_id()
        command = cmd.encode_command(
            AffectedSOPClassUID=sop_class,
            CommandField=cmd.N_EVENT_REPORT_RQ,
            MessageID=message_id,
            CommandDataSetType=cmd.DATA_SET_PRESENT,
            AffectedSOPInstanceUID=sop_instance,
            EventTypeID=event_type,
        )
        self._send_message(context, command, data)
        for message in self.responses(message_id):
            if message.command.get("CommandField") == cmd.N_EVENT_REPORT_RSP:
                return message
            self.answer(message, 0x0211)  # nothing else is expected here
        raise PeerUnavailable(f"{self} did not answer the N-EVENT-REPORT")

    def n_action(
        self, sop_class: str, sop_instance: str, action_type: int, data: Dataset
    ) -> tuple[OutboundContext, int]:
        """N-ACTION-RQ with ``data`` as Action Information, encoded in the context's transfer
        syntax; the context and Message ID (read the answer with ``responses``)."""
        context = self.context_for(sop_class)
        syntax = context.transfer_syntax
        encoded = encode(data, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
        if encoded is None:
            raise DicomhubError(f"the N-ACTION data set for {self} cannot be encoded")
        message_id = self.next_message_id()
        command = cmd.encode_command(
            CommandField=cmd.N_ACTION_RQ,
            MessageID=message_id,
            CommandDataSetType=cmd.DATA_SET_PRESENT,
            RequestedSOPClassUID=sop_class,
            RequestedSOPInstanceUID=sop_instance,
            ActionTypeID=action_type,
        )
        self._send_message(context, command, bytes(encoded))
        return context, message_id

    def n_request(
        self,
        command_field: int,
        sop_class: str,
        sop_instance: str,
        data: Dataset,
    ) -> Message:
        """N-CREATE (Affected SOP UIDs) or N-SET (Requested SOP UIDs) with a data set; the
        response."""
        return self.n_message(
            self.context_for(sop_class), command_field, sop_class, sop_instance, data
        )

    def n_message(
        self,
        context: OutboundContext,
        command_field: int,
        sop_class: str,
        sop_instance: str | None,
        data: Dataset | None = None,
        **elements: Any,
    ) -> Message:
        """Any DIMSE-N request on ``context`` (a meta SOP class's context, for print): Affected
        SOP UIDs for N-CREATE, Requested ones otherwise (no instance UID: the peer assigns it);
        the response."""
        encoded: bytes | None = None
        if data is not None:
            syntax = context.transfer_syntax
            raw = encode(data, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
            if raw is None:
                raise DicomhubError("the request's data set cannot be encoded")
            encoded = bytes(raw)
        message_id = self.next_message_id()
        target = "Affected" if command_field == cmd.N_CREATE_RQ else "Requested"
        command = cmd.encode_command(
            CommandField=command_field,
            MessageID=message_id,
            CommandDataSetType=cmd.DATA_SET_PRESENT if encoded is not None else cmd.NO_DATA_SET,
            **{f"{target}SOPClassUID": sop_class, f"{target}SOPInstanceUID": sop_instance},
            **elements,
        )
        self._send_message(context, command, encoded)
        for message in self.responses(message_id):
            if int(message.command.get("CommandField") or 0) & 0x8000:
                return message
            self.answer(message, 0x0211)
        raise PeerUnavailable(f"{self} did not answer the request")

    def cancel(self, context: OutboundContext, message_id: int) -> None:
        """C-CANCEL-RQ for a running C-FIND, C-MOVE or C-GET."""
        self._send_message(
            context,
            cmd.encode_command(
                CommandField=cmd.C_CANCEL_RQ,
                MessageIDBeingRespondedTo=message_id,
                CommandDataSetType=cmd.NO_DATA_SET,
            ),
        )

    def echo(self) -> int:
        """C-ECHO; the response status."""
        _, message_id = self.request("1.2.840.10008.1.1", cmd.C_ECHO_RQ)
        *_, final = self.responses(message_id)
        return final.status

    def store(
        self,
        context: OutboundContext,
        sop_class: str,
        sop_instance: str,
        data: Outgoing,
        move_originator: tuple[str, int] | None = None,
    ) -> Message:
        """C-STORE one data set on ``context``; the response."""
        message_id = self.next_message_id()
        command = cmd.encode_command(
            AffectedSOPClassUID=sop_class,
            CommandField=cmd.C_STORE_RQ,
            MessageID=message_id,
            Priority=0,
            CommandDataSetType=cmd.DATA_SET_PRESENT,
            AffectedSOPInstanceUID=sop_instance,
            MoveOriginatorApplicationEntityTitle=move_originator[0] if move_originator else None,
            MoveOriginatorMessageID=move_originator[1] if move_originator else None,
        )
        self._send_message(context, command, data)
        *_, final = self.responses(message_id)
        return final


class StoreSCU:
    """One association to ``peer`` that sends stored instances, unchanged when it can.

    Opening raises ``PeerUnavailable`` (the peer is down, refuses the association or accepts
    none of the needed contexts).  ``send`` returns the peer's status for one instance and
    raises ``PeerUnavailable`` only when the association itself is lost.
    """

    def __init__(
        self,
        settings: Settings,
        peer: PeerConfig,
        blobs: BlobStore,
        instances: Sequence[StoredInstance],
        *,
        move_originator: tuple[str, int] | None = None,
    ) -> None:
        self.blobs = blobs
        self.move_originator = move_originator
        self.association = Association(settings, peer, proposals(pairs_of(instances)))

    def __enter__(self) -> StoreSCU:
        self.association.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.association.__exit__(kind, exc, tb)

    def send(self, instance: StoredInstance) -> SubOperation:
        """C-STORE one stored instance; its outcome."""
        ready = prepare(
            self.blobs, self.association.accepted.values(), instance, str(self.association)
        )
        if isinstance(ready, SubOperation):
            return ready
        path, data = ready
        uid = instance.sop_instance_uid
        response = self.association.store(
            _as_outbound(path.context), instance.sop_class_uid, uid, data, self.move_originator
        )
        comment = str(response.command.get("ErrorComment") or "")
        return SubOperation(uid, response.status, comment, path.transfer_syntax_uid)


def _as_outbound(context: Any) -> OutboundContext:
    assert isinstance(context, OutboundContext)
    return context
