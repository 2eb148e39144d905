"""The server itself: health (open to anyone), who is signed in, Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from dicomhub import __version__
from dicomhub.web.context import WebContext, context, principal
from dicomhub.web.metrics import CONTENT_TYPE, Metrics

LOG = logging.getLogger("dicomhub.web")
router = APIRouter(tags=["Server"])


@router.get("/api/health", summary="Health (no authentication)")
def health(ctx: WebContext = Depends(context)) -> JSONResponse:
    """200 when the index answers, 503 otherwise."""
    try:
        with ctx.runtime.db.read() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        LOG.error("health: the index does not answer: %s", exc)
        return JSONResponse(
            {
                "status": "unavailable",
                "version": __version__,
                "error": "The index database does not answer.",
            },
            status_code=503,
        )
    return JSONResponse(
        {"status": "ok", "version": __version__, "ae_title": ctx.runtime.settings.ae_title}
    )


@router.get("/api/whoami", summary="Who is signed in")
def whoami(request: Request, ctx: WebContext = Depends(context)) -> dict[str, Any]:
    """The name and role of the credentials used (anonymous admin when authentication is off)."""
    who = principal(request)
    return {
        "name": who.name if who else "anonymous",
        "role": who.role.value if who else "read",
        "kind": who.kind if who else "anonymous",
        "authentication": ctx.authenticator.enabled,
    }


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    """The text exposition format."""
    found = request.app.state.metrics
    assert isinstance(found, Metrics)
    return Response(found.exposition(), media_type=CONTENT_TYPE)
