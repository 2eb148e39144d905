"""HL7 v2 orders and patient updates mapped to worklist items (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomhub.config import ConfigError, load_settings
from dicomhub.hl7.mapping import (
    AckCode,
    Action,
    HL7Error,
    InvalidMessage,
    MappingOptions,
    MessageRejected,
    OrderUpdate,
    PatientUpdate,
    decode,
    map_message,
    mapping_table,
    read_header,
)
from tests.unit.hl7.messages import PID, adt_a08, omi, orm, segment

OPTIONS = MappingOptions(station_ae_titles={"CT": "CT1", "MR": "MR9"})


def orders(text: str | bytes, options: MappingOptions = OPTIONS) -> list[OrderUpdate]:
    raw = text.encode() if isinstance(text, str) else text
    result = map_message(decode(raw), options)
    assert isinstance(result, list)
    return result


def one(text: str | bytes, options: MappingOptions = OPTIONS) -> OrderUpdate:
    (update,) = orders(text, options)
    return update


def step(dataset: Dataset) -> Dataset:
    (item,) = dataset.ScheduledProcedureStepSequence
    assert isinstance(item, Dataset)
    return item


def error(text: str | bytes, options: MappingOptions = OPTIONS) -> HL7Error:
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(HL7Error) as info:
        map_message(decode(raw), options)
    return info.value


def test_orm_v231_new_order_maps_patient_order_and_step() -> None:
    update = one(orm())
    assert update.action is Action.NEW
    assert update.order_control == "NW"
    assert update.order_key == "PL1001^FL2001"
    ds = update.dataset
    assert "SpecificCharacterSet" not in ds  # all ASCII, MSH-18 empty
    assert ds.PatientID == "12345"
    assert ds.IssuerOfPatientID == "HOSP"
    assert ds.PatientName == "DOE^JOHN^Q^DR^JR"  # XPN suffix^prefix -> PN prefix^suffix
    assert ds.PatientBirthDate == "19800101"
    assert ds.PatientSex == "M"
    (other,) = ds.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID) == ("A-998", "INSURER")
    assert ds.ReferringPhysicianName == "WELBY^MARCUS^^DR"
    assert ds.AdmissionID == "V0001"
    assert ds.CurrentPatientLocation == "RAD R1 B2"
    assert ds.RequestingPhysician == "HOUSE^GREGORY^^DR"
    assert ds.PlacerOrderNumberImagingServiceRequest == "PL1001"
    assert ds.FillerOrderNumberImagingServiceRequest == "FL2001"
    assert ds.AccessionNumber == "ACC1001"
    assert ds.RequestedProcedureID == "RP1001"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.2.1.5.1001"  # ZDS-1
    (code,) = ds.RequestedProcedureCodeSequence  # OBR-44 before OBR-4
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "CT-HEAD",
        "L",
        "CT of the head",
    )
    assert ds.RequestedProcedureDescription == "CT of the head"
    assert ds.RequestedProcedurePriority == "ROUTINE"
    assert ds.ReasonForTheRequestedProcedure == "Headache since 3 days"
    assert ds.PatientTransportArrangements == "WALK"
    assert ds.MedicalAlerts == "Contrast allergy"
    sps = step(ds)
    assert sps.ScheduledProcedureStepID == "SPS1001"
    assert sps.Modality == "CT"
    assert sps.ScheduledStationAETitle == "CT1"  # from hl7_station_ae_titles
    assert sps.ScheduledProcedureStepStartDate == "20240320"
    assert sps.ScheduledProcedureStepStartTime == "093000"
    assert sps.ScheduledPerformingPhysicianName == "NURSE^JOY"
    (protocol,) = sps.ScheduledProtocolCodeSequence  # OBR-4 components 4-6
    assert (protocol.CodeValue, protocol.CodeMeaning) == ("P1", "Head routine")
    assert sps.ScheduledProcedureStepDescription == "Head routine"


def test_station_ae_from_obr21_else_modality_table_else_default() -> None:
    def station(text: str, options: MappingOptions = OPTIONS) -> str:
        return str(step(one(text, options).dataset).ScheduledStationAETitle)

    assert station(orm(obr21="CT_ROOM2")) == "CT_ROOM2"
    # OBR-21 holding something that is no AE title is not used
    assert station(orm(obr21="A filler field that is much too long")) == "CT1"
    default = MappingOptions(station_ae_titles={"MR": "MR1"}, default_station_ae_title="ANY")
    assert station(orm(), default) == "ANY"
    assert station(orm(), MappingOptions()) == ""


def test_orm_v25_latin1_names_and_character_set() -> None:
    pid = segment("PID", {1: "1", 3: "4711^^^HOSP", 5: "MÜLLER^JÜRGEN", 7: "1960", 8: "U"})
    raw = orm(version="2.5", charset="8859/1", pid=pid).encode("latin_1")
    ds = one(raw).dataset
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert ds.PatientName == "MÜLLER^JÜRGEN"
    assert ds.PatientBirthDate == ""  # year only: no DICOM date
    assert ds.PatientSex == ""  # U: unknown
    assert ds.to_json_dict()  # every value is valid for its VR


def test_omi_o23_v251_uses_tq1_and_ipc_with_utf8_names() -> None:
    update = one(omi())
    assert update.action is Action.NEW
    assert update.order_key == "PL-77^FL-88"
    ds = update.dataset
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == "YAMADA^TARO=山田^太郎=やまだ^たろう"
    assert ds.AccessionNumber == "ACC-77"
    assert ds.RequestedProcedureID == "RP-77"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.2.1.5.77"
    assert ds.RequestedProcedurePriority == "STAT"  # TQ1-9
    sps = step(ds)
    assert sps.ScheduledProcedureStepID == "SPS-77-1"
    assert sps.Modality == "MR"
    assert sps.ScheduledStationAETitle == "MR1"  # IPC-9 before the modality table
    assert sps.ScheduledStationName == "MRSTATION1"
    assert sps.ScheduledProcedureStepLocation == "MR ROOM 1"
    assert (sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime) == (
        "20240321",
        "1415",
    )
    (protocol,) = sps.ScheduledProtocolCodeSequence
    assert (protocol.CodeValue, protocol.CodeMeaning) == ("T1AX", "T1 axial brain")
    assert sps.ScheduledProcedureStepDescription == "T1 axial brain"


@pytest.mark.parametrize(
    ("control", "status", "action"),
    [
        ("XO", "SC", Action.CHANGE),
        ("SC", "IP", Action.CHANGE),
        ("SC", "CA", Action.CANCEL),
        ("SC", "DC", Action.CANCEL),
        ("CA", "CA", Action.CANCEL),
        ("DC", "DC", Action.CANCEL),
        ("OC", "CA", Action.CANCEL),
    ],
)
def test_order_control_gives_the_action(control: str, status: str, action: Action) -> None:
    update = one(orm(control, order_status=status))
    assert update.action is action
    assert update.order_key == "PL1001^FL2001"
    if action is Action.CANCEL:
        assert len(update.dataset) == 0
    else:
        assert step(update.dataset).Modality == "CT"


def test_cancel_needs_no_patient() -> None:
    text = orm("CA", pid=segment("PID", {1: "1"}))
    assert one(text).action is Action.CANCEL


@pytest.mark.parametrize("control", ["RP", "HD", "CH", "ZZ"])
def test_unknown_order_control_is_rejected(control: str) -> None:
    failure = error(orm(control))
    assert isinstance(failure, MessageRejected)
    assert failure.ack_code is AckCode.REJECT
    assert f"order control {control}" in failure.message
    assert "NW" in failure.message


def test_missing_patient_id_is_an_application_error() -> None:
    pid = segment("PID", {1: "1", 5: "DOE^JOHN"})
    failure = error(orm(pid=pid))
    assert isinstance(failure, InvalidMessage)
    assert failure.ack_code is AckCode.ERROR
    assert failure.error_code == "101"
    assert "PID-3" in failure.message


def test_missing_patient_name_and_order_numbers_are_errors() -> None:
    assert "PID-5" in error(orm(pid=segment("PID", {1: "1", 3: "77"}))).message
    failure = error(orm(placer="", filler=""))
    assert "ORC-2" in failure.message
    assert failure.ack_code is AckCode.ERROR


def test_values_that_do_not_fit_their_vr_are_errors() -> None:
    text = orm().replace("ACC1001", "ACCESSION-NUMBER-TOO-LONG")
    failure = error(text)
    assert "AccessionNumber" in failure.message
    assert "OBR-18" in failure.message
    assert (
        "not a valid UID"
        in error(orm().replace("1.2.826.0.1.3680043.2.1.5.1001", "1.02.x")).message
    )
    assert "date/time" in error(orm(start="2024-03-20")).message


def test_escape_sequences_are_decoded() -> None:
    text = orm().replace("Contrast allergy", "Contrast\\T\\iodine\\F\\latex")
    assert one(text).dataset.MedicalAlerts == "Contrast&iodine|latex"


def test_study_uid_is_derived_from_the_order_when_not_sent() -> None:
    first = one(orm(zds=False)).dataset.StudyInstanceUID
    again = one(orm("XO", zds=False, control_id="MSG0002")).dataset.StudyInstanceUID
    other = one(orm(zds=False, placer="PL9")).dataset.StudyInstanceUID
    assert first == again != other
    assert UID(first).is_valid
    assert first.startswith("2.25.")


def test_identifiers_fall_back_when_not_sent() -> None:
    text = orm().replace("|RP1001|SPS1001|", "|||")
    ds = one(text).dataset
    assert ds.RequestedProcedureID == "ACC1001"
    assert step(ds).ScheduledProcedureStepID == "ACC1001"


def test_several_orders_in_one_message() -> None:
    first = orm()
    second_order = [
        s for s in orm(placer="PL1002", filler="FL2002").split("\r") if s[:3] in ("ORC", "OBR")
    ]
    updates = orders(first + "\r".join(second_order) + "\r")
    assert [u.order_key for u in updates] == ["PL1001^FL2001", "PL1002^FL2002"]


def test_several_steps_of_one_order_are_rejected() -> None:
    failure = error(omi(ipc_count=2))
    assert failure.ack_code is AckCode.REJECT
    assert "IPC" in failure.message


def test_line_feeds_between_segments_are_accepted() -> None:
    assert one(orm().replace("\r", "\n")).order_key == "PL1001^FL2001"


@pytest.mark.parametrize(
    ("message_type", "code", "words"),
    [("ORU^R01", "200", "message type ORU^R01"), ("ADT^A01", "201", "event ADT^A01")],
)
def test_unsupported_messages_are_rejected(message_type: str, code: str, words: str) -> None:
    failure = error(orm().replace("ORM^O01", message_type))
    assert failure.ack_code is AckCode.REJECT
    assert failure.error_code == code
    assert words in failure.message


def test_not_hl7_is_rejected() -> None:
    with pytest.raises(MessageRejected, match="does not begin with MSH"):
        read_header(b"GET / HTTP/1.1\r\n\r\n")


def test_unsupported_character_set_is_rejected() -> None:
    raw = orm(version="2.5", charset="ISO IR87").encode()
    with pytest.raises(MessageRejected, match="ISO IR87"):
        decode(raw)


def test_bytes_outside_the_declared_character_set_are_an_error() -> None:
    pid = PID.replace("DOE^JOHN", "DOÉ^JOHN")
    with pytest.raises(InvalidMessage, match="not valid ASCII"):
        decode(orm(charset="ASCII", pid=pid).encode("utf-8"))
    with pytest.raises(InvalidMessage, match="MSH-18"):
        decode(orm(pid=pid).encode("latin_1"))  # empty MSH-18: UTF-8 by default


def test_empty_msh18_uses_the_default_character_set() -> None:
    pid = PID.replace("DOE^JOHN", "DOÉ^JOHN")
    received = decode(orm(pid=pid).encode("latin_1"), default_character_set="8859/1")
    assert received.specific_character_set == "ISO_IR 100"
    received = decode(orm(pid=pid).encode("utf-8"))
    assert received.specific_character_set == "ISO_IR 192"
    assert decode(orm().encode()).specific_character_set == ""


def test_adt_a08_gives_the_patient_changes_it_sends() -> None:
    received = decode(adt_a08(name="DOE^JONATHAN^Q", sex="M").encode())
    update = map_message(received)
    assert isinstance(update, PatientUpdate)
    assert (update.patient_id, update.issuer_of_patient_id) == ("12345", "HOSP")
    assert update.changes.PatientName == "DOE^JONATHAN^Q"
    assert update.changes.PatientSex == "M"
    assert "PatientBirthDate" not in update.changes  # not sent: left as it is


def test_adt_a08_null_value_empties_the_attribute() -> None:
    update = map_message(decode(adt_a08(birth_date='""', charset="UNICODE UTF-8").encode()))
    assert isinstance(update, PatientUpdate)
    assert update.changes.PatientBirthDate == ""
    assert update.changes.SpecificCharacterSet == "ISO_IR 192"


def test_adt_a08_without_patient_id_is_an_error() -> None:
    text = adt_a08().replace("12345^^^HOSP&1.2.826.0.1.3680043.2.1&ISO^MR", "")
    with pytest.raises(InvalidMessage, match="PID-3"):
        map_message(decode(text.encode()))


def test_options_from_settings(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        data_dir=tmp_path,
        hl7_station_ae_titles={"ct": "CT1"},
        hl7_default_station_ae_title="ANY",
        hl7_default_character_set="8859/1",
    )
    options = MappingOptions.from_settings(settings)
    assert options.station_ae_titles == {"CT": "CT1"}
    assert options.default_station_ae_title == "ANY"
    assert options.default_character_set == "8859/1"
    with pytest.raises(ConfigError, match="AE title"):
        load_settings(None, data_dir=tmp_path, hl7_station_ae_titles={"CT": "BAD\\AE"})
    with pytest.raises(ConfigError, match="8859/1"):
        load_settings(None, data_dir=tmp_path, hl7_default_character_set="KOI8-R")
    with pytest.raises(ConfigError, match="not an IP address"):
        load_settings(None, data_dir=tmp_path, hl7_allowed_hosts=["ris.example.org"])


def test_readme_shows_the_mapping_table() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    assert mapping_table() in readme, "README.md: paste the output of mapping_table()"
