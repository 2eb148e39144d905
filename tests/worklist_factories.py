"""Worklist items (one Scheduled Procedure Step each) and worklist queries for the tests."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset


def worklist_item(
    *,
    patient_name: str = "DOE^JANE",
    patient_id: str = "PID001",
    issuer: str = "",
    accession: str = "ACC001",
    requested_procedure_id: str = "RP001",
    study_uid: str | None = None,
    modality: str = "CT",
    station_ae: str | list[str] = "CT1",
    station_name: str = "CTROOM1",
    start_date: str = "20240105",
    start_time: str = "103000",
    step_id: str = "SPS001",
    physician: str = "SMITH^ANNA",
    description: str = "CT HEAD",
    charset: str | list[str] | None = None,
    step_extra: dict[str, Any] | None = None,
    **extra: Any,
) -> Dataset:
    """A worklist item with the usual patient, request and step attributes."""
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station_ae
    step.ScheduledStationName = station_name
    step.ScheduledProcedureStepStartDate = start_date
    step.ScheduledProcedureStepStartTime = start_time
    step.ScheduledPerformingPhysicianName = physician
    step.ScheduledProcedureStepDescription = description
    step.ScheduledProcedureStepID = step_id
    for keyword, value in (step_extra or {}).items():
        setattr(step, keyword, value)
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if issuer:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "F"
    ds.AccessionNumber = accession
    ds.RequestedProcedureID = requested_procedure_id
    ds.RequestedProcedureDescription = description
    ds.ReferringPhysicianName = "WHO^ELSE"
    if study_uid:
        ds.StudyInstanceUID = study_uid
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def worklist_query(*, step: dict[str, Any] | None = None, **top: Any) -> Dataset:
    """A worklist identifier: top-level keys, and ScheduledProcedureStepSequence item keys
    (``step=None``: no sequence key; ``step={}``: the sequence with an empty item)."""
    query = Dataset()
    for keyword, value in top.items():
        setattr(query, keyword, value)
    if step is not None:
        item = Dataset()
        for keyword, value in step.items():
            setattr(item, keyword, value)
        query.ScheduledProcedureStepSequence = [item]
    return query
