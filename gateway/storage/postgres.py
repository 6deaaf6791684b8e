"""The PostgreSQL store: several gateway nodes on one database.

psycopg 3 (chosen over asyncpg because it offers both a synchronous connection, which lets the
same transaction functions run on the writer thread as on SQLite, and a native asyncio pool for
reads; and because it can bind values client-side, so ``?``-placeholder SQL written for SQLite,
untyped literals included, runs unchanged). Writes run on the store's writer thread in
``BEGIN ... COMMIT``; reads share an ``AsyncConnectionPool``.

What makes several nodes correct lives with the statements that need it: visit stitching takes
a transaction-level advisory lock (gateway/storage/events.py), outbox claims skip locked rows,
the maintenance leader holds a session-level advisory lock (gateway/storage/leader.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from gateway.storage.batch_visits import forget_spare_ids
from gateway.storage.location import PostgresUrl
from gateway.storage.partitions import forget_months
from gateway.storage.pg_pipeline import Pending, Pipeline
from gateway.storage.sql import Dialect
from gateway.storage.store import Store, read_migrations

try:
    import psycopg
    from psycopg.adapt import Loader
    from psycopg_pool import AsyncConnectionPool
except ImportError as missing:  # pragma: no cover - the message is the point
    raise ImportError(
        "database is a postgresql:// URL but the PostgreSQL driver is not installed: "
        "pip install 'consent-gateway[postgresql]'"
    ) from missing

T = TypeVar("T")

#: pg_advisory_lock key under which migrations run (several nodes may start at once).
_MIGRATION_LOCK = 0x636F6E73656E74  # "consent"
_CONNECT_TIMEOUT_S = 10
_POOL_TIMEOUT_S = 30.0


class Row(tuple[Any, ...]):
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    description = cursor.description or ()
    index = {column.name: position for position, column in enumerate(description)}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._index = index
        return row

    return make


class _NumberLoader(Loader):
    """``numeric`` as SQLite gives it: ``sum()`` of integers is an int, anything else a float
    (psycopg's default, Decimal, would not mix with the floats and JSON of the stats code)."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        if "." in text or "e" in text or "E" in text or text in ("NaN", "Infinity", "-Infinity"):
            return float(text)
        return int(text)


def _configure(adapters: Any) -> None:
    adapters.register_loader("numeric", _NumberLoader)


#: What ``translate`` looks at: literals, quoted names and comments are kept whole (a ``?`` or an
#: apostrophe inside them is not SQL), ``::`` casts are kept, and ``?``, ``:name`` and ``%`` are rewritten.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|:[A-Za-z_]\w*|\?|%""", re.DOTALL)


@lru_cache(maxsize=4096)
def translate(sql: str, named: bool = False) -> str:
    """SQLite's parameter styles to psycopg's: ``?`` to ``%s`` (or, with ``named``, ``:name`` to
    ``%(name)s``), and a literal ``%`` to ``%%``, wherever they are SQL rather than text."""

    def swap(match: re.Match[str]) -> str:
        piece = match.group(0)
        if piece == "?":
            return "%s"
        if piece == "%":
            return "%%"
        if named and piece[0] == ":" and piece != "::":
            return f"%({piece[1:]})s"
        if piece[0] in "'\"":
            return piece.replace("%", "%%")
        if piece.startswith(("--", "/*")):
            return " "  # a comment goes: psycopg would read a % in it
        return piece

    return _TOKENS.sub(swap, sql)


def _values(parameters: Sequence[Any] | Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
    """Bools as 0/1, as SQLite stores them (the columns are integers on both stores)."""
    if isinstance(parameters, Mapping):
        return {key: int(value) if isinstance(value, bool) else value for key, value in parameters.items()}
    return tuple(int(value) if isinstance(value, bool) else value for value in parameters)


def _bind(sql: str, parameters: Sequence[Any] | Mapping[str, Any]) -> tuple[str, Any]:
    return translate(sql, isinstance(parameters, Mapping)), _values(parameters)


class PgConnection:
    """The writer's connection as storage code sees it: ``?`` SQL, rows by name or position.

    The event writer's hot statements (``execute_prepared``) go down a pipeline of their own
    (gateway/storage/pg_pipeline.py) and are read at the next sync; every other statement syncs it
    first, so statements always run in the order they were given.
    """

    dialect: Dialect = "postgresql"

    def __init__(
        self, raw: psycopg.Connection[Any], *, connect: Callable[[], psycopg.Connection[Any]] | None = None
    ) -> None:
        """``connect``: how ``reconnect`` opens a new connection (none: this one cannot be replaced)."""
        self.raw = raw
        self.pipeline = Pipeline(raw.pgconn)
        self._connect = connect

    def reconnect(self) -> None:
        """Replace a broken connection in place (the event writer process holds this object for its
        life): the server restarted, failed over, or cut an idle connection."""
        if self._connect is None:
            raise psycopg.OperationalError("the connection was lost and cannot be replaced")
        self.raw.close()
        self.raw = self._connect()
        self.pipeline = Pipeline(self.raw.pgconn)  # prepared statements belong to the old session

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = (), /) -> psycopg.ClientCursor[Any]:
        self.pipeline.sync()
        cursor = psycopg.ClientCursor(self.raw, row_factory=_row_factory)
        cursor.execute(*_bind(sql, parameters))
        return cursor

    def executemany(
        self, sql: str, parameters: Iterable[Sequence[Any] | Mapping[str, Any]], /
    ) -> psycopg.ClientCursor[Any]:
        self.pipeline.sync()
        cursor = psycopg.ClientCursor(self.raw, row_factory=_row_factory)
        rows = list(parameters)
        named = bool(rows) and isinstance(rows[0], Mapping)
        cursor.executemany(translate(sql, named), [_values(row) for row in rows])
        return cursor

    def execute_prepared(self, sql: str, parameters: Sequence[Any] = (), /) -> Pending:
        """PostgreSQL's own SQL (``%s`` placeholders, every parameter typed by a cast or its column),
        prepared once per connection and queued: the hot statements of the event writer, run on every
        batch. A list or tuple parameter goes as one JSON text (the batch's rows, encoded in C) rather
        than quoted value by value. Its rows, by position and as text, come with ``fetchall()``,
        which sends what is queued and waits for the answers (one round trip)."""
        return self.pipeline.send(sql, parameters)

    def settle(self) -> None:
        """Send what ``execute_prepared`` queued and raise its first error: before a commit."""
        self.pipeline.sync()

    @property
    def broken(self) -> bool:
        return bool(self.raw.closed or self.raw.broken)

    def close(self) -> None:
        self.raw.close()


def _connect(url: PostgresUrl) -> psycopg.Connection[Any]:
    connection = psycopg.connect(url.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
    _configure(connection.adapters)
    return connection


def _migrations() -> list[tuple[int, str, str]]:
    return read_migrations("migrations_postgresql")


def apply_migrations(url: PostgresUrl) -> None:
    """Bring the schema up to date; nodes starting at once queue on an advisory lock."""
    with _connect(url) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            with connection.transaction():
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name TEXT)"
                )
                done = {row[0] for row in connection.execute("SELECT number FROM schema_migrations")}
                for number, name, sql in _migrations():
                    if number in done:
                        continue
                    connection.execute(sql.encode())  # no parameters: the whole file in one simple query
                    connection.execute("INSERT INTO schema_migrations (number, name) VALUES (%s, %s)", (number, name))
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


def check_postgres(url: PostgresUrl) -> None:
    """Reach the server, bring the schema up to date and read every table once (start-up check)."""
    apply_migrations(url)
    with _connect(url) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
            )
        ]
        for table in tables:
            connection.execute(f'SELECT * FROM "{table}" LIMIT 1').fetchall()  # noqa: S608 - names from the catalog


def _forget_batches(connection: PgConnection) -> None:
    """After a failed batch: the month partitions it created and its spare visit ids were rolled back
    with it, or may have been (a statement fails at the sync that reads it, after ``insert_events``
    has returned, and a batch written in one statement leaves its answer to the next)."""
    forget_months(connection)
    forget_spare_ids(connection)


def _not_committed(commit: Pending | None, pipeline: Pipeline) -> bool:
    """Whether a batch whose connection broke certainly did not commit: its COMMIT was never sent, or
    the server answered an earlier command with an error (a terminated connection says so first)."""
    return commit is None or pipeline.skipped_last


def _roll_back(connection: PgConnection) -> None:
    """End a failed batch's transaction; after a failed COMMIT nothing is open and the server only warns.

    What the connection remembers of its batches goes too (``_forget_batches``).
    """
    _forget_batches(connection)
    if not connection.broken:
        connection.pipeline.discard()
        connection.raw.execute("ROLLBACK")


#: What a scrub vacuums: the tables whose deleted rows must not stay readable in dead tuples.
_SCRUBBED = ("salts", "consent_records")


class PostgresStore(Store):
    """PostgreSQL behind the same shape as the SQLite store (gateway/storage/store.py)."""

    dialect: Dialect = "postgresql"
    begin_statement = "BEGIN"

    def __init__(self, url: PostgresUrl, *, max_readers: int = 10) -> None:
        super().__init__()
        self.url = url
        self._max_readers = max_readers
        self._pool: AsyncConnectionPool[Any] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.url.redacted!r})"

    async def open(self) -> PostgresStore:
        await super().open()
        return self

    @property
    def location(self) -> PostgresUrl:
        return self.url

    def _prepare(self) -> None:
        apply_migrations(self.url)

    def _connect_writer(self) -> PgConnection:
        return PgConnection(_connect(self.url), connect=lambda: _connect(self.url))

    def _writer_connection(self) -> PgConnection:
        writer: PgConnection = self._writer
        if writer.broken:  # the server restarted or a network blip: the next transaction reconnects
            self._writer = writer = self._connect_writer()
        return writer

    def _transaction(self, fn: Callable[[Any], T]) -> T:
        """As the base class; a writer connection found dead at ``BEGIN`` (the server restarted, a
        failover, an idle connection cut) is replaced and the transaction begun again: nothing of
        it had run, so nobody's request pays for the dead connection."""
        writer = self._writer_connection()
        try:
            writer.execute(self.begin_statement)
        except psycopg.OperationalError:
            if not writer.broken:
                raise
            writer = self._writer_connection()
            writer.execute(self.begin_statement)
        try:
            result = fn(writer)
            writer.settle()
        except BaseException:
            _roll_back(writer)
            raise
        writer.execute("COMMIT")
        return result

    def run_batch(self, connection: PgConnection, fn: Callable[[Any], T]) -> T:
        """As the base class, but BEGIN goes out with the batch's first statements and COMMIT with its
        last (gateway/storage/pg_pipeline.py): a batch of the event writer is one round trip, two
        when it needs its visits looked up first (gateway/storage/batch_visits.py). A statement that
        fails aborts the rest, COMMIT included; the error comes out of the sync that reads it, and
        the transaction is rolled back here.

        A connection found broken, or closed by the server while idle (it restarted, failed over, or
        cut an idle connection: what it said waits on the socket), is replaced first. One found dead
        before the batch could have committed (COMMIT not sent yet, or an earlier command answered
        with the server's error) is replaced and the batch run again. Otherwise a lost connection
        leaves the outcome unknown, so the error goes to the caller (the requests get 503 and may retry).
        """
        for attempt in range(2):
            if connection.broken or connection.pipeline.closed_by_server():
                connection.reconnect()
            pipeline = connection.pipeline
            commit: Pending | None = None
            try:
                pipeline.send_unprepared("BEGIN")
                result = fn(connection)
                commit = pipeline.send_unprepared("COMMIT")
                pipeline.sync()
            except psycopg.OperationalError:
                if attempt == 0 and connection.broken and _not_committed(commit, pipeline):
                    _forget_batches(connection)
                    continue
                _roll_back(connection)
                raise
            except BaseException:
                _roll_back(connection)
                raise
            return result
        raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover

    async def _open_reader(self) -> None:
        async def configure(connection: psycopg.AsyncConnection[Any]) -> None:
            _configure(connection.adapters)

        self._pool = AsyncConnectionPool(
            self.url.url,
            min_size=1,
            max_size=self._max_readers,
            kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_S},
            configure=configure,
            check=AsyncConnectionPool.check_connection,  # a connection the server dropped is replaced, not lent
            timeout=_POOL_TIMEOUT_S,
            open=False,
            name="consent-gateway-readers",
        )
        await self._pool.open(wait=True, timeout=_POOL_TIMEOUT_S)

    async def _close_reader(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def fetch_all(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        if self._pool is None:
            raise RuntimeError("the database is not open")
        async with self._pool.connection() as connection:
            cursor = psycopg.AsyncClientCursor(connection, row_factory=_row_factory)
            await cursor.execute(*_bind(sql, parameters))
            return await cursor.fetchall()

    async def fetch_large(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Bound on the server with binary results: a bytea in text is hex, twice its size, parsed back
        (90 MB of day packs: 560 ms in text, 100-200 ms in binary)."""
        if self._pool is None:
            raise RuntimeError("the database is not open")
        async with self._pool.connection() as connection:
            cursor = psycopg.AsyncCursor(connection, row_factory=_row_factory)
            await cursor.execute(*_bind(sql, parameters), binary=True)
            return await cursor.fetchall()

    async def server_time(self) -> datetime:
        rows = await self.fetch_all("SELECT clock_timestamp() AS now")
        moment: datetime = rows[0]["now"]
        return moment.astimezone(UTC)

    def connect(self) -> PgConnection:
        """A connection of its own (autocommit; ``?`` SQL, rows by name) for work off the writer and
        the read pool, on a worker thread: the rollup planner reads a day in one snapshot with it.
        The caller closes it."""
        return PgConnection(_connect(self.url))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A dedicated connection (autocommit) for as long as the block runs: a session-level
        advisory lock lives exactly as long as it (gateway/storage/leader.py)."""
        connection = await psycopg.AsyncConnection.connect(
            self.url.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        )
        try:
            _configure(connection.adapters)
            yield connection
        finally:
            await connection.close()

    def _scrub_on_writer(self, writer: PgConnection, wait_ms: int) -> bool:
        """VACUUM the tables that lose rows to erasure, so dead tuples of a deleted salt or an
        erased record are not left for a reader of the data files (WAL segments are recycled by
        the server; a base backup taken before holds them: say so in the operator's guide)."""
        writer = self._writer_connection()
        writer.raw.execute(f"SET lock_timeout = {int(wait_ms)}")
        try:
            for table in _SCRUBBED:
                writer.raw.execute(f"VACUUM (FULL) {table}" if table == "salts" else f"VACUUM {table}")
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            writer.raw.execute("RESET lock_timeout")
        return True
