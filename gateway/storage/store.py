"""The store: what the rest of the gateway holds to read and write data, on SQLite or PostgreSQL.

Both stores share one shape (this base class): writes run on one dedicated thread holding the
writer connection, each a synchronous function inside one transaction, with no event-loop round
trip per statement (the event writer forms its own batches: gateway/ingest/buffer.py). Reads go
through the store's own read path (``fetch_all``). A store is opened once per process and closed
at shutdown.

``open_store`` picks the store from ``settings.database``: a path is SQLite (gateway/storage/db.py),
a ``postgresql://`` URL is PostgreSQL (gateway/storage/postgres.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

from gateway.storage.location import DatabaseLocation, PostgresUrl
from gateway.storage.sql import Connection, Dialect

T = TypeVar("T")


class StorageFailure(Exception):
    """The store cannot do what was asked (a full disk, a read-only file, an unreachable server):
    ``cause`` says what, in an operator's words. Raised where the original error had to cross a
    queue or a process."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


#: SQLite error texts (lower case) and what they mean to an operator.
_SQLITE_FAILURES = (
    ("disk is full", "the disk is full"),
    ("readonly database", "the database is read-only"),
    ("disk i/o error", "the disk failed (I/O error)"),
    ("no such table", "the database schema is missing a table"),
    ("malformed", "the database file is damaged"),
    ("not a database", "the database file is damaged"),
    ("unable to open", "the database file cannot be opened"),
    ("database is locked", "the database is locked by another process"),
)


def failure_cause(error: BaseException) -> str | None:
    """What is wrong with the store, when ``error`` is the store failing (full disk, read-only file,
    I/O error, missing table, damaged page, unreachable server); None for anything else.

    Constraint and programming errors (integrity, programming, data errors) are bugs in a
    statement, not an unavailable store, so they are not failures of the store here.
    """
    if isinstance(error, StorageFailure):
        return error.cause
    import sqlite3

    if isinstance(error, sqlite3.DatabaseError):
        if isinstance(error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError):
            return None
        text = str(error).lower()
        return next((cause for needle, cause in _SQLITE_FAILURES if needle in text), "the database failed")
    return _postgres_failure_cause(error)


def error_dialect(error: BaseException) -> Dialect | None:
    """Which store's driver raised ``error`` (a failure or a bad statement); None for anything else."""
    import sqlite3

    if isinstance(error, sqlite3.Error):
        return "sqlite"
    try:
        import psycopg
    except ImportError:
        return None
    return "postgresql" if isinstance(error, psycopg.Error) else None


def is_store_error(error: BaseException) -> bool:
    """Whether ``error`` is a store's: its driver's, or a failure that crossed a queue or a process."""
    return isinstance(error, StorageFailure) or error_dialect(error) is not None


def _postgres_failure_cause(error: BaseException) -> str | None:
    try:
        import psycopg
        from psycopg import errors
        from psycopg_pool import PoolTimeout
    except ImportError:  # SQLite-only install: no PostgreSQL error can occur
        return None
    if isinstance(error, PoolTimeout):
        return "no database connection became free in time"
    if not isinstance(error, psycopg.Error):
        return None
    if isinstance(error, errors.DiskFull):
        return "the database server's disk is full"
    if isinstance(error, errors.ReadOnlySqlTransaction):
        return "the database is read-only (a standby, or default_transaction_read_only)"
    if isinstance(error, errors.UndefinedTable):
        return "the database schema is missing a table"
    if isinstance(error, errors.InsufficientPrivilege):
        return "the database user lacks a privilege"
    if isinstance(error, psycopg.IntegrityError | psycopg.ProgrammingError | psycopg.DataError):
        return None
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return "the database server cannot be reached"
    return "the database failed"


def read_migrations(folder: str) -> list[tuple[int, str, str]]:
    """``(number, file name, SQL)`` of each ``NNNN_name.sql`` in ``gateway/storage/<folder>``, in order
    (``migrations`` for SQLite, ``migrations_postgresql`` for PostgreSQL)."""
    found = []
    for entry in (resources.files("gateway.storage") / folder).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def run_transaction(connection: Any, begin: str, fn: Callable[[Any], T]) -> T:
    """``fn(connection)`` between ``begin`` and ``COMMIT``; rolled back whole on any error."""
    connection.execute(begin)
    try:
        result = fn(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


class _Job:
    """One unit of work for the writer thread; its outcome goes back to the event loop."""

    __slots__ = ("fn", "future", "transaction")

    def __init__(self, fn: Callable[[Any], Any], future: asyncio.Future[Any], transaction: bool) -> None:
        self.fn = fn
        self.future = future
        self.transaction = transaction


class Store:
    """The base of both stores: the writer thread, group commit and the scrub bookkeeping.

    A subclass says how to bring the schema up to date, connect the writer, open and close its
    read path, begin a transaction, read rows and scrub deleted bytes.
    """

    dialect: Dialect = "sqlite"
    #: The statement that opens a write transaction.
    begin_statement = "BEGIN"

    def __init__(self) -> None:
        self._writer: Any = None
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scrub_due = False

    # What a store provides.

    def _prepare(self) -> None:
        """Bring the schema up to date (on a worker thread, before anything else)."""
        raise NotImplementedError

    def _connect_writer(self) -> Any:
        raise NotImplementedError

    def _close_writer(self, writer: Any) -> None:
        writer.close()

    @property
    def location(self) -> DatabaseLocation:
        """Where the data lives (a SQLite path or a PostgreSQL URL): another process opens it from this."""
        raise NotImplementedError

    def connect_writer(self) -> Connection:
        """A writer connection of its own, for a process that writes outside this store's thread (the
        event writer process): run each transaction on it with ``run_batch``."""
        connection: Connection = self._connect_writer()
        return connection

    def run_batch(self, connection: Any, fn: Callable[[Any], T]) -> T:
        """``fn(connection)`` in one transaction on a ``connect_writer`` connection, rolled back whole
        on any error (PostgreSQL sends its BEGIN and COMMIT with the statements around them)."""
        return run_transaction(connection, self.begin_statement, fn)

    async def _open_reader(self) -> None:
        raise NotImplementedError

    async def _close_reader(self) -> None:
        raise NotImplementedError

    async def fetch_all(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Run one read statement and return every row (``row[0]`` and ``row["column"]`` both work)."""
        raise NotImplementedError

    async def fetch_large(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """``fetch_all`` for rows of large binary values (day packs: sixty of ~3 MB each), in whatever
        form the store transfers them fastest."""
        return await self.fetch_all(sql, parameters)

    def _scrub_on_writer(self, writer: Any, wait_ms: int) -> bool:
        raise NotImplementedError

    #: How long ``close`` waits for a scrub still due.
    _close_scrub_wait_ms = 10_000

    # Opening and closing.

    async def open(self) -> Store:
        await asyncio.to_thread(self._prepare)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run_writer, name=f"{self.dialect}-writer", daemon=True)
        self._thread.start()
        self._writer = await self._submit(lambda _: self._connect_writer(), transaction=False)
        await self._open_reader()
        return self

    async def close(self) -> None:
        """Close after every write already submitted has finished (the queue is first in, first out);
        a scrub still due is tried once more, waiting as long as any write would."""
        await self._close_reader()
        writer, thread = self._writer, self._thread
        if writer is not None and self._scrub_due:
            await self._scrub(self._close_scrub_wait_ms)
        if writer is not None:
            await self._submit(lambda _: self._close_writer(writer), transaction=False)
        if thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(thread.join)
        self._writer = self._thread = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # Writing.

    def _submit(self, fn: Callable[[Any], T], *, transaction: bool) -> asyncio.Future[T]:
        if self._thread is None or self._loop is None:
            raise RuntimeError("the database is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put(_Job(fn, future, transaction))
        return future

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction; rolled back whole on any error (nothing half-written)."""
        if self._writer is None:
            raise RuntimeError("the database is not open")
        return await self._submit(fn, transaction=True)

    async def execute_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        batch = list(statements)

        def run(connection: Connection) -> None:
            for sql, parameters in batch:
                connection.execute(sql, parameters)

        await self.write(run)

    # Making deleted bytes unreadable.

    async def scrub(self) -> bool:
        """Make deleted bytes unreadable from the store's files.

        Called right after a salt is deleted or a consent record erased. When it cannot finish (a
        reader holds a snapshot) the scrub stays due and ``scrub_if_due`` (called by every
        maintenance poll) tries again, so the bytes are gone within a minute.
        """
        return await self._scrub(self._scrub_wait_ms)

    _scrub_wait_ms = 250

    async def scrub_if_due(self) -> bool | None:
        """Retry a scrub that could not complete; None when none is due."""
        return await self._scrub(self._scrub_wait_ms) if self._scrub_due else None

    @property
    def scrub_due(self) -> bool:
        return self._scrub_due

    async def _scrub(self, wait_ms: int) -> bool:
        self._scrub_due = True  # until it has completed: a failure or a cancellation leaves it due
        done = await self._submit(lambda writer: self._scrub_on_writer(writer, wait_ms), transaction=False)
        self._scrub_due = not done
        return done

    async def server_time(self) -> datetime | None:
        """The database server's clock, where several nodes share one (None for an embedded file)."""
        return None

    # Health.

    async def ping(self) -> bool:
        """Whether a read reaches a table (``SELECT 1`` would pass with the schema gone)."""
        try:
            await self.fetch_all("SELECT max(number) FROM schema_migrations")
        except Exception:  # noqa: BLE001 - any failure to read means "not reachable"
            return False
        return True

    async def prove_write(self, now: str) -> None:
        """Commit one small row (the ``health`` table) through the writer: raises what the next
        real write would meet, a full disk, a read-only file or a damaged page."""

        def touch(connection: Connection) -> None:
            connection.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (now,),
            )

        await self.write(touch)

    # The writer thread.

    def _run_writer(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._run_job(job)

    def _writer_connection(self) -> Any:
        """The writer connection for the next transaction (PostgreSQL reconnects a broken one)."""
        return self._writer

    def _transaction(self, fn: Callable[[Any], T]) -> T:
        writer = self._writer_connection()
        assert writer is not None  # noqa: S101 - jobs that need it come after the connect job
        return run_transaction(writer, self.begin_statement, fn)

    def _run_job(self, job: _Job) -> None:
        try:
            if job.transaction:
                result = self._transaction(job.fn)
            else:
                result = job.fn(self._writer)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
            self._deliver(_fail, job.future, error)
        else:
            self._deliver(_succeed, job.future, result)

    def _deliver(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, *args)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def open_store(location: DatabaseLocation) -> Store:
    """The store for ``settings.database`` (not yet opened: ``await open_store(...).open()``)."""
    if isinstance(location, PostgresUrl):
        from gateway.storage.postgres import PostgresStore

        return PostgresStore(location)
    from gateway.storage.db import Database

    return Database(Path(location))


def check_store(location: DatabaseLocation) -> None:
    """Bring the schema up to date and read every table once, at start-up, before any server runs;
    raises the store's own error (a damaged file, an unreachable server) for the caller to word."""
    if isinstance(location, PostgresUrl):
        from gateway.storage.postgres import check_postgres

        check_postgres(location)
        return
    from gateway.storage.db import check_database

    check_database(Path(location))
