"""Supported SOP classes, roles and transfer syntaxes, per service: the registry.

It drives presentation-context negotiation (``dicom.server``) and generates the conformance
statement ``docs/conformance.md`` (``dicomhub conformance``); a test fails when the two drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom.sop_class import _STORAGE_CLASSES

from dicomhub.config import Service
from dicomhub.errors import OUTCOMES

UNCOMPRESSED = (
    UID("1.2.840.10008.1.2"),  # Implicit VR Little Endian
    UID("1.2.840.10008.1.2.1"),  # Explicit VR Little Endian
    UID("1.2.840.10008.1.2.1.99"),  # Deflated Explicit VR Little Endian
    UID("1.2.840.10008.1.2.2"),  # Explicit VR Big Endian
)
ALL_TRANSFER_SYNTAXES = tuple(UNCOMPRESSED) + tuple(
    UID(t) for t in AllTransferSyntaxes if UID(t) not in UNCOMPRESSED
)


@dataclass(frozen=True)
class SOPClassSupport:
    """One SOP class dicomhub supports in one role."""

    uid: UID
    name: str
    service: Service
    role: str  # "SCP" or "SCU"
    transfer_syntaxes: tuple[UID, ...]


def _storage_uids() -> set[str]:
    """Every storage SOP class pynetdicom or pydicom knows, retired and trial ones included."""
    from pydicom._uid_dict import UID_dictionary

    uids = set(_STORAGE_CLASSES.values())
    for uid, (name, kind, *_rest) in UID_dictionary.items():
        if (
            kind == "SOP Class"
            and "Storage" in name
            and not any(word in name for word in ("Commitment", "Directory"))
        ):
            uids.add(uid)
    return uids


def _storage_classes() -> list[SOPClassSupport]:
    return [
        SOPClassSupport(UID(uid), UID(uid).name, Service.STORAGE, "SCP", ALL_TRANSFER_SYNTAXES)
        for uid in sorted(_storage_uids(), key=lambda u: (UID(u).name, u))
    ]


VERIFICATION = UID("1.2.840.10008.1.1")
PATIENT_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.1.1")
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
PATIENT_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.1.2")
PATIENT_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.1.3")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
STUDY_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.2.3")
PATIENT_ROOT = {PATIENT_ROOT_FIND, PATIENT_ROOT_MOVE, PATIENT_ROOT_GET}

REGISTRY: tuple[SOPClassSupport, ...] = (
    SOPClassSupport(VERIFICATION, VERIFICATION.name, Service.VERIFICATION, "SCP", UNCOMPRESSED),
    SOPClassSupport(PATIENT_ROOT_FIND, PATIENT_ROOT_FIND.name, Service.QUERY, "SCP", UNCOMPRESSED),
    SOPClassSupport(STUDY_ROOT_FIND, STUDY_ROOT_FIND.name, Service.QUERY, "SCP", UNCOMPRESSED),
    *(
        SOPClassSupport(uid, uid.name, Service.RETRIEVE, "SCP", UNCOMPRESSED)
        for uid in (PATIENT_ROOT_MOVE, PATIENT_ROOT_GET, STUDY_ROOT_MOVE, STUDY_ROOT_GET)
    ),
    *_storage_classes(),
)


def supported(service: Service, role: str = "SCP") -> list[SOPClassSupport]:
    """Entries of one service and role."""
    return [s for s in REGISTRY if s.service is service and s.role == role]


def service_of(sop_class_uid: str) -> Service | None:
    """The service a SOP class belongs to (as SCP), None when unsupported."""
    for entry in REGISTRY:
        if entry.uid == sop_class_uid and entry.role == "SCP":
            return entry.service
    return None


def render_conformance() -> str:
    """The conformance statement in Markdown."""
    lines = [
        "# dicomhub conformance statement",
        "",
        "Generated from `dicomhub.conformance` by `dicomhub conformance`; do not edit by hand.",
        "",
        "## Supported SOP classes",
        "",
        "| Service | SOP class | UID | Role | Transfer syntaxes |",
        "|---|---|---|---|---|",
    ]
    for entry in REGISTRY:
        syntaxes = (
            "all listed below"
            if entry.transfer_syntaxes == ALL_TRANSFER_SYNTAXES
            else ", ".join(t.name for t in entry.transfer_syntaxes)
        )
        lines.append(
            f"| {entry.service.value} | {entry.name} | {entry.uid} | {entry.role} | {syntaxes} |"
        )
    lines += [
        "",
        "## Transfer syntaxes accepted for storage",
        "",
        "Objects are stored bit for bit in the transfer syntax they arrive in.",
        "",
        "| Transfer syntax | UID |",
        "|---|---|",
    ]
    lines += [f"| {t.name} | {t} |" for t in ALL_TRANSFER_SYNTAXES]
    lines += [
        "",
        "## Failure statuses",
        "",
        "Each failure carries an ErrorComment (0000,0902) with the reason.",
        "",
        "| Condition | DIMSE status | HTTP status |",
        "|---|---|---|",
    ]
    for outcome in OUTCOMES:
        doc = (outcome.__doc__ or "").strip().splitlines()[0]
        lines.append(
            f"| {doc} | 0x{outcome.dimse_status:04X} ({outcome.summary}) | {outcome.http_status} |"
        )
    lines += [
        "",
        "## C-FIND",
        "",
        "Patient Root (PATIENT, STUDY, SERIES, IMAGE) and Study Root (STUDY, SERIES, IMAGE)."
        " Matching per PS3.4 C.2.2.2: single value, universal, wildcard (`*`, `?`), "
        "DA/TM/DT ranges (open and closed), lists of UIDs. Person names match without "
        "regard to case unless `case_insensitive_pn = false`. Every requested key is "
        "returned: from the index, else from the stored header, else empty. Responses are "
        "encoded in the character set the matched objects were stored with.",
        "",
        "## C-MOVE and C-GET",
        "",
        "Patient Root and Study Root, all levels, on the asyncio engine.  The unique key of the"
        " retrieve level is required (a list of UIDs is allowed); unique keys above it narrow"
        " the selection when present.  The Move Destination must be a declared peer (0xA801"
        " otherwise).  C-MOVE sub-operations use one new association to the destination;"
        " C-GET sub-operations use the requesting association, on storage contexts where the"
        " requestor accepted the SCP role (SCP/SCU role selection is accepted for every storage"
        " SOP class).  Pending responses carry the Remaining, Completed, Failed and Warning"
        " counts; the final status is 0x0000, 0xB000 with FailedSOPInstanceUIDList, 0xA702"
        " when the destination cannot be reached or the association is lost, or 0xFE00 after"
        " a C-CANCEL.",
        "",
        "## Storage SCU",
        "",
        "dicomhub sends instances (C-MOVE and C-GET sub-operations, forwarding, `dicomhub send`)"
        " for every storage SOP class it stores.  For each SOP class and stored transfer syntax"
        " it proposes one context with the stored syntax alone and one with Explicit and"
        " Implicit VR Little Endian; an instance is sent unchanged on the first when accepted,"
        " otherwise transcoded to the syntax accepted.",
        "",
    ]
    return "\n".join(lines)
