"""The SQLite database: one writer connection, read-only readers, numbered migrations.

Datasette's discipline: WAL so readers never block the writer, ``BEGIN IMMEDIATE`` so
two processes on one file queue instead of failing mid-transaction, one transaction per
batch, parameterised SQL only.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

_BUSY_TIMEOUT_MS = 10_000


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("gateway.storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _apply_migrations(path: Path) -> None:
    """Bring the schema up to date; safe when several processes start at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name TEXT)")
        done = {row[0] for row in connection.execute("SELECT number FROM schema_migrations")}
        for number, name, sql in _migrations():
            if number in done:
                continue
            for statement in _split_statements(sql):
                connection.execute(statement)
            connection.execute("INSERT INTO schema_migrations (number, name) VALUES (?, ?)", (number, name))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def _split_statements(sql: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit our transaction)."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s.strip(" \n;")]


class Database:
    """Opened once per process in the app's lifespan, closed at shutdown."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def open(self) -> Database:
        await asyncio.to_thread(_apply_migrations, self.path)
        self._writer = await aiosqlite.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._writer.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash (WAL)
        await self._writer.execute("PRAGMA foreign_keys=ON")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        self._reader = await aiosqlite.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        return self

    async def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                await connection.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; rolled back whole on any error so nothing is half-written."""
        if self._writer is None:
            raise RuntimeError("the database is not open")
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def execute_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        async with self.transaction() as connection:
            for sql, parameters in statements:
                await connection.execute(sql, parameters)

    async def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise RuntimeError("the database is not open")
        self._reader.row_factory = sqlite3.Row
        async with self._reader.execute(sql, parameters) as cursor:
            return list(await cursor.fetchall())

    async def ping(self) -> bool:
        try:
            await self.fetch_all("SELECT 1")
        except (sqlite3.Error, RuntimeError, ValueError):
            return False
        return True
