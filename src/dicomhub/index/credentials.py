"""HTTP users and tokens, kept in the database so every dicomhub process checks the same ones.

A user signs in with HTTP Basic (name and password); a token is a random secret sent as
``Authorization: Bearer TOKEN``.  Each has a role: ``read`` (look at everything) or ``admin``
(also change: store, delete, schedule, send).  Secrets are never stored: a password is kept as
an scrypt hash with its own salt (``scrypt$N$r$p$salt$hash``), a token as its SHA-256 (a token
is 256 random bits, so a fast hash suffices).  Every comparison is in constant time.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from dicomhub.errors import InvalidRequest, ResourceConflict
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.schema import http_credentials as table
from dicomhub.index.times import as_utc, utc_now

SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
TOKEN_PREFIX = "dh_"  # noqa: S105 (a marker, not a secret)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD_LENGTH = 8


class Role(StrEnum):
    """What a user or token may do over HTTP."""

    READ = "read"
    ADMIN = "admin"


class Kind(StrEnum):
    """How a credential is presented."""

    USER = "user"
    TOKEN = "token"  # noqa: S105 (a kind, not a secret)


class LastAdmin(ResourceConflict):
    """Removing this credential would leave no admin user or token."""


@dataclass(frozen=True)
class Credential:
    """A stored user or token (its hash only)."""

    id: int
    kind: Kind
    name: str
    role: Role
    secret_hash: str
    created_at: datetime


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of a password: ``scrypt$N$r$p$salt$hash`` (hex)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` gives the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected) // 2,
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256 (hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidRequest(
            f"{name!r} cannot be a name: use 1 to 64 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def _credential(row: object) -> Credential:
    m = row._mapping  # type: ignore[attr-defined]
    return Credential(
        id=int(m["id"]),
        kind=Kind(m["kind"]),
        name=m["name"],
        role=Role(m["role"]),
        secret_hash=m["secret_hash"],
        created_at=as_utc(m["created_at"]),
    )


class CredentialRepository:
    """Create, list and remove HTTP users and tokens."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

    def all(self) -> builtins.list[Credential]:
        """Every user and token, users first, by name."""
        query = select(table).order_by(table.c.kind.desc(), table.c.name)
        with self.db.read() as conn:
            return [_credential(row) for row in conn.execute(query)]

    def count(self) -> int:
        """Number of users and tokens (0: nothing to authenticate against)."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def add_user(self, name: str, password: str, role: Role) -> Credential:
        """A new user; ``ResourceConflict`` when the name is taken."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidRequest(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        return self._add(Kind.USER, _check_name(name), Role(role), hash_password(password))

    def add_token(self, name: str, role: Role) -> tuple[Credential, str]:
        """A new token named ``name``; the credential and the token itself (shown once)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return self._add(Kind.TOKEN, _check_name(name), Role(role), hash_token(token)), token

    def set_password(self, name: str, password: str) -> bool:
        """Give a user a new password; False when there is no such user."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidRequest(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        with self.db.write() as conn:
            result = conn.execute(
                table.update()
                .where(table.c.kind == Kind.USER.value, table.c.name == name)
                .values(secret_hash=hash_password(password))
            )
            return bool(result.rowcount)

    def remove(self, kind: Kind, name: str, *, force: bool = False) -> bool:
        """Remove a user or token; False when there was none.

        The last admin (user or token) is kept unless ``force``: ``LastAdmin`` says why.
        Without an admin nobody can change anything over HTTP, and without any credential a
        server bound to a network address refuses every request.  The admins are read and
        locked in the deleting transaction, so two removals at once cannot both pass.
        """
        kind = Kind(kind)
        with self.db.write() as conn:
            admins = conn.execute(
                select(table.c.kind, table.c.name)
                .where(table.c.role == Role.ADMIN.value)
                .with_for_update()
            ).all()
            if not force and [(Kind(row.kind), row.name) for row in admins] == [(kind, name)]:
                raise LastAdmin(
                    f"{kind.value} {name} is the last admin: without an admin user or token "
                    "nobody can change anything over HTTP, and without any user or token a "
                    "server on a network address refuses every HTTP request"
                )
            result = conn.execute(
                delete(table).where(table.c.kind == kind.value, table.c.name == name)
            )
            return bool(result.rowcount)

    def _add(self, kind: Kind, name: str, role: Role, secret_hash: str) -> Credential:
        try:
            with self.db.write() as conn:
                row_id = conn.execute(
                    insert(table)
                    .values(
                        kind=kind.value,
                        name=name,
                        role=role.value,
                        secret_hash=secret_hash,
                        created_at=utc_now(),
                    )
                    .returning(table.c.id)
                ).scalar_one()
        except IntegrityError:
            raise ResourceConflict(f"there is already a {kind.value} named {name}") from None
        with self.db.read() as conn:
            row = conn.execute(select(table).where(table.c.id == row_id)).one()
        return _credential(row)
