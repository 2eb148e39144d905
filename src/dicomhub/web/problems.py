"""The one place where the web side turns failures into HTTP answers (ARCHITECTURE 1.5).

Every error body has the same shape, ``{"error": "<a sentence>", "status": <HTTP status>}``, so
a client (the web UI first) can show the sentence as it is.  A ``DicomhubError`` answers with
the HTTP status its class declares in ``errors.py``; FastAPI's own refusals (unknown route,
wrong method, invalid parameter) are given the same shape; anything unexpected is logged with
its traceback and answered 500 with a sentence that points at the log.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from dicomhub.errors import DicomhubError

LOG = logging.getLogger("dicomhub.web")
_HTTP_SENTENCES = {
    404: "There is nothing at this address.",
    405: "This address does not take a {method} request.",
}


def error_body(status: int, sentence: str) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": sentence, "status": status}


def error_response(exc: DicomhubError) -> JSONResponse:
    """The answer to a ``DicomhubError``."""
    return JSONResponse(error_body(exc.http_status, str(exc)), status_code=exc.http_status)


def error_page(exc: DicomhubError) -> HTMLResponse:
    """The answer to a ``DicomhubError`` for a browser asking for a page: the sentence as HTML."""
    sentence = html.escape(str(exc))
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dicomhub</title>'
        '</head><body style="font-family: system-ui, sans-serif; margin: 2rem">'
        f"<h1>dicomhub</h1><p>{sentence}</p>"
        + ("<p>Reload the page to sign in again.</p>" if exc.http_status == 401 else "")
        + "</body></html>"
    )
    return HTMLResponse(body, status_code=exc.http_status)


def _validation_sentence(exc: RequestValidationError) -> str:
    sentences = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part not in ("query", "body")]
        where = ".".join(location) or "the request"
        sentences.append(f"{where}: {error.get('msg', 'invalid value')}")
    return "The request is not valid: " + "; ".join(sentences)


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    async def dicomhub_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DicomhubError)
        level = logging.WARNING if exc.http_status < 500 else logging.ERROR
        LOG.log(level, "%s %s: %d %s", request.method, request.url.path, exc.http_status, exc)
        return error_response(exc)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        sentence = _validation_sentence(exc)
        LOG.warning("%s %s: 400 %s", request.method, request.url.path, sentence)
        return JSONResponse(error_body(400, sentence), status_code=400)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        template = _HTTP_SENTENCES.get(exc.status_code)
        sentence = template.format(method=request.method) if template else str(exc.detail or "")
        return JSONResponse(
            error_body(exc.status_code, sentence),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        LOG.exception("%s %s failed", request.method, request.url.path)
        sentence = f"dicomhub could not answer ({type(exc).__name__}); the server log says more."
        return JSONResponse(error_body(500, sentence), status_code=500)

    app.add_exception_handler(DicomhubError, dicomhub_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
