"""SQL for the daily salts. Several worker processes share them through the database."""

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
    """Delete every salt older than ``day`` for good: old visitor ids can no longer be recomputed."""

    def delete(connection: sqlite3.Connection) -> int:
        return int(connection.execute("DELETE FROM salts WHERE day < ?", (day,)).rowcount)

    return await db.write(delete)
