"""Authentication and roles on every route of the app, enumerated from its router.

With one credential stored, every route but ``/api/health`` answers 401 without credentials
(with a challenge), a read token gets 403 on every route that changes something (any method
but GET/HEAD/OPTIONS), and an admin token passes the gate everywhere.  With none stored, a
server on loopback is open and one on a network address refuses everything.  The routes are
taken from the app itself, so a route added later is tested too.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from dicomhub.index.credentials import CredentialRepository, Kind, Role
from dicomhub.runtime import Runtime
from dicomhub.web.app import create_app
from dicomhub.web.auth import NO_CREDENTIALS
from dicomhub.web.server import HttpServer
from tests.web.conftest import Web

SAFE = {"GET", "HEAD", "OPTIONS"}


def _walk(routes: Iterable[object]) -> Iterator[object]:
    """Every route, looking inside included routers (FastAPI may wrap them)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _walk(included.routes)
        else:
            yield route


def _answers_but_health(web: Web, http: httpx.Client) -> Iterator[tuple[str, str, httpx.Response]]:
    """(method, path, answer) of a request to every route but the health check."""
    for method, path in _routes(web):
        if path != "/api/health":
            yield method, path, http.request(method, path)


def _routes(web: Web) -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the app."""
    found: list[tuple[str, str]] = []
    for route in _walk(web.server.app.routes):
        if isinstance(route, Mount):
            found.append(("GET", f"{route.path}/"))
            continue
        assert isinstance(route, APIRoute | Route), route
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in sorted(route.methods or ()):
            found.append((method, path))
    return found


def test_routes_cover_the_api(web: Web) -> None:
    paths = {path for _, path in _routes(web)}
    for expected in (
        "/api/health",
        "/api/studies",
        "/dicom-web/studies",
        "/wado",
        "/metrics",
        "/api/worklist",
        "/api/peers/1/send",
        "/ui/",
        "/openapi.json",
    ):
        assert expected in paths
    assert len(paths) > 50


def test_without_credentials_everything_but_health_is_401(web: Web) -> None:
    web.token("reader", Role.READ)
    with web.client() as http:
        assert http.get("/api/health").status_code == 200
        for method, path, answer in _answers_but_health(web, http):
            assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
            assert "Basic" in answer.headers["www-authenticate"]
            if method != "HEAD":
                assert answer.json()["status"] == 401
                assert answer.json()["error"]


def test_read_token_is_refused_on_every_mutating_route(web: Web) -> None:
    token = web.token("reader", Role.READ)
    mutating = [(m, p) for m, p in _routes(web) if m not in SAFE]
    assert len(mutating) > 15
    with web.client(headers={"Authorization": f"Bearer {token}"}) as http:
        for method, path in mutating:
            answer = http.request(method, path, json={})
            assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
            assert "admin" in answer.json()["error"]
        for method, path in _routes(web):
            if method in SAFE and method != "HEAD":
                answer = http.request(method, path)
                assert answer.status_code not in (401, 403), f"{method} {path}"


def test_admin_token_passes_the_gate_everywhere(web: Web) -> None:
    token = web.token("boss", Role.ADMIN)
    with web.client(headers={"Authorization": f"Bearer {token}"}) as http:
        for method, path in _routes(web):
            if method == "POST" and path.endswith(("/echo", "/send", "/find", "/retrieve")):
                continue  # would try to reach a peer named "1"; covered in test_peers
            answer = http.request(method, path, json={})
            assert answer.status_code not in (401, 403), f"{method} {path}: {answer.text}"


def test_basic_users_and_wrong_credentials(web: Web) -> None:
    repository = CredentialRepository(web.runtime.db)
    repository.add_user("jane", "correct horse", Role.ADMIN)
    repository.add_user("joe", "battery staple", Role.READ)
    web.server.app.state.context.authenticator.forget()

    def basic(name: str, password: str) -> dict[str, str]:
        raw = base64.b64encode(f"{name}:{password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    with web.client() as http:
        assert http.get("/api/whoami", headers=basic("jane", "correct horse")).json() == {
            "name": "jane",
            "role": "admin",
            "kind": "user",
            "authentication": True,
        }
        for _ in range(2):  # the second is answered from the verified cache
            assert (
                http.get("/api/studies", headers=basic("joe", "battery staple")).status_code == 200
            )
        wrong = http.get("/api/studies", headers=basic("joe", "battery stapler"))
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "The user name or the password is wrong."
        assert http.get("/api/studies", headers=basic("nobody", "x" * 8)).status_code == 401
        assert (
            http.get("/api/studies", headers={"Authorization": "Bearer dh_forged"}).status_code
            == 401
        )
        assert http.get("/api/studies", headers={"Authorization": "Basic %%%"}).status_code == 401
        refused = http.delete("/api/studies/1.2.3", headers=basic("joe", "battery staple"))
        assert refused.status_code == 403
        allowed = http.delete("/api/studies/1.2.3", headers=basic("jane", "correct horse"))
        assert allowed.status_code == 404


def test_browsers_are_challenged_and_shown_a_sentence(web: Web) -> None:
    web.token("reader", Role.READ)
    with web.client() as http:
        page = http.get("/ui/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert page.status_code == 401
        # one challenge per header, Basic first: browsers then ask for a user name and password
        assert page.headers.get_list("www-authenticate") == [
            'Basic realm="dicomhub", charset="UTF-8"',
            'Bearer realm="dicomhub"',
        ]
        assert page.headers["content-type"].startswith("text/html")
        assert "Sign in: this server needs a user name and password" in page.text
        assert "Reload the page to sign in again." in page.text
        api = http.get("/api/studies", headers={"Accept": "application/json"})
        assert api.json() == {
            "error": "Sign in: this server needs a user name and password, or a token.",
            "status": 401,
        }


def test_open_without_credentials(client: httpx.Client) -> None:
    assert client.get("/api/whoami").json()["role"] == "admin"
    assert client.get("/api/whoami").json()["authentication"] is False


@pytest.mark.parametrize("name", ["", "a b", "x" * 65])
def test_bad_names_are_refused(web: Web, name: str) -> None:
    from dicomhub.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        CredentialRepository(web.runtime.db).add_token(name, Role.READ)


@pytest.fixture
def network_web(runtime: Runtime, tmp_path: Path) -> Iterator[Web]:
    """The app as ``dicomhub serve`` builds it for a network address (served on loopback)."""
    server = HttpServer(create_app(runtime, loopback=False), "127.0.0.1", 0)
    server.start()
    try:
        yield Web(runtime, server, tmp_path)
    finally:
        server.stop()


def test_network_server_without_credentials_refuses_everyone(
    network_web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    with network_web.client() as http, caplog.at_level(logging.WARNING, "dicomhub.web"):
        assert http.get("/api/health").status_code == 200
        for method, path, answer in _answers_but_health(network_web, http):
            assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
            if method != "HEAD":
                assert answer.json() == {"error": NO_CREDENTIALS, "status": 401}
        deleted = http.delete("/api/studies/1.2.3")
        assert deleted.status_code == 401
    refusals = [r for r in caplog.records if "no HTTP user or token exists" in r.message]
    assert len(refusals) == 1  # once when it starts, not on every request


def test_network_server_closes_again_when_the_last_credential_goes(network_web: Web) -> None:
    token = network_web.token("boss", Role.ADMIN)
    with network_web.client() as http:
        signed = {"Authorization": f"Bearer {token}"}
        assert http.get("/api/whoami", headers=signed).json()["role"] == "admin"
        assert http.get("/api/studies").status_code == 401
        assert CredentialRepository(network_web.runtime.db).remove(Kind.TOKEN, "boss", force=True)
        network_web.server.app.state.context.authenticator.forget()
        for headers in ({}, signed):
            refused = http.get("/api/studies", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"] == NO_CREDENTIALS
        assert http.get("/api/health").status_code == 200


def test_loopback_server_is_open_only_while_no_credential_exists(web: Web) -> None:
    authenticator = web.server.app.state.context.authenticator
    assert authenticator.anonymous_admin is True
    with web.client() as http:
        assert http.get("/api/whoami").json()["kind"] == "anonymous"
        web.token("reader", Role.READ)
        assert http.get("/api/whoami").status_code == 401


def test_app_follows_the_configured_bind(runtime: Runtime) -> None:
    assert create_app(runtime).state.context.authenticator.anonymous_admin is True
    runtime.settings.bind = "0.0.0.0"
    assert create_app(runtime).state.context.authenticator.anonymous_admin is False
    assert create_app(runtime, loopback=True).state.context.authenticator.anonymous_admin
