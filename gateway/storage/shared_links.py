"""SQL for the read-only shared dashboard links (see migrations/0006_api_keys_and_links.sql)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.storage.sql import Connection
from gateway.storage.store import Store

_INSERT = """
INSERT INTO shared_links (site_id, label, nonce, password_hash, created_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?) RETURNING id
"""
_SELECT_BY_ID = "SELECT * FROM shared_links WHERE id = ?"
_SELECT_BY_SITE = "SELECT * FROM shared_links WHERE site_id = ? ORDER BY id"
# A link revoked earlier keeps its first revocation time.
_REVOKE = "UPDATE shared_links SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND site_id = ?"


@dataclass(frozen=True, slots=True)
class SharedLink:
    """A read-only link to one site's dashboard; open it through ``SharedLinks.open``, which checks everything."""

    id: int
    site_id: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    password_hash: str | None = field(repr=False)
    #: The random value the link's token is bound to; part of the token, so never printed.
    nonce: str = field(repr=False)

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


async def insert_shared_link(
    db: Store,
    site_id: str,
    *,
    label: str,
    nonce: str,
    password_hash: str | None,
    expires_at: datetime | None,
    now: datetime,
) -> SharedLink:
    expires = expires_at.isoformat() if expires_at is not None else None

    def insert(connection: Connection) -> SharedLink:
        row = connection.execute(_INSERT, (site_id, label, nonce, password_hash, now.isoformat(), expires)).fetchone()
        return SharedLink(int(row[0]), site_id, label, now, expires_at, None, password_hash, nonce)

    return await db.write(insert)


async def shared_link_by_id(db: Store, link_id: int) -> SharedLink | None:
    rows = await db.fetch_all(_SELECT_BY_ID, (link_id,))
    return _shared_link(rows[0]) if rows else None


async def shared_links_of(db: Store, site_id: str) -> list[SharedLink]:
    return [_shared_link(row) for row in await db.fetch_all(_SELECT_BY_SITE, (site_id,))]


async def revoke_stored_shared_link(db: Store, site_id: str, link_id: int, *, now: datetime) -> bool:
    """False when ``link_id`` is not a link of ``site_id`` (a link of another site is left alone)."""

    def revoke(connection: Connection) -> bool:
        return connection.execute(_REVOKE, (now.isoformat(), link_id, site_id)).rowcount > 0

    return await db.write(revoke)


def _shared_link(row: Any) -> SharedLink:
    return SharedLink(
        id=row["id"],
        site_id=row["site_id"],
        label=row["label"],
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=_time(row["expires_at"]),
        revoked_at=_time(row["revoked_at"]),
        password_hash=row["password_hash"],
        nonce=row["nonce"],
    )


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None
