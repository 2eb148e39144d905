"""A-ASSOCIATE negotiation for the acceptor: presentation contexts, roles, maximum PDU.

PDU encoding and presentation-context matching reuse pynetdicom's codecs and
``negotiate_as_acceptor`` (they are not on the hot path and do the job well).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydicom.uid import UID, generate_uid
from pynetdicom import pdu as pdus
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from dicomhub import __version__
from dicomhub.config import Service
from dicomhub.conformance import REGISTRY
from dicomhub.dicom.engine.pdu import A_ASSOCIATE_RJ, HEADER, ProtocolError

APPLICATION_CONTEXT = UID("1.2.840.10008.3.1.1.1")
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["dicomhub implementation class"])
IMPLEMENTATION_VERSION = f"DICOMHUB_{__version__.replace('.', '')}"[:16]


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
    """The supported contexts with transfer syntaxes in the requestor's order of preference.

    ``negotiate_as_acceptor`` takes the acceptor's first transfer syntax that was proposed;
    ordering ours like the requestor's makes it take the requestor's first supported one, so
    an object arrives in the transfer syntax the sender prefers (usually its own).
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
        context.transfer_syntax = first + [t for t in base.transfer_syntax if t not in first]
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
