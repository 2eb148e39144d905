"""``dicomhub users``: who may use the HTTP server (REST API, DICOMweb, web UI).

Users sign in with a name and password (HTTP Basic), tokens are sent as
``Authorization: Bearer TOKEN``; each is ``read`` (look) or ``admin`` (also change).  They are
kept in the index database (passwords as scrypt hashes, tokens as SHA-256), so every dicomhub
process on it checks the same ones, at once.  As soon as one exists, every HTTP request but
``/api/health`` must authenticate; a server bound to a network address needs one to start, and
refuses every request while none exists.  The last admin is removed only with ``--force``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from dicomhub.errors import DicomhubError
from dicomhub.index.credentials import CredentialRepository, Kind, LastAdmin, Role

if TYPE_CHECKING:
    from dicomhub.runtime import Runtime

users_app = typer.Typer(
    help="HTTP users and tokens (read or admin): add, token, list, password, remove.",
    no_args_is_help=True,
)
RoleOption = Annotated[
    Role, typer.Option("--role", "-r", help="read (look) or admin (also change).")
]
StdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _open() -> Runtime:
    from dicomhub.cli.main import _runtime, _settings

    runtime: Runtime = _runtime(_settings())
    return runtime


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: RoleOption = Role.READ,
    password_stdin: StdinOption = False,
) -> None:
    """Add a user; the password is asked for (twice), or read from standard input."""
    password = _password(password_stdin)
    runtime = _open()
    try:
        credential = CredentialRepository(runtime.db).add_user(name, password, role)
    except DicomhubError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    typer.echo(f"added user {credential.name} ({credential.role.value})")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it).")],
    role: RoleOption = Role.READ,
) -> None:
    """Create a token and print it (it is shown only this once)."""
    runtime = _open()
    try:
        credential, token = CredentialRepository(runtime.db).add_token(name, role)
    except DicomhubError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    typer.echo(
        f"token {credential.name} ({credential.role.value}); send it as "
        f"'Authorization: Bearer TOKEN'; it is not shown again:",
        err=True,
    )
    typer.echo(token)


@users_app.command("password")
def users_password(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: StdinOption = False,
) -> None:
    """Give a user a new password."""
    password = _password(password_stdin)
    runtime = _open()
    try:
        changed = CredentialRepository(runtime.db).set_password(name, password)
    except DicomhubError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    if not changed:
        typer.echo(f"error: there is no user {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"password of {name} changed")


@users_app.command("list")
def users_list() -> None:
    """Users and tokens, with their roles (never their secrets)."""
    runtime = _open()
    try:
        credentials = CredentialRepository(runtime.db).all()
    finally:
        runtime.close()
    console = Console()
    if not credentials:
        console.print(
            "no HTTP users or tokens: the HTTP server is open on loopback, and refuses to "
            "start (or, running, refuses every request) on a network address",
            markup=False,
        )
        return
    table = Table("kind", "name", "role", "created")
    for credential in credentials:
        table.add_row(
            credential.kind.value,
            credential.name,
            credential.role.value,
            f"{credential.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="User or token name.")],
    token: Annotated[bool, typer.Option("--token", help="Remove the token of this name.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Remove it even if it is the last admin.")
    ] = False,
) -> None:
    """Remove a user (or, with --token, a token); the last admin only with --force."""
    kind = Kind.TOKEN if token else Kind.USER
    runtime = _open()
    try:
        removed = CredentialRepository(runtime.db).remove(kind, name, force=force)
    except LastAdmin as exc:
        typer.echo(
            f"error: {exc}.  Add another admin first (dicomhub users add NAME --role admin), "
            "or remove it anyway with --force.",
            err=True,
        )
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    if not removed:
        typer.echo(f"error: there is no {kind.value} {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {kind.value} {name}")
