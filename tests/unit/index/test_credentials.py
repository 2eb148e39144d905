"""HTTP users and tokens: stored hashed, compared in constant time, unique names."""

from __future__ import annotations

import pytest

from dicomhub.errors import InvalidRequest, ResourceConflict
from dicomhub.index.credentials import (
    CredentialRepository,
    Kind,
    LastAdmin,
    Role,
    hash_password,
    hash_token,
    verify_password,
)
from dicomhub.runtime import Runtime


def test_password_hashes() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$") and "correct horse" not in stored
    assert stored != hash_password("correct horse")  # a new salt each time
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horse ")
    assert not verify_password("plain", "plain")
    assert not verify_password("scrypt$x$y$z$00$00", "a")


def test_repository(runtime: Runtime) -> None:
    repository = CredentialRepository(runtime.db)
    assert repository.count() == 0
    user = repository.add_user("jane", "long enough", Role.ADMIN)
    credential, token = repository.add_token("ci", Role.READ)
    assert token.startswith("dh_") and len(token) > 40
    assert credential.secret_hash == hash_token(token)
    assert verify_password(user.secret_hash, "long enough")
    assert [(c.kind, c.name, c.role) for c in repository.all()] == [
        (Kind.USER, "jane", Role.ADMIN),
        (Kind.TOKEN, "ci", Role.READ),
    ]
    with pytest.raises(ResourceConflict):
        repository.add_user("jane", "another one", Role.READ)
    with pytest.raises(InvalidRequest, match="8 characters"):
        repository.add_user("joe", "short", Role.READ)
    assert repository.set_password("jane", "a new password")
    assert not repository.set_password("nobody", "a new password")
    assert repository.remove(Kind.TOKEN, "ci")
    assert not repository.remove(Kind.TOKEN, "ci")
    assert repository.count() == 1


def test_the_last_admin_is_kept_unless_forced(runtime: Runtime) -> None:
    repository = CredentialRepository(runtime.db)
    repository.add_user("jane", "long enough", Role.ADMIN)
    repository.add_user("joe", "long enough", Role.READ)
    with pytest.raises(LastAdmin, match="user jane is the last admin"):
        repository.remove(Kind.USER, "jane")
    assert repository.count() == 2
    repository.add_token("ci", Role.ADMIN)
    assert repository.remove(Kind.USER, "jane")
    with pytest.raises(LastAdmin, match="token ci is the last admin"):
        repository.remove(Kind.TOKEN, "ci")
    assert not repository.remove(Kind.USER, "ci")  # a user of that name does not exist
    assert repository.remove(Kind.USER, "joe")
    assert repository.remove(Kind.TOKEN, "ci", force=True)
    assert repository.count() == 0
