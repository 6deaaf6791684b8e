"""Stored visits for filtered views (gateway/storage/visit_days.py) built by the maintenance leader right
after it rolls a day up, so the first filtered view of a rolled-up day finds them ready."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.clock import FixedClock
from gateway.maintenance import Maintenance
from gateway.settings import Settings
from gateway.stats.figures import Figures
from gateway.stats.filtered import DayCells
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


def test_other_visitors_are_the_union_of_the_small_cells_counted_once() -> None:
    """ "(other)" of a filtered breakdown day: the distinct people of the cells under k (counted once per
    day when the day's cells are read, not per request), or at least k when a large cell is left out."""
    figures = {
        "/a": Figures(visitors=9),
        "/b": Figures(visitors=2),
        "/c": Figures(visitors=3),
        "/d": Figures(visitors=7),
    }
    small = {"/b": frozenset({1, 2}), "/c": frozenset({2, 3, 4})}
    day = DayCells.of(figures, small)
    assert day.small_people == 4 and day.large == ("/a", "/d")
    assert day.other_visitors(("/a", "/d"), 5) == 4  # /b and /c share visitor 2
    assert day.other_visitors(("/a",), 5) == 7  # /d (7 visitors) is left out: at least k
    assert day.other_visitors(("/d",), 10) == 10  # /a left out, under this k: k
    assert day.other_visitors(("/a", "/d", "/b"), 5) == 3  # a small cell chosen: the rest's own people
    assert DayCells.of({}, {}).other_visitors((), 5) == 0


def test_a_day_remembers_a_few_published_answers_at_most() -> None:
    day = DayCells.of({"/a": Figures(visitors=9)}, {})
    for number in range(10):
        day.remember((number,), number)
    assert len(day.published) <= 4 and day.published[(9,)] == 9
