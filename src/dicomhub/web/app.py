"""The ASGI app: REST API, DICOMweb, metrics and the web UI, with authentication in front.

Built once by ``dicomhub serve`` from the runtime (the same index, blob store and ingest path
as the DICOM listener).  Middleware, outermost first: metrics (counts every answer), body
limits (413 before anything is spooled), authentication (401/403, see ``web.auth``).  Every
route depends on ``web.paths.check_path``: UIDs and Patient IDs in paths are checked (400)
before the route runs.  The OpenAPI description is at ``/openapi.json``; no documentation page
is served, since those pull scripts from the internet.  The web UI is static files from the
package (``web/ui``), served at ``/ui/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from dicomhub import __version__
from dicomhub.runtime import Runtime
from dicomhub.web import problems
from dicomhub.web.api import (
    archive,
    commitments,
    dictionary,
    instances,
    mpps,
    peers,
    prints,
    queue,
    system,
    worklist,
)
from dicomhub.web.auth import AuthMiddleware
from dicomhub.web.context import WebContext
from dicomhub.web.dicomweb import qido, stow, wado, wado_uri
from dicomhub.web.limits import BodyLimitMiddleware
from dicomhub.web.metrics import Metrics, MetricsMiddleware
from dicomhub.web.paths import check_path

UI_DIR = Path(__file__).parent / "ui"


def create_app(
    runtime: Runtime,
    *,
    associations: Callable[[], int] | None = None,
    loopback: bool | None = None,
) -> FastAPI:
    """The app serving ``runtime``; ``associations`` counts open DICOM associations.

    ``loopback`` says whether the app is served on a loopback address only (None: whether
    ``runtime.settings.bind`` is one).  Only then is a server with no HTTP user or token open
    to everyone as admin; on a network address it refuses every request until one exists.
    """
    app = FastAPI(
        title="dicomhub",
        version=__version__,
        description="REST API and DICOMweb (PS3.18) of a dicomhub archive.",
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        dependencies=[Depends(check_path)],
    )
    if loopback is None:
        loopback = runtime.settings.is_loopback
    context = WebContext.build(runtime, loopback=loopback, associations=associations)
    metrics = Metrics(context)
    app.state.context = context
    app.state.metrics = metrics
    problems.install(app)
    for router in (
        system.router,
        archive.router,
        dictionary.router,
        instances.router,
        peers.router,
        queue.router,
        worklist.router,
        mpps.router,
        commitments.router,
        prints.router,
        stow.router,
        qido.router,
        wado.router,
        wado_uri.router,
    ):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
    app.add_middleware(AuthMiddleware, authenticator=context.authenticator)
    app.add_middleware(BodyLimitMiddleware, max_upload=runtime.settings.http_max_upload)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
