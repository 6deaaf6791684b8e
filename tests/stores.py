"""Which store the current test runs on, and a fresh database of that store for it.

Every test that touches the database runs twice, ``[sqlite]`` and ``[postgresql]`` (tests/conftest.py
parametrises them). A test names where its data lives with a SQLite path, as it always has
(``tmp_path / "gateway.sqlite3"``); on the PostgreSQL run that path stands for a fresh database of its
own, created on first use from a template that already holds the migrated schema (``CREATE DATABASE
... TEMPLATE``: a file copy, far faster than migrating) and dropped ``WITH (FORCE)`` at the test's end.
The same path asked for twice is the same database, so a test that reopens its store finds its data.

The PostgreSQL server comes from ``TEST_POSTGRES_URL`` (an admin URL; ``make test`` starts
a throwaway cluster and sets it). Without it the PostgreSQL runs are skipped with that reason, unless
``TEST_REQUIRE_POSTGRES=1``, when they fail: CI never passes by skipping a store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import pytest

from gateway.storage.location import DatabaseLocation, PostgresUrl
from gateway.storage.store import Store, open_store

StoreKind = Literal["sqlite", "postgresql"]
STORES: tuple[StoreKind, ...] = ("sqlite", "postgresql")
ADMIN_URL_ENV = "TEST_POSTGRES_URL"
REQUIRE_ENV = "TEST_REQUIRE_POSTGRES"
SKIP_REASON = f"PostgreSQL runs need {ADMIN_URL_ENV}=postgresql://... (make test starts a throwaway cluster)"


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass
class PostgresServer:
    """The test cluster: one admin connection, one migrated template, and the databases cut from it."""

    admin_url: str
    _admin: Any = None
    _template: str | None = None
    _template_error: BaseException | None = None
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def _connection(self) -> Any:
        if self._admin is None:
            import psycopg

            self._admin = psycopg.connect(self.admin_url, autocommit=True)
        return self._admin

    def template(self) -> str:
        """The migrated template, built once per session (its first failure is every test's failure)."""
        if self._template_error is not None:
            raise RuntimeError(f"the PostgreSQL template could not be migrated: {self._template_error!r}")
        if self._template is None:
            name = f"tmpl_{os.getpid()}"
            admin = self._connection()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                _migrate(with_database(self.admin_url, name))
            except BaseException as error:
                self._template_error = error
                raise
            self._template = name
        return self._template

    def create_database(self) -> str:
        template = self.template()
        name = f"t_{os.getpid()}_{next(self._numbers)}"
        self._connection().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        self._connection().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._admin is None:
            return
        if self._template is not None:
            self.drop_database(self._template)
        self._admin.close()
        self._admin = None


def _migrate(url: str) -> None:
    """Apply the PostgreSQL migrations the way a gateway does at start: open the store once, close it."""

    async def open_and_close() -> None:
        store = await open_store(PostgresUrl(url)).open()
        await store.close()

    # The first PostgreSQL database of a session may be asked for inside a test's running event loop,
    # where asyncio.run cannot run: the migration then runs on a thread of its own, with its own loop.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, open_and_close()).result()


@dataclass
class TestStores:
    """The current test's store kind and the PostgreSQL databases it has been given so far."""

    __test__ = False  # not a test class, despite its name

    kind: StoreKind
    server: PostgresServer | None = None
    _databases: dict[Path, str] = field(default_factory=dict)

    def location(self, path: Path) -> DatabaseLocation:
        """Where the data that ``path`` names lives on this test's store."""
        if self.kind == "sqlite" or self.server is None:
            return path
        key = Path(os.path.abspath(path))
        if key not in self._databases:
            self._databases[key] = self.server.create_database()
        return PostgresUrl(with_database(self.server.admin_url, self._databases[key]))

    def close(self) -> None:
        if self.server is not None:
            for name in self._databases.values():
                self.server.drop_database(name)
        self._databases.clear()


_current: list[TestStores] = []


def begin_test(kind: StoreKind, server: PostgresServer | None) -> TestStores:
    """Called by the ``store_kind`` fixture: from now on, paths name databases of ``kind``."""
    stores = TestStores(kind=kind, server=server)
    _current.append(stores)
    return stores


def end_test(stores: TestStores) -> None:
    _current.remove(stores)
    stores.close()


def current_kind() -> StoreKind:
    return _current[-1].kind if _current else "sqlite"


def database_location(path: Path) -> DatabaseLocation:
    """The current test's database for the SQLite path ``path`` (the path itself outside a parametrised test)."""
    return _current[-1].location(path) if _current else path


def database_setting(path: Path) -> str:
    """``database_location`` as a settings value (``database = ...`` in a dict or TOML file)."""
    location = database_location(path)
    return location.url if isinstance(location, PostgresUrl) else str(location)


def open_test_store(path: Path) -> Store:
    """An unopened store for ``path`` on the current test's store (``await open_test_store(p).open()``)."""
    return open_store(database_location(path))


def fresh_store(tmp_path: Path, name: str = "db.sqlite3") -> Store:
    """An unopened store of its own for the current test: ``tmp_path / name`` or a fresh PostgreSQL database."""
    return open_test_store(tmp_path / name)


def postgres_server_or_skip(server: PostgresServer | None) -> PostgresServer:
    """The cluster for a ``[postgresql]`` run; without one, skip (or fail when PostgreSQL is required)."""
    if server is not None:
        return server
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {ADMIN_URL_ENV} is not set: the PostgreSQL runs cannot run")
    pytest.skip(SKIP_REASON)


class Row(tuple[Any, ...]):
    """A row read back by a test: equal to a plain tuple, and ``row["column"]`` works too (on both stores)."""

    _columns: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._columns[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._columns)


def _as_sqlite_gives_it(value: Any) -> Any:
    """numeric (a PostgreSQL sum or avg) reads as SQLite gives it: an int when whole, else a float."""
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    return value


def _row(columns: dict[str, int], values: Sequence[Any]) -> Row:
    row = Row(_as_sqlite_gives_it(value) for value in values)
    row._columns = columns
    return row


def query(location: DatabaseLocation | str, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
    """Read the database as an auditor would, outside the gateway: ``sqlite3`` or a plain psycopg connection.

    ``?`` placeholders on both stores, as in the gateway's own SQL.
    """
    if isinstance(location, PostgresUrl) or str(location).startswith("postgresql://"):
        import psycopg

        url = location.url if isinstance(location, PostgresUrl) else str(location)
        with psycopg.connect(url, autocommit=True) as connection:
            cursor = connection.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(parameters))
            columns = {column.name: index for index, column in enumerate(cursor.description or ())}
            return [_row(columns, values) for values in cursor.fetchall()]
    with closing(sqlite3.connect(location)) as connection:
        cursor = connection.execute(sql, tuple(parameters))
        columns = {column[0]: index for index, column in enumerate(cursor.description or ())}
        return [_row(columns, values) for values in cursor.fetchall()]
