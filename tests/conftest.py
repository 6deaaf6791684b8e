"""Shared fixtures: settings on the current test's store, a pinned clock, a real uvicorn server.

Every test that touches the database runs on both stores, ``[sqlite]`` and ``[postgresql]``
(tests/stores.py says how a SQLite path becomes a fresh PostgreSQL database). A test touches the
database when it asks for ``settings`` or ``store``, or when it has a ``tmp_path`` and its module
builds settings or a store (``make_settings``, ``Database(``, ``open_store(``, ``fresh_store(``...).
A test that reads SQLite itself (file bytes, pragmas, ``sqlite3.connect``) says so with
``@pytest.mark.sqlite_only(reason=...)`` and runs once, on SQLite. A module whose tests share a server
built once (a ``scope="module"`` fixture) imports tests/module_stores.py's ``store_kind``: else that
fixture is built before any test's store and reads SQLite in the ``[postgresql]`` runs too.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gateway.clock import FixedClock
from gateway.consent.middleware import load_catalog
from gateway.cookies.catalog import CookieCatalog
from gateway.settings import Settings, settings_from_dict
from gateway.storage.store import Store
from tests.stores import (
    ADMIN_URL_ENV,
    STORES,
    PostgresServer,
    begin_test,
    database_setting,
    end_test,
    fresh_store,
    postgres_server_or_skip,
)
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"
SITE_ORIGIN = "https://shop.example.com"
#: Seconds a live server gets to start or stop: generous for a loaded machine, never waited out when it is idle.
START_SECONDS = 60.0


def site_config(**overrides: Any) -> dict[str, Any]:
    site: dict[str, Any] = {
        "name": "Shop",
        "origins": [SITE_ORIGIN],
        "policy_revision": 1,
        "lifetime_caps": {"analytics": "13mo", "advertising": "13mo"},
        "services": [
            {"id": "google-analytics", "name": "Google Analytics", "category": "analytics"},
            {"id": "hotjar", "name": "Hotjar", "category": "analytics"},
        ],
        "cookies": [{"name": "shop_theme", "category": "functional", "lifetime": "1y", "vendor": "Shop"}],
    }
    site.update(overrides)
    return site


def make_settings(tmp_path: Path, *, site: dict[str, Any] | None = None, **top: Any) -> Settings:
    raw: dict[str, Any] = {
        "secret_keys": ["test-secret-key-old", "test-secret-key-new"],
        "database": database_setting(tmp_path / "gateway.sqlite3"),
        "sites": {"shop": site if site is not None else site_config()},
    }
    raw.update(top)
    return settings_from_dict(raw, source="test")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path, store_kind: str) -> Settings:
    return make_settings(tmp_path)


#: What in a module's source means its tests (those with a tmp_path) build a database.
_DATABASE_CALLS = (
    "make_settings(",
    "Database(",
    "open_store(",
    "fresh_store(",
    "open_test_store(",
    "database_setting(",
    "tests.module_stores",  # its store_kind builds the module's shared fixtures once per store
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): reads SQLite itself (file bytes, pragmas), so it runs on SQLite only"
    )


def _module_builds_a_database(module: Any) -> bool:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return False
    return any(call in source for call in _DATABASE_CALLS)


def _touches_database(metafunc: pytest.Metafunc) -> bool:
    names = set(metafunc.fixturenames)
    if "postgres_server" in names:  # it picks its store itself: PostgreSQL (tests/test_two_nodes.py)
        return False
    if names & {"settings", "store"}:
        return True
    return bool(names & {"tmp_path", "tmp_path_factory"}) and _module_builds_a_database(metafunc.module)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``[sqlite]`` and ``[postgresql]`` for every test that touches the database (``sqlite_only``: SQLite alone)."""
    if "store_kind" not in metafunc.fixturenames or not _touches_database(metafunc):
        return
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        return
    metafunc.parametrize("store_kind", STORES, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """The test cluster named by TEST_POSTGRES_URL, or None (its tests then skip or fail)."""
    url = os.environ.get(ADMIN_URL_ENV) or os.environ.get("CONSENT_GATEWAY_TEST_POSTGRES")  # the old name, for a while
    if not url:
        yield None
        return
    server = PostgresServer(url)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def store_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """The current test's store: "sqlite" unless parametrised (see pytest_generate_tests)."""
    kind = getattr(request, "param", "sqlite")
    server = postgres_server_or_skip(request.getfixturevalue("postgres_server")) if kind == "postgresql" else None
    stores = begin_test(kind, server)
    yield kind
    end_test(stores)


@pytest.fixture
def store(tmp_path: Path, store_kind: str) -> Store:
    """An unopened store of the current test's kind, of its own (``db = await store.open()``)."""
    return fresh_store(tmp_path)


@pytest.fixture(scope="session")
def catalog() -> CookieCatalog:
    return load_catalog(settings_from_dict({}, source="defaults"))


class LiveServer:
    """A real uvicorn on 127.0.0.1 in a thread, on a port the OS picked."""

    def __init__(self, app: Any, *, port: int = 0) -> None:
        """``port``: 0 lets the OS pick; a former server's port restarts it where clients expect it."""
        # IPPROTO_TCP named: asyncio turns Nagle off only for sockets that say so (else ~40 ms per kept-alive answer).
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.socket]))

    def __enter__(self) -> LiveServer:
        self.thread.start()
        # Started means the lifespan ran (a writer process spawned, migrations applied): seconds on a busy machine.
        wait_until(
            lambda: self.server.started or not self.thread.is_alive(),
            timeout=START_SECONDS,
            interval=0.01,
            message=f"uvicorn did not start in {START_SECONDS:g} s",
        )
        if not self.server.started:
            raise RuntimeError("uvicorn stopped before it started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_SECONDS)  # the lifespan's shutdown writes what is queued
        self.socket.close()


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], LiveServer]]:
    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = LiveServer(app).__enter__()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.__exit__()
