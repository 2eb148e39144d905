"""Print relay: films printed to some AE titles of dicomhub are printed on a real printer.

``print_relay`` maps a called AE title of dicomhub to a peer that is a DICOM Print SCP.  For
every film box a print SCU prints to such an AE title, the relay opens an association to the
printer (Basic Grayscale Print Management Meta, and Basic Color Print Management Meta for a
color film) and replays the film: N-CREATE Basic Film Session (NumberOfCopies, PrintPriority,
MediumType, FilmDestination, ...), N-CREATE Basic Film Box (the film box's layout attributes),
N-SET of every image box that was set (in Image Box Position order, on the printer's image
boxes), N-ACTION print of the film box and N-DELETE of the film session.

A failure status from the printer, or a printer that cannot be reached, raises
``PrintRelayFailed`` (0xC602) whose text says what the printer answered; the print service
sends it as the ErrorComment of the modality's N-ACTION.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode

from dicomhub.config import PeerConfig, Settings
from dicomhub.conformance import (
    BASIC_COLOR_IMAGE_BOX,
    BASIC_COLOR_PRINT_META,
    BASIC_FILM_BOX,
    BASIC_FILM_SESSION,
    BASIC_GRAYSCALE_IMAGE_BOX,
    BASIC_GRAYSCALE_PRINT_META,
)
from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.scu import Association, Message, OutboundContext
from dicomhub.errors import DicomhubError, PrintRelayFailed
from dicomhub.index.print_jobs import FilmJob

LOG = logging.getLogger("dicomhub.print")
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
"""Explicit and implicit VR Little Endian, which every Print SCP accepts."""
SESSION_KEYS = (
    "NumberOfCopies",
    "PrintPriority",
    "MediumType",
    "FilmDestination",
    "FilmSessionLabel",
    "OwnerID",
)
FILM_BOX_KEYS = (
    "ImageDisplayFormat",
    "AnnotationDisplayFormatID",
    "FilmOrientation",
    "FilmSizeID",
    "MagnificationType",
    "SmoothingType",
    "BorderDensity",
    "EmptyImageDensity",
    "MinDensity",
    "MaxDensity",
    "Trim",
    "ConfigurationInformation",
    "RequestedResolutionID",
    "Illumination",
    "ReflectedAmbientLight",
)
IMAGE_BOX_KEYS = (
    "Polarity",
    "MagnificationType",
    "SmoothingType",
    "ConfigurationInformation",
    "RequestedImageSize",
    "RequestedDecimateCropBehavior",
)
_SUCCESS = {0x0000, 0x0001, 0x0107, 0x0116}
"""Success and the warnings that still mean done (other 0xBxxx warnings too)."""


def _copy(source: Dataset, keys: tuple[str, ...]) -> Dataset:
    data = Dataset()
    for keyword in keys:
        if keyword in source and source[keyword].value not in (None, ""):
            data[keyword] = source[keyword]
    return data


class PrintRelay:
    """The print hook that prints films on the ``print_relay`` printer of their called AE."""

    def __init__(self, settings: Settings, peers: Callable[[], dict[str, PeerConfig]]) -> None:
        self.settings = settings
        self.peers = peers
        """The known peers by name (``AccessPolicy.peers``: configured and run-time ones)."""

    def printer_for(self, job: FilmJob) -> tuple[str, PeerConfig] | None:
        """The printer a film goes to, None when its called AE title is not relayed."""
        name = self.settings.print_relay.get(job.called_ae_title.strip())
        if name is None:
            return None
        peer = self.peers().get(name)
        if peer is None:
            raise PrintRelayFailed(f"print relay: printer {name!r} is not a known peer")
        return name, peer

    def __call__(self, job: FilmJob) -> None:
        """Print one film on the relay printer, if any; ``PrintRelayFailed`` when it fails."""
        target = self.printer_for(job)
        if target is None:
            return
        name, peer = target
        meta = BASIC_COLOR_PRINT_META if job.color else BASIC_GRAYSCALE_PRINT_META
        contexts = [(BASIC_GRAYSCALE_PRINT_META, TRANSFER_SYNTAXES)]
        if job.color:
            contexts.append((BASIC_COLOR_PRINT_META, TRANSFER_SYNTAXES))
        try:
            with Association(self.settings, peer, contexts) as association:
                self._print(association, association.context_for(meta), job, name)
        except PrintRelayFailed:
            raise
        except DicomhubError as exc:
            raise PrintRelayFailed(f"printer {name!r} unavailable: {exc}") from exc
        except OSError as exc:
            raise PrintRelayFailed(f"printer {name!r} unavailable: {exc}") from exc

    def _print(
        self, association: Association, context: OutboundContext, job: FilmJob, name: str
    ) -> None:
        def check(message: Message, what: str) -> Dataset:
            status = message.status
            if status not in _SUCCESS and status >> 12 != 0xB:
                comment = str(message.command.get("ErrorComment") or "").strip()
                detail = f": {comment}" if comment else ""
                raise PrintRelayFailed(
                    f"printer {name!r} refused {what} with status 0x{status:04X}{detail}"
                )
            if not message.data:
                return Dataset()
            syntax = context.transfer_syntax
            return decode(BytesIO(message.data), syntax.is_implicit_VR, syntax.is_little_endian)

        session_message = association.n_message(
            context,
            cmd.N_CREATE_RQ,
            BASIC_FILM_SESSION,
            None,
            _copy(job.film_session, SESSION_KEYS),
        )
        check(session_message, "the Film Session N-CREATE")
        session_uid = str(session_message.command.get("AffectedSOPInstanceUID") or "")
        if not session_uid:
            raise PrintRelayFailed(f"printer {name!r} assigned no Film Session UID")

        film_box = _copy(job.film_box, FILM_BOX_KEYS)
        reference = Dataset()
        reference.ReferencedSOPClassUID = BASIC_FILM_SESSION
        reference.ReferencedSOPInstanceUID = session_uid
        film_box.ReferencedFilmSessionSequence = [reference]
        box_message = association.n_message(
            context, cmd.N_CREATE_RQ, BASIC_FILM_BOX, None, film_box
        )
        created = check(box_message, "the Film Box N-CREATE")
        box_uid = str(box_message.command.get("AffectedSOPInstanceUID") or "")
        printer_boxes = list(created.get("ReferencedImageBoxSequence") or [])
        if not box_uid or len(printer_boxes) < len(job.image_boxes):
            raise PrintRelayFailed(
                f"printer {name!r} created {len(printer_boxes)} image box(es) for "
                f"{job.film_box.get('ImageDisplayFormat', '')!s}, {len(job.image_boxes)} needed"
            )

        sequence = "BasicColorImageSequence" if job.color else "BasicGrayscaleImageSequence"
        image_class = BASIC_COLOR_IMAGE_BOX if job.color else BASIC_GRAYSCALE_IMAGE_BOX
        for position, (image_box, printer_box) in enumerate(
            zip(job.image_boxes, printer_boxes, strict=False), start=1
        ):
            if image_box is None:
                continue
            data = _copy(image_box, IMAGE_BOX_KEYS)
            data.ImageBoxPosition = position
            data[sequence] = image_box[sequence]
            message = association.n_message(
                context,
                cmd.N_SET_RQ,
                str(printer_box.get("ReferencedSOPClassUID") or image_class),
                str(printer_box.ReferencedSOPInstanceUID),
                data,
            )
            check(message, f"the Image Box {position} N-SET")

        message = association.n_message(
            context, cmd.N_ACTION_RQ, BASIC_FILM_BOX, box_uid, None, ActionTypeID=1
        )
        check(message, "the Film Box print (N-ACTION)")
        message = association.n_message(context, cmd.N_DELETE_RQ, BASIC_FILM_SESSION, session_uid)
        if message.status not in _SUCCESS:
            LOG.warning(
                "print job %s: printer %r answered 0x%04X to the Film Session N-DELETE",
                job.print_job_uid,
                name,
                message.status,
            )
        LOG.info(
            "print job %s: film printed on %r (%s, film box %s)",
            job.print_job_uid,
            name,
            association,
            box_uid,
        )
