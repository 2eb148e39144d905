"""The workflow services over REST: worklist, MPPS, storage commitment, print jobs, the
forwarding queue; and health and metrics."""

from __future__ import annotations

import io
import re

import httpx
import numpy as np
from PIL import Image
from pydicom.uid import generate_uid
from sqlalchemy import insert

from dicomhub.imaging.film import film_png
from dicomhub.index.commitments import Item, Outcome, Role, State
from dicomhub.index.mpps import MppsRepository
from dicomhub.index.print_jobs import ArchivedFilm, ExecutionStatus, PrintedFilm, PrintRepository
from dicomhub.index.schema import forward_queue
from dicomhub.index.times import utc_now
from dicomhub.ingest import IngestRequest
from tests.factories import make_dataset, write_file
from tests.mpps_factories import n_create, performed_series
from tests.web.conftest import Web


def test_worklist_create_edit_cancel(web: Web, client: httpx.Client) -> None:
    created = client.post(
        "/api/worklist",
        json={
            "patient_name": "DOE^JANE",
            "patient_id": "P42",
            "modality": "ct",
            "station_ae": "CT1",
            "start": "20261201 0930",
            "accession": "A-1",
            "procedure": "CT HEAD",
        },
    )
    assert created.status_code == 201
    item = created.json()
    assert (item["status"], item["modality"], item["start_date"], item["start_time"]) == (
        "SCHEDULED",
        "CT",
        "20261201",
        "0930",
    )
    assert item["study_instance_uid"]
    changed = client.put(
        f"/api/worklist/{item['id']}",
        json={
            "patient_name": "DOE^JANE",
            "patient_id": "P42",
            "modality": "MR",
            "start": "20261202",
        },
    ).json()
    assert (
        changed["modality"] == "MR" and changed["study_instance_uid"] == item["study_instance_uid"]
    )
    from_json = client.post("/api/worklist", json={"dataset": changed["attributes"]})
    assert from_json.status_code == 201
    listed = client.get("/api/worklist", params={"status": "scheduled", "limit": 1}).json()
    assert len(listed["items"]) == 1 and listed["has_more"] is True
    cancelled = client.post(f"/api/worklist/{item['id']}/cancel").json()
    assert cancelled["status"] == "CANCELLED"
    again = client.post(f"/api/worklist/{item['id']}/cancel")
    assert again.status_code == 409
    assert (
        again.json()["error"]
        == f"Worklist item {item['id']} is CANCELLED already: it cannot be cancelled."
    )
    assert (
        client.put(
            f"/api/worklist/{item['id']}", json={"patient_name": "X", "patient_id": "Y"}
        ).status_code
        == 409
    )
    missing = client.post("/api/worklist", json={"modality": "CT"})
    assert missing.status_code == 422
    assert "PatientName" in missing.json()["error"]
    assert (
        client.post(
            "/api/worklist", json={"patient_name": "A", "patient_id": "B", "start": "soon"}
        ).status_code
        == 422
    )
    assert client.get("/api/worklist/9999").status_code == 404
    assert client.get("/api/worklist", params={"status": "later"}).status_code == 400


def test_mpps_detail_links_item_and_compares_series(web: Web, client: httpx.Client) -> None:
    study, series = generate_uid(), generate_uid()
    received = [make_dataset(study_uid=study, series_uid=series) for _ in range(2)]
    for dataset in received:
        web.store(dataset)
    item = client.post(
        "/api/worklist",
        json={"patient_name": "DOE^JANE", "patient_id": "PID042", "study_uid": study},
    ).json()
    request = n_create(study_uid=study)
    uids = [str(d.SOPInstanceUID) for d in received] + [generate_uid()]
    request.PerformedSeriesSequence = [performed_series(series, uids)]
    uid = generate_uid()
    MppsRepository(web.runtime.db).create(
        uid, request.to_json_dict(), calling_ae_title="CT1", worklist_item_id=item["id"]
    )
    listed = client.get("/api/mpps", params={"status": "in progress"}).json()["items"]
    assert [m["sop_instance_uid"] for m in listed] == [uid]
    assert listed[0]["patient_name"] == "DOE^JANE"
    detail = client.get(f"/api/mpps/{listed[0]['id']}").json()
    assert detail["worklist_item"]["id"] == item["id"]
    assert detail["series"] == [
        {"series_instance_uid": series, "performed": 3, "received": 2, "missing": 1}
    ]
    assert detail["history"][0]["action"] == "N-CREATE"
    shown = client.get(f"/api/worklist/{item['id']}").json()
    assert [m["sop_instance_uid"] for m in shown["mpps"]] == [uid]
    assert client.get("/api/mpps/999").status_code == 404


def test_commitment_transactions(web: Web, client: httpx.Client) -> None:
    commitments = web.runtime.commitments
    references = [("1.2.840.10008.5.1.4.1.1.2", generate_uid()) for _ in range(2)]
    transaction_id = commitments.record(
        Role.SCP, generate_uid(), "MODALITY", "DICOMHUB", references
    )
    stored = commitments.get(transaction_id)
    assert stored is not None
    results = [
        stored.items[0].settled(Outcome.COMMITTED),
        stored.items[1].settled(Outcome.FAILED, 0x0112, "not in the archive"),
    ]
    commitments.set_results(transaction_id, results, State.CHECKED)
    listed = client.get("/api/commitments", params={"role": "scp"}).json()["items"]
    assert [(t["state"], t["committed"], t["failed"]) for t in listed] == [("checked", 1, 1)]
    detail = client.get(f"/api/commitments/{transaction_id}").json()
    assert [i["failure_reason"] for i in detail["items"]] == [None, 0x0112]
    assert detail["events"]
    assert isinstance(results[0], Item)
    assert client.get("/api/commitments", params={"role": "x"}).status_code == 400


def test_print_jobs_with_their_films(web: Web, client: httpx.Client) -> None:
    prints = PrintRepository(web.runtime.db)
    film_boxes: list[str] = [generate_uid(), generate_uid()]
    job = prints.record_job(
        generate_uid(),
        film_session_uid=generate_uid(),
        film_box_uids=film_boxes,
        layout=["STANDARD\\1,1", "STANDARD\\2,2"],
        number_of_copies=1,
        print_priority="MED",
        calling_ae_title="PRINTSCU",
        films=[
            PrintedFilm(film_boxes[0], "STANDARD\\1,1", 1),
            PrintedFilm(film_boxes[1], "STANDARD\\2,2", 3),
        ],
    )
    # another print SCU archives a film at the same moment: it is not this job's
    other = make_dataset(modality="OT")
    web.runtime.ingest.store(
        IngestRequest(
            path=write_file(other, web.tmp / "other.dcm"),
            take=False,
            source="print",
            calling_ae_title="PRINTSCU",
        )
    )
    archived = make_dataset(modality="OT")
    pixels = np.full((20, 30), 200, dtype=np.uint8)
    png_dir = web.runtime.settings.data_dir / "print"
    png_dir.mkdir(parents=True, exist_ok=True)
    (png_dir / f"{archived.SOPInstanceUID}.png").write_bytes(film_png(pixels))
    prints.record_archived_film(
        job.sop_instance_uid,
        film_boxes[0],
        ArchivedFilm(
            sop_instance_uid=str(archived.SOPInstanceUID),
            study_instance_uid=str(archived.StudyInstanceUID),
            series_instance_uid=str(archived.SeriesInstanceUID),
            png=f"print/{archived.SOPInstanceUID}.png",
            rows=20,
            columns=30,
            color=False,
        ),
    )
    prints.finish_job(job.id, ExecutionStatus.DONE)

    listed = client.get("/api/print-jobs").json()
    assert (listed["total"], listed["has_more"]) == (1, False)
    (item,) = listed["items"]
    assert (item["status"], item["calling_ae_title"], item["film_box_uids"]) == (
        "DONE",
        "PRINTSCU",
        film_boxes,
    )
    first, second = item["films"]
    assert (first["position"], first["film_box_uid"], first["image_display_format"]) == (
        1,
        film_boxes[0],
        "STANDARD\\1,1",
    )
    assert first["archived"]["sop_instance_uid"] == str(archived.SOPInstanceUID)
    assert first["archived"]["study_instance_uid"] == str(archived.StudyInstanceUID)
    assert (first["archived"]["rows"], first["archived"]["columns"]) == (20, 30)
    assert first["archived"]["png"].endswith(f"/api/print-jobs/{job.id}/films/1.png")
    assert (second["image_boxes"], second["archived"]) == (3, None)
    assert client.get(f"/api/print-jobs/{job.id}").json() == item
    image = Image.open(io.BytesIO(client.get(first["archived"]["png"]).content))
    assert image.size == (30, 20) and np.asarray(image).max() == 200
    not_archived = client.get(f"/api/print-jobs/{job.id}/films/2.png")
    assert not_archived.status_code == 404
    assert "was not archived" in not_archived.json()["error"]
    assert client.get(f"/api/print-jobs/{job.id}/films/3.png").status_code == 404
    assert client.get("/api/print-jobs/77").status_code == 404
    assert client.get("/api/print-jobs", params={"calling_ae_title": "OTHER"}).json()["total"] == 0
    assert client.get("/api/print-jobs", params={"status": "failure"}).json()["items"] == []
    assert client.get("/api/print-jobs", params={"status": "lost"}).status_code == 400


def test_forwarding_queue_retry_and_drop(web: Web, client: httpx.Client) -> None:
    now = utc_now()
    with web.runtime.db.write() as conn:
        for state in ("failed", "failed", "done"):
            conn.execute(
                insert(forward_queue).values(
                    sop_instance_uid=generate_uid(),
                    destination="PACS",
                    rule="all",
                    state=state,
                    attempts=10,
                    next_attempt_at=now,
                    last_error="refused" if state == "failed" else "",
                    created_at=now,
                    updated_at=now,
                    done_at=now if state == "done" else None,
                )
            )
    queue = client.get("/api/queue").json()
    assert queue["counts"] == {"pending": 0, "done": 1, "failed": 2}
    failed = client.get("/api/queue", params={"state": "failed"}).json()["items"]
    assert [row["last_error"] for row in failed] == ["refused", "refused"]
    assert client.post(f"/api/queue/{failed[0]['id']}/retry").json() == {"retried": 1}
    assert web.runtime.forward_wake.is_set()
    assert client.post("/api/queue/retry", json={"all_failed": True}).json() == {"retried": 1}
    assert client.post("/api/queue/drop", json={"state": "done"}).json() == {"dropped": 1}
    assert client.delete(f"/api/queue/{failed[1]['id']}").json() == {"dropped": 1}
    assert client.get("/api/queue").json()["counts"] == {"pending": 1, "done": 0, "failed": 0}
    assert client.delete("/api/queue/424242").status_code == 404
    assert client.post("/api/queue/retry", json={}).status_code == 400


def test_health_and_metrics(web: Web, client: httpx.Client) -> None:
    web.store(make_dataset())
    assert client.get("/api/health").json()["status"] == "ok"
    client.get("/api/studies")
    text = client.get("/metrics").text
    assert "dicomhub_instances_stored 1.0" in text
    assert re.search(
        r'dicomhub_http_requests_total\{method="GET",route="/api/studies",status="200"\} 1\.0', text
    )
    assert 'dicomhub_forward_queue_items{state="pending"} 0.0' in text
    openapi = client.get("/openapi.json").json()
    assert "/dicom-web/studies" in openapi["paths"]
    assert client.get("/docs").status_code == 404
    assert "dicomhub" in client.get("/ui/").text
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
