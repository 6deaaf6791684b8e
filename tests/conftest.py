"""Shared fixtures: settings with a temporary SQLite file, a pinned clock, a real uvicorn server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
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
        "database": str(tmp_path / "gateway.sqlite3"),
        "sites": {"shop": site if site is not None else site_config()},
    }
    raw.update(top)
    return settings_from_dict(raw, source="test")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


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
        deadline = time.monotonic() + START_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start in {START_SECONDS:g} s")
            time.sleep(0.01)
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
