"""The outcome table: every failure dicomhub reports, with its DIMSE and HTTP status.

The DICOM side converts an exception into a status in one place (``dicom.adapter``), the web side
in one place too; both read ``dimse_status`` / ``http_status`` from these classes, so the same
problem gets the same answer whichever protocol carried it.
"""

from __future__ import annotations


class DicomhubError(Exception):
    """Base of all reported failures; ``str(error)`` is the human sentence (ErrorComment)."""

    dimse_status: int = 0xC000
    http_status: int = 500
    summary: str = "processing failure"

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


class CannotTranscode(DicomhubError):
    """No transfer syntax the receiver accepts can be produced from the stored object."""

    dimse_status = 0xC000
    http_status = 406
    summary = "failure: cannot transcode"


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
)
"""Every outcome class, in the order the conformance statement lists them."""
