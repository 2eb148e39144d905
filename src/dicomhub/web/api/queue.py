"""The forwarding queue over REST: what waits, what was delivered, what failed; retry, drop.

The queue lives in the database and is shared by every dicomhub process; a retried row is due
at once and the forwarder of this process is woken up.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from dicomhub.errors import InvalidRequest, NoSuchResource
from dicomhub.index.forward_queue import QueueItem, QueueState
from dicomhub.web.api.paging import Limit, Offset, choice, page, when
from dicomhub.web.context import WebContext, actor, context

LOG = logging.getLogger("dicomhub.web")
router = APIRouter(prefix="/api/queue", tags=["Forwarding queue"])


def describe(item: QueueItem) -> dict[str, Any]:
    """A queue row as JSON."""
    return {
        "id": item.id,
        "sop_instance_uid": item.sop_instance_uid,
        "destination": item.destination,
        "rule": item.rule,
        "state": item.state.value,
        "attempts": item.attempts,
        "next_attempt_at": when(item.next_attempt_at),
        "last_error": item.last_error,
        "created_at": when(item.created_at),
        "updated_at": when(item.updated_at),
        "done_at": when(item.done_at),
    }


@router.get("", summary="Queue rows")
def list_queue(
    state: str | None = Query(None, description="pending, done or failed"),
    offset: int = Offset,
    limit: int = Limit,
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Rows, newest first, with the number of rows in each state."""
    queue = ctx.runtime.forward_queue
    chosen = choice(QueueState, state, "state")
    body = page(lambda n: queue.list(chosen, n), describe, offset, limit)
    body["counts"] = {s.value: n for s, n in queue.counts().items()}
    return body


class Selection(BaseModel):
    """Rows to act on: ids, and/or every row of a state."""

    ids: list[int] = Field(default_factory=list)
    all_failed: bool = Field(False, description="Retry: every failed row too.")
    state: str | None = Field(None, description="Drop: every row in this state too.")


@router.post("/retry", summary="Retry rows")
def retry(body: Selection, request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """Make rows pending and due now (attempts reset)."""
    if not body.ids and not body.all_failed:
        raise InvalidRequest("Say which rows to retry: ids, or all_failed.")
    count = ctx.runtime.forward_queue.retry(body.ids, all_failed=body.all_failed)
    ctx.runtime.forward_wake.set()
    LOG.info("%s retried %d forwarding queue rows", actor(request), count)
    return {"retried": count}


@router.post("/drop", summary="Drop rows")
def drop(body: Selection, request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """Delete rows (they will not be sent)."""
    state = choice(QueueState, body.state, "state")
    if not body.ids and state is None:
        raise InvalidRequest("Say which rows to drop: ids, or a state.")
    count = ctx.runtime.forward_queue.drop(body.ids, state=state)
    LOG.info("%s dropped %d forwarding queue rows", actor(request), count)
    return {"dropped": count}


@router.post("/{row_id}/retry", summary="Retry one row")
def retry_one(row_id: int, request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """Make one row pending and due now."""
    if not ctx.runtime.forward_queue.retry([row_id]):
        raise NoSuchResource(f"There is no forwarding queue row {row_id}.")
    ctx.runtime.forward_wake.set()
    LOG.info("%s retried forwarding queue row %d", actor(request), row_id)
    return {"retried": 1}


@router.delete("/{row_id}", summary="Drop one row")
def drop_one(row_id: int, request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """Delete one row."""
    if not ctx.runtime.forward_queue.drop([row_id]):
        raise NoSuchResource(f"There is no forwarding queue row {row_id}.")
    LOG.info("%s dropped forwarding queue row %d", actor(request), row_id)
    return {"dropped": 1}
