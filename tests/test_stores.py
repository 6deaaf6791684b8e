"""The test harness's stores: each parametrised test gets a database of its own, on the store it names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.settings import Settings
from gateway.storage.location import PostgresUrl
from gateway.storage.sql import Connection
from gateway.storage.store import Store
from tests.conftest import make_settings
from tests.stores import (
    ADMIN_URL_ENV,
    REQUIRE_ENV,
    current_kind,
    database_location,
    open_test_store,
    postgres_server_or_skip,
)


def _insert_user(connection: Connection) -> None:
    connection.execute(
        "INSERT INTO users (name, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?)",
        ("harness", "not-a-hash", "2026-03-10T09:30:00+00:00", "2026-03-10T09:30:00+00:00"),
    )


def test_the_store_is_the_one_the_test_is_parametrised_with(store: Store, store_kind: str) -> None:
    assert store.dialect == store_kind == current_kind()


def test_settings_name_the_same_store(settings: Settings, store_kind: str) -> None:
    assert isinstance(settings.database, PostgresUrl) == (store_kind == "postgresql")


def test_a_path_asked_for_twice_is_one_database_and_another_path_another(tmp_path: Path, store_kind: str) -> None:
    async def scenario() -> None:
        first = await open_test_store(tmp_path / "a.sqlite3").open()
        await first.write(_insert_user)
        await first.close()
        again = await open_test_store(tmp_path / "a.sqlite3").open()
        other = await open_test_store(tmp_path / "b.sqlite3").open()
        try:
            assert len(await again.fetch_all("SELECT name FROM users")) == 1
            assert await other.fetch_all("SELECT name FROM users") == []
        finally:
            await again.close()
            await other.close()

    asyncio.run(scenario())
    assert make_settings(tmp_path).database == database_location(tmp_path / "gateway.sqlite3")


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_starts_empty(store: Store, round_: int) -> None:
    """The second round would see the first's row if databases were shared between tests."""

    async def scenario() -> None:
        db = await store.open()
        try:
            assert await db.fetch_all("SELECT name FROM users") == []
            await db.write(_insert_user)
        finally:
            await db.close()

    asyncio.run(scenario())


def test_without_a_cluster_postgresql_runs_skip_and_with_require_they_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=ADMIN_URL_ENV):
        postgres_server_or_skip(None)
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=ADMIN_URL_ENV):
        postgres_server_or_skip(None)
