"""A-ASSOCIATE negotiation for the acceptor: presentation contexts, roles, maximum PDU.

PDU encoding and presentation-context matching reuse pynetdicom's codecs and
``negotiate_as_acceptor`` (they are not on the hot path and do the job well).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydicom.uid import UID
from pynetdicom import pdu as pdus
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from dicomhub.config import Service
from dicomhub.conformance import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION, REGISTRY
from dicomhub.dicom.engine.pdu import A_ASSOCIATE_RJ, HEADER, ProtocolError

APPLICATION_CONTEXT = UID("1.2.840.10008.3.1.1.1")


def supported_contexts() -> list[PresentationContext]:
    """The SCP presentation contexts of the conformance registry."""
    contexts = []
    for entry in REGISTRY:
        if entry.role != "SCP":
            continue
        context = PresentationContext()
        context.abstract_syntax = entry.uid
        context.transfer_syntax = list(entry.transfer_syntaxes)
        if entry.service in {Service.STORAGE, Service.STORAGE_COMMITMENT}:
            # SCP/SCU role selection accepted: a C-GET requestor receives its sub-operations
            # on the same association, where dicomhub is the storage SCU; a storage
            # commitment requester that takes the SCP role gets its report on it.
            context.scu_role = True
            context.scp_role = True
        contexts.append(context)
    return contexts


class ApplicationContextNotSupported(ProtocolError):
    """The A-ASSOCIATE-RQ names another application context: rejected (PS3.8 7.1.1.2)."""


@dataclass(frozen=True)
class AcceptedContext:
    """An accepted presentation context."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: UID
    scu: bool = False
    """dicomhub may send requests on it (the requestor took the SCP role for C-GET)."""


@dataclass
class AssociationRequest:
    """A decoded A-ASSOCIATE-RQ."""

    calling_ae_title: str
    called_ae_title: str
    peer_max_pdu: int
    primitive: Any = field(repr=False)


def decode_request(pdu: bytes) -> AssociationRequest:
    """Decode a whole A-ASSOCIATE-RQ PDU (header included)."""
    try:
        decoded = pdus.A_ASSOCIATE_RQ()
        decoded.decode(pdu)
        primitive = decoded.to_primitive()
    except Exception as exc:
        raise ProtocolError(f"malformed A-ASSOCIATE-RQ: {exc}") from exc
    if primitive.application_context_name != APPLICATION_CONTEXT:
        raise ApplicationContextNotSupported(
            f"application context {primitive.application_context_name} is not DICOM's"
        )
    return AssociationRequest(
        str(primitive.calling_ae_title).strip(),
        str(primitive.called_ae_title).strip(),
        int(primitive.maximum_length_received or 0),
        primitive,
    )


def reject(result: int, source: int, diagnostic: int) -> bytes:
    """An A-ASSOCIATE-RJ PDU."""
    return HEADER.pack(A_ASSOCIATE_RJ, 0, 4) + bytes((0, result, source, diagnostic))


def _in_requestor_order(
    proposed: list[PresentationContext], supported: list[PresentationContext]
) -> list[PresentationContext]:
    """The supported contexts that were proposed, each with the proposed transfer syntaxes
    it supports, in the requestor's order of preference.

    ``negotiate_as_acceptor`` takes the acceptor's first transfer syntax that was proposed;
    ordering ours like the requestor's makes it take the requestor's first supported one, so
    an object arrives in the transfer syntax the sender prefers (usually its own).  Syntaxes
    nobody proposed cannot be chosen and are left out: building a context validates each.
    """
    preferred: dict[str, list[str]] = {}
    for context in proposed:
        order = preferred.setdefault(str(context.abstract_syntax), [])
        order.extend(t for t in context.transfer_syntax if t not in order)
    result = []
    for base in supported:
        wanted = preferred.get(str(base.abstract_syntax))
        if wanted is None:
            continue
        first: list[str | bytes | UID] = [t for t in wanted if t in base.transfer_syntax]
        context = PresentationContext()
        context.abstract_syntax = base.abstract_syntax
        context.transfer_syntax = first
        context.scu_role = base.scu_role
        context.scp_role = base.scp_role
        result.append(context)
    return result


def accept(
    request: AssociationRequest, contexts: list[PresentationContext], max_pdu: int
) -> tuple[bytes, dict[int, AcceptedContext]]:
    """Negotiate contexts and roles; return the A-ASSOCIATE-AC PDU and the accepted contexts."""
    primitive = request.primitive
    roles: dict[UID, tuple[bool | None, bool | None]] = {
        UID(item.sop_class_uid): (item.scu_role, item.scp_role)
        for item in primitive.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.sop_class_uid
    }
    proposed = primitive.presentation_context_definition_list
    results, role_items = negotiate_as_acceptor(
        proposed, _in_requestor_order(proposed, contexts), roles or None
    )
    answer = A_ASSOCIATE()
    answer.application_context_name = APPLICATION_CONTEXT
    answer.calling_ae_title = primitive.calling_ae_title
    answer.called_ae_title = primitive.called_ae_title
    answer.result = 0x00
    answer.result_source = 0x01
    answer.presentation_context_definition_results_list = results
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = IMPLEMENTATION_VERSION
    answer.user_information = [maximum, implementation, version, *role_items]
    pdu = pdus.A_ASSOCIATE_AC()
    pdu.from_primitive(answer)
    accepted = {
        int(cx.context_id): AcceptedContext(
            int(cx.context_id),
            str(cx.abstract_syntax),
            UID(cx.transfer_syntax[0]),
            bool(cx.as_scu),
        )
        for cx in results
        if cx.result == 0x00 and cx.context_id is not None
    }
    return pdu.encode(), accepted


_FIXED = 74
"""Bytes of an A-ASSOCIATE-RQ/AC PDU before its variable items (header, protocol version,
called and calling AE titles, reserved field)."""
CACHE_SIZE = 128


@dataclass(frozen=True)
class _Outcome:
    """What negotiating one set of variable items gave."""

    peer_max_pdu: int
    proposed: int
    answer_items: bytes
    accepted: dict[int, AcceptedContext]


@dataclass
class Negotiation:
    """An A-ASSOCIATE-RQ on its way to an answer (see ``Negotiator``)."""

    calling_ae_title: str
    called_ae_title: str
    peer_max_pdu: int
    proposed: int
    """How many presentation contexts were proposed."""
    _rq: bytes = field(repr=False)
    _outcome: _Outcome = field(repr=False)

    def accept(self) -> tuple[bytes, dict[int, AcceptedContext]]:
        """The A-ASSOCIATE-AC PDU and the accepted contexts."""
        items = self._outcome.answer_items
        body = (
            self._rq[6:8]  # protocol version
            + b"\x00\x00"
            + self._rq[10:42]  # called and calling AE titles, as received (PS3.8 9.3.3)
            + bytes(32)
            + items
        )
        return HEADER.pack(0x02, 0, len(body)) + body, dict(self._outcome.accepted)


class Negotiator:
    """Negotiates associations for one acceptor, remembering recent answers.

    A sender proposes the same presentation contexts and user information at every
    association (a modality may open one per image), and decoding and answering them with
    pynetdicom's codecs validates every UID on the way: some ten milliseconds for DCMTK's
    128 storage contexts.  The answer depends only on the variable items of the request (and
    on this acceptor's contexts), so it is kept, keyed by those bytes; the AE titles of the
    answer are copied from each request.
    """

    def __init__(self, contexts: list[PresentationContext], max_pdu: int) -> None:
        self.contexts = contexts
        self.max_pdu = max_pdu
        self._cache: dict[bytes, _Outcome] = {}

    def request(self, rq: bytes) -> Negotiation:
        """Read an A-ASSOCIATE-RQ PDU (header included); ``ProtocolError`` when malformed,
        ``ApplicationContextNotSupported`` for a non-DICOM application context."""
        if len(rq) < _FIXED:
            raise ProtocolError("A-ASSOCIATE-RQ shorter than its fixed fields")
        items = bytes(rq[_FIXED:])
        outcome = self._cache.get(items)
        if outcome is None:
            request = decode_request(rq)
            answer, accepted = accept(request, self.contexts, self.max_pdu)
            outcome = _Outcome(
                request.peer_max_pdu,
                len(request.primitive.presentation_context_definition_list),
                answer[_FIXED:],
                accepted,
            )
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[items] = outcome
        return Negotiation(
            _ae_title(bytes(rq[26:42])),
            _ae_title(bytes(rq[10:26])),
            outcome.peer_max_pdu,
            outcome.proposed,
            bytes(rq),
            outcome,
        )


def _ae_title(raw: bytes) -> str:
    """An AE title field, checked as pynetdicom's decoder checks it (PS3.5 AE)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"AE title {raw!r} is not ASCII") from None
    if any(ord(c) < 0x20 or c == "\\" for c in text):
        raise ProtocolError(f"AE title {text!r} contains control characters or backslashes")
    if not text.strip():
        raise ProtocolError("AE title consists entirely of spaces")
    return text.strip()
