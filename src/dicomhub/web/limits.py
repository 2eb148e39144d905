"""Request body size limits: no request body is read without a bound.

Uploads (STOW-RS, ``POST /api/instances``) may be as large as ``http_max_upload``; every other
body (JSON) at most ``JSON_LIMIT``.  A declared Content-Length over the limit is refused before
anything is read; a chunked body is counted as it arrives and refused when it passes the limit
(the route then discards what it had spooled).  Either way the answer is 413.

A chunked body is refused by raising ``RequestTooLarge`` from ``receive``, in whatever code is
reading the body.  Not every reader lets it through: FastAPI turns any failure while it reads
a JSON body into its own 400.  So the middleware also watches the answer: once the body has
passed the limit, a response the app then starts with another status is replaced by the 413.
"""

from __future__ import annotations

import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomhub.errors import RequestTooLarge
from dicomhub.web.problems import error_response

LOG = logging.getLogger("dicomhub.web")
JSON_LIMIT = 1 << 20
UPLOAD_PATHS = re.compile(r"^/(dicom-web/studies(/[^/]+)?|api/instances)/?$")


def _describe(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


class BodyLimitMiddleware:
    """Refuses request bodies over their route's limit with 413."""

    def __init__(self, app: ASGIApp, max_upload: int) -> None:
        self.app = app
        self.max_upload = max_upload

    def limit_for(self, path: str) -> int:
        """The largest body a request to ``path`` may carry."""
        return self.max_upload if UPLOAD_PATHS.match(path) else JSON_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            error = RequestTooLarge(
                f"The request is {_describe(int(declared))}; this server takes at most "
                f"{_describe(limit)} here."
            )
            await error_response(error)(scope, receive, send)
            return
        received = 0
        refused: RequestTooLarge | None = None
        started = False
        replaced = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = RequestTooLarge(
                        f"The request is larger than the {_describe(limit)} this server "
                        "takes here; nothing of it was kept."
                    )
                    raise refused
            return message

        async def answer(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                if refused is not None and not started and message.get("status") != 413:
                    # whatever the body's reader made of the refusal, the answer is the 413
                    replaced = started = True
                    LOG.warning(
                        "%s %s: 413 %s", scope.get("method", ""), scope.get("path", ""), refused
                    )
                    await error_response(refused)(scope, receive, send)
                    return
                started = True
            if not replaced:
                await send(message)

        await self.app(scope, counted, answer)
