"""The WriteBuffer: group commit for events, so 202 means durable.

Requests put their event on a bounded queue and wait. One writer task takes everything
queued (up to ``max_batch``), writes it in one transaction on the database's writer
thread, commits once and releases every waiting request. A full queue is refused at once
(the endpoint answers 503 with Retry-After) rather than dropped silently. Shutdown drains
the queue before closing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from gateway.ingest.event import AnonymousEvent
from gateway.metrics import Metrics
from gateway.storage.db import Database
from gateway.storage.events import insert_events

log = logging.getLogger("gateway.ingest")


class QueueFull(Exception):
    """The writer is behind: the client should retry later."""


@dataclass(slots=True)
class _Pending:
    event: AnonymousEvent
    done: asyncio.Future[None]


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
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._in_transaction = in_transaction
        self._task: asyncio.Task[None] | None = None
        metrics.gauge("consent_gateway_write_queue_depth", self._queue.qsize)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-writer")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def stop(self) -> None:
        """Write everything queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def write(self, event: AnonymousEvent) -> None:
        """Queue ``event`` and return once its transaction has committed."""
        if self._task is None or self._task.done():
            raise QueueFull("the writer is not running")
        pending = _Pending(event, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise QueueFull("the write queue is full") from None
        await pending.done

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[_Pending] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                await self._commit(batch)

    def _store(self, connection: sqlite3.Connection, *, events: Sequence[AnonymousEvent]) -> None:
        insert_events(connection, events)
        if self._in_transaction is not None:
            self._in_transaction(connection, events)

    async def _commit(self, batch: list[_Pending]) -> None:
        events = [pending.event for pending in batch]
        started = time.perf_counter()
        try:
            await self._database.write(partial(self._store, events=events))
        except Exception as error:  # every waiting request learns it was not stored
            log.exception("event batch of %d failed", len(batch))
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(QueueFull(f"the database refused the batch: {type(error).__name__}"))
            return
        elapsed = time.perf_counter() - started
        self._metrics.inc("consent_gateway_write_batches_total")
        self._metrics.inc("consent_gateway_write_batch_events_total", len(batch))
        self._metrics.inc("consent_gateway_commit_seconds_total", elapsed)
        self._metrics.set_max("consent_gateway_commit_seconds_max", elapsed)
        for pending in batch:
            if not pending.done.done():
                pending.done.set_result(None)
        if self._on_commit is not None:
            self._on_commit(events)
