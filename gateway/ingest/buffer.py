"""The WriteBuffer: group commit for events, so 202 means durable.

Requests hand their event to the database's writer thread and wait. That thread takes every
event already queued (up to ``max_batch``), writes them in one transaction, commits once and
releases every waiting request with one callback on the event loop; the next batch starts at
once, without waiting for the loop. Too many events in flight are refused at once (the endpoint
answers 503 with Retry-After) rather than dropped silently. Shutdown waits for those in flight.
``ProcessWriteBuffer`` (writer_process.py) keeps this interface with the writing in a child process.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence

from gateway.ingest.event import AnonymousEvent
from gateway.metrics import Metrics
from gateway.storage.db import Database, failure_cause
from gateway.storage.events import insert_events

log = logging.getLogger("gateway.ingest")


class QueueFull(Exception):
    """The writer is behind: the client should retry later."""


class WriteBuffer:
    def __init__(
        self,
        database: Database,
        metrics: Metrics,
        *,
        max_queue: int = 10_000,
        max_batch: int = 1_000,
        on_commit: Callable[[Sequence[AnonymousEvent]], None] | None = None,
        in_transaction: Callable[[sqlite3.Connection, Sequence[AnonymousEvent]], object] | None = None,
    ) -> None:
        """``in_transaction`` runs inside each batch's transaction after the events are stored (the
        forwarders' outbox), so a committed event is always queued onward too."""
        self._database = database
        self._metrics = metrics
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._in_transaction = in_transaction
        self._running = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: ``time.monotonic()`` of the writer's last progress (a batch settled) or of the first event
        #: to wait since the queue was empty: how long waiting events have seen no commit (/healthz).
        self._progress_at = time.monotonic()
        metrics.gauge("consent_gateway_write_queue_depth", lambda: self._in_flight)

    async def start(self) -> None:
        self._running = True

    @property
    def running(self) -> bool:
        return self._running and self._database.is_open

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
        return None if self.running else "stopped"

    async def stop(self) -> None:
        """Refuse new events and wait until every accepted one is written."""
        self._running = False
        await self._idle.wait()

    async def write(self, event: AnonymousEvent) -> None:
        """Queue ``event`` and return once its transaction has committed."""
        if not self.running:
            raise QueueFull("the writer is not running")
        if self._in_flight >= self._max_queue:
            raise QueueFull("the write queue is full")
        if not self._in_flight:
            self._progress_at = time.monotonic()
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._database.write_grouped(self._store, event, max_batch=self._max_batch, settled=self._settled)
        except Exception as error:  # the batch was rolled back: this event is not stored
            # Chained: a full disk or a read-only file is told apart from a busy queue (storage_errors.py).
            raise QueueFull(f"the database refused the batch: {type(error).__name__}") from error
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    def _store(self, connection: sqlite3.Connection, events: list[AnonymousEvent]) -> None:
        """On the writer thread, inside the batch's transaction."""
        insert_events(connection, events)
        if self._in_transaction is not None:
            self._in_transaction(connection, events)

    def _settled(self, events: list[AnonymousEvent], elapsed: float, error: BaseException | None) -> None:
        """On the event loop, once per batch, before the waiting requests are released."""
        self._progress_at = time.monotonic()
        if error is not None:
            cause = failure_cause(error)
            if cause is not None:  # the operator's to fix: one line, no traceback per batch
                log.error("event batch of %d failed: %s (%s)", len(events), cause, error)
            else:
                log.error("event batch of %d failed", len(events), exc_info=error)
            return
        self._metrics.inc("consent_gateway_write_batches_total")
        self._metrics.inc("consent_gateway_write_batch_events_total", len(events))
        self._metrics.inc("consent_gateway_commit_seconds_total", elapsed)
        self._metrics.set_max("consent_gateway_commit_seconds_max", elapsed)
        if self._on_commit is not None:
            self._on_commit(events)
