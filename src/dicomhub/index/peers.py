"""Peers (remote AEs) declared at run time, stored in the database beside the configured ones."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select

from dicomhub.config import PeerConfig, Service
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import peers


class PeerRepository:
    """CRUD of run-time peers."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

    def all(self) -> dict[str, PeerConfig]:
        """Every run-time peer by name."""
        with self.db.read() as conn:
            rows = conn.execute(select(peers).order_by(peers.c.name)).all()
        return {
            row.name: PeerConfig(
                ae_title=row.ae_title,
                host=row.host,
                port=row.port,
                services=[Service(s) for s in row.services.split(",") if s],
            )
            for row in rows
        }

    def put(self, name: str, peer: PeerConfig) -> None:
        """Create or replace a peer."""
        with self.db.write() as conn:
            conn.execute(delete(peers).where(peers.c.name == name))
            conn.execute(
                peers.insert().values(
                    name=name,
                    ae_title=peer.ae_title,
                    host=peer.host,
                    port=peer.port,
                    services=",".join(s.value for s in peer.services),
                    updated_at=datetime.now(UTC),
                )
            )

    def remove(self, name: str) -> bool:
        """Remove a peer; False when there was none."""
        with self.db.write() as conn:
            return conn.execute(delete(peers).where(peers.c.name == name)).rowcount > 0
