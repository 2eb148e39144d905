"""Who is calling over HTTP, and whether they may: an ASGI middleware in front of every route.

Authentication is on as soon as one HTTP user or token exists (``dicomhub users``).  Without
any, a server bound to loopback serves every request as admin (usable at once, on the machine
itself); a server bound to a network address answers every request but ``/api/health`` with
401 until a user or token is created.  ``dicomhub serve`` refuses to start on a network address
without one, but the last one may be removed while the server runs: it then closes rather than
opening the archive to everyone.  With authentication on:

* ``/api/health`` is the only route open to anyone (load balancers and monitors use it);
* every other request needs HTTP Basic credentials of a user or a Bearer token: 401 with a
  ``WWW-Authenticate`` challenge otherwise;
* requests that change something (any method but GET, HEAD and OPTIONS) need the ``admin``
  role: 403 for a ``read`` credential.

A browser asking for a page (``Accept: text/html``) gets the refusal as a short HTML page, so a
person who cancels the browser's sign-in prompt reads a sentence rather than JSON; everyone
else gets the JSON error body.

The rule is applied here, to the whole ASGI app (static files and sub-applications included),
so a route added later cannot escape it.  Credentials are read from the database at most every
few seconds; a password verified once is remembered (by a salted hash of name and password)
for a few minutes, so a page loading many images does not pay scrypt per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import NoReturn

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from dicomhub.errors import AuthenticationRequired, NotAuthorized
from dicomhub.index.credentials import (
    Credential,
    CredentialRepository,
    Kind,
    Role,
    hash_token,
    verify_password,
)
from dicomhub.web.problems import error_page, error_response

LOG = logging.getLogger("dicomhub.web")
PUBLIC_PATHS = frozenset({"/api/health"})
"""Routes served without credentials."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods a ``read`` credential may use; everything else needs ``admin``."""
CACHE_SECONDS = 5.0
VERIFIED_SECONDS = 300.0
REALM = "dicomhub"


@dataclass(frozen=True)
class Principal:
    """Who a request comes from."""

    name: str
    role: Role
    kind: str
    """'user', 'token' or 'anonymous' (authentication off)."""

    @property
    def is_admin(self) -> bool:
        """Whether it may change things."""
        return self.role is Role.ADMIN


ANONYMOUS = Principal("anonymous", Role.ADMIN, "anonymous")


NO_CREDENTIALS = (
    "This server is bound to a network address and has no HTTP user or token, so it refuses "
    "every request: an administrator must create one (`dicomhub users add NAME --role admin`)."
)
"""The answer to every request of a network-bound server whose last credential was removed."""


class Authenticator:
    """Checks credentials against the stored users and tokens.

    ``anonymous_admin`` says what happens while none is stored: True (a server bound to
    loopback) serves every request as admin, False (bound to a network address) refuses them.
    """

    def __init__(self, repository: CredentialRepository, *, anonymous_admin: bool) -> None:
        self.repository = repository
        self.anonymous_admin = anonymous_admin
        self._refusing = False
        """Whether the last request was refused for want of any credential (logged once)."""
        self._lock = threading.Lock()
        self._loaded: tuple[float, list[Credential]] | None = None
        self._verified: dict[str, tuple[float, str]] = {}
        self._pepper = secrets.token_bytes(16)

    def credentials(self) -> list[Credential]:
        """The stored users and tokens (re-read every few seconds)."""
        now = time.monotonic()
        with self._lock:
            if self._loaded is None or now - self._loaded[0] > CACHE_SECONDS:
                self._loaded = (now, self.repository.all())
            return self._loaded[1]

    def forget(self) -> None:
        """Re-read the credentials at the next request (after a change)."""
        with self._lock:
            self._loaded = None
            self._verified.clear()

    @property
    def enabled(self) -> bool:
        """Whether requests must authenticate: some user or token exists, or the server is
        on a network address (where nobody is let in without one)."""
        return bool(self.credentials()) or not self.anonymous_admin

    def authenticate(self, authorization: str) -> Principal:
        """The principal of an ``Authorization`` header; raises ``AuthenticationRequired``."""
        credentials = self.credentials()
        if not credentials:
            if self.anonymous_admin:
                return ANONYMOUS
            self._refuse_everyone()
        elif self._refusing:
            with self._lock:
                self._refusing = False
            LOG.warning("HTTP users or tokens exist again: requests are authenticated")
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value.strip():
            return self._token(credentials, value.strip())
        if scheme == "basic" and value.strip():
            return self._basic(credentials, value.strip())
        raise AuthenticationRequired(
            "Sign in: this server needs a user name and password, or a token."
        )

    def _refuse_everyone(self) -> NoReturn:
        """Refuse a request while a network-bound server has no credential (logged once,
        when it starts to happen, not on every request)."""
        with self._lock:
            first, self._refusing = not self._refusing, True
        if first:
            LOG.error(
                "no HTTP user or token exists and the server is bound to a network address: "
                "every HTTP request but /api/health is refused with 401 until one is created "
                "(dicomhub users add NAME --role admin)"
            )
        raise AuthenticationRequired(NO_CREDENTIALS)

    def _token(self, credentials: list[Credential], token: str) -> Principal:
        presented = hash_token(token)
        found: Credential | None = None
        for credential in credentials:
            if credential.kind is Kind.TOKEN and hmac.compare_digest(
                credential.secret_hash, presented
            ):
                found = credential
        if found is None:
            raise AuthenticationRequired("The token is not valid (unknown or removed).")
        return Principal(found.name, found.role, Kind.TOKEN.value)

    def _basic(self, credentials: list[Credential], value: str) -> Principal:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationRequired("The sign-in data is malformed.") from None
        name, colon, password = decoded.partition(":")
        user = next((c for c in credentials if c.kind is Kind.USER and c.name == name), None)
        if not colon or user is None or not self._password_ok(user, password):
            LOG.warning("HTTP sign-in refused for user %r", name[:64])
            raise AuthenticationRequired("The user name or the password is wrong.")
        return Principal(user.name, user.role, Kind.USER.value)

    def _password_ok(self, user: Credential, password: str) -> bool:
        key = hashlib.sha256(
            self._pepper + user.name.encode() + b"\0" + password.encode("utf-8")
        ).hexdigest()
        now = time.monotonic()
        with self._lock:
            remembered = self._verified.get(key)
        if (
            remembered is not None
            and now - remembered[0] < VERIFIED_SECONDS
            and hmac.compare_digest(remembered[1], user.secret_hash)
        ):
            return True
        if not verify_password(user.secret_hash, password):
            return False
        with self._lock:
            if len(self._verified) > 1024:
                self._verified.clear()
            self._verified[key] = (now, user.secret_hash)
        return True


class AuthMiddleware:
    """Applies the rule of the module docstring to every HTTP request."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in PUBLIC_PATHS:
            scope.setdefault("state", {})["principal"] = None
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        try:
            principal = await run_in_threadpool(self.authenticator.authenticate, authorization)
            method = scope.get("method", "GET").upper()
            if method not in SAFE_METHODS and not principal.is_admin:
                raise NotAuthorized(
                    f"{principal.name} may look but not change anything: this needs an "
                    "admin user or token."
                )
        except (AuthenticationRequired, NotAuthorized) as exc:
            accept = headers.get(b"accept", b"").decode("latin-1")
            response = error_page(exc) if "text/html" in accept else error_response(exc)
            if isinstance(exc, AuthenticationRequired):
                # one challenge per header: browsers ignore a Basic challenge followed by
                # another scheme in the same header, and then never ask for a password
                response.headers.append(
                    "WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'
                )
                response.headers.append("WWW-Authenticate", f'Bearer realm="{REALM}"')
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
