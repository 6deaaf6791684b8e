"""SQL for dashboard accounts and their roles per site (see migrations/0005_users.sql).

User names are case-insensitive: "Alice" and "alice" are one account. SQLite's column is
``COLLATE NOCASE``; PostgreSQL has a unique index on ``lower(name)``; the statements here compare
``lower(name) = lower(?)``, which means the same on both for the ASCII names ``USER_NAME`` allows.

Removing a user, changing a password and changing a role end the user's sessions in the same
transaction (``storage/sessions.py``): whoever held a session signs in again under the new terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gateway.storage.sessions import end_sessions_of
from gateway.storage.sql import Connection
from gateway.storage.store import Store

Role = Literal["owner", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "viewer")
#: A user name: short, printable, nothing a page or a log line would have to escape.
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


_BY_NAME = "SELECT * FROM users WHERE lower(name) = lower(?)"
_ID_BY_NAME = "SELECT id FROM users WHERE lower(name) = lower(?)"


class UserError(ValueError):
    """An account change that cannot be made (a duplicate name, an unknown user)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    password_hash: str
    is_admin: bool
    created_at: datetime
    password_changed_at: datetime
    roles: dict[str, Role] = field(default_factory=dict)

    def role_for(self, site_id: str) -> Role | None:
        """The user's role on a site; the instance admin owns every site."""
        return "owner" if self.is_admin else self.roles.get(site_id)


async def add_user(db: Store, name: str, password_hash: str, *, is_admin: bool, now: datetime) -> int:
    def add(connection: Connection) -> int:
        # ON CONFLICT DO NOTHING: a taken name (in any case) returns no row on both stores, even when
        # another node adds the same name at the same moment, instead of a driver's integrity error.
        row = connection.execute(
            "INSERT INTO users (name, password_hash, is_admin, created_at, password_changed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (name, password_hash, int(is_admin), now.isoformat(), now.isoformat()),
        ).fetchone()
        if row is None:
            raise UserError(f"a user named {name!r} exists already")
        return int(row[0])

    return await db.write(add)


async def remove_user(db: Store, name: str) -> None:
    def remove(connection: Connection) -> None:
        row = connection.execute(_ID_BY_NAME, (name,)).fetchone()
        if row is None:
            raise UserError(f"no user named {name!r}")
        connection.execute("DELETE FROM site_roles WHERE user_id = ?", (row[0],))
        end_sessions_of(connection, row[0])
        connection.execute("DELETE FROM users WHERE id = ?", (row[0],))

    await db.write(remove)


async def set_password(db: Store, name: str, password_hash: str, *, now: datetime) -> None:
    def update(connection: Connection) -> None:
        row = connection.execute(_ID_BY_NAME, (name,)).fetchone()
        if row is None:
            raise UserError(f"no user named {name!r}")
        connection.execute(
            "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
            (password_hash, now.isoformat(), row[0]),
        )
        end_sessions_of(connection, row[0])

    await db.write(update)


async def grant(db: Store, name: str, site_id: str, role: Role | None) -> None:
    """Give ``name`` a role on ``site_id`` (replacing any), or take it away with ``role=None``; either ends
    the user's sessions."""

    def change(connection: Connection) -> None:
        row = connection.execute(_ID_BY_NAME, (name,)).fetchone()
        if row is None:
            raise UserError(f"no user named {name!r}")
        if role is None:
            connection.execute("DELETE FROM site_roles WHERE user_id = ? AND site_id = ?", (row[0], site_id))
        else:
            connection.execute(
                "INSERT INTO site_roles (user_id, site_id, role) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, site_id) DO UPDATE SET role = excluded.role",
                (row[0], site_id, role),
            )
        end_sessions_of(connection, row[0])

    await db.write(change)


async def get_user(db: Store, name: str) -> User | None:
    rows = await db.fetch_all(_BY_NAME, (name,))
    return (await _with_roles(db, rows))[0] if rows else None


async def get_user_by_id(db: Store, user_id: int) -> User | None:
    """The user behind a session cookie (which holds the id, so a rename keeps the session)."""
    rows = await db.fetch_all("SELECT * FROM users WHERE id = ?", (user_id,))
    if not rows:
        return None
    roles = await db.fetch_all("SELECT user_id, site_id, role FROM site_roles WHERE user_id = ?", (user_id,))
    return _user(rows[0], {row["site_id"]: row["role"] for row in roles})


async def count_users(db: Store) -> int:
    rows = await db.fetch_all("SELECT count(*) AS n FROM users", ())
    return int(rows[0]["n"])


async def list_users(db: Store) -> list[User]:
    # Sorted here, not by ORDER BY: the two stores' collations would order names differently.
    users = await _with_roles(db, await db.fetch_all("SELECT * FROM users"))
    return sorted(users, key=lambda user: (user.name.lower(), user.name))


async def _with_roles(db: Store, rows: list[Any]) -> list[User]:
    roles = sorted(await db.fetch_all("SELECT user_id, site_id, role FROM site_roles"), key=lambda row: row["site_id"])
    by_user: dict[int, dict[str, Role]] = {}
    for row in roles:
        by_user.setdefault(row["user_id"], {})[row["site_id"]] = row["role"]
    return [_user(row, by_user.get(row["id"], {})) for row in rows]


def _user(row: Any, roles: dict[str, Role]) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        password_hash=row["password_hash"],
        is_admin=bool(row["is_admin"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        password_changed_at=datetime.fromisoformat(row["password_changed_at"]),
        roles=roles,
    )
