"""The event writer's batches committed in a process of its own, so SQLite work stops sharing the
interpreter lock with requests.

With the writer thread the event loop (~130 µs an event) and the writer (~55 µs) take the GIL in
turn: one process tops out near 5k events/s while its loop waits a third of the time for commits.
Here a child process, spawned (never forked: the parent has threads and a running loop), holds its
own writer connection and stores each batch (gateway/storage/batch_writer.py). The ``WriteBuffer``
forms the batches as it does for the thread; this committer only sends each one as row tuples of the
stored record's fields (no address, no user agent: they never leave the parent) and reads the
answers with ``loop.add_reader`` (no thread).

The child exits when its socket closes, so it never outlives the parent, even one killed with
SIGKILL. If it dies, the batches it had not answered fail (their requests get ``QueueFull``, 503)
and a new child is started for the batches that follow; a batch handed over while no child is ready
waits for the next one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import socket
from collections.abc import Callable, Sequence
from datetime import datetime
from multiprocessing.context import SpawnProcess

from gateway.clock import Clock
from gateway.forward_settings import ForwarderSettings
from gateway.ingest.buffer import QueueFull, Settled, WriteBuffer
from gateway.metrics import Metrics
from gateway.storage.batch_writer import READY, Answer, decode_answers, encode_batch, run_writer
from gateway.storage.location import DatabaseLocation
from gateway.storage.records import EVENT_FIELDS, AnonymousEvent, OutboxBatch
from gateway.storage.store import StorageFailure, Store

__all__ = ["EVENT_FIELDS", "BatchFailed", "ProcessCommitter", "ProcessWriteBuffer", "encode_batch"]

log = logging.getLogger("gateway.ingest")

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0


class BatchFailed(Exception):
    """The child's transaction failed: ``kind`` is the error's type there (``OperationalError``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class _Child:
    """The parent's end of one writer process."""

    __slots__ = ("inbox", "outbox", "process", "ready", "sock")

    def __init__(self, process: SpawnProcess, sock: socket.socket, ready: asyncio.Future[None]) -> None:
        self.process = process
        self.sock = sock
        self.ready = ready  # done once the child has connected to the database
        self.inbox = bytearray()  # answers received, not yet complete
        self.outbox = bytearray()  # batch bytes the socket did not take yet


class ProcessCommitter:
    """Commits the ``WriteBuffer``'s batches in a child process (``BatchCommitter``)."""

    def __init__(self, location: DatabaseLocation) -> None:
        self._location = location
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._child: _Child | None = None
        self._starting: asyncio.Task[None] | None = None
        self._reaping: set[asyncio.Task[None]] = set()
        self._waiting: list[tuple[int, bytes]] = []  # handed over while no child was ready
        self._answers: dict[int, Settled] = {}  # every batch not answered yet
        self._batch_ids = itertools.count(READY + 1)

    @property
    def problem(self) -> str | None:
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
        self._stopping = False
        await self._spawn()

    async def stop(self) -> None:
        """Let the child exit (the buffer has had every batch answered) and collect it."""
        self._stopping = True
        if self._starting is not None:
            await self._starting
        if self._child is not None:
            self._detach(self._child, "was stopped")
        if self._reaping:
            await asyncio.gather(*self._reaping)

    def commit(
        self, events: Sequence[AnonymousEvent], outbox: Sequence[OutboxBatch], now: datetime | None, settled: Settled
    ) -> None:
        if self._loop is None:
            settled(0.0, QueueFull("the event writer process was not started"))
            return
        batch_id = next(self._batch_ids)
        self._answers[batch_id] = settled
        data = encode_batch(batch_id, now, events, outbox)
        child = self._child
        if child is None or not child.ready.done():
            self._waiting.append((batch_id, data))
            self._restart_if_needed()
        else:
            self._send(child, data)

    # Starting and losing the child.

    async def _spawn(self) -> None:
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by start() before any spawn
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=run_writer, args=(theirs, self._location), name="consent-gateway-writer", daemon=True
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
        self._send_waiting(child)

    def _restart_if_needed(self) -> None:
        """A new child for later batches; while stopping, only if batches still wait for one."""
        if self._child is None and self._starting is None and self._loop is not None:
            if not self._stopping or self._waiting:
                self._starting = self._loop.create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self._spawn()
        except Exception as error:  # noqa: BLE001 - every waiting batch is answered 503 instead
            log.error("the event writer process could not be restarted: %s", error)
            waiting, self._waiting = self._waiting, []
            self._fail([batch_id for batch_id, _ in waiting], str(error))
        finally:
            self._starting = None

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
        waiting = {batch_id for batch_id, _ in self._waiting}
        lost = [batch_id for batch_id in self._answers if batch_id not in waiting]
        if lost:
            log.error("the event writer process %s with %d batches unanswered", why, len(lost))
            self._fail(lost, f"the event writer process {why}")
        task = loop.create_task(self._reap(child.process))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def _lose(self, child: _Child, why: str) -> None:
        self._detach(child, why)
        self._restart_if_needed()

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

    def _send_waiting(self, child: _Child) -> None:
        waiting, self._waiting = self._waiting, []
        for _, data in waiting:
            if not self._send(child, data):
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
        child.inbox += data
        for answer in decode_answers(child.inbox):
            self._answered(child, answer)

    def _answered(self, child: _Child, answer: Answer) -> None:
        batch_id, elapsed, failure = answer
        if batch_id == READY:
            if not child.ready.done():
                child.ready.set_result(None)
            return
        settled = self._answers.pop(batch_id, None)
        if settled is None:
            return
        if failure is None:
            settled(elapsed, None)
            return
        kind, detail, cause = failure
        error = BatchFailed(kind, detail)
        error.__cause__ = StorageFailure(cause) if cause is not None else None  # the 503 can say why
        settled(elapsed, error)

    def _fail(self, batch_ids: list[int], why: str) -> None:
        for batch_id in batch_ids:
            settled = self._answers.pop(batch_id, None)
            if settled is not None:
                settled(0.0, QueueFull(why))


def _location(store: Store) -> DatabaseLocation:
    """Where ``store`` keeps its data: a SQLite store's path, a PostgreSQL store's URL."""
    return store.location


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ProcessWriteBuffer(WriteBuffer):
    """A ``WriteBuffer`` whose batches are committed by a ``ProcessCommitter`` on ``store``'s database."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        clock: Clock,
        location: DatabaseLocation | None = None,
        forwarders: Sequence[ForwarderSettings] = (),
        max_queue: int = 10_000,
        max_batch: int = 1_000,
        max_in_flight: int = 1,
        on_commit: Callable[[Sequence[AnonymousEvent]], None] | None = None,
    ) -> None:
        """``location``: the database the child opens; by default the one ``store`` is open on."""
        self._process = ProcessCommitter(location if location is not None else _location(store))
        super().__init__(
            store,
            metrics,
            clock=clock,
            forwarders=forwarders,
            committer=self._process,
            max_queue=max_queue,
            max_batch=max_batch,
            max_in_flight=max_in_flight,
            on_commit=on_commit,
        )

    @property
    def pid(self) -> int | None:
        """The writer process's id while one runs (for tests and diagnostics)."""
        return self._process.pid
