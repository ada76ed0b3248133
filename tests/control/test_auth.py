"""Tokens: format, hashed storage, the admin token file, revocation."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from waz_actors.control.auth import Auth, hash_token, new_token, read_admin_token
from waz_actors.errors import InvalidState, NotFound, Unauthorized
from waz_actors.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "waz.db")
    s.open()
    yield s
    s.close()


def test_token_format() -> None:
    t = new_token()
    assert re.fullmatch(r"waz_[A-Za-z0-9_-]{43}", t)
    assert new_token() != t
    assert hash_token(t) == hash_token(t) and len(hash_token(t)) == 64


def test_admin_token_created_once_mode_0600(tmp_path: Path, store: Store) -> None:
    state = tmp_path / "state"
    auth = Auth(store, state)
    token = auth.ensure_admin_token()
    path = state / "admin.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_admin_token(state) == token
    assert Auth(store, state).ensure_admin_token() == token  # second start: same token
    ident = auth.authenticate(token)
    assert ident.admin and ident.tenant is None
    assert [t.admin for t in store.list_tokens()] == [True]


def test_only_hashes_are_stored(tmp_path: Path, store: Store) -> None:
    auth = Auth(store, tmp_path / "state")
    admin = auth.ensure_admin_token()
    made = auth.create("acme", "panel")
    store.flush()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("waz.db*"))
    for secret in (admin, made["token"]):
        assert secret.encode() not in raw
        assert hash_token(secret).encode() in raw


def test_tenant_token_and_revoke(tmp_path: Path, store: Store) -> None:
    auth = Auth(store, tmp_path / "state")
    auth.ensure_admin_token()
    made = auth.create("acme")
    ident = auth.authenticate(made["token"])
    assert (ident.tenant, ident.admin) == ("acme", False)
    assert ident.owns("acme") and not ident.owns("globex")
    assert auth.revoke(made["token_id"])["revoked"] is True
    with pytest.raises(Unauthorized):
        auth.authenticate(made["token"])  # the cache forgets it at once
    with pytest.raises(NotFound):
        auth.revoke("ffffffffffff")
    admin_id = next(t["token_id"] for t in auth.list() if t["admin"])
    with pytest.raises(InvalidState):
        auth.revoke(admin_id)


@pytest.mark.parametrize("bad", [None, "", "waz_", "token", "waz_" + "x" * 200, new_token()])
def test_bad_tokens(tmp_path: Path, store: Store, bad: str | None) -> None:
    auth = Auth(store, tmp_path / "state")
    auth.ensure_admin_token()
    with pytest.raises(Unauthorized) as e:
        auth.authenticate(bad)
    assert e.value.details == {"field": "token"}


def test_admin_token_file_damaged(tmp_path: Path, store: Store) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "admin.token").write_text("hello\n")
    with pytest.raises(ValueError, match="not a waz token"):
        Auth(store, state).ensure_admin_token()
    assert store.list_tokens() == []


# -- issue 11 item 3: the admin token can be rotated, and rotation revokes the old one --------


def test_deleting_admin_token_file_revokes_the_old_one(tmp_path: Path, store: Store) -> None:
    state = tmp_path / "state"
    old = Auth(store, state).ensure_admin_token()
    (state / "admin.token").unlink()
    auth = Auth(store, state)  # the restart
    new = auth.ensure_admin_token()
    assert new != old and read_admin_token(state) == new
    with pytest.raises(Unauthorized):
        auth.authenticate(old)
    assert auth.authenticate(new).admin
    assert sorted((t.revoked, t.admin) for t in store.list_tokens()) == [
        (False, True),
        (True, True),
    ]


def test_rotate_admin_revokes_the_cached_old_token_at_once(tmp_path: Path, store: Store) -> None:
    state = tmp_path / "state"
    auth = Auth(store, state)
    old = auth.ensure_admin_token()
    assert auth.authenticate(old).admin  # now cached
    made = auth.rotate_admin()
    assert made["revoked"] == 1 and made["token"] != old
    assert made["token_id"] == hash_token(made["token"])[:12]
    path = state / "admin.token"
    assert read_admin_token(state) == made["token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in state.iterdir()] == ["admin.token"]  # no temporary file left
    with pytest.raises(Unauthorized):
        auth.authenticate(old)
    assert auth.authenticate(made["token"]).admin
    # the next start keeps the rotated token and still refuses the old one
    again = Auth(store, state)
    assert again.ensure_admin_token() == made["token"]
    with pytest.raises(Unauthorized):
        again.authenticate(old)


def test_only_the_current_admin_token_is_refused_by_revoke(tmp_path: Path, store: Store) -> None:
    auth = Auth(store, tmp_path / "state")
    auth.ensure_admin_token()
    current = next(t["token_id"] for t in auth.list() if t["admin"])
    with pytest.raises(InvalidState, match="rotate"):
        auth.revoke(current)


# -- issue 11 item 4: a revoke that commits during a lookup wins ----------------------------


class RevokeDuringRead:
    """A store whose find_token lets a revoke commit after the row was read and before the
    caller fills its cache: the window of the race, made deterministic."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.revoke: Callable[[], object] | None = None

    def find_token(self, token_hash: str) -> object:
        rec = self._store.find_token(token_hash)
        if self.revoke is not None:
            revoke, self.revoke = self.revoke, None
            revoke()
        return rec

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_revoke_during_a_lookup_is_not_undone_by_the_cache(tmp_path: Path, store: Store) -> None:
    racy = RevokeDuringRead(store)
    auth = Auth(racy, tmp_path / "state")
    auth.ensure_admin_token()
    made = auth.create("acme")
    racy.revoke = lambda: auth.revoke(made["token_id"])
    auth.authenticate(made["token"])  # the lookup that raced the revoke (it read "valid")
    assert racy.revoke is None  # the revoke did run inside the lookup
    with pytest.raises(Unauthorized):
        auth.authenticate(made["token"])  # from the next request on: refused
