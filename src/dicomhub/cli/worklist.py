"""``dicomhub worklist``: Modality Worklist items (add, list, show, cancel).

Items are added from files (DICOM worklist files such as DCMTK's ``.wl`` files, or the DICOM
JSON model: one object or a list of objects) or from command-line flags.  They live in the
index database, so every dicomhub process on it answers worklist queries with them.

Exit status: 0 when everything asked was done, 1 when some item was refused or not found,
2 for a usage error (nothing was changed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydicom import dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dicomhub.errors import DicomhubError, InvalidWorklistItem
from dicomhub.index.values import text_value
from dicomhub.index.worklist import WorklistItem, WorklistRepository, WorklistStatus, step_of
from dicomhub.worklist_items import WorklistFields, dataset_from_fields

if TYPE_CHECKING:
    from dicomhub.runtime import Runtime

worklist_app = typer.Typer(
    help="Modality Worklist items: add, list, show, cancel.", no_args_is_help=True
)

_WHEN = "%Y-%m-%d %H:%M:%S"


class UsageError(Exception):
    """The command line cannot be carried out as given."""


def read_items(path: Path) -> list[Dataset]:
    """The worklist items of a file: DICOM (Part 10 or bare data set) or DICOM JSON."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".json" or data.lstrip()[:1] in {b"{", b"["}:
        return _json_items(path, data)
    try:
        dataset = dcmread(path, force=True)
        elements = list(dataset)  # parse every element now
        if not elements:
            raise InvalidDicomError("no data elements")
        unknown = [e.tag for e in elements if not e.tag.is_private and not keyword_for_tag(e.tag)]
        if unknown and not getattr(dataset, "preamble", None):
            raise InvalidDicomError(f"unknown elements {', '.join(str(t) for t in unknown[:3])}")
    except Exception as exc:
        raise UsageError(f"{path} is neither a DICOM file nor DICOM JSON: {exc}") from exc
    return [dataset]


def _json_items(path: Path, data: bytes) -> list[Dataset]:
    try:
        loaded: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    objects = loaded if isinstance(loaded, list) else [loaded]
    items = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise UsageError(f"{path}: item {index + 1} is not a DICOM JSON object")
        try:
            items.append(Dataset.from_json(obj))
        except Exception as exc:
            raise UsageError(f"{path}: item {index + 1} is not DICOM JSON: {exc}") from exc
    return items


def describe(dataset: Dataset) -> str:
    """One line about an item: patient, step, station, start."""
    step = step_of(dataset) or Dataset()
    parts = [f"{text_value(dataset.get('PatientName'))} ({text_value(dataset.get('PatientID'))})"]
    modality = text_value(step.get("Modality"))
    if modality:
        parts.append(modality)
    start = _start(step)
    if start:
        parts.append(f"at {start}")
    station = text_value(step.get("ScheduledStationAETitle"))
    parts.append(f"for {station}" if station else "for any station")
    accession = text_value(dataset.get("AccessionNumber"))
    if accession:
        parts.append(f"accession {accession}")
    return ", ".join(parts)


def _start(step: Dataset) -> str:
    date = text_value(step.get("ScheduledProcedureStepStartDate"))
    time = text_value(step.get("ScheduledProcedureStepStartTime")).replace(":", "")
    if len(date) == 8:
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    if len(time) >= 4:
        time = f"{time[:2]}:{time[2:4]}"
    return f"{date} {time}".strip()


def _open() -> Runtime:
    """The runtime of the configured data folder and database."""
    from dicomhub.cli.main import _runtime, _settings

    runtime: Runtime = _runtime(_settings())
    return runtime


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


Opt = typer.Option


@worklist_app.command("add")
def worklist_add(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Worklist files: DICOM (.wl, .dcm) or DICOM JSON (.json)."),
    ] = None,
    patient_name: Annotated[str, Opt("--patient-name", help="PatientName, e.g. DOE^JANE.")] = "",
    patient_id: Annotated[str, Opt("--patient-id", help="PatientID.")] = "",
    issuer: Annotated[str, Opt("--issuer", help="IssuerOfPatientID.")] = "",
    birth_date: Annotated[str, Opt("--birth-date", help="PatientBirthDate (YYYYMMDD).")] = "",
    sex: Annotated[str, Opt("--sex", help="PatientSex (M, F, O).")] = "",
    modality: Annotated[str, Opt("--modality", help="Modality of the step (CT, MR, ...).")] = "",
    station_ae: Annotated[str, Opt("--station-ae", help="ScheduledStationAETitle.")] = "",
    station_name: Annotated[str, Opt("--station-name", help="ScheduledStationName.")] = "",
    start: Annotated[
        str, Opt("--start", help="Scheduled start 'YYYYMMDD HHMM' (default: now).")
    ] = "",
    accession: Annotated[str, Opt("--accession", help="AccessionNumber.")] = "",
    procedure: Annotated[
        str, Opt("--procedure", help="RequestedProcedureDescription (and step description).")
    ] = "",
    requested_procedure_id: Annotated[
        str, Opt("--requested-procedure-id", help="RequestedProcedureID.")
    ] = "",
    step_id: Annotated[str, Opt("--step-id", help="ScheduledProcedureStepID.")] = "",
    step_description: Annotated[
        str, Opt("--step-description", help="ScheduledProcedureStepDescription.")
    ] = "",
    referring_physician: Annotated[
        str, Opt("--referring-physician", help="ReferringPhysicianName.")
    ] = "",
    performing_physician: Annotated[
        str, Opt("--performing-physician", help="ScheduledPerformingPhysicianName.")
    ] = "",
    study_uid: Annotated[
        str, Opt("--study-uid", help="StudyInstanceUID (default: a new one).")
    ] = "",
    order_key: Annotated[
        str, Opt("--order-key", help="Order identity (one item per key: replaces its item).")
    ] = "",
) -> None:
    """Add worklist items from files, or one item from the flags."""
    flags = WorklistFields(
        patient_name,
        patient_id,
        issuer,
        birth_date,
        sex,
        modality,
        station_ae,
        station_name,
        start,
        accession,
        procedure,
        requested_procedure_id,
        step_id,
        step_description,
        referring_physician,
        performing_physician,
        study_uid,
    )
    given = any(vars(flags).values())
    try:
        if files and given:
            raise UsageError("give files or item flags, not both")
        if not files and not given:
            raise UsageError("give worklist files, or --patient-name, --patient-id, ...")
        if files:
            if order_key and len(files) > 1:
                raise UsageError("--order-key names one item: give one file")
            batches = [(str(path), read_items(path)) for path in files]
        else:
            batches = [("", [dataset_from_fields(flags)])]
    except (UsageError, InvalidWorklistItem) as exc:
        raise _fail(str(exc)) from exc
    runtime = _open()
    repository = WorklistRepository(runtime.db)
    refused = 0
    try:
        for origin, items in batches:
            for dataset in items:
                where = f"{origin}: " if origin else ""
                try:
                    if order_key:
                        item_id = repository.upsert_order(order_key, dataset, source="cli")
                    else:
                        item_id = repository.add(dataset, source="cli")
                except DicomhubError as exc:
                    typer.echo(f"error: {where}{exc}", err=True)
                    refused += 1
                    continue
                typer.echo(f"{where}added worklist item {item_id}: {describe(dataset)}")
    finally:
        runtime.close()
    if refused:
        raise typer.Exit(1)


@worklist_app.command("list")
def worklist_list(
    status: Annotated[
        WorklistStatus | None,
        Opt("--status", "-s", help="Only items in this status.", case_sensitive=False),
    ] = None,
    limit: Annotated[int, Opt("--limit", "-n", min=1, help="Items to show.")] = 100,
) -> None:
    """Show items, most recently added first."""
    runtime = _open()
    try:
        items = WorklistRepository(runtime.db).list(status, limit)
    finally:
        runtime.close()
    console = Console()
    if not items:
        console.print("no worklist items", markup=False)
        return
    table = Table()
    for title in (
        "id",
        "status",
        "patient",
        "patient ID",
        "accession",
        "modality",
        "station AE",
        "start",
        "procedure",
        "source",
    ):
        table.add_column(title, overflow="fold")
    for item in items:
        table.add_row(*[Text(cell) for cell in _row(item)])
    console.print(table)


def _row(item: WorklistItem) -> list[str]:
    dataset = item.dataset
    step = step_of(dataset) or Dataset()
    description = text_value(dataset.get("RequestedProcedureDescription")) or text_value(
        step.get("ScheduledProcedureStepDescription")
    )
    return [
        str(item.id),
        item.status.value,
        text_value(dataset.get("PatientName")),
        text_value(dataset.get("PatientID")),
        text_value(dataset.get("AccessionNumber")),
        text_value(step.get("Modality")),
        text_value(step.get("ScheduledStationAETitle")),
        _start(step),
        description,
        item.source + (f" {item.order_key}" if item.order_key else ""),
    ]


@worklist_app.command("show")
def worklist_show(item_id: Annotated[int, typer.Argument(help="Item id.")]) -> None:
    """One item: status, origin and every attribute."""
    runtime = _open()
    try:
        item = WorklistRepository(runtime.db).get(item_id)
    finally:
        runtime.close()
    if item is None:
        raise _fail(f"there is no worklist item {item_id}", 1)
    console = Console()
    origin = item.source + (f" (order {item.order_key})" if item.order_key else "")
    for line in (
        f"worklist item {item.id}: {item.status.value}",
        f"source: {origin}",
        f"created: {item.created_at:{_WHEN}}  updated: {item.updated_at:{_WHEN}}",
        "",
        str(item.dataset),
    ):
        console.print(line, markup=False, highlight=False)


@worklist_app.command("cancel")
def worklist_cancel(
    item_ids: Annotated[list[int], typer.Argument(help="Ids of the items to cancel.")],
) -> None:
    """Cancel items (status CANCELLED): the worklist no longer offers them."""
    runtime = _open()
    repository = WorklistRepository(runtime.db)
    failed = 0
    try:
        for item_id in item_ids:
            if repository.cancel(item_id):
                typer.echo(f"cancelled worklist item {item_id}")
                continue
            failed += 1
            item = repository.get(item_id)
            if item is None:
                typer.echo(f"error: there is no worklist item {item_id}", err=True)
            else:
                typer.echo(
                    f"error: worklist item {item_id} is {item.status.value} already; not cancelled",
                    err=True,
                )
    finally:
        runtime.close()
    if failed:
        raise typer.Exit(1)
