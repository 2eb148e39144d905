"""The DICOM side's one conversion of exceptions into response statuses."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset

from dicomhub.errors import DicomhubError

LOG = logging.getLogger("dicomhub.dicom")

SUCCESS = 0x0000
PENDING = 0xFF00
CANCELLED = 0xFE00


def failure(exc: DicomhubError) -> Dataset:
    """The response status data set for a failure: Status plus ErrorComment."""
    status = Dataset()
    status.Status = exc.dimse_status
    status.ErrorComment = exc.error_comment
    return status


def unexpected(exc: Exception, what: str) -> DicomhubError:
    """Wrap an unexpected exception as a processing failure (and log its traceback)."""
    LOG.exception("%s failed unexpectedly", what, exc_info=exc)
    return DicomhubError(f"processing failure: {type(exc).__name__}")


def status_of(exc: DicomhubError) -> tuple[int, str]:
    """(Status, ErrorComment) of a failure, for engines that write commands themselves."""
    return exc.dimse_status, exc.error_comment
