"""The address clients reach the server at, for the URLs in answers (RetrieveURL, BulkDataURI)."""

from __future__ import annotations

from fastapi import Request

from dicomhub.config import Settings


def base_url(request: Request, settings: Settings) -> str:
    """``http_base_url`` when configured, else scheme and host of the request (no slash)."""
    if settings.http_base_url:
        return settings.http_base_url.rstrip("/")
    return str(request.base_url).rstrip("/")
