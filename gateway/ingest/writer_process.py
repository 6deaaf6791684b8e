"""The event writer in a process of its own, so SQLite writes stop sharing the interpreter lock with requests.

With the writer thread (``WriteBuffer``) the event loop (~130 µs an event) and the writer (~55 µs)
take the GIL in turn: one process tops out near 5k events/s while its loop waits a third of the
time for commits. Here a child process, spawned (never forked: the parent has threads and a running
loop), holds its own writer connection on the same file and does the writing. The parent only turns
each batch into row tuples of ``AnonymousEvent``'s fields (no address, no user agent: they never
leave the parent) and pickles them, ~2 µs an event against ~7 µs for the dataclasses, and reads the
answers with ``loop.add_reader`` (no thread).

Group commit stays: while the child stores batch N the parent collects N+1 and sends it as soon as
N is answered (``max_in_flight`` batches at most). One batch is one transaction: the events, the
forwarders' outbox rows (with the parent's clock reading sent along), COMMIT, then the answer; only
then are the batch's requests released, so 202 still means durable. The child exits when its socket
closes, so it never outlives the parent, even one killed with SIGKILL. If it dies, the requests
waiting on it get ``QueueFull`` (503) and a new child is started for the events that follow.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import pickle
import signal
import socket
import sqlite3
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime
from functools import partial
from multiprocessing.context import SpawnProcess
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.clock import Clock
from gateway.ingest.buffer import QueueFull, WriteBuffer
from gateway.ingest.event import AnonymousEvent
from gateway.metrics import Metrics
from gateway.storage.db import Database, StorageFailure, connect_writer, failure_cause, write_transaction
from gateway.storage.events import insert_events

if TYPE_CHECKING:
    from gateway.ingest.forward import ForwarderSettings

log = logging.getLogger("gateway.ingest")

#: A row tuple's fields, in order: exactly ``AnonymousEvent``'s, the only shape that crosses to the child.
EVENT_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(AnonymousEvent))
#: One C call an event (``attrgetter`` with several names returns a tuple).
event_row: Callable[[AnonymousEvent], tuple[object, ...]] = attrgetter(*EVENT_FIELDS)
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
_HEADER = struct.Struct("!I")  # each message: its length, then the pickle
_READY = 0  # the batch id of the child's first answer: connected, ready for batches
#: An answer: batch id, seconds the transaction took, and (error type, error text, storage failure
#: cause or None) when it failed.
_Answer = tuple[int, float, tuple[str, str, str | None] | None]


def encode_batch(batch_id: int, now: datetime | None, events: Sequence[AnonymousEvent]) -> bytes:
    """One batch as the child reads it: ``(batch id, clock reading for the outbox, row tuples)``."""
    body = pickle.dumps((batch_id, now, list(map(event_row, events))), protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class _Batch:
    __slots__ = ("events", "futures")

    def __init__(self, events: list[AnonymousEvent], futures: list[asyncio.Future[None]]) -> None:
        self.events = events
        self.futures = futures


class _Child:
    """The parent's end of one writer process."""

    __slots__ = ("inbox", "outbox", "process", "ready", "sock")

    def __init__(self, process: SpawnProcess, sock: socket.socket, ready: asyncio.Future[None]) -> None:
        self.process = process
        self.sock = sock
        self.ready = ready  # done once the child has connected to the database
        self.inbox = bytearray()  # answers received, not yet complete
        self.outbox = bytearray()  # batch bytes the socket did not take yet


class ProcessWriteBuffer(WriteBuffer):
    """``WriteBuffer``'s interface and guarantees, with the writing done by a child process.

    ``in_transaction`` cannot cross a process boundary as a closure: the one the app uses, the
    forwarders' outbox, is built in here from ``forwarders`` and ``clock`` instead.
    """

    def __init__(
        self,
        database: Database,
        metrics: Metrics,
        *,
        clock: Clock,
        forwarders: Sequence[ForwarderSettings] = (),
        max_queue: int = 10_000,
        max_batch: int = 1_000,
        max_in_flight: int = 1,
        on_commit: Callable[[Sequence[AnonymousEvent]], None] | None = None,
    ) -> None:
        super().__init__(database, metrics, max_queue=max_queue, max_batch=max_batch, on_commit=on_commit)
        self._clock = clock
        self._forwarders = tuple(forwarders)
        self._max_in_flight = max_in_flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._child: _Child | None = None
        self._starting: asyncio.Task[None] | None = None
        self._reaping: set[asyncio.Task[None]] = set()
        self._events: list[AnonymousEvent] = []  # accepted, not sent yet
        self._futures: list[asyncio.Future[None]] = []
        self._batches: dict[int, _Batch] = {}  # sent, not answered yet
        self._batch_ids = itertools.count(_READY + 1)

    @property
    def writer_problem(self) -> str | None:
        """The base's answer, and whether the child is there to write (/healthz)."""
        if not self.running:
            return "stopped"
        if self._child is None:
            return "the writer process was lost: a new one is starting"
        if not self._child.ready.done():
            return "the writer process is starting"
        return None

    @property
    def pid(self) -> int | None:
        """The writer process's id while one runs (for tests and diagnostics)."""
        return self._child.process.pid if self._child is not None else None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._spawn()
        self._running = True

    async def stop(self) -> None:
        """Refuse new events, wait until every accepted one is answered, then let the child exit."""
        self._running = False
        await self._idle.wait()
        if self._starting is not None:
            await self._starting
        if self._child is not None:
            self._detach(self._child, "was stopped")
        if self._reaping:
            await asyncio.gather(*self._reaping)

    async def write(self, event: AnonymousEvent) -> None:
        """Queue ``event`` and return once the child has committed its batch."""
        if not self.running or self._loop is None:
            raise QueueFull("the writer is not running")
        if self._in_flight >= self._max_queue:
            raise QueueFull("the write queue is full")
        future: asyncio.Future[None] = self._loop.create_future()
        self._events.append(event)
        self._futures.append(future)
        if not self._in_flight:
            self._progress_at = time.monotonic()
        self._in_flight += 1
        self._idle.clear()
        self._send_batches()
        try:
            await future
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    # Starting and losing the child.

    async def _spawn(self) -> None:
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by start() before any spawn
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=run_writer,
            args=(theirs, self._database.path, self._forwarders),
            name="consent-gateway-writer",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child holds its own copy: when it exits, ours reads end of file
        ours.setblocking(False)
        child = _Child(process, ours, loop.create_future())
        self._child = child
        loop.add_reader(ours.fileno(), self._readable, child)
        try:
            await asyncio.wait_for(asyncio.shield(child.ready), START_TIMEOUT_SECONDS)
        except TimeoutError:
            child.ready.cancel()
            self._detach(child, "did not start")
            raise QueueFull("the event writer process did not start in time") from None

    def _lose(self, child: _Child, why: str) -> None:
        self._detach(child, why)
        self._restart_if_needed()

    def _restart_if_needed(self) -> None:
        """A new child for later events; while stopping, only if accepted events still wait for one."""
        if self._child is None and self._starting is None and self._loop is not None:
            if self._running or self._events:
                self._starting = self._loop.create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self._spawn()
        except Exception as error:  # noqa: BLE001 - every waiting request is answered 503 instead
            log.error("the event writer process could not be restarted: %s", error)
            self._fail([_Batch(self._events, self._futures)], str(error))
            self._events, self._futures = [], []
        finally:
            self._starting = None
        self._send_batches()

    def _detach(self, child: _Child, why: str) -> None:
        """Close our end (the child exits on end of file) and fail the batches it had not answered."""
        if self._child is child:
            self._child = None
        loop = self._loop
        assert loop is not None  # noqa: S101 - a child exists only after start()
        if child.sock.fileno() >= 0:
            loop.remove_reader(child.sock.fileno())
            loop.remove_writer(child.sock.fileno())
            child.sock.close()
        if not child.ready.done():
            child.ready.set_exception(QueueFull(f"the event writer process {why}"))
        lost, self._batches = list(self._batches.values()), {}
        if lost:
            log.error("the event writer process %s with %d batches unanswered", why, len(lost))
            self._fail(lost, f"the event writer process {why}")
        task = loop.create_task(self._reap(child.process))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _reap(self, process: SpawnProcess) -> None:
        """Wait for the process to end (its sentinel becomes readable), then collect its exit status."""
        loop = self._loop
        assert loop is not None  # noqa: S101 - a child exists only after start()
        ended = loop.create_future()
        loop.add_reader(process.sentinel, _resolve, ended)
        try:
            await asyncio.wait_for(ended, STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("the event writer process did not exit after its socket closed: killing it")
            process.kill()
        finally:
            loop.remove_reader(process.sentinel)
        await asyncio.to_thread(process.join)  # at once unless it was just killed
        if process.exitcode:
            log.error("the event writer process exited with status %s", process.exitcode)
        process.close()

    # Talking to the child.

    def _send_batches(self) -> None:
        child = self._child
        if child is None:
            self._restart_if_needed()
            return
        if not child.ready.done():
            return  # starting: the batch goes when it is ready
        while self._events and len(self._batches) < self._max_in_flight:
            if len(self._events) <= self._max_batch:
                events, futures = self._events, self._futures
                self._events, self._futures = [], []
            else:
                events, futures = self._events[: self._max_batch], self._futures[: self._max_batch]
                del self._events[: self._max_batch], self._futures[: self._max_batch]
            batch_id = next(self._batch_ids)
            self._batches[batch_id] = _Batch(events, futures)
            now = self._clock.now() if self._forwarders else None
            if not self._send(child, encode_batch(batch_id, now, events)):
                return  # the child is lost: its batches failed, a new one is starting

    def _send(self, child: _Child, data: bytes) -> bool:
        if child.outbox:  # earlier bytes wait for room: keep the order
            child.outbox += data
            return True
        try:
            sent = child.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lose(child, "closed its socket")
            return False
        if sent < len(data):
            child.outbox += memoryview(data)[sent:]
            assert self._loop is not None  # noqa: S101 - a child exists only after start()
            self._loop.add_writer(child.sock.fileno(), self._writable, child)
        return True

    def _writable(self, child: _Child) -> None:
        try:
            sent = child.sock.send(child.outbox)
        except BlockingIOError:
            return
        except OSError:
            self._lose(child, "closed its socket")
            return
        del child.outbox[:sent]
        if not child.outbox and self._loop is not None:
            self._loop.remove_writer(child.sock.fileno())

    def _readable(self, child: _Child) -> None:
        try:
            data = child.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lose(child, "exited")
            return
        inbox = child.inbox
        inbox += data
        while len(inbox) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(inbox)
            end = _HEADER.size + size
            if len(inbox) < end:
                break
            answer: _Answer = pickle.loads(inbox[_HEADER.size : end])  # noqa: S301 - our own child, over a socketpair
            del inbox[:end]
            self._answered(child, answer)
        self._send_batches()

    def _answered(self, child: _Child, answer: _Answer) -> None:
        batch_id, elapsed, failure = answer
        if batch_id == _READY:
            if not child.ready.done():
                child.ready.set_result(None)
            return
        batch = self._batches.pop(batch_id)
        self._progress_at = time.monotonic()
        if failure is not None:
            kind, detail, cause = failure
            log.error("event batch of %d failed: %s: %s", len(batch.events), kind, detail)
            self._fail([batch], f"the database refused the batch: {kind}", cause=cause)
            return
        self._metrics.inc("consent_gateway_write_batches_total")
        self._metrics.inc("consent_gateway_write_batch_events_total", len(batch.events))
        self._metrics.inc("consent_gateway_commit_seconds_total", elapsed)
        self._metrics.set_max("consent_gateway_commit_seconds_max", elapsed)
        if self._on_commit is not None:
            self._on_commit(batch.events)
        for future in batch.futures:
            if not future.done():
                future.set_result(None)

    @staticmethod
    def _fail(batches: list[_Batch], why: str, *, cause: str | None = None) -> None:
        """``cause``: the storage failure behind it (a full disk), chained so the 503 can say so."""
        for batch in batches:
            for future in batch.futures:
                if not future.done():
                    error = QueueFull(why)
                    error.__cause__ = StorageFailure(cause) if cause is not None else None
                    future.set_exception(error)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# The child process.


def run_writer(sock: socket.socket, path: Path, forwarders: tuple[ForwarderSettings, ...]) -> None:
    """Store each batch received in one transaction and answer it, until the socket closes.

    SIGINT is ignored: Ctrl-C reaches the whole process group, and the parent, which shuts down
    gracefully, decides when the last batch has been written (it closes the socket then).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = connect_writer(path)
    try:
        _answer(sock, (_READY, 0.0, None))
        while (message := _receive(sock)) is not None:
            batch_id, now, rows = message
            events = [AnonymousEvent(*row) for row in rows]
            started = time.perf_counter()
            failure: tuple[str, str, str | None] | None = None
            try:
                write_transaction(connection, partial(_store, events=events, forwarders=forwarders, now=now))
            except Exception as error:  # noqa: BLE001 - answered to the parent, which fails the batch's requests
                failure = (type(error).__name__, str(error), failure_cause(error))
            _answer(sock, (batch_id, time.perf_counter() - started, failure))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone: nothing we stored was acknowledged after this
    finally:
        connection.close()
        sock.close()


def _store(
    connection: sqlite3.Connection,
    *,
    events: list[AnonymousEvent],
    forwarders: tuple[ForwarderSettings, ...],
    now: datetime | None,
) -> None:
    insert_events(connection, events)
    if forwarders and now is not None:
        from gateway.ingest.forward import enqueue_events  # only then: it brings the HTTP client along

        enqueue_events(connection, forwarders, events, now=now)


def _answer(sock: socket.socket, answer: _Answer) -> None:
    body = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(body)) + body)


def _receive(sock: socket.socket) -> tuple[int, datetime | None, list[tuple[Any, ...]]] | None:
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(sock, _HEADER.unpack(header)[0])
    if body is None:
        return None
    return pickle.loads(body)  # type: ignore[no-any-return]  # noqa: S301 - from our parent, over a socketpair


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    """``size`` bytes, or None at end of file (the parent closed the socket or died)."""
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if not count:
            return None
        got += count
    return data
