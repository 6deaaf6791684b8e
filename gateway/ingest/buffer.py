"""The WriteBuffer: the one event writer, so 202 means durable.

Requests hand their event here and wait. Batches are formed here and nowhere else: while
``max_in_flight`` batches are being committed, new events queue; as soon as one commits, every
event queued (up to ``max_batch``) becomes the next batch, with the forwarders' outbox rows for it
(gateway/ingest/forward.py ``outbox_batches``). A *committer* stores each batch in one transaction
with one storage call (gateway/storage/events.py ``store_events``): ``ThreadCommitter`` on the
store's writer thread, or ``ProcessCommitter`` (writer_process.py) in a child process of its own.
Only when its batch has committed is a request released. Too many events in flight are refused at
once (the endpoint answers 503 with Retry-After) rather than dropped silently. Shutdown waits for
those in flight.

Two batches in flight by default on the thread: the writer thread finds the next batch already
queued when it commits one, instead of waiting for the event loop to form it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Protocol

from gateway.clock import Clock, SystemClock
from gateway.forward_settings import ForwarderSettings
from gateway.metrics import Metrics
from gateway.storage.events import write_events
from gateway.storage.records import AnonymousEvent, OutboxBatch
from gateway.storage.store import Store, failure_cause

log = logging.getLogger("gateway.ingest")


class QueueFull(Exception):
    """The writer is behind (or cannot write): the client should retry later."""


#: Told once per batch, on the event loop: the seconds its transaction took, or why it failed. A
#: ``QueueFull`` failure is passed to the requests as it is (the committer's own words).
Settled = Callable[[float, BaseException | None], None]


class BatchCommitter(Protocol):
    """Stores whole batches, each in one transaction; knows nothing of requests or batching."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Called once every batch handed over has been answered."""

    @property
    def problem(self) -> str | None:
        """Why it cannot store batches now (for /healthz); None when it can."""

    def commit(
        self, events: Sequence[AnonymousEvent], outbox: Sequence[OutboxBatch], now: datetime | None, settled: Settled
    ) -> None:
        """Store the batch, then call ``settled`` directly (not through a future's scheduled callback:
        the next batch is formed in the same loop iteration, so the writer never waits a turn)."""


class ThreadCommitter:
    """Batches on the store's writer thread (the store's other writes queue with them)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def problem(self) -> str | None:
        return None if self._store.is_open else "stopped"

    def commit(
        self, events: Sequence[AnonymousEvent], outbox: Sequence[OutboxBatch], now: datetime | None, settled: Settled
    ) -> None:
        task = asyncio.ensure_future(write_events(self._store, events, outbox, now=now))
        task.add_done_callback(partial(_settle_task, settled))


def _settle_task(settled: Settled, task: asyncio.Future[float]) -> None:
    if task.cancelled():
        settled(0.0, QueueFull("the batch was cancelled"))
    elif (error := task.exception()) is not None:
        settled(0.0, error)
    else:
        settled(task.result(), None)


class _Batch:
    __slots__ = ("events", "futures")

    def __init__(self, events: list[AnonymousEvent], futures: list[asyncio.Future[None]]) -> None:
        self.events = events
        self.futures = futures


class WriteBuffer:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        clock: Clock | None = None,
        forwarders: Sequence[ForwarderSettings] = (),
        committer: BatchCommitter | None = None,
        max_queue: int = 10_000,
        max_batch: int = 1_000,
        max_in_flight: int = 2,
        on_commit: Callable[[Sequence[AnonymousEvent]], None] | None = None,
    ) -> None:
        """``forwarders``: whose outbox rows each batch stores with its events (queued at ``clock``'s
        time); ``committer``: who stores the batches (default: the store's writer thread);
        ``on_commit``: told of each committed batch, on the event loop (the outbox sender's wake-up)."""
        self._store = store
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._forwarders = tuple(forwarders)
        self._committer = committer or ThreadCommitter(store)
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._on_commit = on_commit
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the running loop, from start()
        self._in_flight = 0  # events accepted and not yet answered
        self._events: list[AnonymousEvent] = []  # accepted, not yet in a batch
        self._futures: list[asyncio.Future[None]] = []
        self._batches = 0  # handed to the committer, not yet answered
        self._idle = asyncio.Event()
        self._idle.set()
        #: ``time.monotonic()`` of the writer's last progress (a batch settled) or of the first event
        #: to wait since the queue was empty: how long waiting events have seen no commit (/healthz).
        self._progress_at = time.monotonic()
        metrics.gauge("consent_gateway_write_queue_depth", lambda: self._in_flight)

    async def start(self) -> None:
        await self._committer.start()
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time, once per event here.
        self._loop = asyncio.get_running_loop()
        self._running = True

    @property
    def running(self) -> bool:
        return self._running and self._store.is_open

    @property
    def depth(self) -> int:
        return self._in_flight

    @property
    def max_queue(self) -> int:
        return self._max_queue

    @property
    def stalled_seconds(self) -> float:
        """Seconds events have been waiting without any batch settling; 0 when none waits."""
        return time.monotonic() - self._progress_at if self._in_flight else 0.0

    @property
    def writer_problem(self) -> str | None:
        """Why the writer cannot write now, for /healthz; None when it can."""
        return "stopped" if not self.running else self._committer.problem

    async def stop(self) -> None:
        """Refuse new events and wait until every accepted one is answered, then stop the committer."""
        self._running = False
        await self._idle.wait()
        await self._committer.stop()

    async def write(self, event: AnonymousEvent) -> None:
        """Queue ``event`` and return once the transaction holding it has committed."""
        loop = self._loop
        if loop is None or not self.running:
            raise QueueFull("the writer is not running")
        if self._in_flight >= self._max_queue:
            raise QueueFull("the write queue is full")
        future: asyncio.Future[None] = loop.create_future()
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

    def _send_batches(self) -> None:
        while self._events and self._batches < self._max_in_flight:
            if len(self._events) <= self._max_batch:
                batch = _Batch(self._events, self._futures)
                self._events, self._futures = [], []
            else:
                batch = _Batch(self._events[: self._max_batch], self._futures[: self._max_batch])
                del self._events[: self._max_batch], self._futures[: self._max_batch]
            self._batches += 1
            try:
                now = self._clock.now() if self._forwarders else None
                outbox = _outbox_batches(self._forwarders, batch.events) if self._forwarders else []
            except Exception as error:  # noqa: BLE001 - a bug forming the batch fails its requests, not the loop
                self._settled(batch, 0.0, error)
                continue
            self._committer.commit(batch.events, outbox, now, partial(self._settled, batch))

    def _settled(self, batch: _Batch, elapsed: float, error: BaseException | None) -> None:
        """On the event loop, once per batch: count it, release its requests, send the next batch."""
        self._batches -= 1
        self._progress_at = time.monotonic()
        if error is None:
            self._metrics.inc("consent_gateway_write_batches_total")
            self._metrics.inc("consent_gateway_write_batch_events_total", len(batch.events))
            self._metrics.inc("consent_gateway_commit_seconds_total", elapsed)
            self._metrics.set_max("consent_gateway_commit_seconds_max", elapsed)
            if self._on_commit is not None:
                self._on_commit(batch.events)
            for future in batch.futures:
                if not future.done():
                    future.set_result(None)
        else:
            _log_failure(len(batch.events), error)
            for future in batch.futures:
                if not future.done():
                    future.set_exception(_refusal(error))
        self._send_batches()


def _outbox_batches(forwarders: Sequence[ForwarderSettings], events: Sequence[AnonymousEvent]) -> list[OutboxBatch]:
    from gateway.ingest.forward import outbox_batches  # only with forwarders: it brings the HTTP client along

    return outbox_batches(forwarders, events)


def _log_failure(count: int, error: BaseException) -> None:
    if isinstance(error, QueueFull):  # the committer's own words (a lost writer process): logged there
        return
    cause = failure_cause(error)
    if cause is not None:  # the operator's to fix: one line, no traceback per batch
        log.error("event batch of %d failed: %s (%s)", count, cause, error)
    elif getattr(error, "kind", None) is not None:  # reported by the writer process, traceback stayed there
        log.error("event batch of %d failed: %s", count, error)
    else:
        log.error("event batch of %d failed", count, exc_info=error)


def _refusal(error: BaseException) -> QueueFull:
    """One request's 503, chained to the batch's error so a full disk or a read-only file is told
    apart from a busy queue (gateway/web/storage_errors.py)."""
    if isinstance(error, QueueFull):
        refusal = QueueFull(str(error))
    else:
        kind = getattr(error, "kind", None) or type(error).__name__
        refusal = QueueFull(f"the database refused the batch: {kind}")
    refusal.__cause__ = error
    return refusal
