"""Builders of Modality Performed Procedure Step requests and worklist items for the tests."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid


def n_create(
    *,
    study_uid: str | None = None,
    accession: str = "",
    requested_procedure_id: str = "",
    scheduled_step_id: str = "",
    status: str = "IN PROGRESS",
    patient_name: str = "DOE^JANE",
    patient_id: str = "PID042",
) -> Dataset:
    """An N-CREATE Attribute List with every Type 1 and Type 2 attribute of Table F.7.2-1."""
    step = Dataset()
    step.StudyInstanceUID = study_uid or generate_uid()
    step.ReferencedStudySequence = []
    step.AccessionNumber = accession
    step.RequestedProcedureID = requested_procedure_id
    step.RequestedProcedureDescription = ""
    step.ScheduledProcedureStepID = scheduled_step_id
    step.ScheduledProcedureStepDescription = ""
    step.ScheduledProtocolCodeSequence = []
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = "PPS-1"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedStationName = ""
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = "20261125"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepDescription = ""
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "CT"
    ds.StudyID = ""
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def performed_series(
    series_uid: str, instance_uids: Sequence[str], sop_class: str = CTImageStorage
) -> Dataset:
    """A Performed Series Sequence item referencing images."""
    item = Dataset()
    item.PerformingPhysicianName = ""
    item.ProtocolName = "CHEST ROUTINE"
    item.OperatorsName = ""
    item.SeriesInstanceUID = series_uid
    item.SeriesDescription = ""
    item.RetrieveAETitle = ""
    references = []
    for uid in instance_uids:
        reference = Dataset()
        reference.ReferencedSOPClassUID = sop_class
        reference.ReferencedSOPInstanceUID = uid
        references.append(reference)
    item.ReferencedImageSequence = references
    item.ReferencedNonImageCompositeSOPInstanceSequence = []
    return item


def n_set_final(status: str = "COMPLETED", series: Sequence[Dataset] | None = None) -> Dataset:
    """The last N-SET: status, end date and time, Performed Series Sequence."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261125"
    ds.PerformedProcedureStepEndTime = "103000"
    ds.PerformedSeriesSequence = (
        list(series) if series is not None else [performed_series(generate_uid(), [])]
    )
    return ds


def worklist_item(
    *,
    study_uid: str,
    accession: str = "ACC-MPPS-1",
    requested_procedure_id: str = "RP-1",
    scheduled_step_id: str = "SPS-1",
) -> Dataset:
    """A worklist item (one Scheduled Procedure Step) for a CT."""
    step = Dataset()
    step.ScheduledStationAETitle = "CT1"
    step.ScheduledProcedureStepStartDate = "20261125"
    step.ScheduledProcedureStepStartTime = "100000"
    step.Modality = "CT"
    step.ScheduledProcedureStepID = scheduled_step_id
    ds = Dataset()
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "PID042"
    ds.StudyInstanceUID = study_uid
    ds.AccessionNumber = accession
    ds.RequestedProcedureID = requested_procedure_id
    ds.ScheduledProcedureStepSequence = [step]
    return ds
