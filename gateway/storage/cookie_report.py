"""SQL for the cookie report: what the middleware saw of each cookie, summed per site and name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.storage.store import Store


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
        )
        for row in rows
    ]
