"""Cookie names seen by script in the cookie report, beside the middleware's tallies, on both stores."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import FixedClock
from gateway.consent.report import ScriptCookieSightings
from gateway.storage.cookie_report import CookieTally, ScriptSighting, add_cookie_tallies, add_script_sightings
from gateway.storage.cookie_report import cookie_report as read_report
from gateway.storage.store import Store

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
EARLIER, LATER = NOW - timedelta(days=2), NOW + timedelta(hours=3)


def sighting(times: int, category: str | None = None, first: datetime = NOW, last: datetime = NOW) -> ScriptSighting:
    return ScriptSighting(category, times, first, last)


def by_name(tallies: list[CookieTally]) -> dict[str, CookieTally]:
    return {tally.name: tally for tally in tallies}


def test_a_name_seen_only_by_script_is_a_row_of_its_own_marked_script(store: Store) -> None:
    async def run() -> dict[str, CookieTally]:
        db = await store.open()
        try:
            await add_script_sightings(db, "shop", {"_hjid": sighting(3, "analytics")}, max_names=100)
            await add_script_sightings(db, "shop", {"_hjid": sighting(2, "analytics", LATER, LATER)}, max_names=100)
            await add_script_sightings(db, "blog", {"_hjid": sighting(7)}, max_names=100)
            return by_name(await read_report(db, "shop"))
        finally:
            await db.close()

    report = asyncio.run(run())
    hjid = report["_hjid"]
    assert (hjid.times_seen_by_script, hjid.times_set, hjid.times_blocked, hjid.times_capped) == (5, 0, 0, 0)
    assert (hjid.category, hjid.seen_by, hjid.longest_asked) == ("analytics", "script", None)
    assert (hjid.first_seen, hjid.last_seen) == (NOW, LATER)


def test_a_name_the_middleware_saw_too_reads_both_and_keeps_its_counts(store: Store) -> None:
    async def run() -> dict[str, CookieTally]:
        db = await store.open()
        try:
            await add_cookie_tallies(
                db,
                [
                    CookieTally("shop", "_ga", "analytics", 4, 1, 2, 63072000, NOW, NOW),
                    CookieTally("shop", "sid", "essential", 9, 0, 0, None, NOW, NOW),
                ],
            )
            # The catalog does not know a name the middleware classified by its domain: that category stays.
            await add_script_sightings(db, "shop", {"_ga": sighting(6, None, EARLIER, LATER)}, max_names=100)
            await add_cookie_tallies(db, [CookieTally("shop", "_ga", "analytics", 1, 0, 0, None, NOW, NOW)])
            return by_name(await read_report(db, "shop"))
        finally:
            await db.close()

    report = asyncio.run(run())
    ga = report["_ga"]
    assert (ga.times_set, ga.times_blocked, ga.times_capped, ga.times_seen_by_script) == (5, 1, 2, 6)
    assert (ga.category, ga.seen_by, ga.longest_asked) == ("analytics", "both", 63072000)
    assert (ga.first_seen, ga.last_seen) == (EARLIER, LATER)
    assert report["sid"].seen_by == "header" and report["sid"].times_seen_by_script == 0


def test_new_names_stop_at_the_cap_but_known_names_still_count(store: Store) -> None:
    async def run() -> tuple[int, int, dict[str, CookieTally]]:
        db = await store.open()
        try:
            first = await add_script_sightings(db, "shop", {f"n{i}": sighting(1) for i in range(3)}, max_names=4)
            second = await add_script_sightings(
                db, "shop", {"n0": sighting(1), "n3": sighting(1), "n4": sighting(1), "n5": sighting(1)}, max_names=4
            )
            return first, second, by_name(await read_report(db, "shop"))
        finally:
            await db.close()

    first, second, report = asyncio.run(run())
    assert (first, second) == (0, 2)  # n4 and n5 left out: the report held 4 names
    assert sorted(report) == ["n0", "n1", "n2", "n3"] and report["n0"].times_seen_by_script == 2


def test_the_counter_writes_in_batches_and_at_close(store: Store) -> None:
    clock = FixedClock(NOW)

    async def run() -> tuple[dict[str, CookieTally], dict[str, CookieTally]]:
        db = await store.open()
        try:
            counter = ScriptCookieSightings(db, clock, flush_interval=timedelta(hours=1))
            counter.count("shop", {"_hjid": "analytics", "thing": None})
            counter.count("shop", {"thing": None})
            before = by_name(await read_report(db, "shop"))
            assert counter.pending()["shop"]["thing"].times == 2
            await counter.close()
            return before, by_name(await read_report(db, "shop"))
        finally:
            await db.close()

    before, after = asyncio.run(run())
    assert before == {}  # nothing written per request
    assert {name: tally.times_seen_by_script for name, tally in after.items()} == {"_hjid": 1, "thing": 2}
    assert after["thing"].category is None and after["_hjid"].category == "analytics"


def test_the_counter_flushes_when_many_names_wait(store: Store) -> None:
    async def run() -> int:
        db = await store.open()
        try:
            counter = ScriptCookieSightings(db, FixedClock(NOW), flush_interval=timedelta(hours=1), max_pending=3)
            counter.count("shop", {"a": None, "b": None, "c": None})
            await counter.flushes_done()
            written = len(await read_report(db, "shop"))
            await counter.close()
            return written
        finally:
            await db.close()

    assert asyncio.run(run()) == 3


@pytest.mark.parametrize("times", [1, 5])
def test_seen_by_is_derived_from_the_counts(times: int) -> None:
    tally = CookieTally("shop", "x", None, 0, times, 0, None, NOW, NOW)
    assert tally.seen_by == "header"  # a blocked Set-Cookie was still seen in a header
    assert CookieTally("shop", "x", None, 0, 0, 0, None, NOW, NOW, times).seen_by == "script"
