"""Print Management Service Class SCP (PS3.4 H): dicomhub as a film printer.

The SCU builds a film session hierarchy and prints it:

- Basic Film Session: N-CREATE, N-SET, N-ACTION (print every film box), N-DELETE;
- Basic Film Box: N-CREATE (the SCP creates one image box per cell of the Image Display
  Format and, with an Annotation Display Format ID, the annotation boxes, and returns them in
  Referenced Image Box / Basic Annotation Box Sequences), N-SET, N-ACTION (print), N-DELETE;
- Basic Grayscale / Color Image Box and Basic Annotation Box: N-SET;
- Presentation LUT: N-CREATE, N-DELETE;
- Printer: N-GET (status and identity, from the settings ``print_*``);
- Print Job: N-GET of a job an N-ACTION created.

Values are checked against PS3.3 C.13 (0x0106 with the offending attribute as the Attribute
List; 0x0120 / 0x0121 when a required one is absent or empty); a Film Box whose Image Display
Format has more image boxes than its film holds is refused with 0x0106, one whose film would
have more than ``MAX_FILM_PIXELS`` pixels with 0x0213.  A Presentation LUT needs a Presentation
LUT Shape (IDENTITY, LIN OD) or a well-formed Presentation LUT Sequence, not both (0x0120 with
neither, 0x0106 otherwise).  An image larger than its image box (``imaging.geometry``) is
decimated (Warning 0xB60A), demagnified (0xB604) or cropped (0xB609), or refused (0xC603) when
Requested Decimate/Crop Behavior is FAIL: at the Image Box N-SET and again at the print, as
PS3.4 H.4.3 and H.4.2.2.4 define.  Other warnings: 0xB602 (session printed with no image),
0xB603 (film box printed with no image).  Failures: 0xC600 (session printed without film box);
a printer that refuses the print job or cannot be reached (a ``PrintJobFailed`` the print hook
raises, such as the print relay's, whose text is kept as ErrorComment) 0xC601 for a Film
Session N-ACTION and 0xC602 for a Film Box N-ACTION (PS3.4 H.4.1.2.4.2, H.4.2.2.4.2); any other
failure of the print hook (composing or storing the film) 0x0110; 0x0112 (unknown or deleted
instance, or one another association created), 0x0111 (N-CREATE of an existing UID), 0x0123
(action type other than 1), 0x0211 (an operation the SOP class does not define).  Every
warning and failure carries an ErrorComment and is logged.

Every instance lives in the database (``index.print_jobs``), so any dicomhub process sharing it
serves the session.  A film session (with its film boxes and image boxes) and a presentation LUT
belong to the association that created them (PS3.4 H): only that association finds them (by
SOP Instance UID, or as the film session or Presentation LUT a film box or image box
references), and ``association_ended`` deletes them; the print jobs and films recorded stay.
A print records a print job with its films and hands each film box, as a ``FilmJob``, to the
``compose`` hook (print-to-archive, print relay), when one is set, one film at a time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom.dsutils import decode, encode

from dicomhub import __version__
from dicomhub.config import Service, Settings
from dicomhub.conformance import (
    BASIC_ANNOTATION_BOX,
    BASIC_COLOR_IMAGE_BOX,
    BASIC_COLOR_PRINT_META,
    BASIC_FILM_BOX,
    BASIC_FILM_SESSION,
    BASIC_GRAYSCALE_IMAGE_BOX,
    PRESENTATION_LUT,
    PRINT_JOB,
    PRINTER,
)
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.errors import (
    CannotUnderstand,
    DicomhubError,
    FilmSessionEmpty,
    FilmSessionPrintJobFailed,
    InvalidAttributeValue,
    InvalidSOPInstance,
    MissingAttribute,
    MissingAttributeValue,
    NoSuchActionType,
    NoSuchAttribute,
    NoSuchInstance,
    PrintJobFailed,
    PrintProcessingFailure,
    UnrecognizedOperation,
)
from dicomhub.header import is_valid_uid
from dicomhub.imaging.film import film_fits, image_shape
from dicomhub.imaging.geometry import (
    ANNOTATION_BOXES,
    Fit,
    checked_placement,
    film_geometry,
    parse_display_format,
)
from dicomhub.index.print_jobs import (
    ExecutionStatus,
    FilmJob,
    NewObject,
    PrintedFilm,
    PrintJob,
    PrintKind,
    PrintObject,
    PrintRepository,
)

LOG = logging.getLogger("dicomhub.dicom")
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
"""The well-known Printer SOP Instance UID (PS3.4 H.4.6)."""
MAX_CELLS = 100
"""Largest number of image boxes one film box may hold."""

WARNING_SESSION_EMPTY_PAGE = 0xB602
WARNING_FILM_BOX_EMPTY_PAGE = 0xB603
STALE_AFTER = timedelta(days=1)
"""Association-scoped instances older than this are deleted whenever an association ends
(left behind by a process that stopped before its associations ended)."""
_FIT_COMMENTS = {
    Fit.DEMAGNIFIED: "image larger than its image box: demagnified to fit",
    Fit.CROPPED: "image larger than its image box: cropped to fit",
    Fit.DECIMATED: "image larger than its image box: decimated to fit",
}

_KIND_OF_CLASS: dict[str, PrintKind] = {
    BASIC_FILM_SESSION: PrintKind.FILM_SESSION,
    BASIC_FILM_BOX: PrintKind.FILM_BOX,
    BASIC_GRAYSCALE_IMAGE_BOX: PrintKind.IMAGE_BOX,
    BASIC_COLOR_IMAGE_BOX: PrintKind.IMAGE_BOX,
    BASIC_ANNOTATION_BOX: PrintKind.ANNOTATION_BOX,
    PRESENTATION_LUT: PrintKind.PRESENTATION_LUT,
}


@dataclass
class PrintRequest:
    """One N-CREATE, N-SET, N-ACTION, N-DELETE or N-GET, independent of the network engine."""

    operation: str
    """"N-CREATE", "N-SET", "N-ACTION", "N-DELETE" or "N-GET"."""
    sop_class_uid: str
    sop_instance_uid: str | None
    context_sop_class_uid: str
    """The presentation context's abstract syntax (a meta SOP class, or the class itself)."""
    data: Dataset | None = None
    action_type_id: int | None = None
    attribute_identifiers: list[int] = field(default_factory=list)


@dataclass
class PrintResult:
    """Status, the SOP Instance UID (assigned by N-CREATE) and the response data set."""

    sop_instance_uid: str | None
    data: Dataset | None = None
    status: int = 0x0000
    comment: str = ""


# Values of PS3.3 C.13 -------------------------------------------------------------------------


def _one_of(*values: str) -> Callable[[str], bool]:
    return lambda v: v in values


def _integer(low: int, high: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return low <= int(value) <= high
        except ValueError:
            return False

    return check


def _density(value: str) -> bool:
    return value in ("BLACK", "WHITE") or value.isdigit()


def _destination(value: str) -> bool:
    return value in ("MAGAZINE", "PROCESSOR") or re.fullmatch(r"BIN_\d+", value) is not None


def _any(value: str) -> bool:
    return True


def _positive_decimal(value: str) -> bool:
    try:
        return 0 < float(value) < 10000
    except ValueError:
        return False


FILM_SESSION_VALUES: dict[str, Callable[[str], bool]] = {
    "PrintPriority": _one_of("HIGH", "MED", "LOW"),
    "MediumType": _one_of(
        "PAPER", "CLEAR FILM", "BLUE FILM", "MAMMO CLEAR FILM", "MAMMO BLUE FILM"
    ),
    "FilmDestination": _destination,
    "FilmSessionLabel": _any,
    "MemoryAllocation": _integer(0, 1 << 31),
    "OwnerID": _any,
}
FILM_SIZES = (
    "8INX10IN",
    "8_5INX11IN",
    "10INX12IN",
    "10INX14IN",
    "11INX14IN",
    "11INX17IN",
    "14INX14IN",
    "14INX17IN",
    "24CMX24CM",
    "24CMX30CM",
    "A4",
    "A3",
)
MAGNIFICATION = _one_of("REPLICATE", "BILINEAR", "CUBIC", "NONE")
FILM_BOX_SETTABLE: dict[str, Callable[[str], bool]] = {
    "MagnificationType": MAGNIFICATION,
    "SmoothingType": _any,
    "BorderDensity": _density,
    "EmptyImageDensity": _density,
    "MinDensity": _integer(0, 0xFFFF),
    "MaxDensity": _integer(0, 0xFFFF),
    "Trim": _one_of("YES", "NO"),
    "ConfigurationInformation": _any,
    "Illumination": _integer(0, 0xFFFF),
    "ReflectedAmbientLight": _integer(0, 0xFFFF),
}
FILM_BOX_VALUES: dict[str, Callable[[str], bool]] = {
    **FILM_BOX_SETTABLE,
    "FilmOrientation": _one_of("PORTRAIT", "LANDSCAPE"),
    "FilmSizeID": _one_of(*FILM_SIZES),
    "AnnotationDisplayFormatID": _any,
    "RequestedResolutionID": _one_of("STANDARD", "HIGH"),
}
FILM_BOX_CREATE_ONLY = (
    "ImageDisplayFormat",
    "FilmOrientation",
    "FilmSizeID",
    "AnnotationDisplayFormatID",
    "RequestedResolutionID",
)
"""Film Box attributes N-CREATE sets and N-SET may only repeat (PS3.4 Table H.4-5)."""
FILM_BOX_SET = frozenset(
    {*FILM_BOX_SETTABLE, *FILM_BOX_CREATE_ONLY, "ReferencedPresentationLUTSequence"}
)
"""What a Film Box N-SET may name; anything else is refused with 0x0105."""
FILM_SESSION_SET = frozenset({*FILM_SESSION_VALUES, "NumberOfCopies"})
"""What a Film Session N-SET may name (PS3.4 Table H.4-1)."""
IMAGE_BOX_VALUES: dict[str, Callable[[str], bool]] = {
    "Polarity": _one_of("NORMAL", "REVERSE"),
    "MagnificationType": MAGNIFICATION,
    "SmoothingType": _any,
    "ConfigurationInformation": _any,
    "RequestedImageSize": _positive_decimal,
    "RequestedDecimateCropBehavior": _one_of("DECIMATE", "CROP", "FAIL"),
}
IMAGE_BOX_SET = frozenset(
    {
        *IMAGE_BOX_VALUES,
        "ImageBoxPosition",
        "BasicGrayscaleImageSequence",
        "BasicColorImageSequence",
        "ReferencedPresentationLUTSequence",
    }
)
"""What an Image Box N-SET may name (PS3.4 Tables H.4-7 and H.4-8)."""
ANNOTATION_BOX_SET = frozenset({"AnnotationPosition", "TextString"})
"""What an Annotation Box N-SET may name (PS3.4 Table H.4-10)."""


def _attribute_list(data: Dataset, keyword: str) -> Dataset:
    offending = Dataset()
    if keyword in data:
        offending[keyword] = data[keyword]
    return offending


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def check_settable(data: Dataset, allowed: frozenset[str], where: str) -> None:
    """Every attribute of an N-SET is one ``where`` lets it set, as DCMTK's print SCP
    requires (0x0105 naming the others otherwise; Specific Character Set and group lengths
    may come along)."""
    refused = [
        tag
        for tag in data.keys()  # noqa: SIM118 - iterating a Dataset gives its elements
        if tag.element != 0
        and keyword_for_tag(tag) not in allowed
        and keyword_for_tag(tag) != "SpecificCharacterSet"
    ]
    if refused:
        names = ", ".join(keyword_for_tag(tag) or str(tag) for tag in refused[:4])
        raise NoSuchAttribute(f"{where} N-SET may not set {names}"[:64], refused)


def check_values(data: Dataset, rules: dict[str, Callable[[str], bool]], where: str) -> None:
    """Every attribute of ``rules`` present in ``data`` has a valid value (0x0106 otherwise)."""
    for keyword, valid in rules.items():
        if keyword not in data or data[keyword].is_empty:
            continue
        value = _text(data[keyword].value)
        if not valid(value):
            raise InvalidAttributeValue(
                f"{where} {keyword} {value[:20]!r} invalid", _attribute_list(data, keyword)
            )


def check_copies(data: Dataset, maximum: int) -> None:
    """Number Of Copies: a positive integer up to ``print_max_copies``."""
    if "NumberOfCopies" in data and not data["NumberOfCopies"].is_empty:
        value = _text(data.NumberOfCopies)
        if not _integer(1, maximum)(value):
            raise InvalidAttributeValue(
                f"NumberOfCopies {value[:10]!r} not in 1..{maximum}",
                _attribute_list(data, "NumberOfCopies"),
            )


def check_densities(data: Dataset, merged: Dataset) -> None:
    """Max Density above Min Density (0x0106 naming the one ``data`` sets)."""
    low, high = merged.get("MinDensity"), merged.get("MaxDensity")
    if low in (None, "") or high in (None, ""):
        return
    if int(high) <= int(low):
        keyword = "MaxDensity" if "MaxDensity" in data else "MinDensity"
        raise InvalidAttributeValue(
            f"MaxDensity {high} is not above MinDensity {low}", _attribute_list(data, keyword)
        )


def image_display_cells(value: str) -> int:
    """The number of image boxes of an Image Display Format (PS3.3 C.13.5.1) that dicomhub
    prints: STANDARD, ROW and COL, parsed by ``imaging.geometry`` (which also lays the film
    out); ``ValueError`` for any other format (SLIDE, SUPERSLIDE, CUSTOM) or more than
    ``MAX_CELLS`` image boxes."""
    try:
        kind, counts = parse_display_format(value)
    except InvalidAttributeValue as exc:
        raise ValueError(str(exc)) from None
    cells = counts[0] * counts[1] if kind == "STANDARD" else sum(counts)
    if cells > MAX_CELLS:
        raise ValueError(f"ImageDisplayFormat {value!r} has more than {MAX_CELLS} cells")
    return cells


def _require(data: Dataset, keyword: str, where: str) -> Any:
    if keyword not in data:
        raise MissingAttribute(f"{where} {keyword} missing")
    if data[keyword].is_empty:
        raise MissingAttributeValue(f"{where} {keyword} is empty")
    return data[keyword].value


def check_image(item: Dataset, color: bool) -> None:
    """The Image Pixel module of a Basic Grayscale / Color Image Sequence item (C.13.5)."""
    where = "BasicColorImageSequence" if color else "BasicGrayscaleImageSequence"
    expected: dict[str, Callable[[str], bool]] = {
        "SamplesPerPixel": _one_of("3") if color else _one_of("1"),
        "PhotometricInterpretation": _one_of("RGB")
        if color
        else _one_of("MONOCHROME1", "MONOCHROME2"),
        "BitsAllocated": _one_of("8") if color else _one_of("8", "16"),
        "BitsStored": _one_of("8") if color else _one_of("8", "12", "16"),
        "HighBit": _one_of("7") if color else _one_of("7", "11", "15"),
        "PixelRepresentation": _one_of("0"),
        "Rows": _integer(1, 0xFFFF),
        "Columns": _integer(1, 0xFFFF),
    }
    for keyword in expected:
        _require(item, keyword, where)
    check_values(item, expected, where)
    if color:
        _require(item, "PlanarConfiguration", where)
        check_values(item, {"PlanarConfiguration": _one_of("0", "1")}, where)
    pixels = _require(item, "PixelData", where)
    samples = 3 if color else 1
    needed = int(item.Rows) * int(item.Columns) * samples * (int(item.BitsAllocated) // 8)
    if len(pixels) < needed:
        raise InvalidAttributeValue(
            f"{where} PixelData has {len(pixels)} bytes, {needed} needed",
            Dataset(),
        )


PRESENTATION_LUT_SHAPES = ("IDENTITY", "LIN OD")
"""Presentation LUT Shape values of a hardcopy Presentation LUT (PS3.3 C.11.4)."""
PRESENTATION_LUT_ENTRIES = (256, 4096, 65536)
"""Entries of a Presentation LUT Sequence LUT: one per input value of an 8, 12 or 16 bit image
(PS3.3 C.11.4.1; 65536 is sent as 0)."""
PRESENTATION_LUT_BITS = (10, 16)
"""Smallest and largest bits per LUT Data entry (PS3.3 C.11.4.1)."""


def _lut_values(value: Any) -> list[int]:
    """LUT Descriptor or LUT Data as numbers: OW (bytes, 16 bits each, little endian, as
    ``to_bytes`` keeps them) or US/SS (one number or several)."""
    if isinstance(value, bytes | bytearray):
        return [int(v) for v in np.frombuffer(bytes(value)[: len(value) // 2 * 2], "<u2")]
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def check_presentation_lut(data: Dataset) -> None:
    """A Presentation LUT N-CREATE (PS3.4 H.4.9, PS3.3 C.11.4): a Presentation LUT Shape of
    IDENTITY or LIN OD, or a Presentation LUT Sequence of one item whose LUT Descriptor has
    256, 4096 or 65536 entries, first value mapped 0 and 10 to 16 bits, and whose LUT Data has
    that many values within those bits; one or the other, not both.  0x0120 with neither (or
    an item without LUT Descriptor or LUT Data), 0x0106 with the offending attribute
    otherwise."""
    shape_given = "PresentationLUTShape" in data and not data["PresentationLUTShape"].is_empty
    sequence_given = (
        "PresentationLUTSequence" in data and not data["PresentationLUTSequence"].is_empty
    )
    if shape_given and sequence_given:
        both = Dataset()
        both.PresentationLUTShape = data.PresentationLUTShape
        both.PresentationLUTSequence = data.PresentationLUTSequence
        raise InvalidAttributeValue(
            "PresentationLUTShape and PresentationLUTSequence are exclusive", both
        )
    if not shape_given and not sequence_given:
        raise MissingAttribute("PresentationLUTShape or PresentationLUTSequence required")
    if shape_given:
        shape = _text(data.PresentationLUTShape)
        if shape not in PRESENTATION_LUT_SHAPES:
            raise InvalidAttributeValue(
                f"PresentationLUTShape {shape[:16]!r} invalid (IDENTITY, LIN OD)",
                _attribute_list(data, "PresentationLUTShape"),
            )
        return
    sequence = data.PresentationLUTSequence
    if len(sequence) != 1:
        raise InvalidAttributeValue(
            f"PresentationLUTSequence has {len(sequence)} items, not 1",
            _attribute_list(data, "PresentationLUTSequence"),
        )
    item = sequence[0]
    for keyword in ("LUTDescriptor", "LUTData"):
        if keyword not in item or item[keyword].is_empty:
            raise MissingAttribute(f"PresentationLUTSequence {keyword} missing")
    descriptor = _lut_values(item.LUTDescriptor)
    offending = Dataset()
    offending_item = Dataset()
    offending_item.LUTDescriptor = item.LUTDescriptor
    offending.PresentationLUTSequence = [offending_item]
    low, high = PRESENTATION_LUT_BITS
    if (
        len(descriptor) != 3
        or (descriptor[0] or 65536) not in PRESENTATION_LUT_ENTRIES
        or descriptor[1] != 0
        or not low <= descriptor[2] <= high
    ):
        raise InvalidAttributeValue(f"LUTDescriptor {descriptor[:3]} invalid", offending)
    entries, bits = descriptor[0] or 65536, descriptor[2]
    values = _lut_values(item.LUTData)
    if len(values) != entries:
        raise InvalidAttributeValue(
            f"LUTData has {len(values)} values, LUTDescriptor says {entries}", offending
        )
    if max(values) >= 1 << bits:
        raise InvalidAttributeValue(f"LUTData values exceed {bits} bits", offending)


def to_bytes(data: Dataset) -> bytes:
    """A data set as Explicit VR Little Endian bytes, the way ``print_objects`` keeps it."""
    encoded = encode(data, False, True)
    if encoded is None:
        raise CannotUnderstand("the data set cannot be encoded")
    return bytes(encoded)


def from_bytes(data: bytes) -> Dataset:
    """A data set kept by ``to_bytes``."""
    from io import BytesIO

    return decode(BytesIO(data), False, True) if data else Dataset()


def _merge(target: Dataset, changes: Dataset) -> Dataset:
    for element in changes:
        if element.tag.element != 0:
            target[element.tag] = element
    return target


class PrintService:
    """The Print Management SCP: one method per DIMSE-N operation of PS3.4 H."""

    def __init__(
        self,
        repository: PrintRepository,
        access: AccessPolicy,
        settings: Settings,
        compose: Callable[[FilmJob], None] | None = None,
    ) -> None:
        self.repository = repository
        self.access = access
        self.settings = settings
        self.compose = compose
        """Called for every film box printed (print-to-archive); None: the job is recorded."""

    def association_ended(self, association: AssociationInfo) -> None:
        """Delete the film sessions and presentation LUTs of an association that ended, and
        any left behind by a stopped process; never raises (it runs as the association closes).
        """
        try:
            released = self.repository.release_association(association.association_uid)
            stale = self.repository.release_stale(STALE_AFTER)
        except Exception:
            LOG.exception("print state of %s could not be released", association)
            return
        if released or stale:
            LOG.info(
                "association %s ended: %d print instance(s) released, %d stale one(s) removed",
                association,
                released,
                stale,
            )

    def handle(self, association: AssociationInfo, request: PrintRequest) -> PrintResult:
        """Run one request; a ``DicomhubError`` is a failure status."""
        self.access.check_service(association, Service.PRINT)
        handler = self._handlers().get((request.operation, request.sop_class_uid))
        if handler is None:
            raise UnrecognizedOperation(
                f"{request.operation} is not defined for {request.sop_class_uid}"
            )
        result = handler(association, request)
        LOG.log(
            logging.WARNING if result.status else logging.INFO,
            "%s %s %s from %s: 0x%04X%s",
            request.operation,
            _KIND_OF_CLASS.get(request.sop_class_uid, request.sop_class_uid),
            result.sop_instance_uid,
            association,
            result.status,
            f" {result.comment}" if result.comment else "",
        )
        return result

    def _handlers(
        self,
    ) -> dict[tuple[str, str], Callable[[AssociationInfo, PrintRequest], PrintResult]]:
        return {
            ("N-CREATE", BASIC_FILM_SESSION): self._create_film_session,
            ("N-CREATE", BASIC_FILM_BOX): self._create_film_box,
            ("N-CREATE", PRESENTATION_LUT): self._create_presentation_lut,
            ("N-SET", BASIC_FILM_SESSION): self._set_film_session,
            ("N-SET", BASIC_FILM_BOX): self._set_film_box,
            ("N-SET", BASIC_GRAYSCALE_IMAGE_BOX): self._set_image_box,
            ("N-SET", BASIC_COLOR_IMAGE_BOX): self._set_image_box,
            ("N-SET", BASIC_ANNOTATION_BOX): self._set_annotation_box,
            ("N-ACTION", BASIC_FILM_SESSION): self._print,
            ("N-ACTION", BASIC_FILM_BOX): self._print,
            ("N-DELETE", BASIC_FILM_SESSION): self._delete,
            ("N-DELETE", BASIC_FILM_BOX): self._delete,
            ("N-DELETE", PRESENTATION_LUT): self._delete,
            ("N-GET", PRINTER): self._get_printer,
            ("N-GET", PRINT_JOB): self._get_print_job,
        }

    # Helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _new_uid(request: PrintRequest) -> str:
        uid = _text(request.sop_instance_uid)
        if not uid:
            return str(generate_uid())
        if not is_valid_uid(uid):
            raise InvalidSOPInstance(f"Affected SOP Instance UID {uid[:64]!r} is not a UID")
        return uid

    def _instance(self, info: AssociationInfo, request: PrintRequest) -> PrintObject:
        """The instance a request names, when this association created it: PS3.4 H scopes
        the film session hierarchy and presentation LUTs to their association, so another
        association's instance is ``NoSuchInstance`` (0x0112), like an unknown one."""
        uid = _text(request.sop_instance_uid)
        found = self.repository.get(uid, info.association_uid) if uid else None
        if found is None or found.sop_class_uid != request.sop_class_uid:
            raise NoSuchInstance(f"no {request.sop_class_uid} instance {uid[:64]}")
        return found

    # Basic Film Session -----------------------------------------------------------------------

    def _create_film_session(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        data = request.data or Dataset()
        check_copies(data, self.settings.print_max_copies)
        check_values(data, FILM_SESSION_VALUES, "Film Session")
        uid = self._new_uid(request)
        self.repository.create(
            PrintKind.FILM_SESSION,
            BASIC_FILM_SESSION,
            uid,
            to_bytes(data),
            calling_ae_title=info.calling_ae_title,
            association_uid=info.association_uid,
        )
        return PrintResult(uid, data if len(data) else None)

    def _set_film_session(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        session = self._instance(info, request)
        data = request.data or Dataset()
        check_settable(data, FILM_SESSION_SET, "Film Session")
        check_copies(data, self.settings.print_max_copies)
        check_values(data, FILM_SESSION_VALUES, "Film Session")
        merged = _merge(from_bytes(session.attributes), data)
        self.repository.update(session.id, to_bytes(merged))
        return PrintResult(session.sop_instance_uid)

    # Basic Film Box ---------------------------------------------------------------------------

    def _create_film_box(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        data = request.data or Dataset()
        display = _text(_require(data, "ImageDisplayFormat", "Film Box"))
        try:
            cells = image_display_cells(display)
        except ValueError as exc:
            raise InvalidAttributeValue(
                str(exc)[:64], _attribute_list(data, "ImageDisplayFormat")
            ) from None
        check_values(data, FILM_BOX_VALUES, "Film Box")
        check_densities(data, data)
        film_geometry(data, self.settings.print_film_dpi)  # fits its film (0x0106 otherwise)
        references = _require(data, "ReferencedFilmSessionSequence", "Film Box")
        session_uid = _text(references[0].get("ReferencedSOPInstanceUID"))
        session = self.repository.get(session_uid, info.association_uid) if session_uid else None
        if session is None or session.kind is not PrintKind.FILM_SESSION:
            raise InvalidAttributeValue(
                f"Referenced Film Session {session_uid[:40]} unknown",
                _attribute_list(data, "ReferencedFilmSessionSequence"),
            )
        self._check_lut_reference(info, data)
        uid = self._new_uid(request)
        color = request.context_sop_class_uid == BASIC_COLOR_PRINT_META
        image_class = BASIC_COLOR_IMAGE_BOX if color else BASIC_GRAYSCALE_IMAGE_BOX
        children = []
        image_boxes = Sequence()
        for position in range(1, cells + 1):
            box = Dataset()
            box.ImageBoxPosition = position
            child = NewObject(
                PrintKind.IMAGE_BOX, image_class, str(generate_uid()), position, to_bytes(box)
            )
            children.append(child)
            reference = Dataset()
            reference.ReferencedSOPClassUID = image_class
            reference.ReferencedSOPInstanceUID = child.sop_instance_uid
            image_boxes.append(reference)
        response = Dataset()
        response.update(data)
        response.ReferencedImageBoxSequence = image_boxes
        if _text(data.get("AnnotationDisplayFormatID")):
            annotations = Sequence()
            for position in range(1, ANNOTATION_BOXES + 1):
                box = Dataset()
                box.AnnotationPosition = position
                child = NewObject(
                    PrintKind.ANNOTATION_BOX,
                    BASIC_ANNOTATION_BOX,
                    str(generate_uid()),
                    position,
                    to_bytes(box),
                )
                children.append(child)
                reference = Dataset()
                reference.ReferencedSOPClassUID = BASIC_ANNOTATION_BOX
                reference.ReferencedSOPInstanceUID = child.sop_instance_uid
                annotations.append(reference)
            response.ReferencedBasicAnnotationBoxSequence = annotations
        self.repository.create(
            PrintKind.FILM_BOX,
            BASIC_FILM_BOX,
            uid,
            to_bytes(data),
            calling_ae_title=info.calling_ae_title,
            parent_id=session.id,
            children=tuple(children),
            association_uid=info.association_uid,
        )
        return PrintResult(uid, response)

    def _check_lut_reference(self, info: AssociationInfo, data: Dataset) -> None:
        """A Referenced Presentation LUT Sequence names a Presentation LUT of this
        association (0x0106 otherwise)."""
        for item in data.get("ReferencedPresentationLUTSequence") or []:
            lut_uid = _text(item.get("ReferencedSOPInstanceUID"))
            found = self.repository.get(lut_uid, info.association_uid) if lut_uid else None
            if found is None or found.kind is not PrintKind.PRESENTATION_LUT:
                raise InvalidAttributeValue(
                    f"Referenced Presentation LUT {lut_uid[:40]} unknown",
                    _attribute_list(data, "ReferencedPresentationLUTSequence"),
                )

    def _set_film_box(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        box = self._instance(info, request)
        data = request.data or Dataset()
        current = from_bytes(box.attributes)
        for keyword in FILM_BOX_CREATE_ONLY:
            if keyword in data and _text(data[keyword].value) != _text(current.get(keyword)):
                raise InvalidAttributeValue(
                    f"Film Box {keyword} may not be changed by N-SET",
                    _attribute_list(data, keyword),
                )
        check_settable(data, FILM_BOX_SET, "Film Box")
        check_values(data, FILM_BOX_SETTABLE, "Film Box")
        check_densities(data, _merge(from_bytes(box.attributes), data))
        self._check_lut_reference(info, data)
        self.repository.update(box.id, to_bytes(_merge(current, data)))
        return PrintResult(box.sop_instance_uid)

    # Image and annotation boxes ---------------------------------------------------------------

    def _set_image_box(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        box = self._instance(info, request)
        data = request.data or Dataset()
        color = request.sop_class_uid == BASIC_COLOR_IMAGE_BOX
        position = _text(_require(data, "ImageBoxPosition", "Image Box"))
        if position != str(box.position):
            raise InvalidAttributeValue(
                f"ImageBoxPosition {position[:8]} is not this box's ({box.position})",
                _attribute_list(data, "ImageBoxPosition"),
            )
        check_settable(data, IMAGE_BOX_SET, "Image Box")
        check_values(data, IMAGE_BOX_VALUES, "Image Box")
        wanted = "BasicColorImageSequence" if color else "BasicGrayscaleImageSequence"
        other = "BasicGrayscaleImageSequence" if color else "BasicColorImageSequence"
        if other in data:
            raise InvalidAttributeValue(
                f"{other} on a {'color' if color else 'grayscale'} image box",
                _attribute_list(data, other),
            )
        if wanted not in data:
            raise MissingAttribute(f"Image Box {wanted} missing")
        for item in data[wanted].value:
            check_image(item, color)
        self._check_lut_reference(info, data)
        merged = _merge(from_bytes(box.attributes), data)
        fit = self._fit(box, merged)
        self.repository.update(box.id, to_bytes(merged))
        if fit is not Fit.FITS:
            return PrintResult(box.sop_instance_uid, None, fit.status, _FIT_COMMENTS[fit])
        return PrintResult(box.sop_instance_uid)

    def _fit(self, box: PrintObject, image_box: Dataset) -> Fit:
        """How an image box's image fits its cell; ``ImageTooLarge`` when it does not and the
        SCU asked for failure."""
        shape = image_shape(image_box)
        film_box = self.repository.get_by_id(box.parent_id or 0)
        if shape is None or film_box is None:
            return Fit.FITS
        film = from_bytes(film_box.attributes)
        geometry = film_geometry(film, self.settings.print_film_dpi)
        if not 1 <= box.position <= len(geometry.cells):
            return Fit.FITS
        cell = geometry.cells[box.position - 1]
        return checked_placement(box.position, cell, *shape, image_box, film, geometry.dpi).fit

    def _set_annotation_box(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        box = self._instance(info, request)
        data = request.data or Dataset()
        position = _text(_require(data, "AnnotationPosition", "Annotation Box"))
        if position != str(box.position):
            raise InvalidAttributeValue(
                f"AnnotationPosition {position[:8]} is not this box's ({box.position})",
                _attribute_list(data, "AnnotationPosition"),
            )
        check_settable(data, ANNOTATION_BOX_SET, "Annotation Box")
        merged = _merge(from_bytes(box.attributes), data)
        self.repository.update(box.id, to_bytes(merged))
        return PrintResult(box.sop_instance_uid)

    # Presentation LUT -------------------------------------------------------------------------

    def _create_presentation_lut(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        data = request.data or Dataset()
        check_presentation_lut(data)
        uid = self._new_uid(request)
        self.repository.create(
            PrintKind.PRESENTATION_LUT,
            PRESENTATION_LUT,
            uid,
            to_bytes(data),
            calling_ae_title=info.calling_ae_title,
            association_uid=info.association_uid,
        )
        return PrintResult(uid)

    # N-DELETE ---------------------------------------------------------------------------------

    def _delete(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        instance = self._instance(info, request)
        self.repository.delete(instance.sop_instance_uid)
        return PrintResult(instance.sop_instance_uid)

    # N-ACTION print ---------------------------------------------------------------------------

    def _print(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        """N-ACTION print of a film session (all its film boxes) or of a film box.

        Every film is checked (layout, size, images that must not be resized) before the
        print job is recorded; then each film is built again, with its Presentation LUTs, and
        handed to the ``compose`` hook in turn, so one film's images are in memory at a time
        (a single film box is built once).  A printer that refuses the film or cannot be
        reached fails the print with 0xC601 (film session) or 0xC602 (film box), anything else
        that goes wrong composing or storing it with 0x0110.
        """
        if request.action_type_id != 1:
            raise NoSuchActionType(f"Action Type ID {request.action_type_id} is not 1 (print)")
        target = self._instance(info, request)
        printer_failed: type[PrintJobFailed]
        if target.kind is PrintKind.FILM_SESSION:
            session = target
            boxes = self.repository.children(session.id, PrintKind.FILM_BOX)
            if not boxes:
                raise FilmSessionEmpty("Film Session has no Film Box to print")
            empty_warning = WARNING_SESSION_EMPTY_PAGE
            printer_failed = FilmSessionPrintJobFailed
        else:
            parent = self.repository.get_by_id(target.parent_id or 0)
            if parent is None:
                raise NoSuchInstance(f"Film Box {target.sop_instance_uid} has no film session")
            session, boxes = parent, [target]
            empty_warning = WARNING_FILM_BOX_EMPTY_PAGE
            printer_failed = PrintJobFailed
        session_data = from_bytes(session.attributes)
        session_data.SOPInstanceUID = session.sop_instance_uid
        printed: list[PrintedFilm] = []
        resized: list[Fit] = []
        kept: FilmJob | None = None
        for box in boxes:
            entry, fits, kept = self._check_film(info, session_data, box, keep=len(boxes) == 1)
            printed.append(entry)
            resized += [fit for fit in fits if fit is not Fit.FITS]
        copies = int(_text(session_data.get("NumberOfCopies")) or 1)
        job_uid = str(generate_uid())
        job = self.repository.record_job(
            job_uid,
            film_session_uid=session.sop_instance_uid,
            film_box_uids=[box.sop_instance_uid for box in boxes],
            layout=[entry.image_display_format for entry in printed],
            number_of_copies=copies,
            print_priority=_text(session_data.get("PrintPriority")) or "MED",
            calling_ae_title=info.calling_ae_title,
            films=printed,
        )
        if self.compose is not None:
            for box in boxes:  # one film in memory at a time
                film = kept or self._film_job(info, session_data, box)
                film.print_job_uid = job_uid
                self._compose(job, film, printer_failed)
        self.repository.finish_job(job.id, ExecutionStatus.DONE)
        response = Dataset()
        reference = Dataset()
        reference.ReferencedSOPClassUID = PRINT_JOB
        reference.ReferencedSOPInstanceUID = job_uid
        response.ReferencedPrintJobSequence = [reference]
        LOG.info(
            "print job %s from %s: %d film(s) x %d copies (%s)",
            job_uid,
            info,
            len(printed),
            copies,
            ", ".join(job.layout),
        )
        if not any(entry.image_boxes for entry in printed):
            return PrintResult(
                target.sop_instance_uid, response, empty_warning, "no image box was set"
            )
        if resized:
            return PrintResult(
                target.sop_instance_uid, response, resized[0].status, _FIT_COMMENTS[resized[0]]
            )
        return PrintResult(target.sop_instance_uid, response)

    def _compose(self, job: PrintJob, film: FilmJob, printer_failed: type[PrintJobFailed]) -> None:
        """Hand one film to the ``compose`` hook; on failure the job is recorded as FAILURE
        and the N-ACTION fails: ``printer_failed`` (0xC601 / 0xC602) when the printer refused
        or could not be reached (``PrintJobFailed``, its text kept as ErrorComment),
        ``PrintProcessingFailure`` (0x0110) for any other failure."""
        assert self.compose is not None
        film_box_uid = str(film.film_box.get("SOPInstanceUID") or "")
        try:
            self.compose(film)
        except PrintJobFailed as exc:
            LOG.error("print job %s: film box %s: %s", job.sop_instance_uid, film_box_uid, exc)
            self.repository.finish_job(job.id, ExecutionStatus.FAILURE, exc.message[:1000])
            raise printer_failed(exc.message) from exc
        except Exception as exc:
            LOG.exception(
                "print job %s: film box %s could not be composed",
                job.sop_instance_uid,
                film_box_uid,
            )
            reason = exc.message if isinstance(exc, DicomhubError) else type(exc).__name__
            self.repository.finish_job(
                job.id, ExecutionStatus.FAILURE, f"{type(exc).__name__}: {exc}"[:1000]
            )
            raise PrintProcessingFailure(f"film could not be composed: {reason}") from exc

    def _check_film(
        self, info: AssociationInfo, session: Dataset, box: PrintObject, *, keep: bool
    ) -> tuple[PrintedFilm, list[Fit], FilmJob | None]:
        """A film box about to be printed: what the print job records of it, how its images
        fit (``ImageTooLarge``, 0xC603, when one is larger than its box with FAIL behaviour;
        ``FilmTooLarge``, 0x0213, for a film with too many pixels) and, with ``keep``, the
        film itself (built with its Presentation LUTs), else None so that it is released."""
        film = self._film_job(info, session, box, with_luts=keep)
        fits = film_fits(film, dpi=self.settings.print_film_dpi)
        entry = PrintedFilm(
            box.sop_instance_uid,
            _text(film.film_box.get("ImageDisplayFormat")),
            sum(image is not None for image in film.image_boxes),
        )
        return entry, [fit for fit in fits if fit is not None], film if keep else None

    def _film_job(
        self, info: AssociationInfo, session: Dataset, box: PrintObject, *, with_luts: bool = True
    ) -> FilmJob:
        """The film of one film box: its attributes, its image boxes' (with their pixel data)
        and annotation boxes', and (``with_luts``) the Presentation LUTs they reference, each
        read once for the film box however many image boxes reference it."""
        film_box = from_bytes(box.attributes)
        luts: dict[str, Dataset | None] | None = {} if with_luts else None
        images: list[Dataset | None] = []
        image_luts: list[Dataset | None] = []
        annotations: list[Dataset] = []
        color = False
        for child in self.repository.children(box.id):
            data = from_bytes(child.attributes)
            if child.kind is PrintKind.ANNOTATION_BOX:
                annotations.append(data)
                continue
            color = child.sop_class_uid == BASIC_COLOR_IMAGE_BOX
            sequence = data.get(
                "BasicColorImageSequence" if color else "BasicGrayscaleImageSequence"
            )
            images.append(data if sequence else None)
            image_luts.append(self._lut(info, data, luts))
        film_box.SOPInstanceUID = box.sop_instance_uid
        return FilmJob(
            print_job_uid="",
            film_session=session,
            film_box=film_box,
            image_boxes=images,
            annotations=annotations,
            presentation_lut=self._lut(info, film_box, luts),
            image_luts=image_luts,
            calling_ae_title=info.calling_ae_title,
            called_ae_title=info.called_ae_title,
            color=color,
        )

    def _lut(
        self, info: AssociationInfo, data: Dataset, luts: dict[str, Dataset | None] | None
    ) -> Dataset | None:
        """The Presentation LUT a film box or image box references (of this association),
        None for none; ``luts`` holds those read for the film box already, by UID (None:
        LUTs are not wanted)."""
        if luts is None:
            return None
        for item in data.get("ReferencedPresentationLUTSequence") or []:
            uid = _text(item.get("ReferencedSOPInstanceUID"))
            if uid not in luts:
                found = self.repository.get(uid, info.association_uid) if uid else None
                luts[uid] = (
                    from_bytes(found.attributes)
                    if found is not None and found.kind is PrintKind.PRESENTATION_LUT
                    else None
                )
            if luts[uid] is not None:
                return luts[uid]
        return None

    # N-GET ------------------------------------------------------------------------------------

    @staticmethod
    def _selected(data: Dataset, identifiers: list[int]) -> Dataset:
        if not identifiers:
            return data
        selected = Dataset()
        for tag in identifiers:
            if tag in data:
                selected[tag] = data[tag]
        return selected

    def _get_printer(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        if _text(request.sop_instance_uid) != PRINTER_INSTANCE:
            raise NoSuchInstance(f"the Printer SOP Instance UID is {PRINTER_INSTANCE}")
        settings = self.settings
        data = Dataset()
        data.PrinterStatus = "NORMAL"
        data.PrinterStatusInfo = "NORMAL"
        data.PrinterName = settings.print_printer_name
        data.Manufacturer = settings.print_manufacturer
        data.ManufacturerModelName = settings.print_model_name
        data.DeviceSerialNumber = settings.print_serial_number
        data.SoftwareVersions = __version__
        data.DateOfLastCalibration = ""
        data.TimeOfLastCalibration = ""
        return PrintResult(PRINTER_INSTANCE, self._selected(data, request.attribute_identifiers))

    def _get_print_job(self, info: AssociationInfo, request: PrintRequest) -> PrintResult:
        uid = _text(request.sop_instance_uid)
        job = self.repository.job(uid) if uid else None
        if job is None:
            raise NoSuchInstance(f"no print job {uid[:64]}")
        created: datetime = job.created_at
        data = Dataset()
        data.ExecutionStatus = job.status.value
        data.ExecutionStatusInfo = (
            "NORMAL" if job.status is not ExecutionStatus.FAILURE else ("UNKNOWN")
        )
        data.PrintPriority = job.print_priority
        data.CreationDate = created.strftime("%Y%m%d")
        data.CreationTime = created.strftime("%H%M%S")
        data.PrinterName = self.settings.print_printer_name
        data.Originator = job.calling_ae_title
        return PrintResult(uid, self._selected(data, request.attribute_identifiers))
