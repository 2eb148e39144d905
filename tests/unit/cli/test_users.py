"""``dicomhub users``: the last admin is removed only with ``--force``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dicomhub.cli.main import app


def _users(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["users", *args], input=stdin)
    return result.exit_code, result.output


def _names(output: str) -> list[str]:
    """The names in the table of ``users list`` (cells between box-drawing bars)."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines()]
    return [row[1] for row in rows if row and row[0] in ("user", "token")]


def test_the_last_admin_is_removed_only_with_force(env: Path) -> None:
    assert (
        _users("add", "jane", "--role", "admin", "--password-stdin", stdin="long enough\n")[0] == 0
    )
    assert _users("add", "joe", "--password-stdin", stdin="long enough\n")[0] == 0
    code, output = _users("remove", "jane")
    assert code == 1
    assert "user jane is the last admin: without an admin user or token nobody can change" in output
    assert "or remove it anyway with --force." in output
    assert _names(_users("list")[1]) == ["jane", "joe"]
    assert _users("remove", "joe") == (0, "removed user joe\n")  # not an admin
    code, output = _users("remove", "jane", "--force")
    assert (code, output) == (0, "removed user jane\n")
    assert "no HTTP users or tokens" in _users("list")[1]


def test_an_admin_goes_while_another_admin_remains(env: Path) -> None:
    assert (
        _users("add", "jane", "--role", "admin", "--password-stdin", stdin="long enough\n")[0] == 0
    )
    assert _users("token", "ci", "--role", "admin")[0] == 0
    assert _users("remove", "jane") == (0, "removed user jane\n")
    code, output = _users("remove", "ci", "--token")
    assert code == 1 and "token ci is the last admin" in output
    assert _users("remove", "nobody") == (1, "error: there is no user nobody\n")
