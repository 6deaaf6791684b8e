"""SQL for server-side dashboard sessions (see migrations/0014_sessions.sql).

Rows are found by the SHA-256 of the cookie's session id; the id itself is never stored. The
functions taking a ``Connection`` run inside another write of ``storage/`` (a password
change, a role change, removing a user), so the sessions end in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.storage.sql import Connection
from gateway.storage.store import Store


@dataclass(frozen=True, slots=True)
class StoredSession:
    id: int
    user_id: int
    csrf_token: str
    created_at: datetime
    last_seen: datetime
    #: The login's network (IPv4 /24, IPv6 /48), or None when the address was not an IP.
    network: str | None


async def insert_session(
    db: Store, id_hash: str, *, user_id: int, csrf_token: str, now: datetime, network: str | None
) -> None:
    await db.write(
        lambda connection: connection.execute(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen, network) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (id_hash, user_id, csrf_token, _at(now), _at(now), network),
        )
    )


async def session_by_hash(db: Store, id_hash: str) -> StoredSession | None:
    rows = await db.fetch_all("SELECT * FROM sessions WHERE id_hash = ?", (id_hash,))
    return _session(rows[0]) if rows else None


async def touch_session(db: Store, session_id: int, now: datetime) -> None:
    await db.write(
        lambda connection: connection.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (_at(now), session_id))
    )


async def delete_session(db: Store, id_hash: str) -> None:
    await db.write(lambda connection: connection.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,)))


async def revoke_session(db: Store, user_id: int, session_id: int) -> bool:
    """End one session of ``user_id``; False when the user has no such session (another's is kept)."""

    def revoke(connection: Connection) -> bool:
        cursor = connection.execute("DELETE FROM sessions WHERE id = ? AND user_id = ?", (session_id, user_id))
        return cursor.rowcount > 0

    return await db.write(revoke)


async def revoke_sessions_of(db: Store, user_id: int) -> int:
    return await db.write(lambda connection: end_sessions_of(connection, user_id))


def end_sessions_of(connection: Connection, user_id: int) -> int:
    """Inside another write: every session of ``user_id`` ends with it."""
    return connection.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount


async def live_sessions(db: Store, *, seen_since: datetime, created_since: datetime) -> list[StoredSession]:
    """Sessions not past their idle or absolute timeout, newest activity first."""
    rows = await db.fetch_all(
        "SELECT * FROM sessions WHERE last_seen >= ? AND created_at >= ? ORDER BY last_seen DESC",
        (_at(seen_since), _at(created_since)),
    )
    return [_session(row) for row in rows]


async def purge_sessions(store: Store, *, seen_before: datetime, created_before: datetime) -> int:
    """Delete sessions past their idle or absolute timeout (they can no longer sign anyone in)."""

    def purge(connection: Connection) -> int:
        return connection.execute(
            "DELETE FROM sessions WHERE last_seen < ? OR created_at < ?", (_at(seen_before), _at(created_before))
        ).rowcount

    return await store.write(purge)


def _at(moment: datetime) -> str:
    # One fixed width, so text order is time order.
    return moment.isoformat(timespec="microseconds")


def _session(row: Any) -> StoredSession:
    return StoredSession(
        id=row["id"],
        user_id=row["user_id"],
        csrf_token=row["csrf_token"],
        created_at=datetime.fromisoformat(row["created_at"]),
        last_seen=datetime.fromisoformat(row["last_seen"]),
        network=row["network"],
    )
