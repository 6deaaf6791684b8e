"""SQL for the cookie report: what the middleware saw of each cookie, summed per site and name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.storage.db import Database


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


_UPSERT = """
INSERT INTO cookie_report (
    site_id, name, category, times_set, times_blocked, times_capped, longest_asked, first_seen, last_seen
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site_id, name) DO UPDATE SET
    category = excluded.category,
    times_set = times_set + excluded.times_set,
    times_blocked = times_blocked + excluded.times_blocked,
    times_capped = times_capped + excluded.times_capped,
    longest_asked = CASE
        WHEN longest_asked IS NULL THEN excluded.longest_asked
        WHEN excluded.longest_asked IS NULL THEN longest_asked
        ELSE max(longest_asked, excluded.longest_asked) END,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen)
"""


async def add_cookie_tallies(db: Database, tallies: list[CookieTally]) -> None:
    """Add a batch of tallies in one transaction."""
    await db.execute_many(
        (
            _UPSERT,
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
            ),
        )
        for t in tallies
    )


async def cookie_report(db: Database, site_id: str) -> list[CookieTally]:
    rows = await db.fetch_all("SELECT * FROM cookie_report WHERE site_id = ? ORDER BY name", (site_id,))
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
