"""Stored visits for filtered views (gateway/storage/visit_days.py) built by the maintenance leader right
after it rolls a day up, so the first filtered view of a rolled-up day finds them ready."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.clock import FixedClock
from gateway.maintenance import Maintenance
from gateway.settings import Settings
from gateway.storage.events import insert_events
from gateway.storage.visit_days import stale_days
from tests.storage.test_rollups import event
from tests.test_maintenance import NOW, TODAY, opened, query, settings  # noqa: F401 (the fixture)


def test_maintenance_builds_the_stored_visits_of_the_days_it_rolls_up(settings: Settings) -> None:  # noqa: F811
    clock = FixedClock(NOW)

    async def scenario() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        async with opened(settings.database) as db:
            maintenance = Maintenance(db, settings, clock)
            await maintenance.run_once()
            after_rollup = await stale_days(db, "shop", "2026-01-01", TODAY)
            await db.write(lambda connection: insert_events(connection, [event(NOW + timedelta(minutes=1), "c", "/")]))
            clock.advance(timedelta(minutes=5))
            await maintenance.run_once()  # today rolled up again: its visits follow
            return after_rollup, await stale_days(db, "shop", "2026-01-01", TODAY)

    after_rollup, after_second = asyncio.run(scenario())
    assert after_rollup == [] and after_second == []
    # a = visitor 1, b = 2, c = 3: today's three visitors numbered within the day, each of one visit
    assert query(settings, "SELECT visitor, mixed FROM visit_days WHERE day = '2026-03-10' ORDER BY visitor") == [
        (1, 0),
        (2, 0),
        (3, 0),
    ]
