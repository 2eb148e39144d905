"""C-STORE from DCMTK (storescu, dcmsend): what arrives is stored bit for bit and indexed.

What "bit for bit" is compared with: the data set bytes DCMTK put on the wire.  DCMTK senders
re-encode many files even in their own transfer syntax (they drop group length elements,
re-deflate, and convert when another transfer syntax is negotiated), so for each file the
test sends the same file with the same command to DCMTK's storescp in bit-preserving mode
(``+B``), negotiating the transfer syntax dicomhub negotiated, and uses what storescp received
as the expected bytes.  For files DCMTK passes through unchanged this is exactly the file's own
data set (the bytes after its file meta).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pydicom
import pytest

from tests.interop.support import (
    DEFLATED_LE,
    ENGINE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    HOST,
    IMPLICIT_LE,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    PYNETDICOM_ABORTS_ON_UNKNOWN_SOP_CLASS,
    RLE_LOSSLESS,
    Arg,
    DcmtkReference,
    Hub,
    HubFactory,
    Part10,
    Sender,
    SendOutcome,
    assert_stored,
    dcmsend,
    dcmsend_argv,
    needs_dcmtk,
    output_of,
    part10_corpus,
    read_part10,
    run_tool,
    sample,
    store_raw,
)

pytestmark = [pytest.mark.interop, needs_dcmtk]

CORPUS = part10_corpus()

# Files dcmsend refuses to send (it cannot parse them or finds no SOP Class/Instance UID):
# nothing may reach dicomhub.  The truncated ones are sent raw in test_bad_input.py.
NOT_SENT_BY_DCMTK = {
    "MR_truncated.dcm": "pixel data element longer than the rest of the file",
    "rtplan_truncated.dcm": "file ends inside an element",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "no sequence delimiter after the fragments",
    "SC_rgb_jpeg.dcm": "an element with a bogus length after the pixel data",
    "UN_sequence.dcm": "no SOP Class UID in the data set",
    "empty_charset_LEI.dcm": "no SOP Class UID",
    "meta_missing_tsyntax.dcm": "no SOP Class UID",
    "nested_priv_SQ.dcm": "no SOP Class UID",
    "no_meta_group_length.dcm": "no SOP Class UID in the data set",
    "priv_SQ.dcm": "no SOP Class UID in the data set",
}

# Files dicomhub must refuse: (status, regular expression for the reason it logs).
REFUSED: dict[str, tuple[int, str]] = {
    # Type 1 StudyInstanceUID absent: "bad/missing UIDs" -> 0xC001.
    "JPEGLSNearLossless_08.dcm": (0xC001, r"StudyInstanceUID.*missing"),
    "JPEGLSNearLossless_16.dcm": (0xC001, r"StudyInstanceUID.*missing"),
    "SC_rgb_jls_lossy_line.dcm": (0xC001, r"StudyInstanceUID.*missing"),
    "SC_rgb_jls_lossy_sample.dcm": (0xC001, r"StudyInstanceUID.*missing"),
    # SOPInstanceUID is 64 hex digits (letters are not allowed in a UID).
    "bad_sequence.dcm": (0xC001, r"SOPInstanceUID.*not a valid UID"),
    # NumberOfFrames (IS) is '1A': a bad value dicomhub cannot index.
    "badVR.dcm": (0xC000, r"NumberOfFrames"),
}

# Files whose presentation context dicomhub must reject (none: retired storage SOP classes such
# as Ultrasound Image Storage (Retired) of color-pl.dcm and color-px.dcm are accepted too).
NO_PRESENTATION_CONTEXT: set[str] = set()

# Every element of these data sets is encoded with VR UN.  DCMTK then reads the SOP Class UID
# as the text "31\2e\32..." and sends a C-STORE-RQ whose Affected SOP Class UID is "31", which
# is neither a storage SOP class nor the presentation context's abstract syntax.  The SCP must
# answer with a failure status (0x0122 SOP class not supported, or 0xA900 data set does not
# match SOP class); dicomhub (pynetdicom) aborts the association instead.
UNKNOWN_COMMAND_SOP_CLASS = {"rtdose_rle.dcm", "rtdose_rle_1frame.dcm", "explicit_VR-UN.dcm"}


def _corpus_params() -> list[object]:
    return [
        pytest.param(name, marks=PYNETDICOM_ABORTS_ON_UNKNOWN_SOP_CLASS)
        if name in UNKNOWN_COMMAND_SOP_CLASS
        else name
        for name in CORPUS
    ]


@pytest.fixture(scope="module")
def hub_env() -> dict[str, str]:
    """This module's shared ``hub`` replaces a stored SOP instance by a copy with other content.

    Many test files share a SOP Instance UID in different transfer syntaxes; each one is checked
    right after it is sent.
    """
    return {"DICOMHUB_DUPLICATE_POLICY": "replace"}


def data_set_uids(path: Path) -> tuple[str, str, str, str]:
    """(SOP Class, SOP Instance, Study, Series) UIDs of a file's data set."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return (
        str(ds.get("SOPClassUID", "")),
        str(ds.get("SOPInstanceUID", "")),
        str(ds.get("StudyInstanceUID", "")),
        str(ds.get("SeriesInstanceUID", "")),
    )


def reference_copy(
    reference: DcmtkReference, sender: Sender, transfer_syntax: str, sop_instance_uid: str
) -> Part10:
    """What ``sender`` transmits for one SOP instance when ``transfer_syntax`` is negotiated."""
    reception = reference.receive(sender, transfer_syntax)
    copies = [read_part10(p) for p in reception.files]
    matching = [c for c in copies if c.sop_instance_uid == sop_instance_uid]
    assert len(matching) == 1, f"storescp received {len(copies)} files:\n{reception.output}"
    (copy,) = matching
    assert copy.transfer_syntax == transfer_syntax, (
        f"the reference storescp negotiated {copy.transfer_syntax}, dicomhub {transfer_syntax}"
    )
    return copy


def send_one(hub: Hub, path: Path, workdir: Path) -> tuple[SendOutcome | None, str]:
    """dcmsend one file to ``hub``: its report entry (None: not in the transfer list)."""
    outcomes, result = dcmsend([path], hub.ae_title, hub.port, workdir)
    return outcomes.get(str(path)), output_of(result)


# storescu ------------------------------------------------------------------------------------


def test_storescu_stores_several_files_on_one_association(
    start_hub: HubFactory, dcmtk_reference: DcmtkReference
) -> None:
    hub = start_hub()
    files = [
        sample(n)
        for n in ("CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "waveform_ecg.dcm")
    ]

    def storescu(called_ae: str, port: int) -> list[Arg]:
        return ["storescu", "-v", "-aet", "STORESCU", "-aec", called_ae, HOST, str(port), *files]

    result = run_tool(storescu(hub.ae_title, hub.port))

    assert result.returncode == 0, output_of(result)
    assert output_of(result).count("Received Store Response (Success)") == len(files)
    assert hub.count("instances") == len(files)
    ports = set()
    for path in files:
        sop_class, sop_instance, study, series = data_set_uids(path)
        # The command (and so the index) carries the data set's UIDs: rtplan.dcm's file meta
        # names another SOP instance (1.2.999...) than its data set (1.2.777...).
        stored = hub.instance(sop_instance)
        assert stored is not None, f"{path.name}: {sop_instance} not indexed"
        expected = reference_copy(
            dcmtk_reference, storescu, stored.transfer_syntax_uid, sop_instance
        )
        assert_stored(
            hub, sop_instance, dataset=expected.dataset, transfer_syntax=stored.transfer_syntax_uid
        )
        assert (stored.sop_class_uid, stored.study_instance_uid, stored.series_instance_uid) == (
            sop_class,
            study,
            series,
        )
        match = hub.wait_for_log(
            rf"C-STORE {re.escape(sop_instance)} from STORESCU@127\.0\.0\.1:(\d+): stored "
            rf"\({re.escape(sop_class)}, \d+ bytes, {re.escape(stored.transfer_syntax_uid)}\) "
            r"0x0000"
        )
        ports.add(match.group(1))
    assert len(ports) == 1, "storescu sends every file on one association"
    assert hub.instance(read_part10(sample("rtplan.dcm")).sop_instance_uid) is None
    assert hub.staging_files() == []


# dcmsend: every Part 10 file of pydicom's test sets ------------------------------------------


@pytest.mark.parametrize("name", _corpus_params())
def test_dcmsend_test_file(
    name: str, hub: Hub, dcmtk_reference: DcmtkReference, workdir: Path
) -> None:
    path = CORPUS[name]
    before = hub.snapshot()
    log_mark = len(hub.log())
    outcome, output = send_one(hub, path, workdir)

    if name in NOT_SENT_BY_DCMTK:
        assert outcome is None or outcome.status is None, output
        assert hub.snapshot() == before
        return
    assert outcome is not None, output
    if name in NO_PRESENTATION_CONTEXT:
        assert outcome.status_text == "<no acceptable presentation context>", output
        assert hub.snapshot() == before
        return
    if name in UNKNOWN_COMMAND_SOP_CLASS:
        assert outcome.status in {0x0122, 0xA900}, f"{outcome.status_text}\n{output}"
        assert hub.snapshot() == before
        return
    # DCMTK's command carries the data set's UIDs (not the file meta's, when they differ).
    sop_class, sop_instance, study, series = data_set_uids(path)
    if name in REFUSED:
        status, reason = REFUSED[name]
        assert outcome.status == status, f"{outcome.status_text}\n{output}"
        assert hub.snapshot() == before, "a refused object left something in storage or index"
        hub.wait_for_log(
            rf"C-STORE {re.escape(sop_instance)} from DCMSEND@127\.0\.0\.1:\d+ refused: "
            rf"0x{status:04X} .*{reason}",
            since=log_mark,
        )
        return

    assert outcome.status == 0x0000, f"{outcome.status_text}\n{output}"
    ts = outcome.network_transfer_syntax

    def sender(called_ae: str, port: int) -> Sequence[Arg]:
        return dcmsend_argv([path], called_ae, port, workdir / "reference-report.txt")

    expected = reference_copy(dcmtk_reference, sender, ts, sop_instance)
    stored = assert_stored(hub, sop_instance, dataset=expected.dataset, transfer_syntax=ts)
    assert (stored.sop_class_uid, stored.study_instance_uid, stored.series_instance_uid) == (
        sop_class,
        study,
        series,
    )
    assert stored.header["00080018"]["Value"] == [sop_instance]
    # Only this transfer is judged: files an earlier (xfail) abort left behind are not its own.
    assert hub.snapshot().staging == before.staging, "the staging file was not removed"


# The same files without DCMTK: pynetdicom sends each file's own bytes ------------------------


@pytest.mark.parametrize(
    "name",
    [
        "MR_small.dcm",  # Explicit VR Little Endian
        "MR_small_implicit.dcm",  # Implicit VR Little Endian
        "MR_small_bigendian.dcm",  # Explicit VR Big Endian
        "image_dfl.dcm",  # Deflated Explicit VR Little Endian
        "MR_small_RLE.dcm",  # RLE Lossless
        "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline
        "JPGExtended.dcm",  # JPEG Extended
        "JPGLosslessP14SV1_1s_1f_8b.dcm",  # JPEG Lossless SV1
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
        "SC_rgb_jls_lossy_line.dcm",  # JPEG-LS Near-Lossless (refused: no StudyInstanceUID)
        "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
        "JPEG2000.dcm",  # JPEG 2000
        "SC_rgb_small_odd.dcm",  # odd-sized pixel data
    ],
)
def test_file_sent_in_its_own_transfer_syntax_is_stored_bit_for_bit(name: str, hub: Hub) -> None:
    # pynetdicom proposes only the file's transfer syntax and sends the bytes after its file
    # meta untouched: the stored data set must be exactly the file's.
    path = sample(name)
    part = read_part10(path)
    before = hub.snapshot()

    status = store_raw(hub, path)

    if name in REFUSED:
        assert status.Status == REFUSED[name][0]
        assert hub.snapshot() == before
        return
    assert status.Status == 0x0000, status
    assert_stored(
        hub,
        part.sop_instance_uid,
        dataset=part.dataset,
        transfer_syntax=part.transfer_syntax,
    )


# Transfer syntax negotiation -----------------------------------------------------------------

KEEPS_SENDER_CHOICE = pytest.mark.xfail(
    ENGINE == "pynetdicom",
    strict=True,
    raises=AssertionError,
    reason="pynetdicom engine: the acceptor picks the first transfer syntax of ITS list "
    "(conformance.ALL_TRANSFER_SYNTAXES starts with Implicit VR Little Endian) that the "
    "requestor proposed, so DCMTK must convert the object (even decompress RLE/JPEG "
    "lossless/JPEG-LS) instead of sending it in its own, first-proposed transfer syntax",
)


def _dcmsend(path: Path) -> Sender:
    def argv(called_ae: str, port: int) -> Sequence[Arg]:
        return dcmsend_argv([path], called_ae, port, path.with_suffix(".report.txt"))

    return argv


def _storescu(path: Path, proposal: str) -> Sender:
    def argv(called_ae: str, port: int) -> Sequence[Arg]:
        return ["storescu", proposal, "-aet", "STORESCU", "-aec", called_ae, HOST, str(port), path]

    return argv


@pytest.mark.parametrize(
    ("name", "transfer_syntax", "tool"),
    [
        # dcmsend proposes the file's own transfer syntax first (then, when it can decompress,
        # Explicit VR LE, Explicit VR BE, Implicit VR LE); storescu -xi proposes only Implicit
        # VR LE.
        pytest.param("SC_rgb.dcm", EXPLICIT_LE, "dcmsend", marks=KEEPS_SENDER_CHOICE),
        pytest.param("image_dfl.dcm", DEFLATED_LE, "dcmsend", marks=KEEPS_SENDER_CHOICE),
        pytest.param("SC_rgb_rle.dcm", RLE_LOSSLESS, "dcmsend", marks=KEEPS_SENDER_CHOICE),
        pytest.param(
            "SC_rgb_jpeg_gdcm.dcm", JPEG_LOSSLESS_SV1, "dcmsend", marks=KEEPS_SENDER_CHOICE
        ),
        pytest.param(
            "emri_small_jpeg_ls_lossless.dcm",
            JPEG_LS_LOSSLESS,
            "dcmsend",
            marks=KEEPS_SENDER_CHOICE,
        ),
        pytest.param("J2K_pixelrep_mismatch.dcm", JPEG_2000_LOSSLESS, "dcmsend"),
        pytest.param("SC_rgb_jpeg_dcmtk.dcm", JPEG_BASELINE, "dcmsend"),
        # storescu's default proposes [Explicit VR LE] and [Explicit VR BE, Implicit VR LE] as
        # two contexts: a big endian file can go as it is only if the second one is accepted
        # with Explicit VR BE.  With -xb, Explicit VR BE comes in a context of its own.
        pytest.param("SC_rgb_expb.dcm", EXPLICIT_BE, "-x=", marks=KEEPS_SENDER_CHOICE),
        pytest.param("SC_rgb_expb.dcm", EXPLICIT_BE, "-xb"),
        pytest.param("MR_small_implicit.dcm", IMPLICIT_LE, "-xi"),
    ],
)
def test_object_is_stored_in_the_transfer_syntax_the_sender_prefers(
    name: str,
    transfer_syntax: str,
    tool: str,
    start_hub: HubFactory,
    dcmtk_reference: DcmtkReference,
    tmp_path: Path,
) -> None:
    # "Objects are stored bit for bit in the transfer syntax they arrive in": when a sender
    # proposes an object's own transfer syntax first and dicomhub supports it, the object must
    # arrive (and be recorded) in that transfer syntax, not be converted by the sender.
    hub = start_hub()
    path = tmp_path / name
    path.write_bytes(sample(name).read_bytes())
    assert read_part10(path).transfer_syntax == transfer_syntax
    sender = _dcmsend(path) if tool == "dcmsend" else _storescu(path, tool)
    _, sop_instance, _, _ = data_set_uids(path)

    result = run_tool(sender(hub.ae_title, hub.port))

    stored = hub.instance(sop_instance)
    assert stored is not None, output_of(result)
    assert stored.transfer_syntax_uid == transfer_syntax, (
        f"{name} was proposed first in {transfer_syntax} but arrived in "
        f"{stored.transfer_syntax_uid}"
    )
    expected = reference_copy(dcmtk_reference, sender, transfer_syntax, sop_instance)
    assert_stored(hub, sop_instance, dataset=expected.dataset, transfer_syntax=transfer_syntax)


# Duplicate SOP instances ---------------------------------------------------------------------

MR_SMALL_UID = "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"


def test_duplicate_with_other_content_is_refused_by_default(
    start_hub: HubFactory, workdir: Path
) -> None:
    hub = start_hub()
    first, output = send_one(hub, sample("MR_small.dcm"), workdir)
    assert first is not None and first.status == 0x0000, output
    stored = hub.instance(MR_SMALL_UID)
    assert stored is not None
    before = hub.snapshot()

    # Same SOP Instance UID, other data set bytes (128 bytes of trailing padding).
    other, output = send_one(hub, sample("MR_small_padded.dcm"), workdir)

    assert other is not None and other.status == 0x0111, output
    assert hub.snapshot() == before
    assert hub.instance(MR_SMALL_UID) == stored
    hub.wait_for_log(rf"C-STORE {re.escape(MR_SMALL_UID)} from DCMSEND@\S+ refused: 0x0111")

    # The same bytes again: acknowledged, no second copy.
    again, output = send_one(hub, sample("MR_small.dcm"), workdir)

    assert again is not None and again.status == 0x0000, output
    assert hub.snapshot() == before
    hub.wait_for_log(rf"C-STORE {re.escape(MR_SMALL_UID)} from DCMSEND@\S+: duplicate ")


def test_duplicate_with_other_content_replaces_when_configured(
    start_hub: HubFactory, dcmtk_reference: DcmtkReference, workdir: Path
) -> None:
    hub = start_hub({"DICOMHUB_DUPLICATE_POLICY": "replace"})
    first, output = send_one(hub, sample("MR_small.dcm"), workdir)
    assert first is not None and first.status == 0x0000, output
    old = hub.instance(MR_SMALL_UID)
    assert old is not None
    padded = sample("MR_small_padded.dcm")

    other, output = send_one(hub, padded, workdir)

    assert other is not None and other.status == 0x0000, output
    new = hub.instance(MR_SMALL_UID)
    assert new is not None and new.blob_key != old.blob_key
    assert hub.blob_keys() == [new.blob_key], "the replaced blob was not deleted"
    assert hub.count("instances") == 1
    expected = reference_copy(
        dcmtk_reference,
        lambda ae, port: dcmsend_argv([padded], ae, port, workdir / "ref.txt"),
        other.network_transfer_syntax,
        MR_SMALL_UID,
    )
    assert_stored(
        hub, MR_SMALL_UID, dataset=expected.dataset, transfer_syntax=other.network_transfer_syntax
    )
    hub.wait_for_log(rf"C-STORE {re.escape(MR_SMALL_UID)} from DCMSEND@\S+: replaced ")
