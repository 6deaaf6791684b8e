"""Upkeep driven by a pinned clock: rollups every interval, the purge once per UTC day, wired into the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.cookies.lifetimes import parse_lifetime
from gateway.maintenance import Cutoffs, Maintenance, MaintenanceRun, retention_cutoffs
from gateway.settings import Retention, Settings
from gateway.storage.events import insert_events
from gateway.storage.location import DatabaseLocation
from gateway.storage.retention import PurgeCounts
from gateway.storage.store import Store, open_store
from tests.conftest import LiveServer, make_settings
from tests.storage.test_rollups import event

T = TypeVar("T")
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
TODAY = "2026-03-10"


@pytest.mark.parametrize(
    ("now", "retention", "expected"),
    [
        pytest.param(NOW, Retention(),
                     Cutoffs(events_before=datetime(2025, 9, 8, tzinfo=UTC), rollups_before="2024-02-08",
                             consent_before=datetime(2025, 3, 10, 3, 40, 48, tzinfo=UTC), salts_before="2026-03-09"),
                     id="defaults: events from the start of the day 6 months ago, rollups 25, consent 12 months"),
        pytest.param(datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
                     Retention(consent_records=parse_lifetime("6mo")),
                     Cutoffs(events_before=datetime(2025, 9, 8, tzinfo=UTC), rollups_before="2024-02-08",
                             consent_before=datetime(2025, 9, 8, 9, 5, 24, tzinfo=UTC), salts_before="2026-03-09"),
                     id="at midnight, consent records kept 6 months after they end"),
        pytest.param(datetime(2026, 3, 10, 0, 30, tzinfo=datetime.fromisoformat("2026-01-01T00:00+02:00").tzinfo),
                     Retention(),
                     Cutoffs(events_before=datetime(2025, 9, 8, tzinfo=UTC), rollups_before="2024-02-08",
                             consent_before=datetime(2025, 3, 9, 16, 40, 48, tzinfo=UTC), salts_before="2026-03-08"),
                     id="a clock in another zone is read in UTC (22:30 on the 9th)"),
    ],
)  # fmt: skip
def test_cut_offs_follow_the_clock_and_the_retention(now: datetime, retention: Retention, expected: Cutoffs) -> None:
    assert retention_cutoffs(now, retention) == expected


@asynccontextmanager
async def opened(location: DatabaseLocation) -> AsyncIterator[Store]:
    db = await open_store(location).open()
    try:
        yield db
    finally:
        await db.close()


def with_db(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def scenario() -> T:
        async with opened(settings.database) as db:
            return await work(db)

    return asyncio.run(scenario())


def store(settings: Settings, *events: Any) -> None:
    with_db(settings, lambda db: db.write(lambda connection: insert_events(connection, list(events))))


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in with_db(settings, lambda db: db.fetch_all(sql))]


def totals(settings: Settings) -> list[tuple[Any, ...]]:
    return query(settings, "SELECT day, visitors, visits, pageviews FROM rollups WHERE dimension = 'all' ORDER BY day")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path, rollup_interval="5m", retention={"events": "30d", "rollups": "90d"})
    store(
        settings,
        event(NOW - timedelta(days=40), "old", "/old"),  # past the 30 days
        event(NOW - timedelta(hours=1), "a", "/"),
        event(NOW - timedelta(minutes=30), "b", "/"),
    )
    return settings


def test_run_once_rolls_up_and_purges_once_per_day(settings: Settings) -> None:
    clock = FixedClock(NOW)

    async def scenario() -> list[MaintenanceRun]:
        async with opened(settings.database) as db:
            maintenance = Maintenance(db, settings, clock)
            runs = [await maintenance.run_once()]  # at start: both
            runs.append(await maintenance.run_once())  # nothing is due
            await db.write(lambda connection: insert_events(connection, [event(NOW + timedelta(minutes=1), "c", "/")]))
            clock.advance(timedelta(minutes=4, seconds=59))
            runs.append(await maintenance.run_once())  # the interval has not passed
            clock.advance(1)
            runs.append(await maintenance.run_once())  # the rollup is due, the purge is not
            clock.current = datetime(2026, 3, 11, 0, 0, 30, tzinfo=UTC)
            runs.append(await maintenance.run_once())  # a new UTC day: the purge again
            return runs

    runs = asyncio.run(scenario())
    assert runs == [
        MaintenanceRun(rolled_up=(("shop", "2026-01-29"), ("shop", TODAY)), purged=PurgeCounts(1, 1, 0, 0, 0)),
        MaintenanceRun(rolled_up=None, purged=None),
        MaintenanceRun(rolled_up=None, purged=None),
        MaintenanceRun(rolled_up=(("shop", TODAY),), purged=None),
        MaintenanceRun(rolled_up=(), purged=PurgeCounts(0, 0, 0, 0, 0)),
    ]
    # the old day was rolled up before its events went, and its rollup stays (90 days)
    assert totals(settings) == [("2026-01-29", 1, 1, 1), (TODAY, 3, 3, 3)]
    assert query(settings, "SELECT DISTINCT pathname FROM events ORDER BY 1") == [("/",)]


def test_the_purge_follows_the_retention_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, retention={"events": "30d", "rollups": "30d"})
    store(settings, event(NOW - timedelta(days=40), "old", "/old"), event(NOW, "a", "/"))
    clock = FixedClock(NOW)

    async def scenario() -> MaintenanceRun:
        async with opened(settings.database) as db:
            return await Maintenance(db, settings, clock).run_once()

    run = asyncio.run(scenario())
    # the old day is rolled up first (one row per dimension: 21, as it had no custom event), then purged whole
    assert run.purged == PurgeCounts(events=1, visits=1, rollups=22, consent_records=0)  # 21 dimensions + the hour
    assert totals(settings) == [(TODAY, 1, 1, 1)]


def test_start_runs_once_and_stop_waits_for_it(settings: Settings) -> None:
    async def scenario() -> bool:
        async with opened(settings.database) as db:
            maintenance = Maintenance(db, settings, FixedClock(NOW))
            await maintenance.start()
            assert maintenance.running
            await maintenance.stop()
            await maintenance.stop()  # a second stop is harmless
            return maintenance.running

    assert asyncio.run(scenario()) is False
    assert totals(settings) == [("2026-01-29", 1, 1, 1), (TODAY, 2, 2, 2)]
    assert query(settings, "SELECT count(*) FROM rollup_dirty") == [(0,)]


def test_a_failing_run_is_logged_and_the_loop_goes_on(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        maintenance = Maintenance(open_store(settings.database), settings, FixedClock(NOW))  # never opened
        await maintenance.start()
        await asyncio.sleep(0)
        await maintenance.stop()

    with caplog.at_level(logging.ERROR, logger="gateway.maintenance"):
        asyncio.run(scenario())
    assert [record.getMessage() for record in caplog.records] == ["maintenance failed; retrying in 60 s"]


def test_the_log_line_gives_counts_only(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with opened(settings.database) as db:
            await Maintenance(db, settings, FixedClock(NOW)).run_once()

    with caplog.at_level(logging.INFO, logger="gateway.maintenance"):
        asyncio.run(scenario())
    assert [record.getMessage() for record in caplog.records] == [
        "rolled up 2 day(s); purge: deleted 1 event(s), 1 visit(s), 0 rollup row(s), 0 consent record(s), 0 salt(s)"
    ]


@pytest.mark.integration
def test_the_app_rolls_up_while_it_runs(settings: Settings, live_server: Callable[[Any], LiveServer]) -> None:
    server = live_server(create_app(settings, clock=FixedClock(NOW)))
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.__exit__()
    # the lifespan started the upkeep after the buffer and stopped it before the database closed
    assert totals(settings) == [("2026-01-29", 1, 1, 1), (TODAY, 2, 2, 2)]
    assert query(settings, "SELECT DISTINCT pathname FROM events") == [("/",)]


def test_yesterdays_salt_is_deleted_after_the_grace_period_even_without_events(settings: Settings) -> None:
    from gateway.ingest.visitor import SaltKeeper

    clock = FixedClock(datetime(2026, 3, 10, 23, 50, tzinfo=UTC))

    async def scenario() -> list[list[tuple[Any, ...]]]:
        async with opened(settings.database) as db:
            keeper = SaltKeeper(db, key=b"k" * 32)
            maintenance = Maintenance(db, settings, clock, keeper)
            await keeper.salts(clock.now())  # the last event of the day
            seen = []
            for moment in ((0, 10), (0, 31)):  # a quiet night: no event after midnight
                clock.current = datetime(2026, 3, 11, *moment, tzinfo=UTC)
                await maintenance.run_once()
                seen.append([tuple(row) for row in await db.fetch_all("SELECT day FROM salts ORDER BY day")])
            return seen

    in_grace, after = asyncio.run(scenario())
    assert in_grace == [("2026-03-10",), ("2026-03-11",)]  # visits begun before midnight may go on
    assert after == [("2026-03-11",)]  # then yesterday's salt is gone: no one can recompute its ids
