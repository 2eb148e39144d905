"""What every route works with, built once when the app is made and found on ``app.state``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from dicomhub.index.commitments import CommitmentRepository
from dicomhub.index.credentials import CredentialRepository
from dicomhub.index.mpps import MppsRepository
from dicomhub.index.print_jobs import PrintRepository
from dicomhub.index.retrieve import RetrieveLocator
from dicomhub.index.worklist import WorklistRepository
from dicomhub.runtime import Runtime
from dicomhub.web.auth import Authenticator, Principal


@dataclass
class WebContext:
    """The runtime and the repositories the routes use."""

    runtime: Runtime
    authenticator: Authenticator
    worklist: WorklistRepository
    mpps: MppsRepository
    commitments: CommitmentRepository
    prints: PrintRepository
    locator: RetrieveLocator
    associations: Callable[[], int] | None = None
    """The number of open DICOM associations of this process, when it has a listener."""

    @classmethod
    def build(
        cls,
        runtime: Runtime,
        *,
        loopback: bool,
        associations: Callable[[], int] | None = None,
    ) -> WebContext:
        """Everything from the runtime; ``loopback`` says whether the HTTP server is bound to
        loopback only (then, with no user or token stored, everyone is admin)."""
        return cls(
            runtime=runtime,
            authenticator=Authenticator(CredentialRepository(runtime.db), anonymous_admin=loopback),
            worklist=WorklistRepository(runtime.db),
            mpps=MppsRepository(runtime.db),
            commitments=runtime.commitments,
            prints=PrintRepository(runtime.db),
            locator=RetrieveLocator(runtime.db),
            associations=associations,
        )


def context(request: Request) -> WebContext:
    """The app's context (a FastAPI dependency)."""
    found = request.app.state.context
    assert isinstance(found, WebContext)
    return found


def principal(request: Request) -> Principal | None:
    """Who makes the request (None on the public health route)."""
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else None


def actor(request: Request) -> str:
    """A short description of who makes the request, for the log and the change log."""
    who = principal(request)
    host = request.client.host if request.client else "?"
    return f"{who.name if who else 'anonymous'}@{host}"
