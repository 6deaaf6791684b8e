"""SQL for the workers' published metric snapshots (see migration 0004)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime

from gateway.storage.db import Database

Sample = tuple[str, tuple[tuple[str, str], ...], float]

_PUBLISH = """
INSERT INTO worker_metrics (worker, name, labels, value, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (worker, name, labels) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""


async def publish_samples(db: Database, worker: str, samples: Iterable[Sample], *, now: datetime) -> None:
    rows = [(worker, name, json.dumps(labels), value, now.isoformat()) for name, labels, value in samples]

    def publish(connection: sqlite3.Connection) -> None:
        connection.executemany(_PUBLISH, rows)

    await db.write(publish)


async def other_workers_samples(db: Database, worker: str, *, seen_since: datetime) -> list[tuple[str, Sample]]:
    """(worker, sample) of every other worker that published since ``seen_since``."""
    rows = await db.fetch_all(
        "SELECT worker, name, labels, value FROM worker_metrics WHERE worker != ? AND updated_at >= ?",
        (worker, seen_since.isoformat()),
    )
    return [
        (row["worker"], (row["name"], tuple(tuple(pair) for pair in json.loads(row["labels"])), row["value"]))
        for row in rows
    ]


async def forget_workers_before(db: Database, cutoff: datetime) -> None:
    """Drop the snapshots of workers gone quiet (stopped processes)."""
    await db.write(lambda c: c.execute("DELETE FROM worker_metrics WHERE updated_at < ?", (cutoff.isoformat(),)))
