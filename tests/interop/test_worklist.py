"""Modality Worklist against DCMTK's reference SCP (wlmscpfs) and with real worklist SCUs.

DCMTK's OFFIS sample worklist (``wlistdb/OFFIS/*.dump``, turned into ``.wl`` files with
``dump2dcm``) is loaded into dicomhub with ``dicomhub worklist add`` and served by ``wlmscpfs``
from the same files.  Every DCMTK sample query (``wlistqry/*.dump``) and further queries aimed
at this worklist (the samples name stations the OFFIS items do not have, so most of them match
nothing) are sent to both with ``findscu -W``; the answers (``-X`` files) must name the same
items with the same values.  The hub of this module does not restrict by calling AE (wlmscpfs
does not), another hub checks that rule with findscu and with Orthanc.

Deliberate differences from wlmscpfs, each allowed by PS3.4:

1. Zero-length attributes.  wlmscpfs expands a sequence key with an empty item into every
   attribute it supports, adding zero-length ScheduledProcedureStepEndDate, EndTime and
   Status the items do not have (its reading of C.2.2.2.6); dicomhub returns the stored
   sequence as it is.  wlmscpfs leaves out a requested sequence the item does not have
   (RequestedProcedureCodeSequence in wlistqry0); dicomhub returns it zero-length, as K.2.2.1.2
   and C.4.1.1.3.2 ask for every requested key.  Answers are compared without zero-length
   elements and empty sequences.
2. ScheduledProcedureStepStatus: dicomhub answers the item's status (SCHEDULED here; Type 3
   in Table K.6-1, the SCP's to give); wlmscpfs has none in the OFFIS files.  Left out of the
   comparison.
3. Optional matching keys.  wlmscpfs matches on a fixed list of keys and treats other keys
   with values (ScheduledStationName, ScheduledProcedureStepID, StudyInstanceUID,
   MedicalAlerts, ...) as return keys, returning every item.  dicomhub matches every key
   (K.2.2.1.1.2: an SCP may support optional matching keys), so it returns the items whose
   value matches.
4. Person names: dicomhub matches them without regard to case (``case_insensitive_pn``,
   C.2.2.2.1 and C.2.2.2.4 leave PN matching to the implementation); wlmscpfs does not.
5. An identifier without keys (only SpecificCharacterSet): wlmscpfs aborts the association
   (it cannot send an empty response identifier); dicomhub answers with the whole items.
6. Wildcards and value lists.  wlmscpfs applies wild card matching to some keys only (person
   names, AccessionNumber, RequestedProcedureID) and value lists to some (PatientID): a
   PatientID ``AV*``, a ScheduledStationAETitle ``A?4*`` or a Modality ``C?`` matches nothing
   there, and a Modality ``CT\\MR`` is refused with 0xA900.  C.2.2.2.4 defines wild card
   matching for every key of VR AE, CS, LO, PN, SH (and the other text VRs); dicomhub applies
   it, and value lists, to every key, with the same matchers as its Query/Retrieve C-FIND.

For differences 3 and 6 the expected answers are wlmscpfs's answers to the same query without
the key's value, kept when their value for the key matches.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from tests.interop.support import (
    ENGINE,
    HOST,
    Hub,
    WorklistAnswers,
    dicomhub_command,
    find_worklist,
    needs_dcmtk,
    needs_orthanc,
    output_of,
    run_tool,
    running_hub,
    stop_process,
    tool_env,
    wait_until,
)
from tests.interop.test_orthanc import running_orthanc
from tests.ports import free_port

OFFIS = Path("/usr/share/doc/dcmtk/examples/wlistdb/OFFIS")
SAMPLE_QUERIES = Path("/usr/share/doc/dcmtk/examples/wlistqry")
DUMP2DCM = shutil.which("dump2dcm")
WLMSCPFS = shutil.which("wlmscpfs")
WLM_AE = "OFFIS"
STEP_STATUS = 0x00400020

needs_wlm = pytest.mark.skipif(
    not (DUMP2DCM and WLMSCPFS and OFFIS.is_dir() and SAMPLE_QUERIES.is_dir()),
    reason="DCMTK's dump2dcm, wlmscpfs and worklist examples are needed (apt-get install dcmtk)",
)
needs_asyncio_engine = pytest.mark.skipif(
    ENGINE == "pynetdicom", reason="the pynetdicom engine does not serve the worklist"
)
pytestmark = [pytest.mark.interop, needs_dcmtk, needs_wlm, needs_asyncio_engine]


@pytest.fixture(scope="module")
def hub_env() -> dict[str, str]:
    """Like wlmscpfs, the module's hub answers every calling AE with every item."""
    return {"DICOMHUB_WORKLIST_FILTER_BY_CALLING_AE": "never"}


# Files ---------------------------------------------------------------------------------------


def dump2dcm(dump: Path, target: Path) -> Path:
    """A DICOM file from a DCMTK dump (``dump2dcm``)."""
    result = run_tool([str(DUMP2DCM), "+te", dump, target], timeout=30)
    assert result.returncode == 0 and target.is_file(), output_of(result)
    return target


def query_dump(step: dict[str, str] | None = None, **top: str) -> str:
    """A worklist query in DCMTK's dump format (top-level keys, then step keys)."""

    def line(keyword: str, value: str) -> str:
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        return f"({tag >> 16:04x},{tag & 0xFFFF:04x}) {dictionary_VR(keyword)} [{value}]"

    lines = [line(keyword, value) for keyword, value in top.items()]
    if step is not None:
        lines += ["(0040,0100) SQ", "(fffe,e000) -"]
        lines += [line(keyword, value) for keyword, value in step.items()]
        lines += ["(fffe,e00d) -", "(fffe,e0dd) -"]
    return "\n".join(lines) + "\n"


REQUEST = {"PatientName": "", "PatientID": "", "AccessionNumber": "", "PatientBirthDate": ""}
STEP = {
    "Modality": "",
    "ScheduledStationAETitle": "",
    "ScheduledProcedureStepStartDate": "",
    "ScheduledProcedureStepStartTime": "",
    "ScheduledPerformingPhysicianName": "",
}


def _step(**keys: str) -> dict[str, str]:
    return {**STEP, **keys}


SAME_ANSWERS: dict[str, str] = {
    "station-aa32": query_dump(_step(ScheduledStationAETitle="AA32"), **REQUEST),
    "station-aa33-of-two": query_dump(_step(ScheduledStationAETitle="AA33"), **REQUEST),
    "modality-ct": query_dump(_step(Modality="CT"), **REQUEST),
    "name-prefix": query_dump(_step(), **{**REQUEST, "PatientName": "VIVALDI*"}),
    "name-one-letter": query_dump(_step(), **{**REQUEST, "PatientName": "?AYDN*"}),
    "patient-id": query_dump(_step(), **{**REQUEST, "PatientID": "HF"}),
    "patient-id-list": query_dump(_step(), **{**REQUEST, "PatientID": "HF\\AV35674"}),
    "accession-wildcard": query_dump(_step(), **{**REQUEST, "AccessionNumber": "0000?"}),
    "birth-date-range": query_dump(_step(), **{**REQUEST, "PatientBirthDate": "17000101-17991231"}),
    "requested-procedure-id": query_dump(_step(), **REQUEST, RequestedProcedureID="RP4*"),
    "performing-physician": query_dump(_step(ScheduledPerformingPhysicianName="ROSS"), **REQUEST),
    "date-range": query_dump(_step(ScheduledProcedureStepStartDate="19960101-19960501"), **REQUEST),
    "date-open-range": query_dump(_step(ScheduledProcedureStepStartDate="-19951231"), **REQUEST),
    "date-and-time-one-range": query_dump(
        _step(
            ScheduledProcedureStepStartDate="19960103-19960406",
            ScheduledProcedureStepStartTime="170000-160000",
        ),
        **REQUEST,
    ),
    "single-date-time-range": query_dump(
        _step(
            ScheduledProcedureStepStartDate="19960406", ScheduledProcedureStepStartTime="1500-1700"
        ),
        **REQUEST,
    ),
    "time-range": query_dump(_step(ScheduledProcedureStepStartTime="-100000"), **REQUEST),
    "several-keys": query_dump(
        _step(Modality="CT", ScheduledStationAETitle="AB45"),
        **{**REQUEST, "PatientID": "AV35674", "PatientName": "VIVALDI*"},
    ),
}
"""Queries aimed at the OFFIS items, answered alike by both."""


@dataclass(frozen=True)
class Wider:
    """A query dicomhub matches on a key where wlmscpfs does not (differences 3 and 6)."""

    path: str
    """The key: a keyword, or ScheduledProcedureStepSequence.keyword."""
    value: str
    """Its value in the query (a wildcard pattern or a list of values)."""

    def dump(self, value: str | None = None) -> str:
        """The query, with ``value`` for the key (default: the key's own value)."""
        keyword = self.path.split(".")[-1]
        given = self.value if value is None else value
        if self.path.startswith("ScheduledProcedureStepSequence."):
            return query_dump(_step(**{keyword: given}), **REQUEST)
        return query_dump(_step(), **{**REQUEST, keyword: given})

    def matches(self, answer: Dataset) -> bool:
        """Whether a (universal) answer's value for the key matches the query's value."""
        patterns = self.value.split("\\")
        values = _values(answer, self.path)
        return any(fnmatch.fnmatchcase(v, p) for v in values for p in patterns)


WIDER: dict[str, Wider] = {
    # difference 3: keys wlmscpfs returns but does not match on
    "station-name": Wider("ScheduledProcedureStepSequence.ScheduledStationName", "STN8*"),
    "step-id": Wider("ScheduledProcedureStepSequence.ScheduledProcedureStepID", "SPD1*"),
    "study-uid": Wider("StudyInstanceUID", "1.2.276.0.7230010.3.2.104"),
    "medical-alerts": Wider("MedicalAlerts", "ABZESS"),
    # difference 6: wildcards and value lists wlmscpfs applies to some keys only
    "patient-id-wildcard": Wider("PatientID", "AV*"),
    "station-wildcard": Wider("ScheduledProcedureStepSequence.ScheduledStationAETitle", "A?4*"),
    "modality-wildcard": Wider("ScheduledProcedureStepSequence.Modality", "C?"),
    "modality-list": Wider("ScheduledProcedureStepSequence.Modality", "CT\\MR"),
}
"""Queries answered by dicomhub with the items whose value matches."""


@dataclass(frozen=True)
class Samples:
    """The OFFIS items as .wl files (in ``root/OFFIS`` for wlmscpfs) and the queries."""

    root: Path
    items: list[Path]
    queries: dict[str, Path]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    root = tmp_path_factory.mktemp("worklist")
    folder = root / "db" / WLM_AE
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    items = [dump2dcm(d, folder / f"{d.stem}.wl") for d in sorted(OFFIS.glob("*.dump"))]
    assert len(items) == 10
    queries = {
        d.stem: dump2dcm(d, root / f"{d.stem}.dcm") for d in sorted(SAMPLE_QUERIES.glob("*.dump"))
    }
    texts = {**SAME_ANSWERS, **{k: v.dump() for k, v in WIDER.items()}}
    texts |= {f"{k}-universal": v.dump("") for k, v in WIDER.items()}
    for name, text in texts.items():
        dump = root / f"{name}.dump"
        dump.write_text(text)
        queries[name] = dump2dcm(dump, root / f"{name}.dcm")
    return Samples(root / "db", items, queries)


@pytest.fixture(scope="module")
def wlmscpfs(samples: Samples) -> Iterator[int]:
    """DCMTK's worklist SCP serving the OFFIS files as AE OFFIS; its port."""
    port = free_port()
    log_path = samples.root.parent / "wlmscpfs.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(WLMSCPFS), "-s", "-dfp", str(samples.root), "-csk", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=tool_env(),
        )

    def answers() -> bool:
        assert process.poll() is None, log_path.read_text(errors="replace")
        echo = run_tool(["echoscu", "-aec", WLM_AE, HOST, str(port)], timeout=10)
        return echo.returncode == 0

    try:
        assert wait_until(answers, 30, 0.1), "wlmscpfs does not answer C-ECHO"
        yield port
    finally:
        stop_process(process)


def add_items(hub: Hub, files: Sequence[Path]) -> str:
    """``dicomhub worklist add FILES`` on the hub's data folder (while it runs); the output."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    environment["DICOMHUB_DATA_DIR"] = str(hub.data_dir)
    result = subprocess.run(
        [*dicomhub_command(), "worklist", "add", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def loaded(hub: Hub, samples: Samples) -> Hub:
    """The module's hub with the OFFIS items."""
    output = add_items(hub, samples.items)
    assert output.count("added worklist item") == len(samples.items), output
    return hub


# findscu -W ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    return str(value).strip()


def canonical(dataset: Dataset, drop: frozenset[int] = frozenset()) -> tuple[Any, ...]:
    """A comparable form of an answer without zero-length elements and empty sequences."""
    elements: list[Any] = []
    for element in dataset:
        tag = int(element.tag)
        if element.tag.group == 0x0002 or tag in drop:
            continue
        if element.VR == "SQ":
            items = tuple(canonical(item, drop) for item in element.value)
            if any(items):
                elements.append((tag, items))
            continue
        text = "" if element.value is None else _text(element.value)
        if text:
            elements.append((tag, text))
    return tuple(elements)


def answer_set(answers: Sequence[Dataset], *, hub: bool) -> list[str]:
    """The answers as a sorted list (a multiset) of canonical forms."""
    drop = frozenset({STEP_STATUS}) if hub else frozenset()
    return sorted(repr(canonical(a, drop)) for a in answers)


def assert_every_key_returned(query: Dataset, answer: Dataset, where: str = "") -> None:
    """Each key of the query is in the answer; a sequence's item keys in each of its items."""
    for element in query:
        if element.tag.group == 0x0002 or element.keyword == "SpecificCharacterSet":
            continue
        assert element.tag in answer, f"{where}{element.keyword} requested, not returned"
        if element.VR == "SQ" and element.value and len(element.value[0]):
            for item in answer[element.tag].value:
                assert_every_key_returned(element.value[0], item, f"{element.keyword} > ")


def _values(answer: Dataset, path: str) -> list[str]:
    keywords = path.split(".")
    datasets = [answer]
    for keyword in keywords[:-1]:
        datasets = [item for ds in datasets for item in ds.get(keyword, [])]
    values = []
    for ds in datasets:
        element = ds.get(keywords[-1])
        if element is not None:
            values += _text(element).split("\\")
    return values


# Tests ---------------------------------------------------------------------------------------


def _compare(
    samples: Samples, loaded: Hub, wlmscpfs: int, name: str, reference_final: int = 0x0000
) -> tuple[WorklistAnswers, WorklistAnswers]:
    query = samples.queries[name]
    reference = find_worklist(wlmscpfs, WLM_AE, query)
    ours = find_worklist(loaded.port, loaded.ae_title, query)
    assert reference.statuses and reference.statuses[-1] == reference_final, reference.output
    assert ours.statuses and ours.statuses[-1] == 0x0000, ours.output
    assert ours.statuses[:-1] == [0xFF00] * len(ours.answers)
    request = pydicom.dcmread(query)
    for answer in ours.answers:
        assert_every_key_returned(request, answer)
    return reference, ours


@pytest.mark.parametrize("name", sorted(p.stem for p in SAMPLE_QUERIES.glob("*.dump")))
def test_dcmtk_sample_queries_answered_like_wlmscpfs(
    samples: Samples, loaded: Hub, wlmscpfs: int, name: str
) -> None:
    reference, ours = _compare(samples, loaded, wlmscpfs, name)

    assert len(ours.answers) == len(reference.answers)
    assert answer_set(ours.answers, hub=True) == answer_set(reference.answers, hub=False)


@pytest.mark.parametrize("name", sorted(SAME_ANSWERS))
def test_queries_on_the_offis_items_answered_like_wlmscpfs(
    samples: Samples, loaded: Hub, wlmscpfs: int, name: str
) -> None:
    reference, ours = _compare(samples, loaded, wlmscpfs, name)

    assert reference.answers, "the query is meant to match some items"
    assert len(ours.answers) == len(reference.answers)
    assert answer_set(ours.answers, hub=True) == answer_set(reference.answers, hub=False)


@pytest.mark.parametrize("name", sorted(WIDER))
def test_dicomhub_matches_where_wlmscpfs_does_not(
    samples: Samples, loaded: Hub, wlmscpfs: int, name: str
) -> None:
    """Differences 3 and 6: wlmscpfs returns every item or none; dicomhub returns those whose
    value matches (checked on wlmscpfs's answers to the query without the key's value)."""
    wider = WIDER[name]
    refused = 0xA900 if name == "modality-list" else 0x0000  # a CS with two values
    reference, ours = _compare(samples, loaded, wlmscpfs, name, refused)
    everything = find_worklist(wlmscpfs, WLM_AE, samples.queries[f"{name}-universal"])

    assert len(reference.answers) in {0, len(samples.items)}
    assert len(everything.answers) == len(samples.items)
    expected = [a for a in everything.answers if wider.matches(a)]
    assert 0 < len(expected) < len(samples.items)
    assert answer_set(ours.answers, hub=True) == answer_set(expected, hub=False)


def test_person_names_match_without_regard_to_case(
    samples: Samples, loaded: Hub, wlmscpfs: int
) -> None:
    """Difference 4."""
    lower = ["PatientName=vivaldi*", "PatientID"]
    upper = ["PatientName=VIVALDI*", "PatientID"]

    assert find_worklist(wlmscpfs, WLM_AE, None, keys=lower).answers == []
    reference = find_worklist(wlmscpfs, WLM_AE, None, keys=upper)
    ours = find_worklist(loaded.port, loaded.ae_title, None, keys=lower)

    assert len(reference.answers) == 3
    assert answer_set(ours.answers, hub=True) == answer_set(reference.answers, hub=False)


def test_identifier_without_keys_gets_whole_items(
    samples: Samples, loaded: Hub, wlmscpfs: int
) -> None:
    """Difference 5: wlmscpfs aborts; dicomhub answers each item whole."""
    keys = ["SpecificCharacterSet=ISO_IR 100"]

    reference = find_worklist(wlmscpfs, WLM_AE, None, keys=keys)
    ours = find_worklist(loaded.port, loaded.ae_title, None, keys=keys)

    assert reference.answers == []
    assert ours.statuses[-1] == 0x0000
    assert len(ours.answers) == len(samples.items)
    for answer in ours.answers:
        assert answer.SpecificCharacterSet == "ISO_IR 100"
        assert answer.PatientName and answer.ScheduledProcedureStepSequence[0].Modality
    loaded.wait_for_log(r"C-FIND worklist from FINDSCU@127\.0\.0\.1:\d+: 10 matches, 0x0000")


# The calling AE rule, with findscu and Orthanc -----------------------------------------------


@pytest.fixture(scope="module")
def filtering_hub(samples: Samples, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub with the default calling-AE rule, the OFFIS items, one item for ORTHANC and one
    for no station."""
    with running_hub(tmp_path_factory.mktemp("filtering"), {}) as hub:
        extra = samples.root.parent / "extra"
        extra.mkdir(exist_ok=True)
        for name, station, patient in (("orthanc", "ORTHANC", "ORT1"), ("any", "", "ANY1")):
            dump = extra / f"{name}.dump"
            dump.write_text(
                query_dump(
                    {
                        "Modality": "CT",
                        "ScheduledStationAETitle": station,
                        "ScheduledProcedureStepStartDate": "20240105",
                        "ScheduledProcedureStepStartTime": "0900",
                    },
                    SpecificCharacterSet="ISO_IR 100",
                    PatientName=f"{name.upper()}^PATIENT",
                    PatientID=patient,
                    AccessionNumber=f"X-{patient}",
                )
            )
            dump2dcm(dump, extra / f"{name}.wl")
        add_items(hub, [*samples.items, extra / "orthanc.wl", extra / "any.wl"])
        yield hub


def _patients(result: WorklistAnswers) -> list[str]:
    return sorted(str(a.PatientID) for a in result.answers)


def test_modality_without_station_key_sees_its_own_items(filtering_hub: Hub) -> None:
    keys = ["PatientID", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle"]
    hub = filtering_hub

    aa33 = find_worklist(hub.port, hub.ae_title, None, keys=keys, calling="AA33")
    aa32 = find_worklist(hub.port, hub.ae_title, None, keys=keys, calling="AA32")
    nobody = find_worklist(hub.port, hub.ae_title, None, keys=keys, calling="NOBODY")
    named = find_worklist(
        hub.port,
        hub.ae_title,
        None,
        keys=["PatientID", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=AB45"],
        calling="AA32",
    )

    assert _patients(aa33) == ["ANY1", "AV35674"]
    assert _patients(aa32) == ["ANY1", "AV35674", "HF"]
    assert _patients(nobody) == ["ANY1"]
    assert _patients(named) == ["AV35674", "HF"]  # asked for AB45's items


@needs_orthanc
def test_orthanc_as_worklist_scu(filtering_hub: Hub, tmp_path: Path) -> None:
    with running_orthanc(tmp_path, filtering_hub) as orthanc:
        own = orthanc.post_json(
            "/modalities/hub/find-worklist",
            {
                "PatientName": "",
                "PatientID": "",
                "ScheduledProcedureStepSequence": [{"Modality": "", "ScheduledStationAETitle": ""}],
            },
        )
        ct_of_ab45 = orthanc.post_json(
            "/modalities/hub/find-worklist",
            {
                "PatientID": "",
                "AccessionNumber": "",
                "ScheduledProcedureStepSequence": [
                    {"Modality": "CT", "ScheduledStationAETitle": "AB45"}
                ],
            },
        )

    def patients(answers: Any) -> list[str]:
        return sorted(str(_simplified(a)["PatientID"]) for a in answers)

    assert patients(own) == ["ANY1", "ORT1"]
    names = {_simplified(a)["PatientID"]: _simplified(a)["PatientName"] for a in own}
    assert names["ORT1"] == "ORTHANC^PATIENT"
    step = _simplified(own[0])["ScheduledProcedureStepSequence"][0]
    assert step["Modality"] == "CT"
    assert patients(ct_of_ab45) == ["AV35674"]
    assert _simplified(ct_of_ab45[0])["AccessionNumber"] == "00002"
    filtering_hub.wait_for_log(r"C-FIND worklist from ORTHANC@127\.0\.0\.1:\d+: 2 matches")


def _simplified(answer: Any) -> dict[str, Any]:
    """Orthanc's answer as keyword -> value (it answers simplified JSON, or tag-keyed)."""
    if isinstance(answer, dict) and all("," not in key for key in answer):
        return answer
    simplified: dict[str, Any] = {}
    for value in dict(answer).values():
        if isinstance(value, dict) and "Name" in value:
            content = value.get("Value")
            if isinstance(content, list):
                content = [_simplified(item) for item in content]
            simplified[value["Name"]] = content
    return simplified


def test_answers_survive_json_round_trip(samples: Samples, loaded: Hub) -> None:
    """The stored items are exactly the .wl files' data sets (DICOM JSON kept whole)."""
    rows = loaded.rows("SELECT attributes FROM worklist_items ORDER BY id")
    assert len(rows) == len(samples.items)
    for row, path in zip(rows, sorted(samples.items), strict=True):
        stored = Dataset.from_json(json.loads(row["attributes"]))
        original = pydicom.dcmread(path)
        assert canonical(stored) == canonical(original)
