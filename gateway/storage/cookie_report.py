"""SQL for the cookie report: what the middleware and the snippet saw of each cookie, summed per site and name.

The middleware counts ``Set-Cookie`` headers (``times_set``, ``times_blocked``, ``times_capped``); the
snippet reports names it finds in ``document.cookie`` that the site does not declare
(``times_seen_by_script``). A cookie can be seen either way or both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.storage.sql import Connection
from gateway.storage.store import Store

SeenBy = Literal["header", "script", "both"]


@dataclass(frozen=True, slots=True)
class CookieTally:
    site_id: str
    name: str
    category: str | None
    times_set: int
    times_blocked: int
    times_capped: int
    longest_asked: int | None
    first_seen: datetime
    last_seen: datetime
    times_seen_by_script: int = 0

    @property
    def seen_by(self) -> SeenBy:
        """How the cookie was seen: in a response's ``Set-Cookie`` (kept or not), in ``document.cookie``, or both."""
        by_header = self.times_set + self.times_blocked > 0
        if by_header and self.times_seen_by_script:
            return "both"
        return "header" if by_header else "script"


@dataclass(frozen=True, slots=True)
class ScriptSighting:
    """A cookie name the snippet found in ``document.cookie``, ``times`` page loads since the last flush."""

    category: str | None
    times: int
    first_seen: datetime
    last_seen: datetime


# The stored values are named with their table (PostgreSQL finds a bare name beside ``excluded``
# ambiguous) and compared with CASE (SQLite's two-argument max() is GREATEST on PostgreSQL).
_UPSERT = """
INSERT INTO cookie_report (
    site_id, name, category, times_set, times_blocked, times_capped, longest_asked, first_seen, last_seen
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site_id, name) DO UPDATE SET
    category = excluded.category,
    times_set = cookie_report.times_set + excluded.times_set,
    times_blocked = cookie_report.times_blocked + excluded.times_blocked,
    times_capped = cookie_report.times_capped + excluded.times_capped,
    longest_asked = CASE
        WHEN cookie_report.longest_asked IS NULL THEN excluded.longest_asked
        WHEN excluded.longest_asked IS NULL THEN cookie_report.longest_asked
        WHEN excluded.longest_asked > cookie_report.longest_asked THEN excluded.longest_asked
        ELSE cookie_report.longest_asked END,
    first_seen = CASE WHEN excluded.first_seen < cookie_report.first_seen
        THEN excluded.first_seen ELSE cookie_report.first_seen END,
    last_seen = CASE WHEN excluded.last_seen > cookie_report.last_seen
        THEN excluded.last_seen ELSE cookie_report.last_seen END
"""


async def add_cookie_tallies(db: Store, tallies: list[CookieTally]) -> None:
    """Add a batch of tallies in one transaction."""
    rows = [
        (
            t.site_id,
            t.name,
            t.category,
            t.times_set,
            t.times_blocked,
            t.times_capped,
            t.longest_asked,
            t.first_seen.isoformat(),
            t.last_seen.isoformat(),
        )
        for t in tallies
    ]
    await db.write(lambda connection: connection.executemany(_UPSERT, rows))


_ADD_SIGHTING = """
UPDATE cookie_report SET
    category = coalesce(?, cookie_report.category),
    times_seen_by_script = cookie_report.times_seen_by_script + ?,
    first_seen = CASE WHEN ? < cookie_report.first_seen THEN ? ELSE cookie_report.first_seen END,
    last_seen = CASE WHEN ? > cookie_report.last_seen THEN ? ELSE cookie_report.last_seen END
WHERE site_id = ? AND name = ?
"""

_NEW_SIGHTING = """
INSERT INTO cookie_report (
    site_id, name, category, times_set, times_blocked, times_capped, longest_asked, first_seen, last_seen,
    times_seen_by_script
) VALUES (?, ?, ?, 0, 0, 0, NULL, ?, ?, ?)
ON CONFLICT (site_id, name) DO UPDATE SET
    times_seen_by_script = cookie_report.times_seen_by_script + excluded.times_seen_by_script
"""


async def add_script_sightings(
    db: Store, site_id: str, sightings: Mapping[str, ScriptSighting], *, max_names: int
) -> int:
    """Count names seen by script in one transaction; returns how many new names were left out.

    Anyone can post names, so a site's report takes new names only while it holds fewer than
    ``max_names`` rows: a flood of invented names cannot grow the table without bound. Names
    already in the report are always counted. The category keeps the middleware's when the catalog
    does not know the name (the middleware may have classified it by its domain).
    """

    def write(connection: Connection) -> int:
        rows = connection.execute("SELECT count(*) FROM cookie_report WHERE site_id = ?", (site_id,)).fetchone()[0]
        left_out = 0
        for name, seen in sightings.items():
            first, last = seen.first_seen.isoformat(), seen.last_seen.isoformat()
            updated = connection.execute(
                _ADD_SIGHTING, (seen.category, seen.times, first, first, last, last, site_id, name)
            ).rowcount
            if updated:
                continue
            if rows >= max_names:
                left_out += 1
                continue
            connection.execute(_NEW_SIGHTING, (site_id, name, seen.category, first, last, seen.times))
            rows += 1
        return left_out

    return await db.write(write)


async def cookie_report(db: Store, site_id: str) -> list[CookieTally]:
    # Sorted here, not by ORDER BY: a PostgreSQL database's collation would order names unlike SQLite.
    rows = sorted(
        await db.fetch_all("SELECT * FROM cookie_report WHERE site_id = ?", (site_id,)), key=lambda row: row["name"]
    )
    return [
        CookieTally(
            site_id=row["site_id"],
            name=row["name"],
            category=row["category"],
            times_set=row["times_set"],
            times_blocked=row["times_blocked"],
            times_capped=row["times_capped"],
            longest_asked=row["longest_asked"],
            first_seen=datetime.fromisoformat(row["first_seen"]),
            last_seen=datetime.fromisoformat(row["last_seen"]),
            times_seen_by_script=row["times_seen_by_script"],
        )
        for row in rows
    ]
