"""The SQLite database: one writer connection, read-only readers, numbered migrations.

Datasette's discipline: WAL so readers never block the writer, ``BEGIN IMMEDIATE`` so
two processes on one file queue instead of failing mid-transaction, one transaction per
batch, parameterised SQL only.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

_BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")


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
    """Opened once per process in the app's lifespan, closed at shutdown.

    Writes run on one dedicated thread holding the one writer connection: a whole batch is
    a single synchronous function inside ``BEGIN IMMEDIATE ... COMMIT`` (group commit), with
    no event-loop round trip per statement. Reads use a separate read-only connection.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> Database:
        await asyncio.to_thread(_apply_migrations, self.path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writer = await self._in_writer_thread(self._connect_writer)
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        self._reader = await aiosqlite.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        return self

    def _connect_writer(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        return connection

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._writer is not None and self._executor is not None:
            await self._in_writer_thread(self._writer.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._reader = self._writer = self._executor = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def _in_writer_thread(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("the database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction; rolled back whole on any error (nothing half-written)."""
        writer = self._writer
        if writer is None:
            raise RuntimeError("the database is not open")

        def transaction() -> T:
            writer.execute("BEGIN IMMEDIATE")
            try:
                result = fn(writer)
            except BaseException:
                writer.execute("ROLLBACK")
                raise
            writer.execute("COMMIT")
            return result

        return await self._in_writer_thread(transaction)

    async def execute_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        batch = list(statements)

        def run(connection: sqlite3.Connection) -> None:
            for sql, parameters in batch:
                connection.execute(sql, parameters)

        await self.write(run)

    async def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise RuntimeError("the database is not open")
        # One call runs and finishes the statement: a statement left open between awaits would
        # hold the connection's read snapshot, and concurrent reads would miss newer commits.
        return list(await self._reader.execute_fetchall(sql, parameters))

    async def ping(self) -> bool:
        try:
            await self.fetch_all("SELECT 1")
        except (sqlite3.Error, RuntimeError, ValueError):
            return False
        return True
