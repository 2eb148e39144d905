"""HL7 v2 messages as Modality Worklist changes (no network, no database).

An ORM^O01 (v2.3 to v2.5) or OMI^O23 (v2.5.1) message carries one order per ORC segment; each
becomes an ``OrderUpdate``: the action (new, change, cancel), the order key its worklist item is
known by, and the item as a pydicom Dataset with one Scheduled Procedure Step.  An ADT^A08
becomes a ``PatientUpdate`` of the patient's open items.

``ORDER_MAPPING`` is the field mapping, applied row by row; ``mapping_table()`` renders it for
the README (a test keeps the two equal).  Field positions follow IHE RAD-4 (Procedure
Scheduled): OBR-18 Accession Number, OBR-19 Requested Procedure ID, OBR-20 Scheduled Procedure
Step ID, ZDS-1 Study Instance UID in v2.3.1; the IPC segment in OMI^O23.

Errors are ``HL7Error``s: ``MessageRejected`` (AR: a message, event, order control or
character set dicomhub does not handle) and ``InvalidMessage`` (AE: a handled message whose
content is missing or wrong).  Their text goes back to the sender in MSA-3.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import hl7
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomhub.config import AE_TITLE_PATTERN

if TYPE_CHECKING:
    from dicomhub.config import Settings

Segment = Any
"""A python-hl7 segment (the library has no type information)."""


class Action(StrEnum):
    """What an order message does to the worklist item of its order."""

    NEW = "new"
    CHANGE = "change"
    CANCEL = "cancel"


class AckCode(StrEnum):
    """MSA-1 acknowledgment codes (HL7 table 0008, original mode)."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


class HL7Error(Exception):
    """A message that is not applied; ``str(error)`` is the reason sent back in MSA-3."""

    ack_code: AckCode = AckCode.ERROR

    def __init__(self, message: str, error_code: str = "207") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        """HL7 table 0357 error condition (ERR segment): 101 required field missing, 102 data
        type error, 103 table value not found, 200 unsupported message type, 201 unsupported
        event code, 207 application internal error."""


class MessageRejected(HL7Error):
    """A message dicomhub does not handle (type, event, order control, character set,
    structure): answered AR."""

    ack_code = AckCode.REJECT


class InvalidMessage(HL7Error):
    """A handled message whose content is missing or wrong: answered AE."""

    ack_code = AckCode.ERROR


ORDER_CONTROLS: dict[str, Action] = {
    "NW": Action.NEW,
    "XO": Action.CHANGE,
    "SC": Action.CHANGE,
    "CA": Action.CANCEL,
    "DC": Action.CANCEL,
    "OC": Action.CANCEL,
}
"""ORC-1 order control codes (HL7 table 0119) dicomhub applies.  SC (status changed) with
ORC-5 order status CA or DC cancels; any other code is rejected (AR)."""

ORDER_MESSAGES = ("ORM^O01", "OMI^O23")
PATIENT_MESSAGES = ("ADT^A08",)

CHARACTER_SETS: dict[str, tuple[str, str]] = {
    "ASCII": ("ascii", ""),
    "8859/1": ("latin_1", "ISO_IR 100"),
    "8859/2": ("iso8859_2", "ISO_IR 101"),
    "8859/3": ("iso8859_3", "ISO_IR 109"),
    "8859/4": ("iso8859_4", "ISO_IR 110"),
    "8859/5": ("iso8859_5", "ISO_IR 144"),
    "8859/6": ("iso8859_6", "ISO_IR 127"),
    "8859/7": ("iso8859_7", "ISO_IR 126"),
    "8859/8": ("iso8859_8", "ISO_IR 138"),
    "8859/9": ("iso8859_9", "ISO_IR 148"),
    "UNICODE UTF-8": ("utf_8", "ISO_IR 192"),
    "UNICODE": ("utf_8", "ISO_IR 192"),
    "GB 18030-2000": ("gb18030", "GB18030"),
}
"""MSH-18 character set (HL7 table 0211) -> (Python codec, DICOM SpecificCharacterSet).  The
ISO 2022 sets (ISO IR87, ISO IR159, KS X 1001), BIG-5, CNS 11643 and UTF-16/32 are rejected."""

PRIORITIES = {
    "S": "STAT",
    "A": "HIGH",
    "R": "ROUTINE",
    "P": "HIGH",
    "C": "HIGH",
    "T": "MEDIUM",
}
"""HL7 priority (TQ-6, TQ1-9) -> RequestedProcedurePriority (IHE RAD TF-2 mapping)."""

SEXES = {"M": "M", "F": "F", "O": "O", "A": "O", "N": "O", "U": ""}
"""PID-8 administrative sex (HL7 table 0001) -> PatientSex; other codes leave it empty."""

LOCAL_CODING_SCHEME = "L"
"""CodingSchemeDesignator of a code sent without a coding system (HL7 "L": local code)."""

_MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "UI": 64, "ST": 1024, "LT": 10240}
_CS = re.compile(r"^[A-Z0-9 _]*$")
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?(?:[+-]\d{4})?$")
_STUDY_UID_NAMESPACE = uuid.UUID("0b5a7c36-3f7e-5a8e-9d36-6a1c0e7e4d21")


@dataclass(frozen=True)
class MappingOptions:
    """Site choices the messages do not carry."""

    station_ae_titles: Mapping[str, str] = field(default_factory=dict)
    """Modality -> ScheduledStationAETitle, for orders that name no station."""
    default_station_ae_title: str = ""
    """ScheduledStationAETitle of orders that name no station and whose modality is not in
    ``station_ae_titles``."""
    default_character_set: str = "UNICODE UTF-8"
    """Character set (HL7 table 0211 name) of messages whose MSH-18 is empty."""

    @classmethod
    def from_settings(cls, settings: Settings) -> MappingOptions:
        """The options configured in ``settings``."""
        return cls(
            station_ae_titles={
                modality.upper(): ae for modality, ae in settings.hl7_station_ae_titles.items()
            },
            default_station_ae_title=settings.hl7_default_station_ae_title,
            default_character_set=settings.hl7_default_character_set,
        )


@dataclass(frozen=True)
class ReceivedMessage:
    """A decoded HL7 message and what its MSH says about it."""

    message: Any
    """The python-hl7 ``Message``."""
    message_type: str
    """MSH-9 message code and trigger event, as ``ORM^O01``."""
    control_id: str
    """MSH-10 message control ID."""
    version: str
    """MSH-12 version ID."""
    character_set: str
    """The HL7 character set the message was decoded with."""
    specific_character_set: str
    """The matching DICOM SpecificCharacterSet ("" for ASCII)."""


@dataclass(frozen=True)
class OrderUpdate:
    """One order of an order message, as a worklist change."""

    action: Action
    order_key: str
    dataset: Dataset
    """The worklist item (empty for a cancel)."""
    order_control: str
    """ORC-1, as received."""


@dataclass(frozen=True)
class PatientUpdate:
    """New patient attributes for every open worklist item of one patient."""

    patient_id: str
    issuer_of_patient_id: str
    changes: Dataset


# Reading fields ---------------------------------------------------------------------------


def _raw(segment: Segment | None, number: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """A field, component or subcomponent, unescaped and stripped; "" when absent."""
    if segment is None:
        return ""
    try:
        value = segment.extract_field(1, number, rep, comp, sub)
    except (IndexError, TypeError):
        return ""
    return str(value).strip()


def _value(
    segment: Segment | None, number: int, rep: int = 1, comp: int = 1, sub: int = 1
) -> str | None:
    """As ``_raw``, but None when absent and "" for the HL7 null value ``""`` (delete)."""
    value = _raw(segment, number, rep, comp, sub)
    if not value:
        return None
    return "" if value == '""' else value


def _repetitions(segment: Segment | None, number: int) -> int:
    if segment is None or number >= len(segment):
        return 0
    value = segment[number]
    if len(value) and isinstance(value[0], hl7.Repetition):
        return len(value)
    return 1 if str(value) else 0


def _first(*values: str | None) -> str | None:
    """The first non-empty value; "" when only nulls were sent, None when nothing was."""
    for value in values:
        if value:
            return value
    return "" if any(value == "" for value in values) else None


def _person_name(parts: list[str | None]) -> str | None:
    """One PN component group: family^given^middle^prefix^suffix, trailing carets dropped."""
    if all(part is None for part in parts):
        return None
    return "^".join(part or "" for part in parts).rstrip("^")


def _pn(groups: list[str | None]) -> str | None:
    if all(group is None for group in groups):
        return None
    return "=".join(group or "" for group in groups).rstrip("=")


def _xpn(segment: Segment | None, number: int) -> str | None:
    """XPN (family^given^middle^suffix^prefix^degree^type^representation) as PN.

    The repetition marked ideographic (XPN-8 = I) or phonetic (P) fills the PN component group
    of that name; the first other repetition is the alphabetic group."""
    groups: dict[str, str | None] = {"A": None, "I": None, "P": None}
    for rep in range(1, _repetitions(segment, number) + 1):
        code = _raw(segment, number, rep, 8).upper()
        slot = code if code in ("I", "P") else "A"
        if groups[slot] is not None:
            continue
        groups[slot] = _person_name(
            [
                _value(segment, number, rep, 1, 1),
                _value(segment, number, rep, 2),
                _value(segment, number, rep, 3),
                _value(segment, number, rep, 5),
                _value(segment, number, rep, 4),
            ]
        )
    return _pn([groups["A"], groups["I"], groups["P"]])


def _xcn(segment: Segment | None, number: int) -> str | None:
    """XCN (id^family^given^middle^suffix^prefix^degree...) of the first repetition as PN."""
    return _person_name(
        [
            _value(segment, number, 1, 2, 1),
            _value(segment, number, 1, 3),
            _value(segment, number, 1, 4),
            _value(segment, number, 1, 6),
            _value(segment, number, 1, 5),
        ]
    )


def _ndl(segment: Segment | None, number: int) -> str | None:
    """NDL (name&...^start^end^...): its first component is a CN whose parts are
    subcomponents (id&family&given&middle&suffix&prefix); an XCN is accepted too."""
    if _raw(segment, number, 1, 1, 2) or not _raw(segment, number, 1, 2):
        return _person_name(
            [
                _value(segment, number, 1, 1, 2),
                _value(segment, number, 1, 1, 3),
                _value(segment, number, 1, 1, 4),
                _value(segment, number, 1, 1, 6),
                _value(segment, number, 1, 1, 5),
            ]
        )
    return _xcn(segment, number)


def _code(
    segment: Segment | None, number: int, first: int = 1, where: str = ""
) -> list[Dataset] | None:
    """A CE/CWE (identifier^text^coding system, or the alternate triplet from component 4)
    as a one-item code sequence; None when the identifier is empty."""
    value = _raw(segment, number, 1, first)
    if not value:
        return None
    meaning = _raw(segment, number, 1, first + 1) or value
    scheme = _raw(segment, number, 1, first + 2) or LOCAL_CODING_SCHEME
    if "\\" in value or "\\" in scheme:
        raise InvalidMessage(f"{where}: a code may not contain a backslash", "102")
    if len(scheme) > 16:
        raise InvalidMessage(f"{where}: coding system {scheme!r} is longer than 16", "102")
    item = Dataset()
    if len(value) > 16:
        item.LongCodeValue = value
    else:
        item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning.replace("\\", "/")[:64]
    return [item]


def _date_time(value: str | None, where: str) -> tuple[str | None, str | None]:
    """An HL7 TS (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as DICOM DA and TM.

    A date without month or day gives no DA; the time zone offset is dropped (local time)."""
    if value is None:
        return None, None
    if value == "":
        return "", ""
    match = _TS.match(value)
    if match is None:
        raise InvalidMessage(f"{where} {value!r} is not an HL7 date/time", "102")
    year, month, day, hour, minute, second = match.groups()
    date = f"{year}{month}{day}" if month and day else ""
    try:
        if date:
            datetime.date(int(year), int(month), int(day))
        datetime.time(int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise InvalidMessage(f"{where} {value!r} is not a valid date/time", "102") from exc
    time = f"{hour}{minute or ''}{second or ''}" if hour else ""
    return date, time


# The order being mapped -------------------------------------------------------------------


@dataclass
class _Order:
    """The segments of one order (ORC group) and the message-level ones it shares."""

    msh: Segment
    pid: Segment | None
    pv1: Segment | None
    options: MappingOptions
    orc: Segment | None = None
    tq1: Segment | None = None
    obr: Segment | None = None
    ipc: Segment | None = None
    zds: Segment | None = None
    segments: list[str] = field(default_factory=list)

    @property
    def placer_order_number(self) -> str:
        return _raw(self.orc, 2) or _raw(self.obr, 2)

    @property
    def filler_order_number(self) -> str:
        return _raw(self.orc, 3) or _raw(self.obr, 3)

    @property
    def order_key(self) -> str:
        placer, filler = self.placer_order_number, self.filler_order_number
        if not placer and not filler:
            raise InvalidMessage(
                "no order number: ORC-2/OBR-2 (placer) and ORC-3/OBR-3 (filler) are empty", "101"
            )
        key = f"{placer}^{filler}"
        if len(key) > 128:
            raise InvalidMessage("placer and filler order numbers longer than 127", "102")
        return key


def _patient_id(order: _Order) -> str | None:
    return _value(order.pid, 3, 1, 1)


def _issuer(segment: Segment | None, rep: int) -> str | None:
    return _first(_value(segment, 3, rep, 4, 1), _value(segment, 3, rep, 4, 2))


def _other_patient_ids(order: _Order) -> list[Dataset] | None:
    items = []
    for rep in range(2, _repetitions(order.pid, 3) + 1):
        patient_id = _raw(order.pid, 3, rep, 1)
        if not patient_id:
            continue
        item = Dataset()
        item.PatientID = _checked("PatientID", "LO", patient_id, "PID-3", truncate=False)
        item.IssuerOfPatientID = _checked(
            "IssuerOfPatientID", "LO", _issuer(order.pid, rep) or "", "PID-3.4", truncate=False
        )
        item.TypeOfPatientID = "TEXT"
        items.append(item)
    return items or None


def _birth_date(order: _Order) -> str | None:
    return _date_time(_value(order.pid, 7), "PID-7")[0]


def _sex(order: _Order) -> str | None:
    value = _value(order.pid, 8)
    return None if value is None else SEXES.get(value.upper(), "")


def _location(order: _Order) -> str | None:
    parts = [_raw(order.pv1, 3, 1, comp) for comp in (1, 2, 3)]
    return " ".join(part for part in parts if part) or None


def _accession_number(order: _Order) -> str | None:
    return _first(_value(order.ipc, 1), _value(order.obr, 18))


def _requested_procedure_id(order: _Order) -> str | None:
    return _first(
        _value(order.ipc, 2),
        _value(order.obr, 19),
        _accession_number(order),
        order.filler_order_number[:16] or None,
        order.placer_order_number[:16] or None,
    )


def _study_instance_uid(order: _Order) -> str:
    sent = _first(_value(order.ipc, 3), _value(order.zds, 1))
    if sent:
        return sent
    # The same order always gets the same UID, so a change keeps the study.
    return f"2.25.{uuid.uuid5(_STUDY_UID_NAMESPACE, order.order_key).int}"


def _requested_procedure_code(order: _Order) -> list[Dataset] | None:
    return _code(order.obr, 44, 1, "OBR-44") or _code(order.obr, 4, 1, "OBR-4")


def _requested_procedure_description(order: _Order) -> str | None:
    return _first(
        _value(order.obr, 44, 1, 2),
        _value(order.obr, 4, 1, 2),
        _value(order.obr, 4, 1, 1),
    )


def _priority(order: _Order) -> str | None:
    code = _raw(order.tq1, 9) or _raw(order.obr, 27, 1, 6) or _raw(order.orc, 7, 1, 6)
    return PRIORITIES.get(code.upper()) if code else None


def _reason(order: _Order) -> str | None:
    return _first(_value(order.obr, 31, 1, 2), _value(order.obr, 31, 1, 1))


def _scheduled_procedure_step_id(order: _Order) -> str | None:
    return _first(_value(order.ipc, 4), _value(order.obr, 20), _requested_procedure_id(order))


def _modality(order: _Order) -> str | None:
    value = _first(_value(order.ipc, 5, 1, 1), _value(order.obr, 24))
    return value.upper() if value else value


def _station_ae_title(order: _Order) -> str | None:
    named = _raw(order.ipc, 9)
    if named:
        if not AE_TITLE_PATTERN.match(named):
            raise InvalidMessage(f"IPC-9 {named!r} is not an AE title", "102")
        return named
    filler_field = _raw(order.obr, 21)
    if filler_field and AE_TITLE_PATTERN.match(filler_field):
        return filler_field
    modality = _modality(order) or ""
    options = order.options
    return options.station_ae_titles.get(modality) or options.default_station_ae_title or None


def _start(order: _Order) -> tuple[str | None, str | None]:
    for where, value in (
        ("TQ1-7", _raw(order.tq1, 7)),
        ("OBR-27.4", _raw(order.obr, 27, 1, 4)),
        ("ORC-7.4", _raw(order.orc, 7, 1, 4)),
        ("OBR-36", _raw(order.obr, 36)),
        ("MSH-7", _raw(order.msh, 7)),
    ):
        if value:
            return _date_time(value, where)
    return None, None


def _protocol_code(order: _Order) -> list[Dataset] | None:
    return (
        _code(order.ipc, 6, 1, "IPC-6")
        or _code(order.obr, 4, 4, "OBR-4")
        or _code(order.obr, 4, 1, "OBR-4")
    )


def _step_description(order: _Order) -> str | None:
    return _first(
        _value(order.ipc, 6, 1, 2),
        _value(order.obr, 4, 1, 5),
        _value(order.obr, 4, 1, 2),
        _value(order.obr, 4, 1, 1),
    )


@dataclass(frozen=True)
class FieldMapping:
    """One row of the mapping: where the value comes from, where it goes, and the rule."""

    hl7: str
    dicom: str
    """DICOM keyword; with ``step``, of the ScheduledProcedureStepSequence item."""
    rule: str
    read: Callable[[_Order], Any] | None = None
    """The value (None: not sent); no reader for rows the code applies itself."""
    step: bool = False
    patient: bool = False
    """Applied by ADT^A08 too."""
    truncate: bool = False
    """Descriptive text cut to the VR's length; identifiers that do not fit are an error."""


ORDER_MAPPING: tuple[FieldMapping, ...] = (
    FieldMapping("MSH-18", "SpecificCharacterSet", "character set table below"),
    FieldMapping(
        "ORC-1 (ORC-5)",
        "(action)",
        "NW new; XO, SC change; CA, DC, OC cancel; SC with ORC-5 CA or DC cancel; others AR",
    ),
    FieldMapping(
        "ORC-2/OBR-2, ORC-3/OBR-3",
        "(order key)",
        "placer^filler order number (EI-1); one worklist item per key",
    ),
    FieldMapping("PID-3.1", "PatientID", "first repetition; required", _patient_id),
    FieldMapping(
        "PID-3.4",
        "IssuerOfPatientID",
        "assigning authority namespace ID, else its universal ID",
        lambda order: _issuer(order.pid, 1),
    ),
    FieldMapping(
        "PID-3 (repetitions 2+)",
        "OtherPatientIDsSequence",
        "PatientID, IssuerOfPatientID, TypeOfPatientID TEXT",
        _other_patient_ids,
    ),
    FieldMapping(
        "PID-5",
        "PatientName",
        "XPN family^given^middle^suffix^prefix to PN family^given^middle^prefix^suffix; "
        "XPN-8 I and P repetitions fill the ideographic and phonetic groups; required",
        lambda order: _xpn(order.pid, 5),
        patient=True,
    ),
    FieldMapping(
        "PID-7",
        "PatientBirthDate",
        "date part; partial dates left empty",
        _birth_date,
        patient=True,
    ),
    FieldMapping(
        "PID-8", "PatientSex", "M, F, O; A and N as O; U and others empty", _sex, patient=True
    ),
    FieldMapping(
        "PV1-8",
        "ReferringPhysicianName",
        "XCN family^given^middle^suffix^prefix to PN",
        lambda order: _xcn(order.pv1, 8),
    ),
    FieldMapping("PV1-19.1", "AdmissionID", "visit number", lambda order: _value(order.pv1, 19)),
    FieldMapping(
        "PV1-3",
        "CurrentPatientLocation",
        "point of care, room, bed",
        _location,
        truncate=True,
    ),
    FieldMapping(
        "ORC-2.1/OBR-2.1",
        "PlacerOrderNumberImagingServiceRequest",
        "",
        lambda order: order.placer_order_number or None,
    ),
    FieldMapping(
        "ORC-3.1/OBR-3.1",
        "FillerOrderNumberImagingServiceRequest",
        "",
        lambda order: order.filler_order_number or None,
    ),
    FieldMapping(
        "ORC-12/OBR-16",
        "RequestingPhysician",
        "ordering provider, XCN to PN",
        lambda order: _first(_xcn(order.orc, 12), _xcn(order.obr, 16)),
    ),
    FieldMapping("IPC-1/OBR-18", "AccessionNumber", "", _accession_number),
    FieldMapping(
        "IPC-2/OBR-19",
        "RequestedProcedureID",
        "else the accession number, else the filler, else the placer order number (16 chars)",
        _requested_procedure_id,
    ),
    FieldMapping(
        "IPC-3/ZDS-1",
        "StudyInstanceUID",
        "else 2.25 UID derived from the order key (the same for every message of the order)",
        _study_instance_uid,
    ),
    FieldMapping(
        "OBR-44/OBR-4.1-3",
        "RequestedProcedureCodeSequence",
        "identifier, text, coding system (L when empty)",
        _requested_procedure_code,
    ),
    FieldMapping(
        "OBR-44.2/OBR-4.2",
        "RequestedProcedureDescription",
        "",
        _requested_procedure_description,
        truncate=True,
    ),
    FieldMapping(
        "TQ1-9/OBR-27.6/ORC-7.6",
        "RequestedProcedurePriority",
        "S STAT; A, P, C HIGH; R ROUTINE; T MEDIUM",
        _priority,
    ),
    FieldMapping(
        "OBR-31",
        "ReasonForTheRequestedProcedure",
        "text, else identifier",
        _reason,
        truncate=True,
    ),
    FieldMapping(
        "OBR-30",
        "PatientTransportArrangements",
        "",
        lambda order: _value(order.obr, 30),
        truncate=True,
    ),
    FieldMapping("OBR-13", "MedicalAlerts", "", lambda order: _value(order.obr, 13), truncate=True),
    FieldMapping(
        "IPC-4/OBR-20",
        "ScheduledProcedureStepID",
        "else the RequestedProcedureID",
        _scheduled_procedure_step_id,
        step=True,
    ),
    FieldMapping("IPC-5/OBR-24", "Modality", "upper case", _modality, step=True),
    FieldMapping(
        "IPC-9/OBR-21",
        "ScheduledStationAETitle",
        "OBR-21 only when it is an AE title; else hl7_station_ae_titles[Modality], "
        "else hl7_default_station_ae_title",
        _station_ae_title,
        step=True,
    ),
    FieldMapping(
        "IPC-7",
        "ScheduledStationName",
        "",
        lambda order: _value(order.ipc, 7),
        step=True,
    ),
    FieldMapping(
        "IPC-8",
        "ScheduledProcedureStepLocation",
        "",
        lambda order: _value(order.ipc, 8),
        step=True,
        truncate=True,
    ),
    FieldMapping(
        "TQ1-7/OBR-27.4/ORC-7.4/OBR-36/MSH-7",
        "ScheduledProcedureStepStartDate",
        "first one sent; local time, offset dropped",
        lambda order: _start(order)[0],
        step=True,
    ),
    FieldMapping(
        "(as above)",
        "ScheduledProcedureStepStartTime",
        "HH[MM[SS]]",
        lambda order: _start(order)[1],
        step=True,
    ),
    FieldMapping(
        "OBR-34",
        "ScheduledPerformingPhysicianName",
        "technician (first repetition) to PN",
        lambda order: _ndl(order.obr, 34),
        step=True,
    ),
    FieldMapping(
        "IPC-6/OBR-4.4-6/OBR-4.1-3",
        "ScheduledProtocolCodeSequence",
        "the alternate code of OBR-4 when sent, else its code",
        _protocol_code,
        step=True,
    ),
    FieldMapping(
        "IPC-6.2/OBR-4.5/OBR-4.2",
        "ScheduledProcedureStepDescription",
        "",
        _step_description,
        step=True,
        truncate=True,
    ),
)


def mapping_table() -> str:
    """The mapping as a Markdown table (the README shows it)."""
    lines = ["| HL7 v2 | DICOM | Rule |", "| --- | --- | --- |"]
    for row in ORDER_MAPPING:
        dicom = f">{row.dicom}" if row.step else row.dicom
        lines.append(f"| {row.hl7} | {dicom} | {row.rule} |")
    return "\n".join(lines)


def _checked(keyword: str, vr: str, value: str, where: str, *, truncate: bool) -> str:
    """``value`` if it is a valid ``vr`` value (descriptive text cut to length), else raise."""
    if vr not in ("ST", "LT", "UT") and "\\" in value:
        raise InvalidMessage(f"{where}: {keyword} may not contain a backslash", "102")
    if vr == "PN":
        if any(len(group) > 64 for group in value.split("=")):
            raise InvalidMessage(f"{where}: {keyword} is longer than 64 characters", "102")
        return value
    limit = _MAX_LENGTH.get(vr)
    if limit is not None and len(value) > limit:
        if not truncate:
            raise InvalidMessage(
                f"{where}: {keyword} {value!r} is longer than {limit} characters", "102"
            )
        value = value[:limit]
    if vr == "CS" and not _CS.match(value):
        raise InvalidMessage(f"{where}: {keyword} {value!r} is not a DICOM code string", "102")
    if vr == "UI" and value and not UID(value).is_valid:
        raise InvalidMessage(f"{where}: {keyword} {value!r} is not a valid UID", "102")
    return value


def _put(target: Dataset, row: FieldMapping, value: Any) -> None:
    vr = dictionary_VR(row.dicom)
    if vr == "SQ":
        setattr(target, row.dicom, value or [])
        return
    text = _checked(
        row.dicom, vr, "" if value is None else str(value), row.hl7, truncate=row.truncate
    )
    setattr(target, row.dicom, text)


# Decoding ---------------------------------------------------------------------------------


def _parse(text: str) -> Any:
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip()
    if not text.startswith("MSH"):
        raise MessageRejected("not an HL7 v2 message: it does not begin with MSH", "100")
    try:
        return hl7.parse(text)
    except Exception as exc:
        raise MessageRejected(f"cannot parse the message: {exc}", "100") from exc


def read_header(raw: bytes) -> Any:
    """The message parsed as Latin-1: enough to read its MSH and to answer it."""
    message = _parse(raw.decode("latin_1"))
    try:
        message.segment("MSH")
    except KeyError as exc:  # pragma: no cover - _parse checks the first segment
        raise MessageRejected("no MSH segment", "100") from exc
    return message


def decode(
    raw: bytes, header: Any | None = None, *, default_character_set: str = "UNICODE UTF-8"
) -> ReceivedMessage:
    """Decode a message in its MSH-18 character set (``default_character_set`` when empty).

    With the default set, a message that is all ASCII gets no SpecificCharacterSet."""
    header = header if header is not None else read_header(raw)
    msh = header.segment("MSH")
    declared = _raw(msh, 18).upper()
    name = declared or default_character_set.upper()
    if name not in CHARACTER_SETS:
        raise MessageRejected(
            f"character set {name!r} (MSH-18) is not supported; supported: "
            + ", ".join(CHARACTER_SETS),
            "103",
        )
    codec, specific_character_set = CHARACTER_SETS[name]
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise InvalidMessage(
            f"the message is not valid {name} text (byte {exc.start}); "
            + ("check MSH-18" if declared else "declare its character set in MSH-18"),
            "102",
        ) from exc
    if not declared and text.isascii():
        specific_character_set = ""
    message = _parse(text)
    msh = message.segment("MSH")
    code, event = _raw(msh, 9, 1, 1).upper(), _raw(msh, 9, 1, 2).upper()
    if not code:
        raise MessageRejected("MSH-9 message type is empty", "200")
    control_id = _raw(msh, 10)
    if not control_id:
        raise InvalidMessage("MSH-10 message control ID is empty", "101")
    return ReceivedMessage(
        message=message,
        message_type=f"{code}^{event}" if event else code,
        control_id=control_id,
        version=_raw(msh, 12),
        character_set=name,
        specific_character_set=specific_character_set,
    )


# Mapping ----------------------------------------------------------------------------------


def map_message(
    received: ReceivedMessage, options: MappingOptions | None = None
) -> list[OrderUpdate] | PatientUpdate:
    """The worklist changes a message asks for; raise ``HL7Error`` for what is not applied."""
    options = options or MappingOptions()
    kind = received.message_type
    if kind in ORDER_MESSAGES:
        return map_orders(received, options)
    if kind in PATIENT_MESSAGES:
        return map_patient_update(received)
    supported = ", ".join(ORDER_MESSAGES + PATIENT_MESSAGES)
    if kind.split("^")[0] in ("ORM", "OMI", "ADT"):
        raise MessageRejected(f"event {kind} is not supported (only {supported})", "201")
    raise MessageRejected(f"message type {kind} is not supported (only {supported})", "200")


def _segment_id(segment: Segment) -> str:
    return str(segment[0]).strip().upper()


def _split_orders(received: ReceivedMessage, options: MappingOptions) -> list[_Order]:
    message = received.message
    msh = message.segment("MSH")
    pid = pv1 = None
    orders: list[_Order] = []
    for segment in message:
        name = _segment_id(segment)
        if name == "ORC":
            orders.append(_Order(msh=msh, pid=pid, pv1=pv1, options=options, orc=segment))
        elif name in ("TQ1", "OBR", "IPC", "ZDS"):
            if not orders:
                raise InvalidMessage(f"{name} segment before the first ORC segment", "100")
            order = orders[-1]
            if name in order.segments and name in ("OBR", "IPC"):
                raise MessageRejected(
                    f"more than one {name} segment in one order: several requested "
                    "procedures or scheduled procedure steps per order are not supported",
                    "100",
                )
            if name not in order.segments:
                setattr(order, name.lower(), segment)
            order.segments.append(name)
        elif name == "PID" and pid is None and not orders:
            pid = segment
        elif name == "PV1" and pv1 is None and not orders:
            pv1 = segment
    if not orders:
        raise InvalidMessage("no ORC segment: the message carries no order", "101")
    for order in orders:
        order.pid, order.pv1 = pid, pv1
    return orders


def _action(order: _Order) -> Action:
    control = _raw(order.orc, 1).upper()
    if not control:
        raise InvalidMessage("ORC-1 order control is empty", "101")
    action = ORDER_CONTROLS.get(control)
    if action is None:
        raise MessageRejected(
            f"order control {control} (ORC-1) is not supported; dicomhub applies "
            + ", ".join(ORDER_CONTROLS),
            "103",
        )
    if control == "SC" and _raw(order.orc, 5).upper() in ("CA", "DC"):
        return Action.CANCEL
    return action


def map_orders(received: ReceivedMessage, options: MappingOptions) -> list[OrderUpdate]:
    """Each order (ORC group) of an ORM^O01 or OMI^O23 as an ``OrderUpdate``."""
    updates: list[OrderUpdate] = []
    keys: set[str] = set()
    for order in _split_orders(received, options):
        action = _action(order)
        key = order.order_key
        if key in keys:
            raise MessageRejected(
                f"order {key} appears twice: several scheduled procedure steps per order "
                "are not supported",
                "100",
            )
        keys.add(key)
        dataset = Dataset() if action is Action.CANCEL else _order_dataset(order, received)
        updates.append(OrderUpdate(action, key, dataset, _raw(order.orc, 1).upper()))
    return updates


def _order_dataset(order: _Order, received: ReceivedMessage) -> Dataset:
    if order.pid is None:
        raise InvalidMessage("no PID segment: the order names no patient", "101")
    if not _patient_id(order):
        raise InvalidMessage("PID-3 patient identifier list is empty", "101")
    if not _xpn(order.pid, 5):
        raise InvalidMessage("PID-5 patient name is empty", "101")
    dataset = Dataset()
    if received.specific_character_set:
        dataset.SpecificCharacterSet = received.specific_character_set
    step = Dataset()
    for row in ORDER_MAPPING:
        if row.read is not None:
            _put(step if row.step else dataset, row, row.read(order))
    dataset.ScheduledProcedureStepSequence = [step]
    return dataset


def map_patient_update(received: ReceivedMessage) -> PatientUpdate:
    """An ADT^A08: the patient (PID-3) and the attributes its PID sends; an empty field
    leaves the attribute as it is, the HL7 null ``""`` empties it."""
    message = received.message
    try:
        pid = message.segment("PID")
    except KeyError as exc:
        raise InvalidMessage("no PID segment", "101") from exc
    order = _Order(msh=message.segment("MSH"), pid=pid, pv1=None, options=MappingOptions())
    patient_id = _patient_id(order)
    if not patient_id:
        raise InvalidMessage("PID-3 patient identifier list is empty", "101")
    changes = Dataset()
    if received.specific_character_set:
        changes.SpecificCharacterSet = received.specific_character_set
    for row in ORDER_MAPPING:
        if row.patient and row.read is not None:
            value = row.read(order)
            if value is not None:
                _put(changes, row, value)
    return PatientUpdate(
        patient_id=_checked("PatientID", "LO", patient_id, "PID-3", truncate=False),
        issuer_of_patient_id=_checked(
            "IssuerOfPatientID", "LO", _issuer(pid, 1) or "", "PID-3.4", truncate=False
        ),
        changes=changes,
    )
