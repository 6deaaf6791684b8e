"""SQL for the daily salts. Several worker processes share them through the database.

A salt alone does not make visitor ids computable: they are keyed by the visitor key too,
which is never stored (gateway/ingest/visitor.py). A deleted salt is also scrubbed from the
files (``Store.scrub``), so a copy of them taken afterwards holds no byte of it.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from gateway.storage.sql import Connection
from gateway.storage.store import Store


async def salts_for(db: Store, day: str, previous_day: str | None, *, now: datetime) -> tuple[bytes, bytes | None]:
    """The salt of ``day`` (created if missing: the first worker wins) and, if asked, of ``previous_day``."""

    def read_or_create(connection: Connection) -> tuple[bytes, bytes | None]:
        # Insert if absent, then read back: every node and worker ends up with the row that won
        # (on PostgreSQL a second insert waits for the first to commit, then does nothing).
        connection.execute(
            "INSERT INTO salts (day, salt, created_at) VALUES (?, ?, ?) ON CONFLICT (day) DO NOTHING",
            (day, secrets.token_bytes(32), now.isoformat()),
        )
        (current,) = connection.execute("SELECT salt FROM salts WHERE day = ?", (day,)).fetchone()
        previous = None
        if previous_day is not None:
            row = connection.execute("SELECT salt FROM salts WHERE day = ?", (previous_day,)).fetchone()
            previous = bytes(row[0]) if row else None
        return bytes(current), previous

    return await db.write(read_or_create)


async def delete_salts_before(db: Store, day: str) -> int:
    """Delete every salt older than ``day`` for good: old visitor ids can no longer be recomputed.

    The writer deletes with ``secure_delete`` (the row's bytes are zeroed), then the scrub moves
    the zeroed page into the main file and empties ``-wal``, which still held earlier copies.
    """

    def delete(connection: Connection) -> int:
        return int(connection.execute("DELETE FROM salts WHERE day < ?", (day,)).rowcount)

    deleted = await db.write(delete)
    if deleted:
        await db.scrub()
    return deleted
