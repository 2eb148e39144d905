"""The outcome table: every failure dicomhub reports, with its DIMSE and HTTP status.

The DICOM side converts an exception into a status in one place (``dicom.adapter``), the web side
in one place too (``web.problems``); both read ``dimse_status`` / ``http_status`` from these
classes, so the same problem gets the same answer whichever protocol carried it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


class DicomhubError(Exception):
    """Base of all reported failures; ``str(error)`` is the human sentence (ErrorComment)."""

    dimse_status: int = 0xC000
    http_status: int = 500
    summary: str = "processing failure"
    error_id: int | None = None
    """Error ID (0000,0903) sent with the status, where PS3.4 defines one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def error_comment(self) -> str:
        """The text for the DIMSE ErrorComment (LO, at most 64 characters)."""
        return self.message[:64]


class OutOfResources(DicomhubError):
    """Storage is full or unwritable (ENOSPC, EDQUOT, EIO)."""

    dimse_status = 0xA700
    http_status = 507
    summary = "refused: out of resources"


class DataSetDoesNotMatchSOPClass(DicomhubError):
    """The data set's SOP Class UID differs from the command's Affected SOP Class UID."""

    dimse_status = 0xA900
    http_status = 400
    summary = "error: data set does not match SOP class"


class CannotUnderstand(DicomhubError):
    """The object cannot be parsed: truncated, not DICOM, malformed elements."""

    dimse_status = 0xC000
    http_status = 400
    summary = "error: cannot understand"


class InvalidInstanceIdentity(CannotUnderstand):
    """SOP Class/Instance UID missing, syntactically invalid, or unlike the command's."""

    dimse_status = 0xC001
    summary = "error: cannot understand (SOP instance identity)"


class IndexFailure(DicomhubError):
    """The index could not record the object (database error); nothing was kept."""

    dimse_status = 0xC002
    http_status = 503
    summary = "error: index unavailable"


class DuplicateSOPInstance(DicomhubError):
    """The SOP Instance UID is stored already with different content (duplicate policy)."""

    dimse_status = 0x0111
    http_status = 409
    summary = "failure: duplicate SOP instance"


class NotAuthorized(DicomhubError):
    """The calling AE may not use this service."""

    dimse_status = 0x0124
    http_status = 403
    summary = "refused: not authorized"


class IdentifierDoesNotMatchSOPClass(DicomhubError):
    """A query identifier is not valid for its information model (level, unique keys)."""

    dimse_status = 0xA900
    http_status = 400
    summary = "error: identifier does not match SOP class"


class UnableToProcess(DicomhubError):
    """A query or retrieve could not be carried out."""

    dimse_status = 0xC003
    http_status = 500
    summary = "error: unable to process"


class MoveDestinationUnknown(DicomhubError):
    """A C-MOVE names a destination AE that is not a declared peer."""

    dimse_status = 0xA801
    http_status = 404
    summary = "refused: move destination unknown"


class PeerUnavailable(DicomhubError):
    """A peer could not be reached, refused the association, or dropped it."""

    dimse_status = 0xA702
    http_status = 502
    summary = "refused: unable to perform sub-operations"


class PeerRefused(DicomhubError):
    """A peer answered a request (a C-FIND, say) with a failure status.

    ``dimse_status`` is the peer's status, not one of dicomhub's: dicomhub never sends it to a
    DICOM peer of its own, so it is not in ``OUTCOMES``.  Over HTTP it is 502, as for a peer
    that cannot be reached.  Unlike ``PeerUnavailable`` it is not worth retrying: the peer
    was reached and said no.
    """

    http_status = 502
    summary = "failure: refused by the peer"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.dimse_status = status


class CannotTranscode(DicomhubError):
    """No transfer syntax the receiver accepts can be produced from the stored object."""

    dimse_status = 0xC000
    http_status = 406
    summary = "failure: cannot transcode"


class NoSuchInstance(DicomhubError):
    """An N-service request names a SOP instance dicomhub does not manage."""

    dimse_status = 0x0112
    http_status = 404
    summary = "failure: no such SOP instance"


class InstanceExists(DuplicateSOPInstance):
    """An N-CREATE names a SOP Instance UID that exists already."""

    summary = "failure: duplicate SOP instance (N-CREATE)"


class InvalidSOPInstance(DicomhubError):
    """An N-CREATE names an Affected SOP Instance UID that is not a valid UID."""

    dimse_status = 0x0117
    http_status = 400
    summary = "failure: invalid SOP instance"


class MissingAttribute(DicomhubError):
    """An N-CREATE or N-SET lacks an attribute the SOP class requires."""

    dimse_status = 0x0120
    http_status = 400
    summary = "failure: missing attribute"


class MissingAttributeValue(DicomhubError):
    """A required (Type 1) attribute of an N-CREATE or N-SET is present but empty."""

    dimse_status = 0x0121
    http_status = 400
    summary = "failure: missing attribute value"


class InvalidAttributeValue(DicomhubError):
    """An N-CREATE or N-SET attribute has an invalid value, or one N-SET may not change.

    ``attribute_list`` holds the offending attributes as received; it is sent back as the
    response's Attribute List (PS3.4 F.7.2.1.3).
    """

    dimse_status = 0x0106
    http_status = 400
    summary = "failure: invalid attribute value"

    def __init__(self, message: str, attribute_list: Dataset | None = None) -> None:
        super().__init__(message)
        self.attribute_list = attribute_list


class NoSuchAttribute(DicomhubError):
    """An N-SET names attributes its SOP class does not let it set.

    Nothing of the request is applied (DCMTK's print SCP answers the same).  ``identifiers``
    are their tags, sent back as the response's Attribute Identifier List.
    """

    dimse_status = 0x0105
    http_status = 400
    summary = "failure: no such attribute"

    def __init__(self, message: str, identifiers: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.identifiers = tuple(identifiers)


class ProcedureStepFinal(DicomhubError):
    """An N-SET names a Performed Procedure Step that is COMPLETED or DISCONTINUED."""

    dimse_status = 0x0110
    http_status = 409
    error_id = 0xA710
    summary = "failure: processing failure (may no longer be updated)"

    @property
    def error_comment(self) -> str:
        """The specific Error Comment of PS3.4 Table F.7.2-2."""
        return "Performed Procedure Step Object may no longer be updated"


class InvalidWorklistItem(DicomhubError):
    """A worklist item lacks what a Scheduled Procedure Step needs (patient, one step)."""

    dimse_status = 0xC000
    http_status = 422
    summary = "failure: invalid worklist item"


class NoSuchWorklistItem(DicomhubError):
    """A worklist item id that is not in the index."""

    dimse_status = 0xC000
    http_status = 404
    summary = "failure: no such worklist item"


class UnrecognizedOperation(DicomhubError):
    """A DIMSE operation the SOP class named does not define (e.g. N-DELETE of an image box)."""

    dimse_status = 0x0211
    http_status = 405
    summary = "failure: unrecognized operation"


class NoSuchActionType(DicomhubError):
    """An N-ACTION with an Action Type ID the SOP class does not define."""

    dimse_status = 0x0123
    http_status = 400
    summary = "failure: no such action type"


class FilmSessionEmpty(DicomhubError):
    """A Film Session print (N-ACTION) when the session holds no Film Box (PS3.4 H.4.1.2.4)."""

    dimse_status = 0xC600
    http_status = 409
    summary = "failure: film session has no film box"


class PrintJobFailed(DicomhubError):
    """A Film Box N-ACTION whose print job the printer refused or could not be reached for.

    Also what a print hook raises for a printer's refusal; the print service answers a Film
    Session N-ACTION with ``FilmSessionPrintJobFailed`` instead (PS3.4 H.4.1.2.4.2 and
    H.4.2.2.4.2 give each N-ACTION its own status).
    """

    dimse_status = 0xC602
    http_status = 502
    summary = "failure: unable to create print job (film box)"


class FilmSessionPrintJobFailed(PrintJobFailed):
    """A Film Session N-ACTION whose print job the printer refused or could not be reached for."""

    dimse_status = 0xC601
    summary = "failure: unable to create print job (film session)"


class PrintProcessingFailure(DicomhubError):
    """A printed film could not be composed or stored (an internal failure, not the printer's)."""

    dimse_status = 0x0110
    http_status = 500
    summary = "failure: processing failure"


class FilmTooLarge(DicomhubError):
    """A film box whose film, at its size and resolution, has more pixels than dicomhub composes.

    The limit is ``imaging.geometry.MAX_FILM_PIXELS``; the film is refused before any of it is
    allocated.
    """

    dimse_status = 0x0213
    http_status = 422
    summary = "failure: resource limitation"


class ImageTooLarge(DicomhubError):
    """An image is larger than its image box and the SCU asked for failure rather than
    decimation or cropping (Requested Decimate/Crop Behavior FAIL; PS3.4 H.4.3, H.4.2.2.4)."""

    dimse_status = 0xC603
    http_status = 422
    summary = "failure: image size is larger than image box size"


class PrintRelayFailed(PrintJobFailed):
    """The printer a print job is relayed to refused it or could not be reached; the text
    says what the printer answered."""


class StudyInstanceUIDMismatch(DicomhubError):
    """A STOW-RS request to one study holds an instance of another study."""

    dimse_status = 0xC409
    http_status = 409
    summary = "error: cannot understand (Study Instance UID mismatch)"


class InvalidRequest(DicomhubError):
    """An HTTP request whose parameters or body cannot be understood."""

    http_status = 400
    summary = "error: invalid request"


class AuthenticationRequired(DicomhubError):
    """An HTTP request without valid credentials while authentication is on."""

    dimse_status = 0x0124
    http_status = 401
    summary = "refused: authentication required"


class NoSuchResource(DicomhubError):
    """An HTTP request names a patient, study, series, peer or job dicomhub does not have."""

    http_status = 404
    summary = "failure: no such resource"


class NotAcceptable(DicomhubError):
    """No media type the HTTP client accepts can be produced for the resource."""

    http_status = 406
    summary = "failure: not acceptable"


class ResourceConflict(DicomhubError):
    """An HTTP request conflicts with the state of the resource (e.g. a configured peer)."""

    http_status = 409
    summary = "failure: conflict"


class RequestTooLarge(DicomhubError):
    """An HTTP request body larger than the configured limit (``http_max_upload``)."""

    dimse_status = 0xA700
    http_status = 413
    summary = "refused: request too large"


class UnsupportedMediaType(DicomhubError):
    """An HTTP request body of a media type the route does not take."""

    http_status = 415
    summary = "failure: unsupported media type"


OUTCOMES: tuple[type[DicomhubError], ...] = (
    OutOfResources,
    DataSetDoesNotMatchSOPClass,
    CannotUnderstand,
    InvalidInstanceIdentity,
    IndexFailure,
    DuplicateSOPInstance,
    NotAuthorized,
    IdentifierDoesNotMatchSOPClass,
    UnableToProcess,
    MoveDestinationUnknown,
    PeerUnavailable,
    CannotTranscode,
    NoSuchInstance,
    InstanceExists,
    InvalidSOPInstance,
    MissingAttribute,
    MissingAttributeValue,
    InvalidAttributeValue,
    NoSuchAttribute,
    ProcedureStepFinal,
    InvalidWorklistItem,
    NoSuchWorklistItem,
    UnrecognizedOperation,
    NoSuchActionType,
    FilmSessionEmpty,
    PrintJobFailed,
    FilmSessionPrintJobFailed,
    PrintProcessingFailure,
    FilmTooLarge,
    ImageTooLarge,
    StudyInstanceUIDMismatch,
    InvalidRequest,
    AuthenticationRequired,
    NoSuchResource,
    NotAcceptable,
    ResourceConflict,
    RequestTooLarge,
    UnsupportedMediaType,
)
"""Every outcome class, in the order the conformance statement lists them."""
