"""Builds the long-lived objects once at start-up from the settings.

The index, blob store, ingest path and access policy are created here and handed to whatever
needs them (the DICOM acceptor, the CLI commands); nothing else constructs them.  When
forwarding rules are configured, the index queues each stored instance for its destinations in
the indexing transaction (``forwarding.ForwardEnqueuer``); ``dicomhub serve`` sends the queue.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from dicomhub.config import Settings
from dicomhub.dicom.peers import AccessPolicy
from dicomhub.forwarding import ForwardEnqueuer, ForwardRules
from dicomhub.index import migrate
from dicomhub.index.commitments import CommitmentRepository
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.forward_queue import ForwardQueue, RetryPolicy
from dicomhub.index.peers import PeerRepository
from dicomhub.index.query import FindService
from dicomhub.index.repository import IndexRepository
from dicomhub.ingest import Ingest
from dicomhub.recovery import recover
from dicomhub.storage.filesystem import FilesystemBlobStore

LOG = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a running dicomhub shares."""

    settings: Settings
    db: IndexDatabase
    repository: IndexRepository
    peers: PeerRepository
    blobs: FilesystemBlobStore
    ingest: Ingest
    access: AccessPolicy
    finder: FindService
    forward_queue: ForwardQueue
    forward_rules: ForwardRules
    commitments: CommitmentRepository
    forward_wake: threading.Event = field(default_factory=threading.Event)
    """Set when this process queued something to forward (the forwarder starts at once)."""
    commitment_wake: threading.Event = field(default_factory=threading.Event)
    """Set when a storage commitment transaction waits for the reporter."""

    def recover(self) -> None:
        """Before serving: remove dead transfers' staging files and re-index what an unclean
        stop may have taken from the index (see ``recovery``)."""
        self.blobs.clean_staging()
        recover(self.db, self.repository, self.blobs.segments)

    def close(self) -> None:
        """Release this process's segment and the database connections."""
        self.blobs.close()
        self.repository.writer.close()
        self.db.dispose()


def open_runtime(settings: Settings, *, migrate_schema: bool = True) -> Runtime:
    """Create the data folder, open the index (upgrading its schema) and the blob store."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = IndexDatabase(settings.effective_database_url)
    if migrate_schema and not migrate.is_current(db):
        LOG.info("upgrading index schema to %s", migrate.head_revision(db))
        migrate.upgrade(db)
    repository = IndexRepository(db)
    peers = PeerRepository(db)
    blobs = FilesystemBlobStore(settings.effective_storage_dir)
    forward_queue = ForwardQueue(
        db,
        RetryPolicy(
            settings.forward_max_attempts,
            settings.forward_retry_initial,
            settings.forward_retry_max,
        ),
    )
    forward_rules = ForwardRules(settings.forward, case_insensitive_pn=settings.case_insensitive_pn)
    forward_wake = threading.Event()
    if forward_rules:
        enqueuer = ForwardEnqueuer(forward_rules, forward_queue, forward_wake)
        repository.writer.after_add = enqueuer
        repository.writer.after_commit = enqueuer.committed
    return Runtime(
        settings=settings,
        db=db,
        repository=repository,
        peers=peers,
        blobs=blobs,
        ingest=Ingest(repository, blobs, settings.duplicate_policy),
        access=AccessPolicy(settings, peers),
        finder=FindService(
            db, ae_title=settings.ae_title, case_insensitive_pn=settings.case_insensitive_pn
        ),
        forward_queue=forward_queue,
        forward_rules=forward_rules,
        forward_wake=forward_wake,
        commitments=CommitmentRepository(db),
    )
