"""Which DICOM attributes the index keeps in columns, per query/retrieve level (PS3.4 C.6).

Every other attribute is answered from the instance header kept as DICOM JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """Query/Retrieve levels."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @property
    def depth(self) -> int:
        """0 for PATIENT ... 3 for IMAGE (a look-up: C-FIND asks it for every key of every
        match)."""
        return _DEPTHS[self]


_DEPTHS = {level: depth for depth, level in enumerate(Level)}


@dataclass(frozen=True)
class IndexedAttribute:
    """An attribute stored in a column of the table of its level."""

    keyword: str
    level: Level
    vr: str
    column: str
    computed: bool = False
    """Derived by the index (counts, ModalitiesInStudy ...), never read from a header."""


def _attrs(level: Level, *items: tuple[str, str, str]) -> list[IndexedAttribute]:
    return [IndexedAttribute(kw, level, vr, col) for kw, vr, col in items]


def _computed(level: Level, *items: tuple[str, str, str]) -> list[IndexedAttribute]:
    return [IndexedAttribute(kw, level, vr, col, computed=True) for kw, vr, col in items]


ATTRIBUTES: list[IndexedAttribute] = [
    *_attrs(
        Level.PATIENT,
        ("PatientID", "LO", "patient_id"),
        ("IssuerOfPatientID", "LO", "issuer_of_patient_id"),
        ("PatientName", "PN", "patient_name"),
        ("PatientBirthDate", "DA", "patient_birth_date"),
        ("PatientBirthTime", "TM", "patient_birth_time"),
        ("PatientSex", "CS", "patient_sex"),
        ("OtherPatientIDs", "LO", "other_patient_ids"),
        ("EthnicGroup", "SH", "ethnic_group"),
        ("PatientComments", "LT", "patient_comments"),
    ),
    *_computed(
        Level.PATIENT,
        ("NumberOfPatientRelatedStudies", "IS", "number_of_patient_related_studies"),
        ("NumberOfPatientRelatedSeries", "IS", "number_of_patient_related_series"),
        ("NumberOfPatientRelatedInstances", "IS", "number_of_patient_related_instances"),
    ),
    *_attrs(
        Level.STUDY,
        ("StudyInstanceUID", "UI", "study_instance_uid"),
        ("StudyDate", "DA", "study_date"),
        ("StudyTime", "TM", "study_time"),
        ("AccessionNumber", "SH", "accession_number"),
        ("StudyID", "SH", "study_id"),
        ("StudyDescription", "LO", "study_description"),
        ("ReferringPhysicianName", "PN", "referring_physician_name"),
        ("NameOfPhysiciansReadingStudy", "PN", "name_of_physicians_reading_study"),
        ("PatientAge", "AS", "patient_age"),
        ("PatientSize", "DS", "patient_size"),
        ("PatientWeight", "DS", "patient_weight"),
        ("InstitutionName", "LO", "institution_name"),
    ),
    *_computed(
        Level.STUDY,
        ("ModalitiesInStudy", "CS", "modalities_in_study"),
        ("SOPClassesInStudy", "UI", "sop_classes_in_study"),
        ("NumberOfStudyRelatedSeries", "IS", "number_of_study_related_series"),
        ("NumberOfStudyRelatedInstances", "IS", "number_of_study_related_instances"),
    ),
    *_attrs(
        Level.SERIES,
        ("SeriesInstanceUID", "UI", "series_instance_uid"),
        ("Modality", "CS", "modality"),
        ("SeriesNumber", "IS", "series_number"),
        ("SeriesDescription", "LO", "series_description"),
        ("SeriesDate", "DA", "series_date"),
        ("SeriesTime", "TM", "series_time"),
        ("BodyPartExamined", "CS", "body_part_examined"),
        ("ProtocolName", "LO", "protocol_name"),
        ("StationName", "SH", "station_name"),
        ("Manufacturer", "LO", "manufacturer"),
        ("PerformingPhysicianName", "PN", "performing_physician_name"),
        ("Laterality", "CS", "laterality"),
        ("PerformedProcedureStepStartDate", "DA", "performed_procedure_step_start_date"),
        ("PerformedProcedureStepStartTime", "TM", "performed_procedure_step_start_time"),
    ),
    *_computed(
        Level.SERIES,
        ("NumberOfSeriesRelatedInstances", "IS", "number_of_series_related_instances"),
    ),
    *_attrs(
        Level.IMAGE,
        ("SOPInstanceUID", "UI", "sop_instance_uid"),
        ("SOPClassUID", "UI", "sop_class_uid"),
        ("InstanceNumber", "IS", "instance_number"),
        ("ContentDate", "DA", "content_date"),
        ("ContentTime", "TM", "content_time"),
        ("AcquisitionNumber", "IS", "acquisition_number"),
        ("ImageType", "CS", "image_type"),
        ("Rows", "US", "rows"),
        ("Columns", "US", "columns"),
        ("NumberOfFrames", "IS", "number_of_frames"),
    ),
]

BY_KEYWORD: dict[str, IndexedAttribute] = {a.keyword: a for a in ATTRIBUTES}

UNIQUE_KEYS: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}

INTEGER_VRS = {"IS", "US", "UL", "SS", "SL"}


def attributes_of(level: Level) -> list[IndexedAttribute]:
    """Indexed attributes of one level."""
    return [a for a in ATTRIBUTES if a.level is level]
