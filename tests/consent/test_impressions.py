"""Banner impressions: counted in memory, upserted at most once per interval and at close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from gateway.clock import FixedClock
from gateway.consent.impressions import ImpressionCounter
from gateway.storage.consent_report import ImpressionCount, impression_counts
from gateway.storage.store import Store
from tests.stores import database_location, open_test_store, query

T = TypeVar("T")
MARCH_10 = date(2026, 3, 10)


def stored(path: Path) -> list[tuple[str, str, str, str, int]]:
    sql = "SELECT site_id, day, country, device, count FROM banner_impressions ORDER BY site_id, day, country, device"
    return [tuple(row) for row in query(database_location(path), sql)]


def run(path: Path, clock: FixedClock, work: Callable[[Store, ImpressionCounter], Awaitable[T]]) -> T:
    store = open_test_store(path)  # outside the loop: a PostgreSQL run creates the database here

    async def scenario() -> T:
        db = await store.open()
        try:
            return await work(db, ImpressionCounter(db, clock))
        finally:
            await db.close()

    return asyncio.run(scenario())


def test_counts_per_site_utc_day_country_and_device_with_unknown_as_empty(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))

    async def work(db: Store, counter: ImpressionCounter) -> list[ImpressionCount]:
        counter.count("shop", country="FR", device="mobile")
        counter.count("shop", country="FR", device="mobile")
        counter.count("shop", country="FR", device="desktop")
        counter.count("shop", country=None, device=None)
        counter.count("blog", country="DE", device="mobile")
        clock.advance(1)  # 2026-03-11 00:00:00 UTC: a new day, a new row
        counter.count("shop", country="FR", device="mobile")
        pending = counter.pending()
        await counter.close()
        return pending

    pending = run(tmp_path / "db.sqlite3", clock, work)

    assert pending == [
        ImpressionCount("blog", MARCH_10, "DE", "mobile", 1),
        ImpressionCount("shop", MARCH_10, "", "", 1),
        ImpressionCount("shop", MARCH_10, "FR", "desktop", 1),
        ImpressionCount("shop", MARCH_10, "FR", "mobile", 2),
        ImpressionCount("shop", date(2026, 3, 11), "FR", "mobile", 1),
    ]
    assert stored(tmp_path / "db.sqlite3") == [
        ("blog", "2026-03-10", "DE", "mobile", 1),
        ("shop", "2026-03-10", "", "", 1),
        ("shop", "2026-03-10", "FR", "desktop", 1),
        ("shop", "2026-03-10", "FR", "mobile", 2),
        ("shop", "2026-03-11", "FR", "mobile", 1),
    ]


def test_an_instant_counts_on_its_utc_day_whatever_its_offset(tmp_path: Path) -> None:
    new_york_evening = datetime(2026, 3, 10, 21, 0, tzinfo=timezone(timedelta(hours=-5)))  # 02:00 UTC, the 11th
    clock = FixedClock(new_york_evening)

    async def work(db: Store, counter: ImpressionCounter) -> list[ImpressionCount]:
        counter.count("shop", country="FR", device="desktop")
        return counter.pending()

    assert [count.day for count in run(tmp_path / "db.sqlite3", clock, work)] == [date(2026, 3, 11)]


def test_flushes_from_the_request_path_at_most_once_per_interval_and_adds_to_stored_counts(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))

    async def work(db: Store, counter: ImpressionCounter) -> list[list[int]]:
        seen = []

        async def settle() -> list[int]:
            await counter.flushes_done()  # a flush the count started has written
            return [count.count for count in await impression_counts(db, "shop")]

        counter.count("shop", country="FR", device="mobile")  # starts the interval
        clock.advance(9.9)
        counter.count("shop", country="FR", device="mobile")
        seen.append(await settle())  # 9.9 s: nothing written yet
        clock.advance(0.1)
        counter.count("shop", country="FR", device="mobile")  # 10 s: this request starts a flush
        seen.append(await settle())
        clock.advance(5)
        counter.count("shop", country="FR", device="mobile")
        seen.append(await settle())  # 5 s after that flush: pending in memory only
        await counter.close()  # shutdown writes the rest, added to the stored row
        seen.append(await settle())
        return seen

    assert run(tmp_path / "db.sqlite3", clock, work) == [[], [3], [3], [4]]


def test_a_failed_flush_keeps_the_counts_for_the_next_one(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))

    store = open_test_store(tmp_path / "db.sqlite3")

    async def scenario() -> tuple[list[ImpressionCount], list[ImpressionCount]]:
        db = await store.open()
        counter = ImpressionCounter(db, clock)
        counter.count("shop", country="FR", device="mobile")
        await db.close()
        await counter.flush()  # the database is closed: the write fails (logged), nothing is lost
        kept = counter.pending()
        await db.open()
        await counter.close()
        written = await impression_counts(db, "shop")
        await db.close()
        return kept, written

    kept, written = asyncio.run(scenario())
    assert kept == written == [ImpressionCount("shop", MARCH_10, "FR", "mobile", 1)]


def test_close_without_counts_writes_nothing(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))

    async def work(db: Store, counter: ImpressionCounter) -> None:
        await counter.close()

    run(tmp_path / "db.sqlite3", clock, work)
    assert stored(tmp_path / "db.sqlite3") == []
