"""Supported SOP classes, roles and transfer syntaxes, per service: the registry.

It drives presentation-context negotiation (``dicom.server``) and generates the conformance
statement ``docs/conformance.md`` (``dicomhub conformance``); a test fails when the two drift.
The implementation's identity (Implementation Class UID and Version Name) is defined here too,
for the network engine and the web alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pydicom.uid import UID, AllTransferSyntaxes, generate_uid
from pynetdicom.sop_class import _STORAGE_CLASSES

from dicomhub import __version__
from dicomhub.config import Service
from dicomhub.errors import OUTCOMES

IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["dicomhub implementation class"])
"""dicomhub's Implementation Class UID: in association requests and acceptances, and in the
file meta of the Part 10 objects it writes (received over the network, transcoded for the
web)."""
IMPLEMENTATION_VERSION = f"DICOMHUB_{__version__.replace('.', '')}"[:16]
"""dicomhub's Implementation Version Name (SH, at most 16 characters), sent with the UID."""

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
STORAGE_COMMITMENT_PUSH = UID("1.2.840.10008.1.20.1")
MODALITY_PERFORMED_PROCEDURE_STEP = UID("1.2.840.10008.3.1.2.3.3")
MODALITY_WORKLIST_FIND = UID("1.2.840.10008.5.1.4.31")
BASIC_FILM_SESSION = UID("1.2.840.10008.5.1.1.1")
BASIC_FILM_BOX = UID("1.2.840.10008.5.1.1.2")
BASIC_GRAYSCALE_IMAGE_BOX = UID("1.2.840.10008.5.1.1.4")
BASIC_COLOR_IMAGE_BOX = UID("1.2.840.10008.5.1.1.4.1")
BASIC_GRAYSCALE_PRINT_META = UID("1.2.840.10008.5.1.1.9")
PRINT_JOB = UID("1.2.840.10008.5.1.1.14")
BASIC_ANNOTATION_BOX = UID("1.2.840.10008.5.1.1.15")
PRINTER = UID("1.2.840.10008.5.1.1.16")
BASIC_COLOR_PRINT_META = UID("1.2.840.10008.5.1.1.18")
PRESENTATION_LUT = UID("1.2.840.10008.5.1.1.23")
PRINT_OPTIONAL = frozenset({PRINT_JOB, BASIC_ANNOTATION_BOX, PRESENTATION_LUT})
"""Optional Print Management SOP classes (PS3.4 H.3): negotiated as their own contexts;
dicomhub also accepts them on a meta SOP class context, as some print SCUs send them there."""
META_MEMBERS: dict[UID, frozenset[UID]] = {
    BASIC_GRAYSCALE_PRINT_META: frozenset(
        {BASIC_FILM_SESSION, BASIC_FILM_BOX, BASIC_GRAYSCALE_IMAGE_BOX, PRINTER}
    )
    | PRINT_OPTIONAL,
    BASIC_COLOR_PRINT_META: frozenset(
        {BASIC_FILM_SESSION, BASIC_FILM_BOX, BASIC_COLOR_IMAGE_BOX, PRINTER}
    )
    | PRINT_OPTIONAL,
}
"""The SOP classes whose commands a meta SOP class context carries (PS3.4 H.3)."""

REGISTRY: tuple[SOPClassSupport, ...] = (
    SOPClassSupport(VERIFICATION, VERIFICATION.name, Service.VERIFICATION, "SCP", UNCOMPRESSED),
    SOPClassSupport(PATIENT_ROOT_FIND, PATIENT_ROOT_FIND.name, Service.QUERY, "SCP", UNCOMPRESSED),
    SOPClassSupport(STUDY_ROOT_FIND, STUDY_ROOT_FIND.name, Service.QUERY, "SCP", UNCOMPRESSED),
    *(
        SOPClassSupport(uid, uid.name, Service.RETRIEVE, "SCP", UNCOMPRESSED)
        for uid in (PATIENT_ROOT_MOVE, PATIENT_ROOT_GET, STUDY_ROOT_MOVE, STUDY_ROOT_GET)
    ),
    SOPClassSupport(
        STORAGE_COMMITMENT_PUSH,
        STORAGE_COMMITMENT_PUSH.name,
        Service.STORAGE_COMMITMENT,
        "SCP",
        UNCOMPRESSED,
    ),
    SOPClassSupport(
        MODALITY_PERFORMED_PROCEDURE_STEP,
        MODALITY_PERFORMED_PROCEDURE_STEP.name,
        Service.MPPS,
        "SCP",
        UNCOMPRESSED,
    ),
    SOPClassSupport(
        MODALITY_WORKLIST_FIND,
        MODALITY_WORKLIST_FIND.name,
        Service.WORKLIST,
        "SCP",
        UNCOMPRESSED,
    ),
    *(
        SOPClassSupport(uid, uid.name, Service.PRINT, "SCP", UNCOMPRESSED)
        for uid in (
            BASIC_GRAYSCALE_PRINT_META,
            BASIC_COLOR_PRINT_META,
            PRINTER,
            PRESENTATION_LUT,
            BASIC_ANNOTATION_BOX,
            PRINT_JOB,
        )
    ),
    *_storage_classes(),
)


def supported(service: Service, role: str = "SCP") -> list[SOPClassSupport]:
    """Entries of one service and role."""
    return [s for s in REGISTRY if s.service is service and s.role == role]


_SCP_SERVICES: dict[str, Service] = {}
for _entry in REGISTRY:
    if _entry.role == "SCP":
        _SCP_SERVICES.setdefault(str(_entry.uid), _entry.service)


def service_of(sop_class_uid: str) -> Service | None:
    """The service a SOP class belongs to (as SCP), None when unsupported (a dictionary
    look-up: it runs for every DIMSE request)."""
    return _SCP_SERVICES.get(str(sop_class_uid))


@functools.cache
def command_sop_classes(abstract_syntax: str) -> frozenset[str]:
    """The SOP classes a command may name on a context of ``abstract_syntax``: the class
    itself, or the member classes of a meta SOP class (cached: it runs for every request)."""
    members = META_MEMBERS.get(UID(abstract_syntax), frozenset())
    return frozenset({str(uid) for uid in members} | {str(abstract_syntax)})


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
        "## Storage Commitment Push Model",
        "",
        "SCP on the asyncio engine.  N-ACTION (Action Type 1) is validated and recorded before"
        " the response.  An instance is committed when it is indexed with the requested SOP"
        " class and the SHA-256 of its stored object, computed again, equals the one recorded"
        " at storage (optionally also after delivery to forwarding peers); otherwise"
        " FailureReason 0x0112, 0x0119 or 0x0110.  The N-EVENT-REPORT (event type 1 or 2) is"
        " sent on the requesting association when the requester accepted the SCP role there,"
        " else on a new association to its declared address, proposing the SCP role, with"
        " retries.  SCP/SCU role selection is accepted for the SOP class.  As SCU (`dicomhub"
        " send --commit`, forwarding rules with `commit = true`) dicomhub proposes both roles"
        " when it waits for the report on the association, answers a report sent before the"
        " N-ACTION response, and otherwise receives it on its listener.",
        "",
        "## Modality Performed Procedure Step",
        "",
        "SCP on the asyncio engine (N-CREATE and N-SET).  Every attribute of PS3.4 Table"
        " F.7.2-1 and any other attribute the SCU sends is accepted and kept; Type 1 and"
        " Type 2 attributes are required as the table says (0x0120 when absent, 0x0121 when a"
        " Type 1 attribute is empty; `mpps_strict = false` lets absent Type 2 attributes"
        " through).  N-CREATE: the status must be IN PROGRESS (0x0106 with the Attribute List"
        " otherwise), a SOP Instance UID is assigned and returned when the SCU gives none, an"
        " existing one gets 0x0111.  N-SET: an unknown instance gets 0x0112; a step that is"
        " COMPLETED or DISCONTINUED gets 0x0110 with Error ID 0xA710 (Table F.7.2-2); an"
        " attribute the table does not allow in N-SET may be repeated unchanged, a different"
        " value gets 0x0106; COMPLETED and DISCONTINUED need the Final State attributes"
        " (End Date and Time, a Performed Series Sequence item).  Responses carry no"
        " Attribute List: the attributes are kept as sent, and the SCP coerces none.  Each"
        " step is linked to the worklist item its Scheduled Step Attributes Sequence names,"
        " which becomes IN PROGRESS, then COMPLETED or DISCONTINUED with it (CANCELLED items"
        " are left alone); a step without one is kept and flagged unscheduled.  Steps and"
        " their history are kept in the index; dicomhub removes none.",
        "",
        "## Modality Worklist",
        "",
        "Modality Worklist Information Model - FIND as SCP on the asyncio engine; items are"
        " added with `dicomhub worklist add` or from HL7 orders.  Matching per PS3.4 K.2.2 and"
        " C.2.2.2 on every attribute of the item, at the top level and inside the Scheduled"
        " Procedure Step Sequence: single value, list of values, universal, wildcard (`*`,"
        " `?`; person names without regard to case unless `case_insensitive_pn = false`), DA,"
        " TM and DT ranges, and sequence matching.  Scheduled Procedure Step Start Date and"
        " Start Time given together are matched as one date-time range.  A zero-length stored"
        " value matches no non-universal key.  Every requested key is returned, zero-length"
        " when the item has no value; a sequence key with no item or an empty item returns"
        " the stored sequence whole; an identifier without keys returns whole items.  Specific"
        " Character Set is returned as the item was stored.  Scheduled Procedure Step Status"
        " reflects the item's status (SCHEDULED, STARTED, ...).  Only items in"
        " `worklist_statuses` (default SCHEDULED and IN PROGRESS) are returned.  With"
        ' `worklist_filter_by_calling_ae = "when_empty"` (default) a query that does not'
        " match on Scheduled Station AE Title gets only the items scheduled for the calling AE"
        " title or for no station (`always`: every query; `never`: no restriction).  Pending"
        " responses have status 0xFF00; C-CANCEL ends the query with 0xFE00.",
        "",
        "## Print Management",
        "",
        "SCP on the asyncio engine (PS3.4 H).  A Basic Grayscale or Basic Color Print"
        " Management Meta SOP class context carries the commands of its member classes (Basic"
        " Film Session, Basic Film Box, the Image Box of its color, Printer) and also of"
        " Presentation LUT, Basic Annotation Box and Print Job, which are accepted on their own"
        " contexts too.  Film Session N-CREATE, N-SET, N-ACTION, N-DELETE; Film Box N-CREATE"
        " (one Referenced Image Box item per cell of STANDARD, ROW or COL; one annotation"
        " box when an Annotation Display Format ID is given), N-SET (Image Display Format,"
        " Film Orientation, Film Size ID, Annotation Display Format ID and Requested"
        " Resolution ID may be repeated, not changed: 0x0106), N-ACTION, N-DELETE; a Film"
        " Session, Film Box, Image Box or Annotation Box N-SET naming an attribute its class"
        " does not set gets 0x0105 with the tags as Attribute Identifier List, and changes"
        " nothing; Image Box and"
        " Annotation Box N-SET; Presentation LUT N-CREATE (Presentation LUT Shape IDENTITY or"
        " LIN OD, or a Presentation LUT Sequence of 256, 4096 or 65536 entries of 10 to 16"
        " bits, not both), N-DELETE; Printer N-GET (instance 1.2.840.10008.5.1.1.17, status"
        " NORMAL); Print Job N-GET.  SOP Instance UIDs are assigned when absent and returned;"
        " an N-CREATE without data set is accepted.  Values are checked against PS3.3 C.13 and"
        " C.11.4: 0x0106 (with the attribute as Attribute List), 0x0120, 0x0121; a film of"
        " more than 8400 x 10200 pixels (14INX17IN at 600 dpi; RequestedResolutionID HIGH"
        " doubles `print_film_dpi`): 0x0213; unknown instance 0x0112; existing UID 0x0111;"
        " Action Type other than 1: 0x0123; an operation the class does not define: 0x0211."
        "  A film session with its film boxes and image boxes, and a Presentation LUT, belong"
        " to the association that created them: another association gets 0x0112 for them (and"
        " 0x0106 when it references them), and they are deleted when their association ends."
        "  Printing a session without film box: 0xC600; printing with no image set: warning"
        " 0xB602 (session) or 0xB603 (film box); a printer of `print_relay` that refuses the"
        " film or cannot be reached: 0xC601 (Film Session N-ACTION) or 0xC602 (Film Box"
        " N-ACTION); a film that cannot be composed or stored: 0x0110; the N-ACTION response"
        " carries the Referenced Print Job Sequence.  Sessions, boxes (pixel data included)"
        " and print jobs are kept in the index; print jobs stay after their association.",
        "",
        "## Storage SCU",
        "",
        "dicomhub sends instances (C-MOVE and C-GET sub-operations, forwarding, `dicomhub send`)"
        " for every storage SOP class it stores.  For each SOP class and stored transfer syntax"
        " it proposes one context with the stored syntax alone and one with Explicit and"
        " Implicit VR Little Endian; an instance is sent unchanged on the first when accepted,"
        " otherwise transcoded to the syntax accepted.",
        "",
        "## DICOMweb (PS3.18)",
        "",
        "Served under `/dicom-web` by the HTTP server of `dicomhub serve`.  QIDO-RS: studies,"
        " series and instances, at the top and within a study or series, with the C-FIND"
        " matching above (relational), `includefield` (`all` included), `limit`, `offset`;"
        " `fuzzymatching` is accepted and answered with a Warning header; no match is 204."
        "  WADO-RS: studies, series and instances as multipart/related application/dicom"
        " (`transfer-syntax=*` as stored, a named syntax transcoded, none: Explicit VR Little"
        " Endian), metadata, frames (native or as stored), bulk data, rendered (JPEG, PNG)."
        "  WADO-URI at `/wado`.  STOW-RS: multipart/related application/dicom, to any study or"
        " to one; ReferencedSOPSequence and FailedSOPSequence with the C-STORE status of each"
        " refusal as FailureReason (table above; 0xC409 for another study than the URL's);"
        " HTTP 200 (all stored), 202 (some refused), 409 (none stored), 400, 413, 415.",
        "",
    ]
    return "\n".join(lines)
