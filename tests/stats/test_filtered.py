"""Stored visits for filtered views (gateway/storage/visit_days.py) built by the maintenance leader right
after it rolls a day up, so the first filtered view of a rolled-up day finds them ready."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, date, timedelta

from gateway.clock import FixedClock
from gateway.maintenance import Maintenance
from gateway.settings import Settings
from gateway.stats.figures import Figures
from gateway.stats.filtered import DayCells, FilteredVisits
from gateway.stats.pack_figures import Rows
from gateway.storage import day_packs
from gateway.storage.day_packs import unpack
from gateway.storage.events import insert_events
from gateway.storage.rollups import day_bounds
from gateway.storage.visit_days import build_day, stale_days
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
            await maintenance.stop()
            return after_rollup, await stale_days(db, "shop", "2026-01-01", TODAY)

    after_rollup, after_second = asyncio.run(scenario())
    assert after_rollup == [] and after_second == []
    # a = visitor 1, b = 2, c = 3: today's three visitors numbered within the day, each of one visit
    (data,) = query(settings, "SELECT pack FROM visit_day_packs WHERE day = '2026-03-10'")[0]
    assert unpack(bytes(data)).figures["visitor"].tolist() == [1, 2, 3]


def test_a_deleted_visit_takes_its_days_pack_and_the_day_is_built_again_without_it(settings: Settings) -> None:  # noqa: F811
    """Retention and erasure delete visits: the packs of the days the visit has rows on go with it (a
    trigger, migration 0026), the day is stale until built again, and the new pack no longer holds it;
    a day whose rollups are deleted loses its pack too."""
    clock = FixedClock(NOW)

    async def scenario() -> tuple[list[tuple[str, int]], int, int, list[tuple[str, int]]]:
        async with opened(settings.database) as db:
            maintenance = Maintenance(db, settings, clock)
            await maintenance.run_once()
            await maintenance.stop()  # the leader's session goes back (PostgreSQL)
            before = len((await day_packs.read(db, "shop", [TODAY]))[TODAY].figures["visitor"])
            await db.write(
                lambda c: c.execute(
                    "DELETE FROM visits WHERE id = (SELECT min(id) FROM visits WHERE started_at >= '2026-03-10')"
                )
            )
            stale = await stale_days(db, "shop", "2026-01-01", TODAY)
            assert await day_packs.read(db, "shop", [TODAY]) == {}
            await FilteredVisits(db).generations(settings.sites["shop"], NOW.date(), NOW.date())
            after = len((await day_packs.read(db, "shop", [TODAY]))[TODAY].figures["visitor"])
            await db.write(lambda c: c.execute("DELETE FROM rollups WHERE day = ? AND dimension = 'all'", (TODAY,)))
            return (
                stale,
                before,
                after,
                [(day, len(p.figures["visitor"])) for day, p in (await day_packs.read(db, "shop", [TODAY])).items()],
            )

    stale, before, after, left = asyncio.run(scenario())
    assert [day for day, _ in stale] == [TODAY]
    assert (before, after) == (2, 1)  # today's visitors a and b; then b alone
    assert left == []


def test_the_daily_run_builds_the_packs_of_recent_days_that_lack_one(settings: Settings) -> None:  # noqa: F811
    """After the upgrade to packs (migration 0026 leaves every day without one), the leader's next daily
    run builds them, so no one's first filtered view builds two months of days."""
    clock = FixedClock(NOW)

    async def scenario() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        async with opened(settings.database) as db:
            first = Maintenance(db, settings, clock)
            await first.run_once()
            await first.stop()
            await db.write(lambda c: c.execute("DELETE FROM visit_day_packs"))
            emptied = await stale_days(db, "shop", "2026-01-01", TODAY)
            clock.advance(timedelta(days=1))  # the next UTC day: the daily run
            second = Maintenance(db, settings, clock)
            await second.run_once()
            await second.stop()
            return emptied, await stale_days(db, "shop", "2026-01-01", TODAY)

    emptied, after = asyncio.run(scenario())
    assert [day for day, _ in emptied] == ["2026-01-29", TODAY]  # the old day's events are purged: its rollups stay
    assert after == []


def test_two_nodes_building_the_same_day_at_once_leave_one_pack(settings: Settings) -> None:  # noqa: F811
    """Two gateway nodes (two stores on one database) may build a day at the same moment: both finish,
    and the day has one pack at the rollups' generation, whichever wrote last."""
    clock = FixedClock(NOW)

    async def scenario() -> tuple[list[tuple[str, int]], list[int]]:
        async with opened(settings.database) as one, opened(settings.database) as other:
            maintenance = Maintenance(one, settings, clock)
            await maintenance.run_once()
            await maintenance.stop()
            await one.write(lambda c: c.execute("DELETE FROM visit_day_packs"))
            ((day, generation),) = [stale for stale in await stale_days(one, "shop", TODAY, TODAY)]
            start, stop = day_bounds(date.fromisoformat(day), UTC)
            await asyncio.gather(*(build_day(db, "shop", day, generation, start, stop) for db in (one, other) * 2))
            packs = await day_packs.read(other, "shop", [TODAY])
            return await stale_days(one, "shop", TODAY, TODAY), packs[TODAY].figures["visitor"].tolist()

    stale, visitors = asyncio.run(scenario())
    assert stale == [] and visitors == [1, 2]


def test_other_visitors_are_those_of_the_small_cells_or_k_when_a_large_cell_is_left_out() -> None:
    """ "(other)" of a filtered breakdown day: the distinct people of the cells under k (counted once per
    day when the day's cells are read, not per request), or at least k when a large cell is left out."""
    large = {"/a": Figures(visitors=9), "/d": Figures(visitors=7)}
    day = DayCells.of(Rows(large, Figures(visitors=5, visits=6), 4))  # /b and /c: 2 + 3 visitors, one shared
    assert day.small == Figures(visitors=5, visits=6)
    assert day.other_visitors(("/a", "/d"), 5) == 4
    assert day.other_visitors(("/a",), 5) == 7  # /d (7 visitors) is left out: at least k
    assert day.other_visitors(("/d",), 10) == 10  # /a left out, under this k: k
    assert DayCells.of(Rows({}, Figures(), 0)).other_visitors((), 5) == 0


def test_a_day_remembers_a_few_published_answers_at_most() -> None:
    day = DayCells.of(Rows({"/a": Figures(visitors=9)}, Figures(), 0))
    for number in range(10):
        day.remember((number,), number)
    assert len(day.published) <= 4 and day.published[(9,)] == 9


def test_a_process_that_serves_no_filtered_view_does_not_import_numpy() -> None:
    """numpy's import is 16 MB of memory: an ingest-only node (the app, the CLI, maintenance) never pays
    it; the first filtered view or pack build does."""
    code = "import sys, gateway.app, gateway.cli, gateway.maintenance; print('numpy' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert found.stdout.strip() == "False"
