"""UIDs and Patient IDs in request paths, checked before any route uses them.

A UID in a path names one study, series or instance, but the index matches what it is given
as a C-FIND or retrieve key would be: ``A\\B`` is a list of two UIDs and ``1.2.*`` a wildcard.
Unchecked, ``DELETE /api/studies/A\\B`` deletes two studies and a WADO-RS retrieve of
``A\\B`` answers both.  So every path parameter that names a DICOM object is checked once,
for every route of the app (an app-wide dependency, so a route added later is checked too):

* ``study``, ``series``, ``instance`` and ``uid`` must be valid UIDs (PS3.5 9.1: digits and
  dots, at most 64 characters), which rules out lists and wildcards;
* ``patient_id`` may not hold a backslash (the value delimiter: one Patient ID cannot hold
  it) nor ``*`` or ``?`` (they would match as wildcards).

A refusal is 400 with the error body, naming the parameter and the value.  The same checks
serve other UIDs a request names objects by (WADO-URI's ``studyUID``, ``seriesUID`` and
``objectUID``, the UIDs of a send to a peer).  Nothing stored becomes unreachable: ingest
refuses an object whose Study, Series or SOP Instance UID is not a valid UID.
"""

from __future__ import annotations

from fastapi import Request

from dicomhub.errors import InvalidRequest
from dicomhub.header import is_valid_uid

PATH_UIDS = {
    "study": "Study Instance UID",
    "series": "Series Instance UID",
    "instance": "SOP Instance UID",
    "uid": "SOP Instance UID",
}
"""Path parameters that are DICOM UIDs wherever they appear in the app, and what they name."""
PATIENT_ID = "patient_id"
"""The path parameter that is a Patient ID."""
SHOWN = 160
"""At most this many characters of a refused value are repeated in the answer."""


def _shown(value: str) -> str:
    return value if len(value) <= SHOWN else value[:SHOWN] + "..."


def checked_uid(value: str, what: str) -> str:
    """``value`` when it is a valid UID; ``InvalidRequest`` (400) naming it otherwise."""
    if not is_valid_uid(value):
        raise InvalidRequest(
            f'The {what} "{_shown(value)}" is not a valid UID: a UID is digits and dots, at '
            "most 64 characters, and names one object (no list with '\\', no wildcard '*' "
            "or '?')."
        )
    return value


def checked_patient_id(value: str) -> str:
    """``value`` when it can be one Patient ID matched exactly; ``InvalidRequest`` otherwise."""
    if any(character in value for character in "\\*?"):
        raise InvalidRequest(
            f'The Patient ID "{_shown(value)}" cannot name one patient: it may not hold '
            "'\\' (a list) nor '*' or '?' (wildcards)."
        )
    return value


async def check_path(request: Request) -> None:
    """The app-wide dependency: refuse a request whose path names an object wrongly."""
    params = request.path_params
    for name, what in PATH_UIDS.items():
        value = params.get(name)
        if isinstance(value, str):
            checked_uid(value, what)
    patient = params.get(PATIENT_ID)
    if isinstance(patient, str):
        checked_patient_id(patient)
