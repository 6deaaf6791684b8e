"""SQL for the forwarders' outbox (see migrations/0003_outbox.sql).

Rows are inserted inside the transaction that stores their events. A sender *claims* due
rows by moving ``next_attempt_at`` forward by a lease in one write transaction, so several
gateway processes on one database never send the same row at once, and a sender killed
mid-send leaves its rows to be retried when the lease runs out. On SQLite the write lock makes
the claim exclusive; on PostgreSQL the claim locks the rows it reads (``FOR UPDATE SKIP
LOCKED``): a node claiming at the same moment skips them and takes the next due rows, and
after the commit it sees their lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from gateway.storage.records import OutboxBatch
from gateway.storage.sql import Connection, is_postgres
from gateway.storage.store import Store

_INSERT = """
INSERT INTO outbox (forwarder, payload, event_count, created_at, attempts, next_attempt_at)
VALUES (?, ?, ?, ?, 0, ?)
"""
# PostgreSQL: the batch's rows as one JSON document, prepared and sent in the event writer's pipeline
# with the batch's other statements (gateway/storage/pg_pipeline.py), so forwarders add no round trip.
_INSERT_POSTGRES = """
INSERT INTO outbox (forwarder, payload, event_count, created_at, attempts, next_attempt_at)
SELECT r->>0, r->>1, CAST(r->>2 AS integer), CAST(%s AS text), 0, CAST(%s AS text)
FROM jsonb_array_elements(CAST(%s AS jsonb)) WITH ORDINALITY AS e (r, n) ORDER BY n
"""
_SELECT_DUE = """
SELECT id, forwarder, payload, event_count, attempts FROM outbox
WHERE forwarder = ? AND next_attempt_at <= ?
ORDER BY next_attempt_at, id
LIMIT ?
"""
_SELECT_DUE_POSTGRES = _SELECT_DUE.rstrip() + " FOR UPDATE SKIP LOCKED"
_LEASE = "UPDATE outbox SET next_attempt_at = ? WHERE id = ?"
_DELETE = "DELETE FROM outbox WHERE id = ?"
_FAILED = "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    forwarder: str
    #: A JSON array of event objects.
    payload: str
    event_count: int
    #: Failed sends so far.
    attempts: int


def _timestamp(moment: datetime) -> str:
    """A fixed-width UTC form, so that text order is time order in the ``next_attempt_at`` comparisons."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def enqueue_outbox(connection: Connection, batches: Sequence[OutboxBatch], *, now: datetime) -> None:
    """Queue each batch for its forwarder, due at once; called inside the transaction that stores
    the batches' events (``store_events``), so both commit or neither does."""
    stamp = _timestamp(now)
    if is_postgres(connection):
        rows = [(batch.forwarder, batch.payload, batch.event_count) for batch in batches]
        cast(Any, connection).execute_prepared(_INSERT_POSTGRES, (stamp, stamp, rows))
        return
    connection.executemany(
        _INSERT, [(batch.forwarder, batch.payload, batch.event_count, stamp, stamp) for batch in batches]
    )


def claim_outbox(
    connection: Connection, forwarder: str, *, now: datetime, lease_until: datetime, max_events: int
) -> list[OutboxEntry]:
    """Lease the oldest due rows of ``forwarder`` holding at most ``max_events`` events (always at least one row).

    Ordered by ``next_attempt_at`` so a row that keeps failing does not hold back the rows behind it.
    """
    select = _SELECT_DUE_POSTGRES if is_postgres(connection) else _SELECT_DUE
    rows = connection.execute(select, (forwarder, _timestamp(now), max(max_events, 1))).fetchall()
    claimed: list[OutboxEntry] = []
    total = 0
    for row_id, name, payload, event_count, attempts in rows:
        if claimed and total + event_count > max_events:
            break
        claimed.append(OutboxEntry(row_id, name, payload, event_count, attempts))
        total += event_count
    lease = _timestamp(lease_until)
    connection.executemany(_LEASE, [(lease, entry.id) for entry in claimed])
    return claimed


def delete_outbox(connection: Connection, ids: Sequence[int]) -> None:
    """Forget delivered rows."""
    connection.executemany(_DELETE, [(row_id,) for row_id in ids])


def record_outbox_failure(connection: Connection, retries: Sequence[tuple[int, datetime]], *, error: str) -> None:
    """Count a failed send of each ``(id, next_attempt_at)`` row and schedule its retry."""
    connection.executemany(_FAILED, [(_timestamp(when), error, row_id) for row_id, when in retries])


async def claim_due(
    store: Store, forwarder: str, *, now: datetime, lease_until: datetime, max_events: int
) -> list[OutboxEntry]:
    """``claim_outbox`` in a write transaction of its own: the sender's claim, with plain values in and out."""
    claim = partial(claim_outbox, forwarder=forwarder, now=now, lease_until=lease_until, max_events=max_events)
    return await store.write(claim)


async def forget_delivered(store: Store, ids: Sequence[int]) -> None:
    """Delete the rows a receiver took (its 2xx answer)."""
    await store.write(partial(delete_outbox, ids=list(ids)))


async def schedule_retries(store: Store, retries: Sequence[tuple[int, datetime]], *, error: str) -> None:
    """Count a failed send of each ``(id, next_attempt_at)`` row and schedule its retry, in one transaction."""
    await store.write(partial(record_outbox_failure, retries=list(retries), error=error))
