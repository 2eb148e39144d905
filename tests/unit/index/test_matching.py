"""PS3.4 C.2.2.2 matching rules, one matcher at a time."""

from __future__ import annotations

import pytest

from dicomhub.index.matching import MatchKind, parse_matcher


@pytest.mark.parametrize(
    ("vr", "query", "kind"),
    [
        ("PN", "", MatchKind.UNIVERSAL),
        ("PN", "*", MatchKind.UNIVERSAL),
        ("LO", "**", MatchKind.UNIVERSAL),
        ("PN", "DOE*", MatchKind.WILDCARD),
        ("SH", "A?C", MatchKind.WILDCARD),
        ("UI", "1.2\\1.3", MatchKind.LIST),
        ("DA", "20200101-20201231", MatchKind.RANGE),
        ("DA", "-20191231", MatchKind.RANGE),
        ("TM", "1000-", MatchKind.RANGE),
        ("DA", "20200101", MatchKind.SINGLE),
        ("UI", "1.2.3", MatchKind.SINGLE),
        ("DA", "2020*", MatchKind.SINGLE),  # no wildcards on DA: literal value
        ("DT", "20200101120000-0500", MatchKind.SINGLE),
    ],
)
def test_kinds(vr: str, query: str, kind: MatchKind) -> None:
    assert parse_matcher("X", vr, query).kind is kind


def test_universal_matches_empty_and_any() -> None:
    matcher = parse_matcher("PatientName", "PN", "*")
    assert matcher.matches("") and matcher.matches("DOE^JOHN") and matcher.matches(None)


def test_single_value_is_exact_for_non_pn() -> None:
    matcher = parse_matcher("AccessionNumber", "SH", "ACC1")
    assert matcher.matches("ACC1")
    assert not matcher.matches("acc1")
    assert not matcher.matches("ACC10")
    assert not matcher.matches("")


def test_person_name_case_insensitive_by_default_and_configurable() -> None:
    assert parse_matcher("PatientName", "PN", "doe^john").matches("DOE^JOHN")
    strict = parse_matcher("PatientName", "PN", "doe^john", case_insensitive_pn=False)
    assert not strict.matches("DOE^JOHN")


def test_person_name_trailing_separators_ignored() -> None:
    assert parse_matcher("PatientName", "PN", "DOE^JOHN").matches("DOE^JOHN^^^")


def test_person_name_component_groups() -> None:
    stored = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert parse_matcher("PatientName", "PN", "Yamada^Tarou").matches(stored)
    assert parse_matcher("PatientName", "PN", "山田*").matches(stored)
    assert parse_matcher("PatientName", "PN", stored).matches(stored)
    assert not parse_matcher("PatientName", "PN", "Suzuki*").matches(stored)


def test_wildcards() -> None:
    star = parse_matcher("PatientName", "PN", "DOE*")
    assert star.matches("DOE^JANE") and star.matches("DOE")
    assert not star.matches("JOHNDOE")
    question = parse_matcher("PatientID", "LO", "P?D1")
    assert question.matches("PID1") and not question.matches("PD1")
    assert not parse_matcher("PatientID", "LO", "*1").matches("")


def test_wildcard_characters_are_not_regex() -> None:
    assert parse_matcher("StudyDescription", "LO", "A.B*").matches("A.BC")
    assert not parse_matcher("StudyDescription", "LO", "A.B*").matches("AXBC")
    assert parse_matcher("StudyDescription", "LO", "50%*").matches("50% dose")


def test_uid_list() -> None:
    matcher = parse_matcher("StudyInstanceUID", "UI", "1.2.3\\1.2.4")
    assert matcher.matches("1.2.4") and not matcher.matches("1.2.5")


def test_multi_valued_stored_attribute() -> None:
    assert parse_matcher("ModalitiesInStudy", "CS", "MR").matches("CT\\MR")
    assert parse_matcher("ModalitiesInStudy", "CS", "PT\\MR").matches("CT\\MR")
    assert not parse_matcher("ModalitiesInStudy", "CS", "PT").matches("CT\\MR")


@pytest.mark.parametrize(
    ("query", "stored", "expected"),
    [
        ("20200101-20201231", "20200615", True),
        ("20200101-20201231", "20200101", True),
        ("20200101-20201231", "20201231", True),
        ("20200101-20201231", "20210101", False),
        ("-20191231", "20191231", True),
        ("-20191231", "20200101", False),
        ("20210101-", "20991231", True),
        ("20210101-", "20201231", False),
        ("20210101-", "", False),
    ],
)
def test_date_ranges(query: str, stored: str, expected: bool) -> None:
    assert parse_matcher("StudyDate", "DA", query).matches(stored) is expected


@pytest.mark.parametrize(
    ("query", "stored", "expected"),
    [
        ("0800-1200", "101500", True),
        ("0800-1200", "120059.5", True),  # 1200 covers the whole minute
        ("0800-1200", "120100", False),
        ("-0800", "075959", True),
        ("1000-", "095959", False),
        ("10", "101500", True),  # a single TM value covers its precision
        ("1015", "101500.25", True),
        ("1015", "101600", False),
        ("10:15-11:00", "103000", True),
    ],
)
def test_time_matching(query: str, stored: str, expected: bool) -> None:
    assert parse_matcher("StudyTime", "TM", query).matches(stored) is expected


def test_datetime_range_ignores_offset_and_pads() -> None:
    matcher = parse_matcher("AcquisitionDateTime", "DT", "2020-2021")
    assert matcher.matches("20210630120000")
    assert not matcher.matches("20220101000000")
    assert parse_matcher("AcquisitionDateTime", "DT", "20200101120000-").matches(
        "20200101130000+0100"
    )
