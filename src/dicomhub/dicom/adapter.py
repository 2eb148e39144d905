"""The thin layer between pynetdicom's events and dicomhub's services.

It is the single place where the DICOM side converts exceptions into statuses (with an
ErrorComment), sets TCP_NODELAY on accepted sockets, applies the access policy before
association negotiation, and streams C-STORE data sets into the blob store's staging area.
Services never see pynetdicom objects, so the engine can be replaced without touching them.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _config, dimse_messages, evt
from pynetdicom.acse import ACSE

from dicomhub.conformance import PATIENT_ROOT_FIND
from dicomhub.dicom.bindings import Services
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo, Refusal
from dicomhub.dicom.services.store import StoreRequest
from dicomhub.dicom.status import PENDING, failure, unexpected
from dicomhub.errors import CannotUnderstand, DicomhubError
from dicomhub.index.query import InformationModel
from dicomhub.storage.filesystem import FilesystemBlobStore, StagingWriter

LOG = logging.getLogger("dicomhub.dicom")


# Streaming C-STORE data sets into the staging area -----------------------------------------

_staging: list[FilesystemBlobStore] = []


def _staging_file(*_args: Any, **_kwargs: Any) -> StagingWriter:
    return _staging[-1].new_staging_file(".dcm")


_PYNETDICOM_DEFAULTS = (
    _config.STORE_RECV_CHUNKED_DATASET,
    dimse_messages.NamedTemporaryFile,  # type: ignore[attr-defined]
)


def install_streaming(blobs: FilesystemBlobStore) -> None:
    """Make pynetdicom write received C-STORE data sets straight into ``blobs``' staging."""
    _staging.append(blobs)
    _config.STORE_RECV_CHUNKED_DATASET = True
    dimse_messages.NamedTemporaryFile = _staging_file  # type: ignore[assignment,attr-defined]


def uninstall_streaming(blobs: FilesystemBlobStore) -> None:
    """Undo ``install_streaming`` for ``blobs``; pynetdicom's own behaviour comes back when no
    listener of this engine is left (other pynetdicom users in the process are unaffected)."""
    if blobs in _staging:
        _staging.remove(blobs)
    if not _staging:
        _config.STORE_RECV_CHUNKED_DATASET = _PYNETDICOM_DEFAULTS[0]
        dimse_messages.NamedTemporaryFile = _PYNETDICOM_DEFAULTS[1]  # type: ignore[attr-defined]


# Association gate ---------------------------------------------------------------------------

_original_negotiate: Callable[[ACSE], None] = ACSE._negotiate_as_acceptor


def _gated_negotiate(acse: ACSE) -> None:
    assoc = acse.assoc
    gate = getattr(assoc.ae, "dicomhub_gate", None)
    if gate is not None:
        request: Any = acse.requestor.primitive
        info = AssociationInfo(
            str(request.calling_ae_title).strip(),
            str(request.called_ae_title).strip(),
            assoc.requestor.address,
            assoc.requestor.port,
        )
        active = sum(1 for a in assoc.ae.active_associations if a.is_acceptor) - 1
        refusal: Refusal | None = gate(info, active)
        if refusal is not None:
            LOG.warning(
                "association from %s to %s refused: %s", info, info.called_ae_title, refusal.reason
            )
            acse.requestor.ae_title = request.calling_ae_title
            acse.send_reject(refusal.result, refusal.source, refusal.diagnostic)
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()
            return
    _original_negotiate(acse)


ACSE._negotiate_as_acceptor = _gated_negotiate  # type: ignore[method-assign,assignment]


def association_info(assoc: Any) -> AssociationInfo:
    """Engine-independent description of a pynetdicom association."""
    return AssociationInfo(
        str(assoc.requestor.ae_title).strip(),
        str(assoc.acceptor.ae_title).strip(),
        str(assoc.requestor.address),
        int(assoc.requestor.port),
    )


def _wait_until_sent(assoc: Any, timeout: float) -> None:
    """Pace a response stream to the network and let the peer's messages in.

    pynetdicom's DUL thread sends queued PDUs before it reads the socket, so a handler that
    queues responses faster than they leave would hide a C-CANCEL until the end and let the
    queue grow with the result set.  Waiting until the outgoing queue has drained and any
    incoming PDU has been read bounds both.
    """
    dul = assoc.dul
    deadline = time.monotonic() + min(timeout, 5.0)

    def busy() -> bool:
        if not dul.to_provider_queue.empty() or not dul.event_queue.empty():
            return True
        sock = dul.socket.socket if dul.socket is not None else None
        return sock is not None and bool(select.select([sock], [], [], 0)[0])

    while assoc.is_established and time.monotonic() < deadline and busy():
        time.sleep(0.0002)


# Event handlers -----------------------------------------------------------------------------


class Handlers:
    """pynetdicom event handlers bound to the services."""

    def __init__(self, services: Services, access: AccessPolicy) -> None:
        self.services = services
        self.access = access

    def bindings(self) -> list[Any]:
        """The visible table of bound events."""
        return [
            (evt.EVT_CONN_OPEN, self.on_connection_open),
            (evt.EVT_CONN_CLOSE, self.on_connection_closed),
            (evt.EVT_ACCEPTED, self.on_accepted),
            (evt.EVT_RELEASED, self.on_released),
            (evt.EVT_ABORTED, self.on_aborted),
            (evt.EVT_C_ECHO, self.on_c_echo),
            (evt.EVT_C_STORE, self.on_c_store),
            (evt.EVT_C_FIND, self.on_c_find),
        ]

    @staticmethod
    def on_connection_open(event: Any) -> None:
        """Disable Nagle's algorithm: DIMSE is request/response."""
        sock = event.assoc.dul.socket.socket
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @staticmethod
    def on_connection_closed(event: Any) -> None:
        """Drop a data set left half-received by an abort or a lost connection."""
        message = getattr(event.assoc.dimse, "message", None)
        writer = getattr(message, "_data_set_file", None)
        if isinstance(writer, StagingWriter):
            writer.discard()

    @staticmethod
    def on_accepted(event: Any) -> None:
        """Log the accepted association."""
        assoc = event.assoc
        LOG.info(
            "association accepted: %s -> %s (%d contexts accepted, %d rejected)",
            association_info(assoc),
            assoc.acceptor.ae_title,
            len(assoc.accepted_contexts),
            len(assoc.rejected_contexts),
        )

    @staticmethod
    def on_released(event: Any) -> None:
        """Log a normal release."""
        LOG.info("association released: %s", association_info(event.assoc))

    @staticmethod
    def on_aborted(event: Any) -> None:
        """Log an abort."""
        LOG.warning("association aborted: %s", association_info(event.assoc))

    def on_c_echo(self, event: Any) -> int | Dataset:
        """C-ECHO."""
        info = association_info(event.assoc)
        try:
            self.services.echo.echo(info)
        except DicomhubError as exc:
            LOG.warning("C-ECHO from %s: 0x%04X %s", info, exc.dimse_status, exc)
            return failure(exc)
        LOG.info("C-ECHO from %s: 0x0000", info)
        return 0x0000

    def on_c_store(self, event: Any) -> int | Dataset:
        """C-STORE: hand the staged data set to the store service."""
        info = association_info(event.assoc)
        request = event.request
        sop_instance = str(request.AffectedSOPInstanceUID or "")
        writer = getattr(request, "_dataset_file", None)
        try:
            if not isinstance(writer, StagingWriter):
                raise CannotUnderstand("C-STORE request without a data set")
            writer.finish()
            result = self.services.store.store(
                info,
                StoreRequest(
                    str(request.AffectedSOPClassUID or ""),
                    sop_instance,
                    Path(writer.name),
                ),
            )
        except DicomhubError as exc:
            LOG.warning(
                "C-STORE %s from %s refused: 0x%04X %s", sop_instance, info, exc.dimse_status, exc
            )
            return failure(exc)
        except Exception as exc:
            return failure(unexpected(exc, f"C-STORE {sop_instance} from {info}"))
        finally:
            if isinstance(writer, StagingWriter):
                writer.discard()
        LOG.info(
            "C-STORE %s from %s: %s (%s, %d bytes, %s) 0x0000",
            sop_instance,
            info,
            result.status.value,
            result.sop_class_uid,
            result.size,
            result.transfer_syntax_uid,
        )
        return 0x0000

    def on_c_find(self, event: Any) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """C-FIND: pending matches, then the final status."""
        info = association_info(event.assoc)
        model = (
            InformationModel.PATIENT_ROOT
            if event.request.AffectedSOPClassUID == PATIENT_ROOT_FIND
            else InformationModel.STUDY_ROOT
        )
        matches = 0
        try:
            try:
                identifier = event.identifier
            except Exception as exc:
                raise CannotUnderstand(f"identifier cannot be decoded: {exc}") from exc
            level = str(identifier.get("QueryRetrieveLevel", ""))
            for status, match in self.services.query.find(
                info, identifier, model, lambda: bool(event.is_cancelled)
            ):
                if status != PENDING:
                    LOG.info(
                        "C-FIND %s root, level %s, from %s: %d matches, 0x%04X",
                        model.value,
                        level,
                        info,
                        matches,
                        status,
                    )
                yield status, match
                if status == PENDING:
                    matches += 1
                    _wait_until_sent(event.assoc, self.access.settings.dimse_timeout)
        except DicomhubError as exc:
            LOG.warning("C-FIND from %s refused: 0x%04X %s", info, exc.dimse_status, exc)
            yield failure(exc), None
        except Exception as exc:
            yield failure(unexpected(exc, f"C-FIND from {info}")), None
