"""Forwarding rules: which stored instance goes to which peer (pure matching, no database)."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.uid import CTImageStorage, MRImageStorage

from dicomhub.config import ConfigError, ForwardRule, load_settings, render_settings
from dicomhub.forwarding import ForwardRules
from dicomhub.header import ParsedHeader
from dicomhub.index.repository import NewInstance
from dicomhub.storage.base import BlobInfo
from tests.factories import make_dataset

BLOB = BlobInfo("k", 1, "0" * 64, "0" * 64)


def _item(calling: str = "CT1", called: str = "DICOMHUB", **dataset: Any) -> NewInstance:
    parsed = ParsedHeader.from_dataset(make_dataset(**dataset))
    return NewInstance(parsed, BLOB, "C-STORE", calling, False, called_ae_title=called)


def _rules(*rules: dict[str, Any]) -> ForwardRules:
    return ForwardRules([ForwardRule(**rule) for rule in rules])


def test_no_rules_nothing_forwarded() -> None:
    rules = _rules()
    assert not rules
    assert rules.destinations(_item()) == []


def test_rule_without_criteria_matches_everything() -> None:
    rules = _rules({"name": "all", "destinations": ["pacs", "backup"]})
    assert rules.destinations(_item()) == [("all", "pacs"), ("all", "backup")]


@pytest.mark.parametrize(
    ("criterion", "values", "item", "expected"),
    [
        ("calling_ae_title", ["CT1"], _item(calling="CT1"), True),
        ("calling_ae_title", ["CT1"], _item(calling="CT2"), False),
        ("calling_ae_title", ["CT1", "MR1"], _item(calling="MR1"), True),
        ("calling_ae_title", ["CT*"], _item(calling="CT42"), True),
        ("calling_ae_title", ["CT?"], _item(calling="CT42"), False),
        ("calling_ae_title", ["CT1"], _item(calling="CT1  "), True),
        ("calling_ae_title", ["ct1"], _item(calling="CT1"), False),
        ("called_ae_title", ["ROUTER"], _item(called="ROUTER"), True),
        ("called_ae_title", ["ROUTER"], _item(called="DICOMHUB"), False),
        ("called_ae_title", ["ROUT*", "X"], _item(called="ROUTER"), True),
        ("modality", ["CT"], _item(modality="CT"), True),
        ("modality", ["MR", "CT"], _item(modality="CT"), True),
        ("modality", ["MR"], _item(modality="CT"), False),
        ("modality", ["M?"], _item(modality="MR"), True),
        ("sop_class_uid", [CTImageStorage], _item(sop_class=CTImageStorage), True),
        ("sop_class_uid", [MRImageStorage], _item(sop_class=CTImageStorage), False),
        ("sop_class_uid", [MRImageStorage, CTImageStorage], _item(), True),
        ("modality", [], _item(modality="CT"), True),
        ("modality", ["*"], _item(modality="CT"), True),
    ],
)
def test_each_criterion(
    criterion: str, values: list[str], item: NewInstance, expected: bool
) -> None:
    rules = _rules({"name": "r", "destinations": ["pacs"], criterion: values})
    assert rules.destinations(item) == ([("r", "pacs")] if expected else [])


@pytest.mark.parametrize(
    ("attributes", "dataset", "expected"),
    [
        ({"PatientID": "PID001"}, {"patient_id": "PID001"}, True),
        ({"PatientID": "PID*"}, {"patient_id": "PID001"}, True),
        ({"PatientID": "PID00?"}, {"patient_id": "PID001"}, True),
        ({"PatientID": "XYZ*"}, {"patient_id": "PID001"}, False),
        ({"PatientID": "A\\PID001"}, {"patient_id": "PID001"}, True),
        ({"PatientName": "doe^*"}, {"patient_name": "DOE^JOHN"}, True),  # PN: any case
        ({"StudyDate": "20240101-20241231"}, {"study_date": "20240315"}, True),
        ({"StudyDate": "20250101-"}, {"study_date": "20240315"}, False),
        ({"InstitutionName": "*"}, {}, True),  # universal, even when absent
        ({"InstitutionName": "GENERAL*"}, {}, False),
        ({"InstitutionName": "GENERAL*"}, {"InstitutionName": "GENERAL HOSPITAL"}, True),
        ({"ImageType": "LOCALIZER"}, {"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, True),
        ({"ImageType": "AXIAL"}, {"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, False),
        ({"SeriesNumber": "1"}, {}, True),
        ({"SeriesNumber": "2"}, {}, False),
    ],
)
def test_attributes(attributes: dict[str, str], dataset: dict[str, Any], expected: bool) -> None:
    rules = _rules({"name": "r", "destinations": ["pacs"], "attributes": attributes})
    assert rules.destinations(_item(**dataset)) == ([("r", "pacs")] if expected else [])


def test_every_given_criterion_must_match() -> None:
    rules = _rules(
        {
            "name": "ct-from-ct1",
            "destinations": ["pacs"],
            "calling_ae_title": ["CT1"],
            "modality": ["CT"],
            "attributes": {"PatientID": "PID*"},
        }
    )
    assert rules.destinations(_item(calling="CT1", modality="CT")) == [("ct-from-ct1", "pacs")]
    assert rules.destinations(_item(calling="CT2", modality="CT")) == []
    assert rules.destinations(_item(calling="CT1", modality="MR")) == []
    assert rules.destinations(_item(calling="CT1", modality="CT", patient_id="Q1")) == []


def test_several_rules_each_peer_once() -> None:
    rules = _rules(
        {"name": "ct", "destinations": ["pacs", "ai"], "modality": ["CT"]},
        {"name": "all", "destinations": ["pacs", "backup", "backup"]},
        {"name": "mr", "destinations": ["research"], "modality": ["MR"]},
    )
    assert rules.destinations(_item(modality="CT")) == [
        ("ct", "pacs"),
        ("ct", "ai"),
        ("all", "backup"),
    ]
    assert rules.destinations(_item(modality="MR")) == [
        ("all", "pacs"),
        ("all", "backup"),
        ("mr", "research"),
    ]


def test_settings_from_toml(tmp_path: Any) -> None:
    path = tmp_path / "dicomhub.toml"
    path.write_text(
        """
[peers.pacs]
ae_title = "PACS"
host = "127.0.0.1"
port = 104

[[forward]]
name = "ct-to-pacs"
destinations = ["pacs", "runtime-peer"]
modality = ["CT", "PT"]

[forward.attributes]
PatientID = "PID*"

[[forward]]
name = "everything"
destinations = ["archive"]
"""
    )
    settings = load_settings(path, forward_retry_initial=0.5)
    assert [rule.name for rule in settings.forward] == ["ct-to-pacs", "everything"]
    assert settings.forward[0].attributes == {"PatientID": "PID*"}
    assert settings.forward_retry_initial == 0.5
    assert settings.forward_max_attempts == 10
    text = render_settings(settings)
    assert "[[forward]]" in text
    assert 'name = "ct-to-pacs"' in text
    assert 'destinations = ["pacs", "runtime-peer"]' in text
    assert "attributes = { PatientID = " in text
    assert "# forward_lease" not in text and "forward_lease = 300.0" in text
    # The printed configuration reads back as the same rules.
    again = tmp_path / "again.toml"
    again.write_text(text)
    assert load_settings(again).forward == settings.forward


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "x", "destinations": []}, "destinations"),
        ({"name": "", "destinations": ["pacs"]}, "name"),
        ({"name": "x", "destinations": ["pacs"], "attributes": {"Nope": "1"}}, "not a DICOM"),
        (
            {
                "name": "x",
                "destinations": ["pacs"],
                "attributes": {"ReferencedSeriesSequence": "1"},
            },
            "sequence",
        ),
    ],
)
def test_invalid_rules_are_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, forward=[rule])


def test_rule_names_are_unique() -> None:
    rule = {"name": "x", "destinations": ["pacs"]}
    with pytest.raises(ConfigError, match="unique: x"):
        load_settings(None, forward=[rule, rule])


def test_unknown_destination_is_not_a_configuration_error() -> None:
    settings = load_settings(None, forward=[{"name": "x", "destinations": ["not-declared"]}])
    assert settings.forward[0].destinations == ["not-declared"]
