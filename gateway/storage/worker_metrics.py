"""SQL for the workers' published metric snapshots (see migrations 0004 and 0017).

Each row is one value of one worker process, and names the node the worker belongs to: one
``serve`` (its workers share a node id), one machine or container. A node's ``/metrics`` adds
only its own workers' rows, so a Prometheus that scrapes every node and sums counts each node
once; rows of other nodes sharing the database are never added in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from gateway.storage.sql import Connection
from gateway.storage.store import Store

Sample = tuple[str, tuple[tuple[str, str], ...], float]

_PUBLISH = """
INSERT INTO worker_metrics (node, worker, name, labels, value, updated_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (worker, name, labels) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""
_SIBLINGS = """
SELECT worker, name, labels, value FROM worker_metrics WHERE node = ? AND worker != ? AND updated_at >= ?
"""


async def publish_samples(db: Store, node: str, worker: str, samples: Iterable[Sample], *, now: datetime) -> None:
    rows = [(node, worker, name, json.dumps(labels), value, now.isoformat()) for name, labels, value in samples]

    def publish(connection: Connection) -> None:
        connection.executemany(_PUBLISH, rows)

    await db.write(publish)


async def sibling_samples(db: Store, node: str, worker: str, *, seen_since: datetime) -> list[tuple[str, Sample]]:
    """(worker, sample) of every other worker of ``node`` that published since ``seen_since``.

    ``seen_since`` comes from the node's own clock, as do its workers' ``updated_at``: one machine's
    clock, so a skewed clock on another node never makes a live worker look gone here.
    """
    rows = await db.fetch_all(_SIBLINGS, (node, worker, seen_since.isoformat()))
    return [
        (row["worker"], (row["name"], tuple(tuple(pair) for pair in json.loads(row["labels"])), row["value"]))
        for row in rows
    ]


async def forget_workers_before(db: Store, cutoff: datetime) -> None:
    """Drop the snapshots of workers gone quiet (stopped processes), on every node: a node that
    stopped for good leaves rows nobody else would delete."""
    await db.write(lambda c: c.execute("DELETE FROM worker_metrics WHERE updated_at < ?", (cutoff.isoformat(),)))
