"""The event writer's statements on PostgreSQL, sent down one libpq pipeline below psycopg's cursors.

Why not psycopg's own pipeline: each statement there costs some 50 µs of Python (a cursor, its
adapters map, the query's conversion, the prepared-statement cache, the pipeline's result queue).
Measured on one machine (``/tmp`` probe, 3,000 rounds of BEGIN, three one-value prepared SELECTs and
COMMIT in two round trips): 258 µs of client CPU a round through ``Connection.pipeline()`` against
33 µs through its libpq wrapper (``pgconn``) directly. A batch of the event writer is five such
statements, and psycopg wrote each to the socket on its own (``strace -c``: ~10 writes and ~19
polls a batch, now 2-3 and a few). ``bench/ingest_profile.py --store postgresql --batch 16``: the
writer's CPU per event 49 µs against 58 through psycopg's pipeline.

Here a statement is prepared once per connection (``Parse`` sent in the same pipeline, ahead of its
first use), its values go as text and its rows come back as text. Statements queue until something
needs a result: ``Pending.fetchall`` or ``sync`` sends a sync point, reads every result up to it and
raises the first error, as psycopg's pipeline does. Between syncs the connection is in libpq's
normal mode, so psycopg's own calls on it work as before (``PgConnection.execute`` syncs first).
"""

from __future__ import annotations

import re
import select
from collections.abc import Sequence
from itertools import count
from typing import Any

import orjson
from psycopg import errors, pq

#: A statement's values as sent: text, or None for NULL.
Text = bytes | None

_ENCODING = "utf-8"
_PLACEHOLDER = re.compile(r"%[s%]")


def numbered(sql: str) -> str:
    """psycopg's ``%s`` placeholders as the protocol's ``$1, $2 ...`` (``%%`` is a literal ``%``)."""
    position = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal position
        if match.group(0) == "%%":
            return "%"
        position += 1
        return f"${position}"

    return _PLACEHOLDER.sub(swap, sql)


def as_text(value: Any) -> Text:
    """One value as PostgreSQL reads a text parameter; bools as 0/1, as SQLite stores them."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode(_ENCODING)
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int | float):
        return str(value).encode()
    if isinstance(value, list | tuple):  # one JSON document, UTF-8 (orjson: a batch's rows in C)
        return orjson.dumps(value)
    raise TypeError(f"no text form for a {type(value).__name__} parameter")


class Pending:
    """A statement sent down the pipeline: its rows (as text) once a sync has read them."""

    __slots__ = ("_error", "_pipeline", "_rows", "read")

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._rows: list[tuple[str | None, ...]] = []
        self._error: errors.Error | None = None
        self.read = False

    def fetchall(self) -> list[tuple[str | None, ...]]:
        """Its rows, syncing the pipeline first when they have not been read yet."""
        if not self.read:
            self._pipeline.sync()
        if self._error is not None:
            raise self._error
        return self._rows


class Pipeline:
    """Prepared statements of one connection, queued in libpq's pipeline mode until a sync."""

    def __init__(self, pgconn: pq.abc.PGconn) -> None:
        self._pgconn = pgconn
        self._names: dict[str, bytes] = {}  # SQL -> its prepared statement's name, once sent
        self._numbers = count(1)  # never reused: a name dropped after a failed Parse is not handed out again
        self._queued: list[tuple[Pending, str | None]] = []  # each sent command, and the SQL it prepares
        self._first_error: tuple[int, str | None] | None = None  # the last sync's: (command, its SQLSTATE)
        self._synced = 0  # commands in the last sync

    @property
    def pending(self) -> bool:
        return bool(self._queued)

    def send(self, sql: str, values: Sequence[Any] = ()) -> Pending:
        """Queue ``sql`` (psycopg's ``%s`` placeholders) with ``values``; prepared on first use."""
        self._enter()
        name = self._names.get(sql)
        if name is None:
            name = self._names[sql] = f"cg_{next(self._numbers)}".encode()
            self._pgconn.send_prepare(name, numbered(sql).encode(_ENCODING))
            self._queued.append((Pending(self), sql))
        self._pgconn.send_query_prepared(name, [as_text(value) for value in values])
        pending = Pending(self)
        self._queued.append((pending, None))
        return pending

    def send_unprepared(self, sql: str) -> Pending:
        """Queue a statement without values or preparing (BEGIN, COMMIT)."""
        self._enter()
        self._pgconn.send_query_params(sql.encode(_ENCODING), None)
        pending = Pending(self)
        self._queued.append((pending, None))
        return pending

    def sync(self) -> None:
        """Send a sync point, read every queued command's results, leave pipeline mode, and raise
        the first error (the commands after it were skipped by the server)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        self._first_error, self._synced = None, len(queued)
        pgconn = self._pgconn
        pgconn.pipeline_sync()
        self._flush()
        first_error: errors.Error | None = None
        for index, (pending, prepares) in enumerate(queued):
            rows, error = self._read_command(index)
            pending._rows, pending._error, pending.read = rows, error, True
            if error is not None:
                first_error = first_error or error
                if prepares is not None:
                    del self._names[prepares]  # not prepared after all: the next use sends it again
        self._read_sync_point()
        pgconn.exit_pipeline_mode()
        if first_error is not None:
            raise first_error

    def discard(self) -> None:
        """After a failure: read whatever is still queued, ignoring its errors (the caller rolls back)."""
        try:
            self.sync()
        except errors.Error:
            pass

    @property
    def skipped_last(self) -> bool:
        """Whether the last sync's last command certainly did not run, even if the connection was lost
        while reading: the server answered an earlier command with an error, and runs nothing after
        one. (An error libpq made up for a lost connection says nothing of what the server ran.)"""
        if self._first_error is None:
            return False
        index, sqlstate = self._first_error
        return sqlstate is not None and index < self._synced - 1

    def closed_by_server(self) -> bool:
        """Whether the server closed the connection while it was idle (a restart, a terminated backend,
        an idle timeout): it said so, and what it said waits unread on the socket. Checked before a
        batch, so the batch goes to a new connection instead of meeting a dead one."""
        if self._queued:
            return False
        for _ in range(3):  # its last words, then the end of the stream
            if not _wait(self._pgconn.socket, select.POLLIN, timeout_ms=0):
                break
            try:
                self._pgconn.consume_input()
            except errors.OperationalError:
                return True
        return self._pgconn.status == pq.ConnStatus.BAD

    def _enter(self) -> None:
        if self._pgconn.pipeline_status == pq.PipelineStatus.OFF:
            self._pgconn.enter_pipeline_mode()

    def _flush(self) -> None:
        """Send what libpq buffered, reading meanwhile so a server blocked on its output never waits on us."""
        pgconn = self._pgconn
        while pgconn.flush() == 1:
            if _wait(pgconn.socket, select.POLLIN | select.POLLOUT) & select.POLLIN:
                pgconn.consume_input()

    def _result(self) -> pq.abc.PGresult | None:
        pgconn = self._pgconn
        while pgconn.is_busy():
            _wait(pgconn.socket, select.POLLIN)
            pgconn.consume_input()
        return pgconn.get_result()

    def _read_command(self, index: int) -> tuple[list[tuple[str | None, ...]], errors.Error | None]:
        """The results of the sync's ``index``-th command, up to the NULL that ends them: its rows, or
        its error (the first error of the sync is noted at once, in case the connection is lost next)."""
        rows: list[tuple[str | None, ...]] = []
        error: errors.Error | None = None
        while (result := self._result()) is not None:
            status = result.status
            if status == pq.ExecStatus.TUPLES_OK:
                columns = range(result.nfields)
                for row in range(result.ntuples):
                    rows.append(tuple(_decode(result.get_value(row, column)) for column in columns))
            elif status == pq.ExecStatus.FATAL_ERROR:
                error = errors.error_from_result(result, encoding=_ENCODING)
                if self._first_error is None:
                    self._first_error = (index, error.sqlstate)
            elif status == pq.ExecStatus.PIPELINE_ABORTED:
                error = error or errors.PipelineAborted("an earlier statement of the batch failed")
        return rows, error

    def _read_sync_point(self) -> None:
        result = self._result()
        if result is None or result.status != pq.ExecStatus.PIPELINE_SYNC:
            raise errors.InterfaceError("the pipeline's sync point did not come back in order")


def _wait(socket: int, events: int, *, timeout_ms: int | None = None) -> int:
    """Block until the connection's socket is ready for ``events`` (or ``timeout_ms`` has passed); poll,
    not select, so a descriptor numbered past 1,023 (a busy server process's) works too. An error or
    hang-up is left to libpq to report on the next read."""
    poller = select.poll()
    poller.register(socket, events)
    ready = poller.poll(timeout_ms)
    return ready[0][1] if ready else 0


def _decode(value: bytes | None) -> str | None:
    return None if value is None else value.decode(_ENCODING)
