"""DIMSE command sets: the C-STORE response built directly equals the general encoder's."""

from __future__ import annotations

import pytest

from dicomhub.dicom.engine import commands as cmd


@pytest.mark.parametrize(
    ("sop_class", "message_id", "status", "sop_instance"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", 1, 0x0000, "1.2.3.4"),  # even and odd UIDs
        ("1.2.840.10008.5.1.4.1.1.7", 65535, 0xB000, "1.2.826.0.1.3680043.8.498.12345"),
    ],
)
def test_store_response_is_what_the_general_encoder_writes(
    sop_class: str, message_id: int, status: int, sop_instance: str
) -> None:
    direct = cmd.store_response(sop_class, message_id, status, sop_instance)
    general = cmd.encode_command(
        AffectedSOPClassUID=sop_class,
        CommandField=cmd.C_STORE_RSP,
        MessageIDBeingRespondedTo=message_id,
        CommandDataSetType=cmd.NO_DATA_SET,
        Status=status,
        AffectedSOPInstanceUID=sop_instance,
    )
    assert direct == general
    decoded = cmd.decode_command(direct)
    assert decoded["Status"] == status and decoded["AffectedSOPInstanceUID"] == sop_instance
