"""Bad input over the network: dicomhub answers with the documented failure and keeps nothing.

Requests are crafted with pynetdicom's chunked sending mode (``support.store_raw``): the data
set bytes after a Part 10 file's meta go on the wire exactly as they are, and the command's
Affected SOP Class/Instance UIDs come from that file meta, so a file whose meta disagrees with
its data set makes a C-STORE whose command disagrees with its data set.

After every refusal the index (row counts of every table), the blob store and the staging area
must be exactly as before.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.interop.support import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    MR_IMAGE_STORAGE,
    PYNETDICOM_ABORTS_ON_UNKNOWN_SOP_CLASS,
    UID_ROOT,
    Hub,
    HubFactory,
    association,
    dcmsend,
    encode_dataset,
    encode_part10,
    needs_dcmtk,
    output_of,
    read_part10,
    sample,
    store_raw,
    wait_until,
)

pytestmark = [pytest.mark.interop, needs_dcmtk]


def crafted_dataset(sop_instance: str, **overrides: object) -> Dataset:
    """A small MR data set; ``overrides`` may set invalid values (validation is off)."""
    with pydicom.config.disable_value_validation():
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_instance
        ds.StudyDate = "20240102"
        ds.Modality = "MR"
        ds.PatientName = "CRAFTED^CASE"
        ds.PatientID = "CRAFT-1"
        ds.StudyInstanceUID = f"{UID_ROOT}.9.1"
        ds.SeriesInstanceUID = f"{UID_ROOT}.9.1.1"
        ds.InstanceNumber = 1
        for keyword, value in overrides.items():
            setattr(ds, keyword, value)
    return ds


def craft(
    tmp_path: Path, dataset: bytes, *, sop_class: str, sop_instance: str, name: str = "x.dcm"
) -> Path:
    """A Part 10 file with the given command UIDs (file meta) around ``dataset``."""
    path = tmp_path / name
    path.write_bytes(
        encode_part10(
            dataset, sop_class=sop_class, sop_instance=sop_instance, transfer_syntax=EXPLICIT_LE
        )
    )
    return path


def assert_refused(hub: Hub, status: Dataset, code: int, mentions: str, before: object) -> None:
    """The response carries ``code`` and an ErrorComment naming ``mentions``; nothing kept."""
    assert "Status" in status, "no C-STORE response (association aborted?)"
    assert status.Status == code, f"status 0x{status.Status:04X}, expected 0x{code:04X}"
    comment = str(status.get("ErrorComment", ""))
    assert mentions in comment, f"ErrorComment {comment!r} does not mention {mentions}"
    assert hub.snapshot() == before, "a refused object left something in storage or index"


# Command and data set disagree ---------------------------------------------------------------


def test_sop_instance_uid_differs_from_command(hub: Hub, tmp_path: Path) -> None:
    data = encode_dataset(crafted_dataset(f"{UID_ROOT}.9.1.1.1"))
    path = craft(tmp_path, data, sop_class=MR_IMAGE_STORAGE, sop_instance=f"{UID_ROOT}.9.1.1.2")
    before = hub.snapshot()

    status = store_raw(hub, path)

    assert_refused(hub, status, 0xC001, "SOPInstanceUID", before)
    hub.wait_for_log(rf"C-STORE {UID_ROOT}\.9\.1\.1\.2 from CRAFTER@\S+ refused: 0xC001")


def test_sop_class_uid_differs_from_command(hub: Hub, tmp_path: Path) -> None:
    # The command (and the presentation context) say CT Image Storage; the data set is an MR.
    data = encode_dataset(crafted_dataset(f"{UID_ROOT}.9.1.1.3"))
    path = craft(tmp_path, data, sop_class=CT_IMAGE_STORAGE, sop_instance=f"{UID_ROOT}.9.1.1.3")
    before = hub.snapshot()

    status = store_raw(hub, path)

    assert_refused(hub, status, 0xA900, "SOPClassUID", before)


# Invalid UIDs in the data set (PS3.5 9.1: digits and dots, at most 64 characters, no empty
# component, no leading zero in a component of more than one digit) ----------------------------


@pytest.mark.parametrize(
    ("overrides", "keyword"),
    [
        pytest.param({"SOPInstanceUID": "../x"}, "SOPInstanceUID", id="sop-instance-dot-dot"),
        pytest.param({"SOPInstanceUID": "1.2.840.ABC"}, "SOPInstanceUID", id="sop-letters"),
        pytest.param({"SOPInstanceUID": "1.2..3"}, "SOPInstanceUID", id="sop-empty-component"),
        pytest.param(
            {"StudyInstanceUID": "1.2." + "3" * 61}, "StudyInstanceUID", id="study-65-characters"
        ),
        pytest.param(
            {"StudyInstanceUID": "../../../../tmp/evil"}, "StudyInstanceUID", id="study-path"
        ),
        pytest.param({"SeriesInstanceUID": "1.2.abc"}, "SeriesInstanceUID", id="series-letters"),
        pytest.param({"SeriesInstanceUID": ""}, "SeriesInstanceUID", id="series-empty"),
        pytest.param(
            {"SOPInstanceUID": "1.2.03.4"},
            "SOPInstanceUID",
            id="sop-leading-zero",
        ),
    ],
)
def test_invalid_uid_in_data_set_is_refused(
    hub: Hub, tmp_path: Path, overrides: dict[str, str], keyword: str
) -> None:
    ds = crafted_dataset(f"{UID_ROOT}.9.2.{len(overrides[keyword])}", **overrides)
    # The command carries the data set's SOP Instance UID when pynetdicom can encode it (it
    # refuses values over 64 characters), so the failure is about the UID itself.
    command_uid = str(ds.SOPInstanceUID)
    path = craft(tmp_path, encode_dataset(ds), sop_class=MR_IMAGE_STORAGE, sop_instance=command_uid)
    before = hub.snapshot()

    status = store_raw(hub, path)

    assert_refused(hub, status, 0xC001, keyword, before)
    assert not Path("/tmp/evil").exists()
    assert not [p for p in hub.data_dir.parent.rglob("*") if p.name in {"x", "evil"}]


# Objects dicomhub cannot understand ----------------------------------------------------------


def _with_data_set_uids(path: Path, tmp_path: Path) -> Path:
    """A copy of a test file whose file meta names the data set's SOP Class/Instance UIDs."""
    part = read_part10(path)
    ds = pydicom.dcmread(io.BytesIO(path.read_bytes()), stop_before_pixels=True, force=True)
    copy = tmp_path / path.name
    copy.write_bytes(
        encode_part10(
            part.dataset,
            sop_class=str(ds.SOPClassUID),
            sop_instance=str(ds.SOPInstanceUID),
            transfer_syntax=part.transfer_syntax,
        )
    )
    return copy


@pytest.mark.parametrize(
    ("name", "mentions"),
    [
        # Pixel Data declares 8192 bytes, fewer follow (DCMTK refuses to send it).
        ("MR_truncated.dcm", "truncated"),
        # The file ends inside IsocenterPosition (50 bytes declared, 29 left) in a sequence.
        ("rtplan_truncated.dcm", "truncated"),
        # Encapsulated pixel data without its sequence delimiter.
        ("emri_small_jpeg_2k_lossless_too_short.dcm", "truncated"),
        # An element with a length far beyond the end of the file after the pixel data.
        ("SC_rgb_jpeg.dcm", "truncated"),
        # NumberOfFrames (IS) is '1A'.
        ("badVR.dcm", "NumberOfFrames"),
    ],
)
def test_damaged_test_file_is_refused(hub: Hub, tmp_path: Path, name: str, mentions: str) -> None:
    path = _with_data_set_uids(sample(name), tmp_path)
    before = hub.snapshot()

    status = store_raw(hub, path)

    assert_refused(hub, status, 0xC000, mentions, before)


MR_SMALL = read_part10(sample("MR_small.dcm")).dataset
PIXEL_DATA_HEADER = MR_SMALL.index(b"\xe0\x7f\x10\x00OW")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(MR_SMALL[:5], id="cut-in-element-header"),
        pytest.param(MR_SMALL[:-100], id="cut-in-pixel-data"),
        # Everything up to the pixel data, less the last 3 bytes of the element before it.
        pytest.param(
            MR_SMALL[: PIXEL_DATA_HEADER - 3],
            id="cut-before-pixel-data",
        ),
        # pydicom reads this as one element whose declared length runs past the end.
        pytest.param(b"this is not a DICOM data set at all", id="not-dicom"),
    ],
)
def test_unparseable_data_set_is_refused(hub: Hub, tmp_path: Path, data: bytes) -> None:
    path = craft(
        tmp_path,
        data,
        sop_class=MR_IMAGE_STORAGE,
        sop_instance="1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457",
    )
    before = hub.snapshot()

    status = store_raw(hub, path)

    assert_refused(hub, status, 0xC000, "", before)


# Protocol-level trouble ----------------------------------------------------------------------


@PYNETDICOM_ABORTS_ON_UNKNOWN_SOP_CLASS
def test_unsupported_command_sop_class_gets_a_status_and_the_association_goes_on(
    start_hub: HubFactory, tmp_path: Path
) -> None:
    # rtdose_rle.dcm encodes every element as UN, so DCMTK sends the C-STORE-RQ with Affected
    # SOP Class UID "31" (the first byte of the UN value, printed in hex) on the RT Dose
    # context.  A storage SCP answers that request with a failure status (PS3.7 9.1.1.1.9 /
    # Annex C: 0x0122 SOP class not supported; or PS3.4 B.2.3: 0xA900) and keeps serving the
    # association: the next file must be stored.
    hub = start_hub()
    files = [sample("rtdose_rle.dcm"), sample("CT_small.dcm")]

    outcomes, result = dcmsend(files, hub.ae_title, hub.port, tmp_path, "-ma")

    first, second = (outcomes.get(str(f)) for f in files)
    assert first is not None and first.status in {0x0122, 0xA900}, output_of(result)
    assert second is not None and second.status == 0x0000, output_of(result)
    assert hub.instance("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322") is not None
    assert hub.count("instances") == 1
    assert hub.staging_files() == []


def test_abort_during_c_store_leaves_nothing_behind(start_hub: HubFactory) -> None:
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE

    hub = start_hub()
    sop_instance = f"{UID_ROOT}.9.3.1"
    ds = crafted_dataset(sop_instance)
    # 8 MiB: many P-DATA fragments, and more than dicomhub keeps in memory (2 MiB), so the
    # part received so far is in a staging file when the association is aborted.
    ds.add_new(0x00091010, "OB", bytes(8 * 1024 * 1024))
    request = C_STORE()
    request.MessageID = 1
    request.Priority = 2
    request.AffectedSOPClassUID = MR_IMAGE_STORAGE
    request.AffectedSOPInstanceUID = sop_instance
    request.DataSet = io.BytesIO(encode_dataset(ds))
    message = C_STORE_RQ()
    message.primitive_to_message(request)

    with association(hub, [(MR_IMAGE_STORAGE, EXPLICIT_LE)]) as assoc:
        context_id = assoc.accepted_contexts[0].context_id
        fragments = message.encode_msg(context_id, assoc.acceptor.maximum_length)
        for _ in range(14):  # the command and the first 3+ MiB of the data set
            assoc.dul.send_pdu(next(fragments))
        receiving = wait_until(lambda: bool(hub.staging_files()), 10)
        assoc.abort()

    assert receiving, "dicomhub never started receiving the data set"
    left = wait_until(lambda: not hub.staging_files(), 5)
    assert left, f"staging files left after the abort: {hub.staging_files()}"
    assert hub.count("instances") == 0
    assert hub.blob_keys() == []
