"""Who may associate with dicomhub and use which service.

Rules (settings): on loopback every calling AE is accepted; on a network address only declared
peers (configuration file or run-time peer list), unless ``allow_unknown_calling_ae``.  The
called AE title must be dicomhub's own when ``check_called_ae`` is in force.  A declared peer
uses only the services it lists.
"""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass, field

from dicomhub.config import PeerConfig, Service, Settings
from dicomhub.errors import NotAuthorized
from dicomhub.index.peers import PeerRepository


@dataclass(frozen=True)
class AssociationInfo:
    """Who is on the other end of an association (engine-independent)."""

    calling_ae_title: str
    called_ae_title: str
    peer_host: str
    peer_port: int
    association_uid: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)
    """Unique to this association among every dicomhub process (state scoped to it is keyed
    by it, e.g. print film sessions)."""

    def __str__(self) -> str:
        return f"{self.calling_ae_title}@{self.peer_host}:{self.peer_port}"


@dataclass(frozen=True)
class Refusal:
    """Why an association request is rejected, with its A-ASSOCIATE-RJ codes."""

    reason: str
    result: int  # 1 permanent, 2 transient
    source: int  # 1 service user, 3 service provider (presentation)
    diagnostic: int


class AccessPolicy:
    """Association and per-service checks, with the peer list cached for a few seconds."""

    CACHE_SECONDS = 5.0

    def __init__(self, settings: Settings, repository: PeerRepository | None = None) -> None:
        self.settings = settings
        self.repository = repository
        self._cache: tuple[float, dict[str, PeerConfig]] | None = None

    def peers(self) -> dict[str, PeerConfig]:
        """Configured and run-time peers (configuration wins on a name clash)."""
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] > self.CACHE_SECONDS:
            merged = dict(self.repository.all()) if self.repository else {}
            merged.update(self.settings.peers)
            self._cache = (now, merged)
        return self._cache[1]

    def forget(self) -> None:
        """Read the peer list again at the next look (after it was changed)."""
        self._cache = None

    def peer_for(self, ae_title: str) -> PeerConfig | None:
        """The declared peer with this AE title, if any."""
        for peer in self.peers().values():
            if peer.ae_title == ae_title.strip():
                return peer
        return None

    def check_association(self, info: AssociationInfo, active: int) -> Refusal | None:
        """None when the association may proceed, else why not."""
        if active >= self.settings.max_associations:
            return Refusal(
                f"maximum of {self.settings.max_associations} associations reached", 2, 3, 2
            )
        if (
            self.settings.effective_check_called_ae
            and info.called_ae_title.strip() != self.settings.ae_title
        ):
            return Refusal(
                f"called AE title {info.called_ae_title.strip()!r} is not "
                f"{self.settings.ae_title!r}",
                1,
                1,
                7,
            )
        peer = self.peer_for(info.calling_ae_title)
        if peer is None:
            if self.settings.effective_allow_unknown_calling_ae:
                return None
            return Refusal(
                f"calling AE title {info.calling_ae_title.strip()!r} is not a declared peer",
                1,
                1,
                3,
            )
        if self.settings.check_peer_host and not _same_host(peer.host, info.peer_host):
            return Refusal(
                f"calling AE {peer.ae_title!r} connected from {info.peer_host}, "
                f"declared host is {peer.host}",
                1,
                1,
                3,
            )
        return None

    def check_service(self, info: AssociationInfo, service: Service) -> None:
        """Raise ``NotAuthorized`` when the calling AE may not use ``service``."""
        peer = self.peer_for(info.calling_ae_title)
        if peer is not None and service not in peer.services:
            raise NotAuthorized(f"AE {peer.ae_title} may not use {service.value}")


def _same_host(declared: str, actual: str) -> bool:
    if declared == actual:
        return True
    try:
        return actual in {info[4][0] for info in socket.getaddrinfo(declared, None)}
    except OSError:
        return False
