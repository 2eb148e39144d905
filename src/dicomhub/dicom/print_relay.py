"""Print relay: films printed to some AE titles of dicomhub are printed on a real printer.

``print_relay`` maps a called AE title of dicomhub to a peer that is a DICOM Print SCP.  For
every film box a print SCU prints to such an AE title, the relay opens an association to the
printer (Basic Grayscale Print Management Meta, and Basic Color Print Management Meta for a
color film) and replays the film: N-CREATE Basic Film Session (NumberOfCopies, PrintPriority,
MediumType, FilmDestination, ...), N-CREATE Basic Film Box (the film box's layout attributes),
N-SET of every image box that was set (in Image Box Position order, on the printer's image
boxes), N-SET of every annotation box with text, N-ACTION print of the film box and N-DELETE of
the film session (and of the Presentation LUTs it created).

Presentation LUTs and annotations go to the printer when it accepts their SOP classes (each
proposed as its own presentation context): the film box's and image boxes' Presentation LUTs are
created on the printer (N-CREATE Presentation LUT) and referenced in its film box and image
boxes; the film box's Annotation Display Format ID is passed on and the annotation boxes the
printer creates are set.  A printer that does not accept them prints the film without them (its
own default LUT, no annotation), and the log says so.

A failure status from the printer, or a printer that cannot be reached, raises
``PrintRelayFailed`` whose text says what the printer answered; the print service answers the
modality's N-ACTION with 0xC601 (Film Session) or 0xC602 (Film Box) and that text as its
ErrorComment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode

from dicomhub.config import PeerConfig, Settings
from dicomhub.conformance import (
    BASIC_ANNOTATION_BOX,
    BASIC_COLOR_IMAGE_BOX,
    BASIC_COLOR_PRINT_META,
    BASIC_FILM_BOX,
    BASIC_FILM_SESSION,
    BASIC_GRAYSCALE_IMAGE_BOX,
    BASIC_GRAYSCALE_PRINT_META,
    PRESENTATION_LUT,
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
LUT_KEYS = ("PresentationLUTShape", "PresentationLUTSequence")
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
        if job.presentation_lut is not None or any(job.image_luts):
            contexts.append((PRESENTATION_LUT, TRANSFER_SYNTAXES))
        if any(str(box.get("TextString") or "") for box in job.annotations):
            contexts.append((BASIC_ANNOTATION_BOX, TRANSFER_SYNTAXES))
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
        luts = _Luts(association, job, name, check)

        film_box = _copy(job.film_box, FILM_BOX_KEYS)
        reference = Dataset()
        reference.ReferencedSOPClassUID = BASIC_FILM_SESSION
        reference.ReferencedSOPInstanceUID = session_uid
        film_box.ReferencedFilmSessionSequence = [reference]
        annotation_context = _accepted(association, BASIC_ANNOTATION_BOX)
        if "AnnotationDisplayFormatID" in film_box and annotation_context is None:
            del film_box.AnnotationDisplayFormatID
            if any(str(box.get("TextString") or "") for box in job.annotations):
                LOG.warning(
                    "print job %s: printer %r does not accept Basic Annotation Box; "
                    "the film is printed without its annotations",
                    job.print_job_uid,
                    name,
                )
        luts.reference(film_box, job.presentation_lut)
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
            if position <= len(job.image_luts):
                luts.reference(data, job.image_luts[position - 1])
            message = association.n_message(
                context,
                cmd.N_SET_RQ,
                str(printer_box.get("ReferencedSOPClassUID") or image_class),
                str(printer_box.ReferencedSOPInstanceUID),
                data,
            )
            check(message, f"the Image Box {position} N-SET")

        if annotation_context is not None:
            printer_annotations = list(created.get("ReferencedBasicAnnotationBoxSequence") or [])
            for annotation in job.annotations:
                text = str(annotation.get("TextString") or "")
                position = int(annotation.get("AnnotationPosition") or 0)
                if not text or not 1 <= position <= len(printer_annotations):
                    continue
                data = Dataset()
                data.AnnotationPosition = position
                data.TextString = text
                message = association.n_message(
                    annotation_context,
                    cmd.N_SET_RQ,
                    BASIC_ANNOTATION_BOX,
                    str(printer_annotations[position - 1].ReferencedSOPInstanceUID),
                    data,
                )
                check(message, f"the Annotation Box {position} N-SET")

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
        luts.delete()
        LOG.info(
            "print job %s: film printed on %r (%s, film box %s)",
            job.print_job_uid,
            name,
            association,
            box_uid,
        )


def _accepted(association: Association, sop_class: str) -> OutboundContext | None:
    """The printer's context of an optional SOP class, None when it did not accept it."""
    try:
        return association.context_for(sop_class)
    except DicomhubError:
        return None


class _Luts:
    """The Presentation LUTs of one relayed film, created on the printer when it accepts them."""

    def __init__(
        self,
        association: Association,
        job: FilmJob,
        name: str,
        check: Callable[[Message, str], Dataset],
    ) -> None:
        self.association = association
        self.job = job
        self.name = name
        self.check = check
        self.context = _accepted(association, PRESENTATION_LUT)
        self.created: dict[bytes, str] = {}
        if self.context is None and (job.presentation_lut is not None or any(job.image_luts)):
            LOG.warning(
                "print job %s: printer %r does not accept Presentation LUT; the film is "
                "printed with the printer's own",
                job.print_job_uid,
                name,
            )

    def reference(self, data: Dataset, lut: Dataset | None) -> None:
        """Add a Referenced Presentation LUT Sequence for ``lut`` to ``data`` (a film box or
        image box), creating the LUT on the printer the first time."""
        if lut is None or self.context is None:
            return
        content = _copy(lut, LUT_KEYS)
        key = repr(content).encode()
        uid = self.created.get(key)
        if uid is None:
            message = self.association.n_message(
                self.context, cmd.N_CREATE_RQ, PRESENTATION_LUT, None, content
            )
            self.check(message, "the Presentation LUT N-CREATE")
            uid = str(message.command.get("AffectedSOPInstanceUID") or "")
            if not uid:
                raise PrintRelayFailed(f"printer {self.name!r} assigned no Presentation LUT UID")
            self.created[key] = uid
        reference = Dataset()
        reference.ReferencedSOPClassUID = PRESENTATION_LUT
        reference.ReferencedSOPInstanceUID = uid
        data.ReferencedPresentationLUTSequence = [reference]

    def delete(self) -> None:
        """N-DELETE the Presentation LUTs created on the printer (a refusal is only logged)."""
        if self.context is None:
            return
        for uid in self.created.values():
            message = self.association.n_message(
                self.context, cmd.N_DELETE_RQ, PRESENTATION_LUT, uid
            )
            if message.status not in _SUCCESS:
                LOG.warning(
                    "print job %s: printer %r answered 0x%04X to a Presentation LUT N-DELETE",
                    self.job.print_job_uid,
                    self.name,
                    message.status,
                )
