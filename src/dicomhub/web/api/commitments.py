"""Storage commitment transactions over REST, in both roles: what was asked, what became of
each instance, and every step of the transaction (request, check, report)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from dicomhub.errors import NoSuchResource
from dicomhub.index.commitments import Role, State, Transaction
from dicomhub.web.api.paging import Limit, Offset, choice, page, when
from dicomhub.web.context import WebContext, context

router = APIRouter(prefix="/api/commitments", tags=["Storage commitment"])


def summary(transaction: Transaction) -> dict[str, Any]:
    """The facts a list shows."""
    return {
        "id": transaction.id,
        "role": transaction.role.value,
        "transaction_uid": transaction.transaction_uid,
        "peer_ae_title": transaction.peer_ae_title,
        "called_ae_title": transaction.called_ae_title,
        "state": transaction.state.value,
        "instances": len(transaction.items),
        "committed": len(transaction.committed),
        "failed": len(transaction.failed),
        "attempts": transaction.attempts,
        "last_error": transaction.last_error,
        "created_at": when(transaction.created_at),
        "updated_at": when(transaction.updated_at),
        "completed_at": when(transaction.completed_at),
    }


@router.get("", summary="Storage commitment transactions")
def list_transactions(
    role: str | None = Query(None, description="scp (asked of dicomhub) or scu (by dicomhub)"),
    state: str | None = Query(None),
    offset: int = Offset,
    limit: int = Limit,
    ctx: WebContext = Depends(context),
) -> dict[str, Any]:
    """Transactions, newest first."""
    chosen_role = choice(Role, role, "role")
    chosen_state = choice(State, state, "state")
    return page(
        lambda n: ctx.commitments.list(chosen_role, chosen_state, n), summary, offset, limit
    )


@router.get("/{transaction_id}", summary="A storage commitment transaction")
def get_transaction(transaction_id: int, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """A transaction with each instance's outcome and its events."""
    transaction = ctx.commitments.get(transaction_id)
    if transaction is None:
        raise NoSuchResource(f"There is no storage commitment transaction {transaction_id}.")
    body = summary(transaction)
    body["items"] = [
        {
            "sop_class_uid": item.sop_class_uid,
            "sop_instance_uid": item.sop_instance_uid,
            "outcome": item.outcome.value,
            "failure_reason": item.failure_reason,
            "detail": item.detail,
        }
        for item in transaction.items
    ]
    body["events"] = [
        {"occurred_at": when(at), "event": event, "detail": detail}
        for at, event, detail in ctx.commitments.events(transaction.id)
    ]
    return body
