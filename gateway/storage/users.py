"""SQL for dashboard accounts and their roles per site (see migrations/0005_users.sql).

Removing a user, changing a password and changing a role end the user's sessions in the same
transaction (``storage/sessions.py``): whoever held a session signs in again under the new terms.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from gateway.storage.db import Database
from gateway.storage.sessions import end_sessions_of

Role = Literal["owner", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "viewer")
#: A user name: short, printable, nothing a page or a log line would have to escape.
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


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


async def add_user(db: Database, name: str, password_hash: str, *, is_admin: bool, now: datetime) -> int:
    def add(connection: sqlite3.Connection) -> int:
        try:
            cursor = connection.execute(
                "INSERT INTO users (name, password_hash, is_admin, created_at, password_changed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, password_hash, int(is_admin), now.isoformat(), now.isoformat()),
            )
        except sqlite3.IntegrityError:
            raise UserError(f"a user named {name!r} exists already") from None
        return int(cursor.lastrowid or 0)

    return await db.write(add)


async def remove_user(db: Database, name: str) -> None:
    def remove(connection: sqlite3.Connection) -> None:
        row = connection.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UserError(f"no user named {name!r}")
        connection.execute("DELETE FROM site_roles WHERE user_id = ?", (row[0],))
        end_sessions_of(connection, row[0])
        connection.execute("DELETE FROM users WHERE id = ?", (row[0],))

    await db.write(remove)


async def set_password(db: Database, name: str, password_hash: str, *, now: datetime) -> None:
    def update(connection: sqlite3.Connection) -> None:
        row = connection.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UserError(f"no user named {name!r}")
        connection.execute(
            "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
            (password_hash, now.isoformat(), row[0]),
        )
        end_sessions_of(connection, row[0])

    await db.write(update)


async def grant(db: Database, name: str, site_id: str, role: Role | None) -> None:
    """Give ``name`` a role on ``site_id`` (replacing any), or take it away with ``role=None``; either ends
    the user's sessions."""

    def change(connection: sqlite3.Connection) -> None:
        row = connection.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
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


async def get_user(db: Database, name: str) -> User | None:
    rows = await db.fetch_all("SELECT * FROM users WHERE name = ?", (name,))
    return (await _with_roles(db, rows))[0] if rows else None


async def get_user_by_id(db: Database, user_id: int) -> User | None:
    """The user behind a session cookie (which holds the id, so a rename keeps the session)."""
    rows = await db.fetch_all("SELECT * FROM users WHERE id = ?", (user_id,))
    if not rows:
        return None
    roles = await db.fetch_all("SELECT user_id, site_id, role FROM site_roles WHERE user_id = ?", (user_id,))
    return _user(rows[0], {row["site_id"]: row["role"] for row in roles})


async def count_users(db: Database) -> int:
    rows = await db.fetch_all("SELECT count(*) AS n FROM users", ())
    return int(rows[0]["n"])


async def list_users(db: Database) -> list[User]:
    return await _with_roles(db, await db.fetch_all("SELECT * FROM users ORDER BY name COLLATE NOCASE"))


async def _with_roles(db: Database, rows: list[sqlite3.Row]) -> list[User]:
    roles = await db.fetch_all("SELECT user_id, site_id, role FROM site_roles ORDER BY site_id")
    by_user: dict[int, dict[str, Role]] = {}
    for row in roles:
        by_user.setdefault(row["user_id"], {})[row["site_id"]] = row["role"]
    return [_user(row, by_user.get(row["id"], {})) for row in rows]


def _user(row: sqlite3.Row, roles: dict[str, Role]) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        password_hash=row["password_hash"],
        is_admin=bool(row["is_admin"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        password_changed_at=datetime.fromisoformat(row["password_changed_at"]),
        roles=roles,
    )
