"""SQL for the daily salts. Several worker processes share them through the database.

A salt alone does not make visitor ids computable: they are keyed by the visitor key too,
which is never stored (gateway/ingest/visitor.py). A deleted salt is also scrubbed from the
files (``Database.scrub``), so a copy of them taken afterwards holds no byte of it.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime

from gateway.storage.db import Database


async def salts_for(db: Database, day: str, previous_day: str | None, *, now: datetime) -> tuple[bytes, bytes | None]:
    """The salt of ``day`` (created if missing: the first worker wins) and, if asked, of ``previous_day``."""

    def read_or_create(connection: sqlite3.Connection) -> tuple[bytes, bytes | None]:
        connection.execute(
            "INSERT OR IGNORE INTO salts (day, salt, created_at) VALUES (?, ?, ?)",
            (day, secrets.token_bytes(32), now.isoformat()),
        )
        (current,) = connection.execute("SELECT salt FROM salts WHERE day = ?", (day,)).fetchone()
        previous = None
        if previous_day is not None:
            row = connection.execute("SELECT salt FROM salts WHERE day = ?", (previous_day,)).fetchone()
            previous = bytes(row[0]) if row else None
        return bytes(current), previous

    return await db.write(read_or_create)


async def delete_salts_before(db: Database, day: str) -> int:
    """Delete every salt older than ``day`` for good: old visitor ids can no longer be recomputed.

    The writer deletes with ``secure_delete`` (the row's bytes are zeroed), then the scrub moves
    the zeroed page into the main file and empties ``-wal``, which still held earlier copies.
    """

    def delete(connection: sqlite3.Connection) -> int:
        return int(connection.execute("DELETE FROM salts WHERE day < ?", (day,)).rowcount)

    deleted = await db.write(delete)
    if deleted:
        await db.scrub()
    return deleted
