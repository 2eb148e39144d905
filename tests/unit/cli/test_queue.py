"""``dicomhub queue``: list, retry and drop items of the forwarding queue of a real index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.config import load_settings
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.forward_queue import ForwardQueue, QueueState
from tests.factories import make_dataset, write_file

CONFIG = """
[[forward]]
name = "ct-to-pacs"
destinations = ["pacs"]
modality = ["CT"]

[[forward]]
name = "everything"
destinations = ["backup"]
"""


@pytest.fixture
def config(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dicomhub.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DICOMHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("DICOMHUB_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("DICOMHUB_CONFIG", str(path))
    monkeypatch.setenv("COLUMNS", "250")
    return path


@pytest.fixture
def queue(config: Path) -> Iterator[ForwardQueue]:
    """The queue of the configured index (filled by `dicomhub import`)."""
    db = IndexDatabase(load_settings(config).effective_database_url)
    yield ForwardQueue(db)
    db.dispose()


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def imported(config: Path, tmp_path: Path) -> None:
    """Two CT instances and one MR imported: 5 queue items."""
    for index, modality in enumerate(["CT", "CT", "MR"]):
        write_file(make_dataset(modality=modality), tmp_path / "in" / f"{index}.dcm")
    code, output = _invoke("import", str(tmp_path / "in"))
    assert code == 0, output


def test_empty_queue(config: Path) -> None:
    code, output = _invoke("queue")
    assert code == 0, output
    assert "the forwarding queue is empty" in output
    assert "0 pending, 0 done, 0 failed" in output


def test_list_shows_items_and_counts(imported: None, queue: ForwardQueue) -> None:
    code, output = _invoke("queue", "list")
    assert code == 0, output
    for title in ("id", "instance", "destination", "rule", "state", "attempts", "next attempt"):
        assert title in output
    assert output.count("ct-to-pacs") == 2 and output.count("everything") == 3
    assert "5 pending, 0 done, 0 failed" in output
    assert "due" in output
    code, bare = _invoke("queue")
    assert code == 0 and "5 pending" in bare
    code, limited = _invoke("queue", "list", "--limit", "1")
    assert code == 0 and limited.count("everything") + limited.count("ct-to-pacs") == 1


def test_list_by_state_shows_errors(imported: None, queue: ForwardQueue) -> None:
    batch = queue.claim("me", 10, lease=300)
    queue.fail([item.id for item in batch["pacs"]], "unknown peer pacs")
    backup = [item.id for item in batch["backup"]]
    queue.retry_later(backup[:1], "C-STORE status 0xA700 (out of resources)")
    queue.done(backup[1:])
    code, output = _invoke("queue", "list", "--state", "failed")
    assert code == 0, output
    assert output.count("unknown peer pacs") == 2
    assert "everything" not in output
    assert "1 pending, 2 done, 2 failed" in output
    code, output = _invoke("queue", "list", "--state", "pending")
    assert "C-STORE status 0xA700 (out of resources)" in output
    assert "in 5 s" in output or "in 4 s" in output
    code, output = _invoke("queue", "list", "-s", "done")
    assert code == 0 and output.count("everything") == 2
    code, output = _invoke("queue", "list", "--state", "nonsense")
    assert code == 2


def test_retry(imported: None, queue: ForwardQueue) -> None:
    batch = queue.claim("me", 10, lease=300)
    failed = [item.id for item in batch["pacs"]]
    queue.fail(failed, "unknown peer pacs")
    code, output = _invoke("queue", "retry", "--all-failed")
    assert code == 0, output
    assert "2 items pending again" in output
    assert queue.counts()[QueueState.FAILED] == 0
    code, output = _invoke("queue", "retry", "--all-failed")
    assert code == 1
    assert "no queue item matched" in output
    code, output = _invoke("queue", "retry", str(failed[0]), "999999")
    assert code == 0 and "1 items pending again" in output
    code, output = _invoke("queue", "retry", "999999")
    assert code == 1
    code, output = _invoke("queue", "retry")
    assert code == 2 and "give queue item ids or --all-failed" in output


def test_drop(imported: None, queue: ForwardQueue) -> None:
    batch = queue.claim("me", 10, lease=300)
    queue.fail([item.id for item in batch["pacs"]], "unknown peer pacs")
    done = [item.id for item in batch["backup"]]
    queue.done(done)
    code, output = _invoke("queue", "drop", "--state", "failed")
    assert code == 0, output
    assert "2 items dropped" in output
    code, output = _invoke("queue", "drop", "--state", "failed")
    assert code == 1 and "nothing dropped" in output
    code, output = _invoke("queue", "drop", str(done[0]))
    assert code == 0 and "1 items dropped" in output
    assert queue.counts() == {QueueState.PENDING: 0, QueueState.DONE: 2, QueueState.FAILED: 0}
    code, output = _invoke("queue", "drop", "--state", "pending")
    assert code == 2 and "drop pending items by id" in output
    code, output = _invoke("queue", "drop")
    assert code == 2


def test_config_prints_rules(config: Path) -> None:
    code, output = _invoke("config")
    assert code == 0, output
    assert output.count("[[forward]]") == 2
    assert 'name = "ct-to-pacs"' in output
    assert "forward_max_attempts = 10" in output
