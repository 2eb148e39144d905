"""Peers (remote AEs) over REST: list, add, edit, remove, C-ECHO; send to a peer; query and
retrieve from a peer.

Peers declared in the configuration file are listed (``"source": "config"``) but can only be
changed there; run-time peers live in the database, shared by every dicomhub process.  The
DICOM operations use dicomhub's outbound associations (``dicom.scu``, ``dicom.qr_scu``), as
``dicomhub echo / send / find / retrieve`` do, and answer when the peer has.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dicomhub.config import PeerConfig
from dicomhub.dicom import qr_scu
from dicomhub.dicom.scu import StoreSCU
from dicomhub.errors import InvalidRequest, NoSuchResource, ResourceConflict
from dicomhub.index.attributes import Level
from dicomhub.index.repository import StoredInstance
from dicomhub.web.context import WebContext, actor, context
from dicomhub.web.listing import identifier
from dicomhub.web.paths import checked_uid

LOG = logging.getLogger("dicomhub.web")
router = APIRouter(prefix="/api/peers", tags=["Peers"])


def _peer_json(name: str, peer: PeerConfig, source: str) -> dict[str, Any]:
    return {
        "name": name,
        "ae_title": peer.ae_title,
        "host": peer.host,
        "port": peer.port,
        "services": [s.value for s in peer.services],
        "source": source,
    }


def _peer(ctx: WebContext, name: str) -> PeerConfig:
    found = ctx.runtime.access.peers().get(name)
    if found is None:
        raise NoSuchResource(f"There is no peer named {name}.")
    return found


@router.get("", summary="List peers")
def list_peers(ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """Configured and run-time peers, by name."""
    configured = ctx.runtime.settings.peers
    items = [
        _peer_json(name, peer, "config" if name in configured else "database")
        for name, peer in sorted(ctx.runtime.access.peers().items())
    ]
    return {"items": items, "total": len(items), "offset": 0, "limit": len(items)}


@router.get("/{name}", summary="A peer")
def get_peer(name: str, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """One peer."""
    source = "config" if name in ctx.runtime.settings.peers else "database"
    return _peer_json(name, _peer(ctx, name), source)


def _write(ctx: WebContext, name: str, peer: PeerConfig, request: Request) -> dict[str, Any]:
    if name in ctx.runtime.settings.peers:
        raise ResourceConflict(
            f"Peer {name} is declared in the configuration file: change it there."
        )
    if not name.strip() or len(name) > 64:
        raise InvalidRequest("A peer name has 1 to 64 characters.")
    ctx.runtime.peers.put(name, peer)
    ctx.runtime.access.forget()
    LOG.info(
        "peer %s = %s@%s:%d set by %s", name, peer.ae_title, peer.host, peer.port, actor(request)
    )
    return _peer_json(name, peer, "database")


@router.post("/{name}", summary="Add a peer", status_code=201)
def add_peer(
    name: str, body: PeerConfig, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """A new run-time peer (409 when the name is taken)."""
    if name in ctx.runtime.access.peers():
        raise ResourceConflict(f"There is already a peer named {name}.")
    return _write(ctx, name, body, request)


@router.put("/{name}", summary="Change a peer")
def edit_peer(
    name: str, body: PeerConfig, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """Replace a run-time peer (or create it)."""
    return _write(ctx, name, body, request)


@router.delete("/{name}", summary="Remove a peer")
def remove_peer(name: str, request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """Remove a run-time peer."""
    if name in ctx.runtime.settings.peers:
        raise ResourceConflict(
            f"Peer {name} is declared in the configuration file: remove it there."
        )
    if not ctx.runtime.peers.remove(name):
        raise NoSuchResource(f"There is no peer named {name}.")
    ctx.runtime.access.forget()
    LOG.info("peer %s removed by %s", name, actor(request))
    return {"removed": name}


@router.post("/{name}/echo", summary="C-ECHO a peer")
async def echo_peer(name: str, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """Open an association and send C-ECHO; the status and the time it took."""
    peer = _peer(ctx, name)
    status, seconds = await run_in_threadpool(qr_scu.echo, ctx.runtime.settings, peer)
    return {
        "peer": name,
        "status": status,
        "ok": status == 0x0000,
        "milliseconds": round(seconds * 1000, 1),
    }


class SendBody(BaseModel):
    """What to send: UIDs of studies, series or instances."""

    uids: list[str] = Field(min_length=1, description="Study, series or SOP Instance UIDs.")


def _selected(ctx: WebContext, uids: list[str]) -> list[StoredInstance]:
    found: dict[str, StoredInstance] = {}
    for uid in uids:
        matched = ctx.locator.by_uid(checked_uid(uid.strip(), "UID to send"))
        if not matched:
            raise NoSuchResource(f"No stored study, series or instance has the UID {uid}.")
        found.update((i.sop_instance_uid, i) for i in matched)
    return list(found.values())


def _send(ctx: WebContext, peer: PeerConfig, instances: list[StoredInstance]) -> dict[str, Any]:
    results = []
    with StoreSCU(ctx.runtime.settings, peer, ctx.runtime.blobs, instances) as scu:
        for instance in instances:
            result = scu.send(instance)
            results.append(
                {
                    "sop_instance_uid": result.sop_instance_uid,
                    "status": result.status,
                    "ok": result.ok,
                    "comment": result.comment,
                    "transfer_syntax_uid": result.transfer_syntax_uid,
                }
            )
    failed = sum(1 for r in results if not r["ok"])
    return {"sent": len(results) - failed, "failed": failed, "items": results}


@router.post("/{name}/send", summary="Send to a peer (C-STORE)")
async def send_to_peer(
    name: str, body: SendBody, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """C-STORE the selected instances on one association; each instance's status."""
    peer = _peer(ctx, name)
    instances = await run_in_threadpool(_selected, ctx, body.uids)
    LOG.info("%s sends %d instances to %s", actor(request), len(instances), name)
    return await run_in_threadpool(_send, ctx, peer, instances)


class QueryBody(BaseModel):
    """A C-FIND, C-MOVE or C-GET identifier: level and keys (keyword -> C-FIND value)."""

    level: Literal["PATIENT", "STUDY", "SERIES", "IMAGE"] = "STUDY"
    keys: dict[str, str] = Field(
        default_factory=dict,
        description="Keyword -> value; an empty value asks for the attribute.",
    )
    patient_root: bool = Field(False, description="Patient Root model (default Study Root).")


class RetrieveBody(QueryBody):
    """A retrieve: C-MOVE to dicomhub's own AE title, or C-GET."""

    method: Literal["move", "get"] = "move"


@router.post("/{name}/find", summary="Query a peer (C-FIND)")
async def find_on_peer(
    name: str, body: QueryBody, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """The matches, in DICOM JSON."""
    peer = _peer(ctx, name)
    query = identifier(Level(body.level), body.keys, [])

    def run() -> list[dict[str, Any]]:
        # a failure status of the peer raises PeerRefused, answered 502 with its sentence
        matches = qr_scu.find(ctx.runtime.settings, peer, query, patient_root=body.patient_root)
        return [match.to_json_dict() for match in matches]

    found = await run_in_threadpool(run)
    return {"items": found, "total": len(found), "offset": 0, "limit": len(found)}


@router.post("/{name}/retrieve", summary="Retrieve from a peer (C-MOVE or C-GET)")
async def retrieve_from_peer(
    name: str, body: RetrieveBody, request: Request, ctx: WebContext = Depends(context)
) -> dict[str, Any]:
    """C-MOVE to dicomhub's own AE title (arriving on its listener) or C-GET (arriving on
    the association); the final counts."""
    peer = _peer(ctx, name)
    query = identifier(Level(body.level), body.keys, [])
    settings = ctx.runtime.settings
    LOG.info("%s retrieves from %s with C-%s", actor(request), name, body.method.upper())

    def run() -> qr_scu.RetrieveOutcome:
        if body.method == "get":
            return qr_scu.get(
                settings,
                peer,
                query,
                ctx.runtime.ingest,
                ctx.runtime.blobs,
                patient_root=body.patient_root,
            )
        return qr_scu.move(settings, peer, query, settings.ae_title, patient_root=body.patient_root)

    outcome = await run_in_threadpool(run)
    return {
        "status": outcome.status,
        "ok": outcome.ok,
        "completed": outcome.completed,
        "failed": outcome.failed,
        "warning": outcome.warning,
        "failed_uids": outcome.failed_uids,
        "comment": outcome.comment,
    }
