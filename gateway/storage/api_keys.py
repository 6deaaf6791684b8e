"""SQL for the per-site API keys (see migrations/0006_api_keys_and_links.sql).

Only the SHA-256 of a key is ever stored or looked up; the plaintext never reaches this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.storage.sql import Connection
from gateway.storage.store import Store

_INSERT = (
    "INSERT INTO api_keys (site_id, name, prefix, key_hash, created_at, permissions) "
    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
)
_SELECT_BY_HASH = "SELECT * FROM api_keys WHERE key_hash = ?"
_SELECT_BY_SITE = "SELECT * FROM api_keys WHERE site_id = ? ORDER BY id"
# Compare-and-set on the value read: of several workers seeing the same key at once, one writes.
# coalesce(..., '') so that NULL (never used) matches NULL on both stores (SQLite's ``IS ?`` is
# ``IS NOT DISTINCT FROM`` on PostgreSQL).
_TOUCH = (
    "UPDATE api_keys SET last_used_at = ? "
    "WHERE id = ? AND coalesce(last_used_at, '') = coalesce(?, '') AND revoked_at IS NULL"
)
# A key revoked earlier keeps its first revocation time.
_REVOKE = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND site_id = ?"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as owners see it: never the key itself, only its first characters (``prefix``)."""

    id: int
    site_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    #: What the key may read besides the statistics (``consent_log``); stored space-separated.
    permissions: frozenset[str] = frozenset()


async def insert_api_key(
    db: Store,
    site_id: str,
    name: str,
    prefix: str,
    key_hash: str,
    *,
    now: datetime,
    permissions: frozenset[str] = frozenset(),
) -> ApiKey:
    stored = " ".join(sorted(permissions))

    def insert(connection: Connection) -> ApiKey:
        key_id = connection.execute(_INSERT, (site_id, name, prefix, key_hash, now.isoformat(), stored)).fetchone()[0]
        return ApiKey(int(key_id), site_id, name, prefix, now, None, None, permissions)

    return await db.write(insert)


async def api_key_by_hash(db: Store, key_hash: str) -> ApiKey | None:
    """The key with this hash, revoked or not (the caller decides)."""
    rows = await db.fetch_all(_SELECT_BY_HASH, (key_hash,))
    return _api_key(rows[0]) if rows else None


async def touch_api_key(db: Store, key_id: int, seen: datetime | None, *, now: datetime) -> bool:
    """Set ``last_used_at`` to ``now`` if it still holds ``seen``; False when another writer was first."""
    previous = seen.isoformat() if seen is not None else None

    def touch(connection: Connection) -> bool:
        return connection.execute(_TOUCH, (now.isoformat(), key_id, previous)).rowcount > 0

    return await db.write(touch)


async def api_keys_of(db: Store, site_id: str) -> list[ApiKey]:
    return [_api_key(row) for row in await db.fetch_all(_SELECT_BY_SITE, (site_id,))]


async def revoke_stored_api_key(db: Store, site_id: str, key_id: int, *, now: datetime) -> bool:
    """False when ``key_id`` is not a key of ``site_id`` (a key of another site is left alone)."""

    def revoke(connection: Connection) -> bool:
        return connection.execute(_REVOKE, (now.isoformat(), key_id, site_id)).rowcount > 0

    return await db.write(revoke)


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        site_id=row["site_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=datetime.fromisoformat(row["created_at"]),
        last_used_at=_time(row["last_used_at"]),
        revoked_at=_time(row["revoked_at"]),
        permissions=frozenset(row["permissions"].split()),
    )


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None
