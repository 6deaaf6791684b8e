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
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

import aiosqlite

_BUSY_TIMEOUT_MS = 10_000
#: How long a scrub waits for readers to leave the WAL: it holds the write lock meanwhile, so it
#: is kept short and a busy scrub is tried again by the maintenance poll (at most a minute later).
SCRUB_WAIT_MS = 250
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


#: ``sqlite3`` error texts (lower case) and what they mean to an operator.
_FAILURES = (
    ("disk is full", "the disk is full"),
    ("readonly database", "the database is read-only"),
    ("disk i/o error", "the disk failed (I/O error)"),
    ("no such table", "the database schema is missing a table"),
    ("malformed", "the database file is damaged"),
    ("not a database", "the database file is damaged"),
    ("unable to open", "the database file cannot be opened"),
    ("database is locked", "the database is locked by another process"),
)


class StorageFailure(Exception):
    """The store cannot do what was asked (a full disk, a read-only file): ``cause`` says what, in an
    operator's words. Raised where the original error had to cross a queue or a process."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def failure_cause(error: BaseException) -> str | None:
    """What is wrong with the store, when ``error`` is the store failing (full disk, read-only file,
    I/O error, missing table, damaged page); None for anything else.

    Constraint and programming errors (``IntegrityError``, ``ProgrammingError``, ``DataError``) are
    bugs in a statement, not an unavailable store, so they are not failures of the store here.
    aiosqlite raises the same ``sqlite3`` errors.
    """
    if isinstance(error, StorageFailure):
        return error.cause
    if not isinstance(error, sqlite3.DatabaseError) or isinstance(
        error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError
    ):
        return None
    text = str(error).lower()
    return next((cause for needle, cause in _FAILURES if needle in text), "the database failed")


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
    connection.execute("BEGIN IMMEDIATE")
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

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any], transaction: bool) -> None:
        self.fn = fn
        self.future = future
        self.transaction = transaction


class _GroupedJob:
    """One item of a group commit: consecutive items of the same ``store`` share one transaction."""

    __slots__ = ("future", "item", "max_batch", "settled", "store")

    def __init__(
        self,
        store: Callable[[sqlite3.Connection, list[Any]], object],
        item: object,
        future: asyncio.Future[None],
        max_batch: int,
        settled: Settled | None,
    ) -> None:
        self.store = store
        self.item = item
        self.future = future
        self.max_batch = max_batch
        self.settled = settled


#: Called on the event loop after a group commit: the items, seconds it took, the error if it failed.
Settled = Callable[[list[Any], float, BaseException | None], None]


class Database:
    """Opened once per process in the app's lifespan, closed at shutdown.

    Writes run on one dedicated thread holding the one writer connection: a whole batch is
    a single synchronous function inside ``BEGIN IMMEDIATE ... COMMIT``, with no event-loop
    round trip per statement. Group commit happens on that thread too (``write_grouped``):
    it takes every item already queued for the same store into one transaction, so the next
    batch never waits for the event loop to collect it. Reads use a separate read-only connection.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._jobs: SimpleQueue[_Job | _GroupedJob | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: aiosqlite.Connection | None = None
        self._scrub_due = False

    async def open(self) -> Database:
        await asyncio.to_thread(_apply_migrations, self.path)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run_writer, name="sqlite-writer", daemon=True)
        self._thread.start()
        self._writer = await self._submit(lambda _: self._connect_writer(), transaction=False)
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        self._reader = await aiosqlite.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        return self

    def _connect_writer(self) -> sqlite3.Connection:
        return connect_writer(self.path)

    async def close(self) -> None:
        """Close after every write already submitted has finished (the queue is first in, first out);
        a scrub still due is tried once more, waiting as long as any write would."""
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        writer, thread = self._writer, self._thread
        if writer is not None and self._scrub_due:
            await self._scrub(_BUSY_TIMEOUT_MS)
        if writer is not None:
            await self._submit(lambda _: writer.close(), transaction=False)
        if thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(thread.join)
        self._reader = self._writer = self._thread = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def _submit(self, fn: Callable[[sqlite3.Connection], T], *, transaction: bool) -> asyncio.Future[T]:
        if self._thread is None or self._loop is None:
            raise RuntimeError("the database is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put(_Job(fn, future, transaction))
        return future

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction; rolled back whole on any error (nothing half-written)."""
        if self._writer is None:
            raise RuntimeError("the database is not open")
        return await self._submit(fn, transaction=True)

    def write_grouped(
        self,
        store: Callable[[sqlite3.Connection, list[Any]], object],
        item: object,
        *,
        max_batch: int = 1000,
        settled: Settled | None = None,
    ) -> asyncio.Future[None]:
        """Queue ``item`` for ``store``; the future is done once the transaction holding it committed.

        The writer thread gives ``store`` every consecutive item queued for it (up to ``max_batch``)
        in one transaction; if that fails, every item's future carries the error.
        """
        if self._writer is None or self._loop is None:
            raise RuntimeError("the database is not open")
        future: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put(_GroupedJob(store, item, future, max_batch, settled))
        return future

    async def execute_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        batch = list(statements)

        def run(connection: sqlite3.Connection) -> None:
            for sql, parameters in batch:
                connection.execute(sql, parameters)

        await self.write(run)

    async def scrub(self) -> bool:
        """Make deleted bytes unreadable from the files: ``truncate_wal`` on the writer connection.

        Called right after a salt is deleted or a consent record erased. When a reader holds a
        snapshot the checkpoint cannot finish; the scrub stays due and ``scrub_if_due`` (called by
        every maintenance poll) tries again, so the bytes are gone within a minute.
        """
        return await self._scrub(SCRUB_WAIT_MS)

    async def scrub_if_due(self) -> bool | None:
        """Retry a scrub that could not complete; None when none is due."""
        return await self._scrub(SCRUB_WAIT_MS) if self._scrub_due else None

    @property
    def scrub_due(self) -> bool:
        return self._scrub_due

    async def _scrub(self, wait_ms: int) -> bool:
        self._scrub_due = True  # until it has completed: a failure or a cancellation leaves it due
        done = await self._submit(lambda connection: truncate_wal(connection, wait_ms=wait_ms), transaction=False)
        self._scrub_due = not done
        return done

    async def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise RuntimeError("the database is not open")
        # One call runs and finishes the statement: a statement left open between awaits would
        # hold the connection's read snapshot, and concurrent reads would miss newer commits.
        return list(await self._reader.execute_fetchall(sql, parameters))

    async def ping(self) -> bool:
        """Whether a read reaches a table (``SELECT 1`` would pass with the schema gone)."""
        try:
            await self.fetch_all("SELECT max(number) FROM schema_migrations")
        except (sqlite3.Error, RuntimeError, ValueError):
            return False
        return True

    async def prove_write(self, now: str) -> None:
        """Commit one small row (the ``health`` table) through the writer: raises what the next
        real write would meet, a full disk, a read-only file or a damaged page."""

        def touch(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (now,),
            )

        await self.write(touch)

    # The writer thread.

    def _run_writer(self) -> None:
        held: _Job | _GroupedJob | None = None
        while True:
            job = held if held is not None else self._jobs.get()
            held = None
            if job is None:
                return
            if isinstance(job, _Job):
                self._run_job(job)
                continue
            group = [job]
            while len(group) < job.max_batch:
                try:
                    following = self._jobs.get_nowait()
                except Empty:
                    break
                if isinstance(following, _GroupedJob) and following.store == job.store:
                    group.append(following)
                else:
                    held = following  # another kind of job: it runs next, in order
                    break
            self._run_group(group)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        writer = self._writer
        assert writer is not None  # noqa: S101 - jobs that need it come after the connect job
        return write_transaction(writer, fn)

    def _run_job(self, job: _Job) -> None:
        try:
            if job.transaction:
                result = self._transaction(job.fn)
            else:
                result = job.fn(self._writer)  # type: ignore[arg-type]
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
            self._deliver(_fail, job.future, error)
        else:
            self._deliver(_succeed, job.future, result)

    def _run_group(self, group: list[_GroupedJob]) -> None:
        items = [job.item for job in group]
        store = group[0].store
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            self._transaction(lambda connection: store(connection, items))
        except BaseException as failure:  # noqa: BLE001 - handed to every awaiting coroutine
            error = failure
        self._deliver(_settle_group, group, time.perf_counter() - started, error)

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


def _settle_group(group: list[_GroupedJob], elapsed: float, error: BaseException | None) -> None:
    """On the event loop: report the batch, then release every request waiting on it."""
    settled = group[0].settled
    if settled is not None:
        settled([job.item for job in group], elapsed, error)
    for job in group:
        if job.future.done():
            continue
        if error is None:
            job.future.set_result(None)
        else:
            job.future.set_exception(error)
