"""The SQLite Store meets the backend contract (StoreAPI), and the contract covers every call
the rest of the daemon makes on a store. mypy checks the same at waz_actors/store/db.py."""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import waz_actors
from waz_actors.store import Store, StoreAPI
from waz_actors.store import api as api_module
from waz_actors.store import db as db_module

CONTRACT = sorted(
    name
    for name, value in vars(StoreAPI).items()
    if not name.startswith("_") and inspect.isfunction(value)
)


def test_the_sqlite_store_is_a_store_api(store: Store) -> None:
    assert isinstance(store, StoreAPI)
    s: StoreAPI = store  # also checked by mypy
    assert s.get_instance("i1") is not None


def test_every_contract_method_exists_on_store_with_the_same_signature() -> None:
    assert len(CONTRACT) >= 29
    for name in CONTRACT:
        assert callable(getattr(Store, name, None)), f"Store lacks {name}"
        want = inspect.signature(getattr(StoreAPI, name))
        got = inspect.signature(getattr(Store, name))
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in want.parameters.values()
        ], name
        want_hints = typing.get_type_hints(getattr(StoreAPI, name), vars(api_module))
        got_hints = typing.get_type_hints(getattr(Store, name), vars(db_module))
        assert got_hints == want_hints, name


def test_the_contract_covers_every_store_call_in_the_daemon() -> None:
    """A method the actors or the control commands start to call must join StoreAPI, or the
    PostgreSQL backend would lack it."""
    root = Path(waz_actors.__file__).parent
    called: set[str] = set()
    for path in root.rglob("*.py"):
        if path.parent.name == "store" and path.parent.parent == root:
            continue
        called |= set(re.findall(r"\b_?store\.([a-z_]+)\(", path.read_text()))
    assert {"enqueue", "set_status", "find_token", "update_instance"} <= called  # the scan works
    assert called - set(CONTRACT) == set()
