"""A worklist item from plain fields: patient, procedure and one Scheduled Procedure Step.

Used by ``dicomhub worklist add`` (its flags) and by the REST API (its simple form), so both
build items the same way: a StudyInstanceUID is left to the repository, the start defaults to
now, and non-ASCII values switch the item to UTF-8 (ISO_IR 192).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset

from dicomhub.errors import InvalidWorklistItem


@dataclass(frozen=True)
class WorklistFields:
    """A worklist item described by plain fields (``dicomhub worklist add`` flags, the REST
    API's simple form)."""

    patient_name: str
    patient_id: str
    issuer_of_patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    modality: str = ""
    station_ae: str = ""
    station_name: str = ""
    start: str = ""
    accession: str = ""
    procedure: str = ""
    requested_procedure_id: str = ""
    step_id: str = ""
    step_description: str = ""
    referring_physician: str = ""
    performing_physician: str = ""
    study_uid: str = ""


def parse_start(text: str) -> tuple[str, str]:
    """``YYYYMMDD HHMM[SS]`` (or ``YYYY-MM-DD HH:MM``, or ``now``) as (DA, TM)."""
    if text.strip().lower() == "now":
        moment = datetime.now()
        return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")
    digits = "".join(c for c in text if c.isdigit())
    date, time = digits[:8], digits[8:]
    forms = {0: "", 4: "%H%M", 6: "%H%M%S"}
    try:
        if len(date) != 8 or len(time) not in forms:
            raise ValueError(text)
        datetime.strptime(date, "%Y%m%d")
        if time:
            datetime.strptime(time, forms[len(time)])
    except ValueError:
        raise InvalidWorklistItem(
            f"start {text!r}: give the date and time as 'YYYYMMDD HHMM'"
        ) from None
    return date, time


def dataset_from_fields(flags: WorklistFields) -> Dataset:
    """A worklist item (one Scheduled Procedure Step) from plain fields."""
    item = Dataset()
    step = Dataset()
    date, time = parse_start(flags.start or "now")
    top = {
        "PatientName": flags.patient_name,
        "PatientID": flags.patient_id,
        "IssuerOfPatientID": flags.issuer_of_patient_id,
        "PatientBirthDate": flags.birth_date,
        "PatientSex": flags.sex.upper(),
        "AccessionNumber": flags.accession,
        "ReferringPhysicianName": flags.referring_physician,
        "RequestedProcedureDescription": flags.procedure,
        "RequestedProcedureID": flags.requested_procedure_id,
        "StudyInstanceUID": flags.study_uid,
    }
    in_step = {
        "Modality": flags.modality.upper(),
        "ScheduledStationAETitle": flags.station_ae,
        "ScheduledStationName": flags.station_name,
        "ScheduledProcedureStepStartDate": date,
        "ScheduledProcedureStepStartTime": time,
        "ScheduledPerformingPhysicianName": flags.performing_physician,
        "ScheduledProcedureStepDescription": flags.step_description or flags.procedure,
        "ScheduledProcedureStepID": flags.step_id,
    }
    values = [*top.values(), *in_step.values()]
    if not all(v.isascii() for v in values):
        item.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in top.items():
        if value or keyword in {"AccessionNumber", "ReferringPhysicianName"}:
            setattr(item, keyword, value)
    for keyword, value in in_step.items():
        setattr(step, keyword, value)
    item.ScheduledProcedureStepSequence = [step]
    return item
