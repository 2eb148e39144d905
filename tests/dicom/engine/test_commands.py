"""DIMSE command sets as dicomhub writes them, read back by pydicom (Implicit VR Little
Endian, group 0000)."""

from __future__ import annotations

from io import BytesIO

from pydicom.filereader import read_dataset
from pydicom.tag import Tag

from dicomhub.dicom.engine import commands as cmd


def _read(data: bytes) -> dict[str, object]:
    dataset = read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)
    return {element.keyword: element.value for element in dataset}


def test_an_n_set_refusal_names_the_attributes_it_refused() -> None:
    data = cmd.encode_command(
        AffectedSOPClassUID="1.2.840.10008.5.1.1.2",
        CommandField=0x8120,
        MessageIDBeingRespondedTo=7,
        CommandDataSetType=cmd.NO_DATA_SET,
        Status=0x0105,
        ErrorComment="Film Box N-SET may not set PatientName",
        AttributeIdentifierList=[0x00100010, 0x20100510],
    )
    read = _read(data)
    assert read["Status"] == 0x0105
    assert read["AttributeIdentifierList"] == [Tag(0x00100010), Tag(0x20100510)]
    assert read["CommandGroupLength"] == len(data) - 12
    decoded = cmd.decode_command(data)["AttributeIdentifierList"]
    assert decoded == bytes.fromhex("1000100010201005")
    as_decoded = cmd.encode_command(Status=0x0105, AttributeIdentifierList=decoded)
    as_tags = cmd.encode_command(Status=0x0105, AttributeIdentifierList=[0x00100010, 0x20100510])
    assert as_decoded == as_tags


def test_absent_values_are_left_out() -> None:
    data = cmd.encode_command(CommandField=0x8030, Status=0, ErrorComment=None)
    assert set(_read(data)) == {"CommandGroupLength", "CommandField", "Status"}
