"""The SQLite database: one writer connection, read-only readers, numbered migrations.

Datasette's discipline: WAL so readers never block the writer, ``BEGIN IMMEDIATE`` so
two processes on one file queue instead of failing mid-transaction, one transaction per
batch, parameterised SQL only.

What is deleted must be gone from the disk, not only from the tables: writer connections run
with ``secure_delete`` (deleted cells and freed pages are overwritten with zeros), and after
deleting a salt or erasing a consent record the caller asks for ``scrub`` — a
``wal_checkpoint(TRUNCATE)`` that copies the zeroed pages into the main file and empties the
``-wal`` file, which otherwise keeps every earlier version of a page until the log wraps.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.storage.sql import Dialect
from gateway.storage.store import StorageFailure, Store, failure_cause, read_migrations, run_transaction

__all__ = ["Database", "StorageFailure", "check_database", "connect_writer", "failure_cause", "write_transaction"]

_BUSY_TIMEOUT_MS = 10_000
#: Read-only connections of a process: as many statements run at once (a few cores' worth; each
#: holds a small page cache of its own).
READERS = 4
#: How long a scrub waits for readers to leave the WAL: it holds the write lock meanwhile, so it
#: is kept short and a busy scrub is tried again by the maintenance poll (at most a minute later).
SCRUB_WAIT_MS = 250
T = TypeVar("T")


def _migrations() -> list[tuple[int, str, str]]:
    return read_migrations("migrations")


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


def connect_writer(path: Path) -> sqlite3.Connection:
    """The writer connection (WAL, busy timeout, autocommit so ``BEGIN IMMEDIATE`` is ours to issue);
    shared with the event writer process (gateway/ingest/writer_process.py), which holds its own."""
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # WAL + FULL: every COMMIT fsyncs the WAL before it returns, so an acknowledged event or consent
    # record survives an OS crash or power loss, not only a process crash (NORMAL syncs only at
    # checkpoints). Group commit pays that fsync once per batch, not once per event. Every write
    # of the gateway goes through a connection made here, so no NORMAL is left on the write path.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA secure_delete=ON")  # a deleted salt or erased record leaves no bytes behind
    return connection


def check_database(path: Path) -> None:
    """Open ``path``, bring its schema up to date and read it, at start-up, before any server runs;
    raises ``sqlite3.Error`` for a file that is not a database, damaged, unreadable or read-only.

    ``PRAGMA quick_check`` would read every page (minutes on a large file): the schema and the
    first page of each table are read instead, which is what a damaged header or a missing table
    breaks; a damaged page deeper in is found by the query that reads it, answered 503.
    """
    _apply_migrations(path)
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        for table in tables:
            connection.execute(f'SELECT * FROM "{table}" LIMIT 1').fetchall()  # noqa: S608 - names from the schema
    finally:
        connection.close()


def truncate_wal(connection: sqlite3.Connection, *, wait_ms: int = SCRUB_WAIT_MS) -> bool:
    """Checkpoint every frame into the main file and truncate ``-wal`` to zero bytes; False if a
    reader or another writer kept it from completing within ``wait_ms`` (nothing is lost: try again).

    The ``-shm`` file holds only the WAL index (page numbers and frame numbers), never page content.
    """
    (before,) = connection.execute("PRAGMA busy_timeout").fetchone()
    connection.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
    try:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.execute(f"PRAGMA busy_timeout = {int(before)}")
    return int(busy) == 0


def write_transaction(connection: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` inside ``BEGIN IMMEDIATE ... COMMIT``; rolled back whole on any error."""
    return run_transaction(connection, "BEGIN IMMEDIATE", fn)


class Database(Store):
    """The SQLite store (the embedded default), opened once per process in the app's lifespan.

    Writes run on the writer thread (gateway/storage/store.py) inside ``BEGIN IMMEDIATE ... COMMIT``,
    so two processes on one file queue instead of failing mid-transaction. Reads share a few
    read-only connections (``readers``), each on its own thread: SQLite releases the interpreter
    lock while a statement runs, so a slow filtered view neither holds up other people's pages
    nor runs its own independent reads one after another.
    """

    dialect: Dialect = "sqlite"
    begin_statement = "BEGIN IMMEDIATE"
    _scrub_wait_ms = SCRUB_WAIT_MS
    _close_scrub_wait_ms = _BUSY_TIMEOUT_MS

    def __init__(self, path: Path, *, readers: int = READERS) -> None:
        super().__init__()
        self.path = path
        self._reader_count = readers
        self._readers: list[aiosqlite.Connection] = []
        self._idle: asyncio.Queue[aiosqlite.Connection] | None = None

    async def open(self) -> Database:
        await super().open()
        return self

    @property
    def location(self) -> Path:
        return self.path

    def _prepare(self) -> None:
        _apply_migrations(self.path)

    def _connect_writer(self) -> sqlite3.Connection:
        return connect_writer(self.path)

    async def _open_reader(self) -> None:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        # Last in, first out: reads one after another use one connection, as with a single reader. An
        # aiosqlite thread holds its last result until its next call, so rotating through the pool
        # kept up to four pages of an export alive (measured: 13.4 MB peak against 9 MB allowed).
        idle: asyncio.Queue[aiosqlite.Connection] = asyncio.LifoQueue()
        try:
            for _ in range(self._reader_count):
                reader = await aiosqlite.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                reader.row_factory = sqlite3.Row
                self._readers.append(reader)
                idle.put_nowait(reader)
        except BaseException:
            await self._close_reader()
            raise
        self._idle = idle

    async def _close_reader(self) -> None:
        self._idle = None
        readers, self._readers = self._readers, []
        for reader in readers:
            await reader.close()

    def _scrub_on_writer(self, writer: sqlite3.Connection, wait_ms: int) -> bool:
        return truncate_wal(writer, wait_ms=wait_ms)

    async def fetch_all(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        idle = self._idle
        if idle is None:
            raise RuntimeError("the database is not open")
        # One call runs and finishes the statement: a statement left open between awaits would
        # hold the connection's read snapshot, and concurrent reads would miss newer commits.
        reader = await idle.get()
        try:
            return list(await reader.execute_fetchall(sql, parameters))
        finally:
            idle.put_nowait(reader)
