"""Modality Performed Procedure Step SOP Class SCP (PS3.4 F.7): N-CREATE and N-SET.

A modality reports a procedure step it performs: N-CREATE when it starts (status IN
PROGRESS), N-SETs while it runs, and a last N-SET that makes it COMPLETED or DISCONTINUED,
after which the step may no longer be updated (PS3.4 F.7.2.2.3).  Every request is checked
against PS3.4 Table F.7.2-1 (encoded below as ``TABLE_F_7_2_1``), then recorded with its
history (``index.mpps``).

Statuses (PS3.4 F.7.2.1.3, F.7.2.2.3, Table F.7.2-2 and PS3.7 C):

- 0x0120 Missing Attribute: a Type 1 or Type 2 attribute is absent (the ErrorComment names it);
- 0x0121 Missing Attribute Value: a Type 1 attribute is present but empty;
- 0x0106 Invalid Attribute Value, with the offending attributes as the response's Attribute
  List: N-CREATE status other than IN PROGRESS, an unknown status, a malformed UID, date or
  time, or an N-SET that would change an attribute the table marks "Not allowed";
- 0x0111 Duplicate SOP Instance: N-CREATE of a SOP Instance UID that exists;
- 0x0117 Invalid SOP Instance: N-CREATE with an Affected SOP Instance UID that is no UID;
- 0x0112 No Such Object Instance: N-SET of an unknown instance;
- 0x0110 Processing Failure, Error Comment "Performed Procedure Step Object may no longer be
  updated", Error ID 0xA710: N-SET after COMPLETED or DISCONTINUED.

Workflow links: each Scheduled Step Attributes Sequence item is matched with the worklist
(Study Instance UID, Accession Number, Requested Procedure ID, Scheduled Procedure Step ID);
the step is linked to the first item found, or flagged ``unscheduled``.  The worklist items
found follow the step: IN PROGRESS on N-CREATE, COMPLETED or DISCONTINUED on the final N-SET
(a CANCELLED item is left as it is).  An unscheduled step whose order arrived meanwhile is
linked at its final N-SET.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from dicomhub.config import Service, Settings
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.errors import (
    InvalidAttributeValue,
    InvalidSOPInstance,
    MissingAttribute,
    MissingAttributeValue,
    ProcedureStepFinal,
)
from dicomhub.header import is_valid_uid
from dicomhub.index.mpps import Mpps, MppsRepository, MppsStatus
from dicomhub.index.worklist import WorklistRepository, WorklistStatus

LOG = logging.getLogger("dicomhub.dicom")
MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
NOT_ALLOWED = "-"
"""N-SET usage of an attribute the SCU may not set (Table F.7.2-1 "Not allowed")."""
_CHARSET = "00080005"
_BULK_THRESHOLD = 1 << 20

Operation = Literal["N-CREATE", "N-SET", "final"]


def _uid(value: Any) -> bool:
    return is_valid_uid(str(value))


def _date(value: Any) -> bool:
    text = str(value).strip()
    if not re.fullmatch(r"\d{8}", text):
        return False
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


_TM = re.compile(r"(?:[01]\d|2[0-3])(?:[0-5]\d(?:(?:[0-5]\d|60)(?:\.\d{1,6})?)?)?")


def _time(value: Any) -> bool:
    # The ACR-NEMA form HH:MM:SS is still sent by some modalities (PS3.5 6.2, TM notes).
    return bool(_TM.fullmatch(str(value).strip().replace(":", "")))


def _ae(value: Any) -> bool:
    text = str(value)
    return 0 < len(text.strip()) <= 16 and "\\" not in text


@dataclass(frozen=True)
class Requirement:
    """One row of PS3.4 Table F.7.2-1, with the SCU's requirement type per operation.

    ``create`` and ``set``: "1" (present with a value), "2" (present, may be empty), "3"
    (optional) or ``NOT_ALLOWED`` (N-SET only).  ``final``: the type once the status is set
    to COMPLETED or DISCONTINUED, where the table gives one.  ``valid``: a check of the value.
    """

    keyword: str
    create: str
    set: str = NOT_ALLOWED
    final: str = ""
    items: tuple[Requirement, ...] = ()
    valid: Callable[[Any], bool] | None = None

    @property
    def tag(self) -> str:
        """The tag as (gggg,eeee)."""
        tag = Tag(tag_for_keyword(self.keyword) or 0)
        return f"({tag.group:04X},{tag.element:04X})"

    def usage(self, operation: Operation) -> str:
        """The requirement type for one operation."""
        if operation == "N-CREATE":
            return self.create
        if operation == "N-SET":
            return self.set
        return self.final or self.create


def _r(
    keyword: str,
    create: str,
    set_: str = NOT_ALLOWED,
    final: str = "",
    items: tuple[Requirement, ...] = (),
    valid: Callable[[Any], bool] | None = None,
) -> Requirement:
    return Requirement(keyword, create, set_, final, items, valid)


_REFERENCE_NO_SET = (
    _r("ReferencedSOPClassUID", "1", valid=_uid),
    _r("ReferencedSOPInstanceUID", "1", valid=_uid),
)
_REFERENCE = (
    _r("ReferencedSOPClassUID", "1", "1", valid=_uid),
    _r("ReferencedSOPInstanceUID", "1", "1", valid=_uid),
)

TABLE_F_7_2_1: tuple[Requirement, ...] = (
    # Performed Procedure Step Relationship
    _r(
        "ScheduledStepAttributesSequence",
        "1",
        items=(
            _r("StudyInstanceUID", "1", valid=_uid),
            _r("ReferencedStudySequence", "2", items=_REFERENCE_NO_SET),
            _r("AccessionNumber", "2"),
            _r("IssuerOfAccessionNumberSequence", "3"),
            _r("PlacerOrderNumberImagingServiceRequest", "3"),
            _r("OrderPlacerIdentifierSequence", "3"),
            _r("FillerOrderNumberImagingServiceRequest", "3"),
            _r("OrderFillerIdentifierSequence", "3"),
            _r("RequestedProcedureID", "2"),
            _r("RequestedProcedureCodeSequence", "3"),
            _r("RequestedProcedureDescription", "2"),
            _r("ScheduledProcedureStepID", "2"),
            _r("ScheduledProcedureStepDescription", "2"),
            _r("ScheduledProtocolCodeSequence", "2"),
        ),
    ),
    _r("PatientName", "2"),
    _r("PatientID", "2"),
    _r("IssuerOfPatientID", "3"),
    _r("IssuerOfPatientIDQualifiersSequence", "3"),
    _r("OtherPatientIDsSequence", "3"),
    _r("PatientBirthDate", "2"),
    _r("PatientSex", "2"),
    _r("ReferencedPatientSequence", "2", items=_REFERENCE_NO_SET),
    _r("AdmissionID", "3"),
    _r("IssuerOfAdmissionIDSequence", "3"),
    _r("ServiceEpisodeID", "3"),
    _r("IssuerOfServiceEpisodeIDSequence", "3"),
    _r("ServiceEpisodeDescription", "3"),
    # Performed Procedure Step Information
    _r("PerformedProcedureStepID", "1"),
    _r("PerformedStationAETitle", "1", valid=_ae),
    _r("PerformedStationName", "2"),
    _r("PerformedLocation", "2"),
    _r("PerformedProcedureStepStartDate", "1", valid=_date),
    _r("PerformedProcedureStepStartTime", "1", valid=_time),
    _r("PerformedProcedureStepStatus", "1", "3"),
    _r("PerformedProcedureStepDescription", "2", "3"),
    _r("PerformedProcedureTypeDescription", "2", "3"),
    _r("ProcedureCodeSequence", "2", "3"),
    _r("ReasonForPerformedProcedureCodeSequence", "3", "3"),
    _r("PerformedProcedureStepEndDate", "2", "3", "1", valid=_date),
    _r("PerformedProcedureStepEndTime", "2", "3", "1", valid=_time),
    _r("CommentsOnThePerformedProcedureStep", "3", "3"),
    _r("PerformedProcedureStepDiscontinuationReasonCodeSequence", "3", "3"),
    # Image Acquisition Results
    _r("Modality", "1"),
    _r("StudyID", "2"),
    _r("PerformedProtocolCodeSequence", "2", "3"),
    _r(
        "PerformedSeriesSequence",
        "2",
        "3",
        "1",  # at least one item at the final state (Table F.7.2-1 note 2)
        items=(
            _r("PerformingPhysicianName", "2", "2"),
            _r("ProtocolName", "1", "1"),
            _r("OperatorsName", "2", "2"),
            _r("SeriesInstanceUID", "1", "1", valid=_uid),
            _r("SeriesDescription", "2", "2"),
            _r("RetrieveAETitle", "2", "2"),
            _r("ArchiveRequested", "3", "3"),
            _r("ReferencedImageSequence", "2", "2", items=_REFERENCE),
            _r("ReferencedNonImageCompositeSOPInstanceSequence", "2", "2", items=_REFERENCE),
        ),
    ),
)
"""PS3.4 Table F.7.2-1, the SCU's requirement types (the first of each "SCU/SCP" pair).

Attributes not listed are "All other Attributes" (3/3: optional in both).  The code sequence
macros (Tables F.7.2-1a to -1e) and the 1C rules inside them are not checked.
"""

_NOT_SETTABLE = tuple(r for r in TABLE_F_7_2_1 if r.set == NOT_ALLOWED)


def _element(data: Dataset, keyword: str) -> DataElement | None:
    """The element ``keyword`` of ``data``, None when absent."""
    if keyword not in data:
        return None
    element: DataElement = data[keyword]
    return element


def _where(path: tuple[tuple[str, int], ...]) -> str:
    return "".join(f" in {keyword} item {number}" for keyword, number in reversed(path))


def _attribute_list(data: Dataset, keyword: str) -> Dataset:
    """The top-level attribute ``keyword`` of ``data``, as an Attribute List."""
    offending = Dataset()
    if keyword in data:
        offending[keyword] = data[keyword]
    return offending


def check(
    data: Dataset,
    operation: Operation,
    *,
    strict: bool = True,
    rules: Iterable[Requirement] = TABLE_F_7_2_1,
    path: tuple[tuple[str, int], ...] = (),
    top: Dataset | None = None,
) -> None:
    """Check ``data`` against Table F.7.2-1 for one operation; raise on the first problem.

    ``operation`` "final" checks the step as it will be when it becomes COMPLETED or
    DISCONTINUED.  With ``strict`` false, absent Type 2 attributes are let through.
    """
    top = data if top is None else top
    for rule in rules:
        usage = rule.usage(operation)
        where = _where(path)
        element = _element(data, rule.keyword)
        if element is None:
            if usage == "1" or (usage == "2" and strict):
                raise MissingAttribute(f"{rule.keyword} {rule.tag} missing{where}")
            continue
        if usage == "1" and element.is_empty:
            raise MissingAttributeValue(f"{rule.keyword} {rule.tag} is empty{where}")
        top_keyword = path[0][0] if path else rule.keyword
        if rule.valid is not None and not element.is_empty:
            values = element.value if element.VM > 1 else [element.value]
            bad = next((v for v in values if not rule.valid(v)), None)
            if bad is not None:
                raise InvalidAttributeValue(
                    f"{rule.keyword} {rule.tag} value {str(bad)[:24]!r} invalid{where}",
                    _attribute_list(top, top_keyword),
                )
        if rule.items and element.VR == "SQ":
            for number, item in enumerate(element.value, start=1):
                check(
                    item,
                    operation,
                    strict=strict,
                    rules=rule.items,
                    path=(*path, (rule.keyword, number)),
                    top=top,
                )


def _status(data: Dataset, operation: str) -> MppsStatus | None:
    """The Performed Procedure Step Status of a request, None when absent."""
    if "PerformedProcedureStepStatus" not in data:
        return None
    text = str(data.PerformedProcedureStepStatus or "").strip()
    try:
        return MppsStatus(text)
    except ValueError:
        raise InvalidAttributeValue(
            f"PerformedProcedureStepStatus {text[:16]!r} is not a defined term ({operation})",
            _attribute_list(data, "PerformedProcedureStepStatus"),
        ) from None


def to_json(data: Dataset) -> dict[str, Any]:
    """The request's attributes as DICOM JSON (PS3.18 F); group lengths are left out."""
    result: dict[str, Any] = {}
    for tag in list(data.keys()):
        if tag.element == 0:
            continue
        try:
            element: DataElement = data[tag]
            result[f"{tag:08X}"] = element.to_json_dict(None, _BULK_THRESHOLD)
        except Exception as exc:
            keyword = data[tag].keyword if tag in data else f"{tag:08X}"
            raise InvalidAttributeValue(
                f"{keyword or f'{tag:08X}'} cannot be read: {type(exc).__name__}",
                _attribute_list(data, keyword) if keyword else None,
            ) from exc
    return result


def _normalised(element: dict[str, Any] | None) -> Any:
    """An element's value for comparison: absent and empty are the same."""
    if not element:
        return []
    if "InlineBinary" in element:
        return element["InlineBinary"]
    values = element.get("Value") or []
    if element.get("vr") == "SQ":
        return [
            {tag: _normalised(v) for tag, v in item.items() if _normalised(v) != []}
            for item in values
        ]
    return values


def _text(item: Dataset, keyword: str) -> str:
    value = item.get(keyword, "")
    return str(value if value is not None else "").strip()


class MppsService:
    """N-CREATE and N-SET of the Modality Performed Procedure Step SOP Class."""

    def __init__(
        self,
        repository: MppsRepository,
        worklist: WorklistRepository,
        access: AccessPolicy,
        settings: Settings,
    ) -> None:
        self.repository = repository
        self.worklist = worklist
        self.access = access
        self.settings = settings

    @property
    def strict(self) -> bool:
        """Whether Type 2 attributes must be present (setting ``mpps_strict``)."""
        return bool(self.settings.mpps_strict)

    # N-CREATE ---------------------------------------------------------------------------------

    def create(
        self, association: AssociationInfo, sop_instance_uid: str | None, data: Dataset
    ) -> tuple[str, Dataset | None]:
        """Record a new step; returns its SOP Instance UID (assigned when the SCU gave none)
        and the N-CREATE-RSP Attribute List (None: the attributes are kept as sent)."""
        self.access.check_service(association, Service.MPPS)
        uid = (sop_instance_uid or "").strip()
        if not uid:
            # No Affected SOP Instance UID: the data set's own, else a new one (PS3.7 10.1.5).
            given = _element(data, "SOPInstanceUID")
            uid = str(given.value or "").strip() if given is not None else ""
            uid = uid if is_valid_uid(uid) else generate_uid()
        elif not is_valid_uid(uid):
            raise InvalidSOPInstance(f"Affected SOP Instance UID {uid[:64]!r} is not a UID")
        self._check_identity(data, uid)
        status = _status(data, "N-CREATE")
        if status is None:
            raise MissingAttribute("PerformedProcedureStepStatus (0040,0252) missing")
        if status is not MppsStatus.IN_PROGRESS:
            # PS3.4 F.7.2.1.3: only IN PROGRESS is accepted, else 0106H with an Attribute List.
            raise InvalidAttributeValue(
                f"PerformedProcedureStepStatus must be IN PROGRESS, not {status.value}",
                _attribute_list(data, "PerformedProcedureStepStatus"),
            )
        check(data, "N-CREATE", strict=self.strict)
        attributes = to_json(data)
        linked = self._scheduled_items(data)
        step = self.repository.create(
            uid,
            attributes,
            calling_ae_title=association.calling_ae_title,
            worklist_item_id=linked[0] if linked else None,
        )
        self._follow(step, linked, WorklistStatus.IN_PROGRESS)
        LOG.info(
            "MPPS N-CREATE %s from %s: IN PROGRESS, %s",
            uid,
            association,
            f"worklist item {linked[0]}" if linked else "unscheduled",
        )
        return uid, None

    # N-SET ------------------------------------------------------------------------------------

    def set(self, association: AssociationInfo, sop_instance_uid: str, data: Dataset) -> None:
        """Update a step that is IN PROGRESS (the N-SET-RSP carries no Attribute List)."""
        self.access.check_service(association, Service.MPPS)
        uid = (sop_instance_uid or "").strip()
        request: dict[str, Any] = {}

        def apply(step: Mpps) -> tuple[MppsStatus, dict[str, Any]]:
            # Unknown instance (0x0112), then a final step (0x0110), then the request.
            if step.status.final:
                raise ProcedureStepFinal(f"MPPS {uid} is {step.status.value}: no more N-SET")
            stored_charset = step.attributes.get(_CHARSET) or {}
            added_charset = "SpecificCharacterSet" not in data and bool(stored_charset)
            if added_charset:
                # N-SET text is in the character set of the N-CREATE (PS3.4 F.7.2.2.1).
                data.SpecificCharacterSet = stored_charset.get("Value", [])
            self._check_identity(data, uid)
            request_status = _status(data, "N-SET")
            check(data, "N-SET", strict=self.strict)
            request.update(to_json(data))
            if added_charset:
                request.pop(_CHARSET, None)
                del data.SpecificCharacterSet
            self._check_unchanged(data, request, step)
            merged = dict(step.attributes)
            merged.update(request)
            if (
                _CHARSET in request
                and stored_charset
                and (_normalised(request[_CHARSET]) != _normalised(stored_charset))
            ):
                # Values set in another character set: the stored (Unicode) text is kept
                # with the one character set that covers both.
                merged[_CHARSET] = {"vr": "CS", "Value": ["ISO_IR 192"]}
            status = request_status or step.status
            if status.final:
                self._check_final(merged, status)
            return status, merged

        before, after = self.repository.set(
            uid, request, calling_ae_title=association.calling_ae_title, apply=apply
        )
        if after.status.final:
            self._finish(after)
        LOG.info(
            "MPPS N-SET %s from %s: %s -> %s",
            uid,
            association,
            before.status.value,
            after.status.value,
        )

    # Checks -----------------------------------------------------------------------------------

    @staticmethod
    def _check_identity(data: Dataset, uid: str) -> None:
        """SOP Class/Instance UID in the data set, when present, must be the step's own."""
        for keyword, expected in (("SOPClassUID", MPPS_SOP_CLASS), ("SOPInstanceUID", uid)):
            element = _element(data, keyword)
            if element is not None and str(element.value or "").strip() not in ("", expected):
                raise InvalidAttributeValue(
                    f"{keyword} differs from the command's ({expected})",
                    _attribute_list(data, keyword),
                )

    @staticmethod
    def _check_unchanged(data: Dataset, request: dict[str, Any], step: Mpps) -> None:
        """Attributes Table F.7.2-1 does not allow in N-SET may be repeated, not changed."""
        for rule in _NOT_SETTABLE:
            tag = f"{tag_for_keyword(rule.keyword):08X}"
            if tag not in request:
                continue
            if _normalised(request[tag]) != _normalised(step.attributes.get(tag)):
                raise InvalidAttributeValue(
                    f"{rule.keyword} {rule.tag} may not be changed by N-SET",
                    _attribute_list(data, rule.keyword),
                )

    def _check_final(self, merged: dict[str, Any], status: MppsStatus) -> None:
        """The Final State requirements of Table F.7.2-1 (PS3.4 F.7.2.2.2)."""
        final = Dataset.from_json(merged)
        strict = self.strict
        series = final.get("PerformedSeriesSequence")
        if not strict and status is MppsStatus.DISCONTINUED and not series:
            rules = tuple(r for r in TABLE_F_7_2_1 if r.keyword != "PerformedSeriesSequence")
            check(final, "final", strict=False, rules=rules)
            return
        try:
            check(final, "final", strict=strict)
        except (MissingAttribute, MissingAttributeValue) as exc:
            raise type(exc)(f"{exc.message} for {status.value}") from None

    # Workflow links ---------------------------------------------------------------------------

    def _scheduled_items(self, data: Dataset) -> list[int]:
        """Worklist items matching the Scheduled Step Attributes Sequence, first match first."""
        found: list[int] = []
        for item in data.get("ScheduledStepAttributesSequence") or []:
            keys = {
                "study_instance_uid": _text(item, "StudyInstanceUID"),
                "accession_number": _text(item, "AccessionNumber"),
                "requested_procedure_id": _text(item, "RequestedProcedureID"),
                "scheduled_procedure_step_id": _text(item, "ScheduledProcedureStepID"),
            }
            if not any(keys.values()):
                continue
            match = self.worklist.match_scheduled_step(**keys)
            if match is not None and match.id not in found:
                found.append(match.id)
        return found

    def _finish(self, step: Mpps) -> None:
        """The final N-SET: the linked worklist items take the step's final status."""
        linked = [step.worklist_item_id] if step.worklist_item_id is not None else []
        try:
            scheduled = Dataset.from_json(step.attributes)
            for item_id in self._scheduled_items(scheduled):
                if item_id not in linked:
                    linked.append(item_id)
        except Exception:
            LOG.exception("MPPS %s: worklist items could not be matched", step.sop_instance_uid)
        if linked and step.worklist_item_id is None:
            step = self.repository.link(step.id, linked[0])
            LOG.info(
                "MPPS %s: linked to worklist item %d at %s",
                step.sop_instance_uid,
                linked[0],
                step.status.value,
            )
        target = (
            WorklistStatus.COMPLETED
            if step.status is MppsStatus.COMPLETED
            else WorklistStatus.DISCONTINUED
        )
        self._follow(step, linked, target)

    def _follow(self, step: Mpps, item_ids: list[int], status: WorklistStatus) -> None:
        """Set the worklist items' status after the step was recorded.  The step is the
        record of what was performed: a failure here is logged, the request still succeeds."""
        for item_id in item_ids:
            try:
                item = self.worklist.get(item_id)
                if item is None:
                    continue
                if item.status == WorklistStatus.CANCELLED:
                    LOG.warning(
                        "MPPS %s: worklist item %d is CANCELLED; left as it is (%s)",
                        step.sop_instance_uid,
                        item_id,
                        status.value,
                    )
                    continue
                self.worklist.set_status(item_id, status)
            except Exception:
                LOG.exception(
                    "MPPS %s: worklist item %d could not be set to %s",
                    step.sop_instance_uid,
                    item_id,
                    status.value,
                )
