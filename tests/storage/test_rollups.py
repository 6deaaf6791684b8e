"""Daily rollups on both stores (a real SQLite file, a real PostgreSQL database), against figures worked
out by hand for a small day of traffic.

The fixture (site "shop", 10 and 11 March 2026, UTC):

- visit 1, visitor a, from Google, France, Chrome: 09:00 pageview /, 09:02 pageview /pricing (internal),
  09:03 event signup {plan: pro}, 09:05 pageview /signup. 3 pageviews, 4 events, 300 s, not a bounce.
- visit 2, visitor b, direct, Germany, Firefox: 10:00 pageview /blog. A bounce of 0 s.
- visit 3, visitor a again (over 30 minutes later), direct, France: 15:00 pageview /pricing,
  15:10 event signup {plan: free}, 15:20 pageview / {plan: free}. 2 pageviews, 3 events, 1200 s.
- visit 4, visitor c, from the newsletter, no country: 23:50 pageview /, then after midnight (under the
  new day's visitor id, continuing the visit) 00:10 pageview /pricing (internal), 00:15 event signup
  {plan: pro}. 2 pageviews, 3 events, 1500 s, not a bounce; it counts on both days.
- one pageview of another site ("blog") on the 10th, which no row of "shop" may count.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.ingest.event import AnonymousEvent
from gateway.storage.events import insert_events
from gateway.storage.location import PostgresUrl
from gateway.storage.rollups import DIMENSIONS, rebuild_all, rebuild_day, rebuild_dirty, rollup_rows
from gateway.storage.sql import Connection
from gateway.storage.store import Store
from tests.events import anonymous_event
from tests.stores import database_location, open_test_store

T = TypeVar("T")
DAY1, DAY2 = "2026-03-10", "2026-03-11"
FIGURES = ("visitors", "visits", "pageviews", "events", "bounces", "duration")


def at(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00+00:00").astimezone(UTC)


def event(
    ts: datetime,
    visitor: str,
    path: str,
    *,
    name: str = "pageview",
    props: dict[str, str] | None = None,
    previous_visitor: str | None = None,
    site: str = "shop",
    **values: Any,
) -> AnonymousEvent:
    return anonymous_event(
        ts, visitor, path, name=name, props=props or {}, previous_visitor_id=previous_visitor, site_id=site, **values
    )


INTERNAL = {"channel": "internal"}
GOOGLE = {"source": "Google", "channel": "search", "referrer_host": "google.com"}
NEWSLETTER = {"source": "newsletter", "channel": "email", "utm_source": "newsletter", "utm_medium": "email"}
FRANCE = {"country": "FR", "region": "FR-IDF", "city": "Paris"}
GERMANY = {"country": "DE", "region": "DE-BE", "city": "Berlin"}
FIREFOX_MAC = {"browser": "Firefox", "browser_version": "125.0", "os": "Mac OS X", "os_version": "10.15"}

FIRST_DAY = [
    event(at(DAY1, "09:00"), "a", "/", **GOOGLE, **FRANCE),
    event(at(DAY1, "09:02"), "a", "/pricing", **INTERNAL, **FRANCE),
    event(at(DAY1, "09:03"), "a", "/pricing", name="signup", props={"plan": "pro"}, **INTERNAL, **FRANCE),
    event(at(DAY1, "09:05"), "a", "/signup", **INTERNAL, **FRANCE),
    event(at(DAY1, "10:00"), "b", "/blog", **GERMANY, **FIREFOX_MAC),
    event(at(DAY1, "15:00"), "a", "/pricing", **FRANCE),
    event(at(DAY1, "15:10"), "a", "/pricing", name="signup", props={"plan": "free"}, **INTERNAL, **FRANCE),
    event(at(DAY1, "15:20"), "a", "/", props={"plan": "free"}, **INTERNAL, **FRANCE),
    event(at(DAY1, "23:50"), "c", "/", **NEWSLETTER),
    event(at(DAY1, "12:00"), "z", "/", site="blog"),
]
AFTER_MIDNIGHT = [
    event(at(DAY2, "00:10"), "c-new-day", "/pricing", previous_visitor="c", **INTERNAL),
    event(at(DAY2, "00:15"), "c-new-day", "/pricing", name="signup", props={"plan": "pro"}, previous_visitor="c",
          **INTERNAL),
]  # fmt: skip


def run(path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    """``work`` on the store of the current test that ``path`` names (a SQLite file or a PostgreSQL database)."""

    unopened = open_test_store(path)  # outside the loop: a first PostgreSQL database is migrated with asyncio.run

    async def scenario() -> T:
        db = await unopened.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(scenario())


def store(path: Path, *batches: list[AnonymousEvent]) -> None:
    async def work(db: Store) -> None:
        for batch in batches:
            await db.write(lambda connection, batch=batch: insert_events(connection, batch))

    run(path, work)


def table(path: Path, day: str, dimension: str, site: str = "shop") -> dict[str, tuple[int, ...]]:
    """value -> (visitors, visits, pageviews, events, bounces, duration)."""
    rows = run(path, lambda db: rollup_rows(db, site, day, dimension))
    return {row["value"]: tuple(row[figure] for figure in FIGURES) for row in rows}


def read(path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` as plain tuples, read through the store."""
    return [tuple(row) for row in run(path, lambda db: db.fetch_all(sql, parameters))]


def everything(path: Path) -> list[tuple[Any, ...]]:
    return read(path, "SELECT * FROM rollups ORDER BY site_id, day, dimension, value")


def dirty(path: Path) -> list[tuple[str, str]]:
    return [(str(site), str(day)) for site, day in read(path, "SELECT site_id, day FROM rollup_dirty ORDER BY 1, 2")]


@contextmanager
def reader(path: Path) -> Iterator[Connection]:
    """A connection of its own, outside the store's writer, as the rollup planner reads."""
    location = database_location(path)
    if isinstance(location, PostgresUrl):
        import psycopg

        from gateway.storage.postgres import PgConnection

        with closing(PgConnection(psycopg.connect(location.url, autocommit=True))) as connection:
            yield connection
    else:
        with closing(sqlite3.connect(location, isolation_level=None)) as connection:
            yield connection


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.sqlite3"
    store(path, FIRST_DAY, AFTER_MIDNIGHT)
    run(path, lambda db: db.write(rebuild_dirty))
    return path


#              visitors visits pageviews events bounces duration
EXPECTED = [
    pytest.param(DAY1, "all", {"": (3, 4, 7, 9, 1, 3000)}, id="day 1 totals: 3 visitors, 4 visits, 1 bounce"),
    pytest.param(DAY1, "page", {"/": (2, 3, 3, 3, 0, 3000), "/pricing": (1, 2, 2, 2, 0, 1500),
                                "/signup": (1, 1, 1, 1, 0, 300), "/blog": (1, 1, 1, 1, 1, 0)},
                 id="pages count pageviews only, each visit once per page"),
    pytest.param(DAY1, "entry_page", {"/": (2, 2, 5, 7, 0, 1800), "/pricing": (1, 1, 2, 3, 0, 1200),
                                      "/blog": (1, 1, 1, 1, 1, 0)},
                 id="entry pages of the visits started that day, with whole-visit figures"),
    pytest.param(DAY1, "exit_page", {"/signup": (1, 1, 3, 4, 0, 300), "/": (1, 1, 2, 3, 0, 1200),
                                     "/pricing": (1, 1, 2, 3, 0, 1500), "/blog": (1, 1, 1, 1, 1, 0)},
                 id="exit page of the visit across midnight is its last page, after midnight"),
    pytest.param(DAY1, "source", {"Google": (1, 1, 3, 4, 0, 300), "Direct / None": (2, 2, 3, 4, 1, 1200),
                                  "newsletter": (1, 1, 1, 1, 0, 1500)},
                 id="the source is the visit's first event's, internal navigation included"),
    pytest.param(DAY1, "channel", {"search": (1, 1, 3, 4, 0, 300), "direct": (2, 2, 3, 4, 1, 1200),
                                   "email": (1, 1, 1, 1, 0, 1500)}, id="channels are the visit's too"),
    pytest.param(DAY1, "referrer", {"google.com": (1, 1, 3, 4, 0, 300), "": (3, 3, 4, 5, 1, 2700)},
                 id="no referrer rolls up as the empty value"),
    pytest.param(DAY1, "utm_source", {"newsletter": (1, 1, 1, 1, 0, 1500), "": (2, 3, 6, 8, 1, 1500)},
                 id="utm_source"),
    pytest.param(DAY1, "country", {"FR": (1, 2, 5, 7, 0, 1500), "DE": (1, 1, 1, 1, 1, 0), "": (1, 1, 1, 1, 0, 1500)},
                 id="countries, an unknown one as the empty value"),
    pytest.param(DAY1, "city", {"Paris": (1, 2, 5, 7, 0, 1500), "Berlin": (1, 1, 1, 1, 1, 0),
                                "": (1, 1, 1, 1, 0, 1500)}, id="cities"),
    pytest.param(DAY1, "browser_version", {"Chrome 124.0": (2, 3, 6, 8, 0, 3000), "Firefox 125.0": (1, 1, 1, 1, 1, 0)},
                 id="browser versions name the browser"),
    pytest.param(DAY1, "os_version", {"Linux": (2, 3, 6, 8, 0, 3000), "Mac OS X 10.15": (1, 1, 1, 1, 1, 0)},
                 id="an unknown OS version is the OS alone"),
    pytest.param(DAY1, "event", {"signup": (1, 2, 0, 2, 0, 1500)}, id="custom events, never pageview"),
    pytest.param(DAY1, "prop:plan", {"pro": (1, 1, 0, 1, 0, 300), "free": (1, 1, 1, 2, 0, 1200)},
                 id="a property counts the events carrying it, pageviews included"),
    pytest.param(DAY2, "all", {"": (1, 1, 1, 2, 0, 1500)}, id="day 2: the visit across midnight counts again"),
    pytest.param(DAY2, "page", {"/pricing": (1, 1, 1, 1, 0, 1500)}, id="day 2 pages"),
    pytest.param(DAY2, "entry_page", {}, id="day 2 has no entry page: the visit started the day before"),
    pytest.param(DAY2, "source", {"newsletter": (1, 1, 1, 2, 0, 1500)},
                 id="day 2 keeps the source of the visit's first event"),
    pytest.param(DAY2, "country", {"": (1, 1, 1, 2, 0, 1500)}, id="day 2 countries"),
    pytest.param(DAY2, "event", {"signup": (1, 1, 0, 1, 0, 1500)}, id="day 2 events"),
    pytest.param(DAY2, "prop:plan", {"pro": (1, 1, 0, 1, 0, 1500)}, id="day 2 properties"),
]  # fmt: skip


@pytest.mark.parametrize(("day", "dimension", "expected"), EXPECTED)
def test_rollups_match_the_figures_worked_out_by_hand(
    filled: Path, day: str, dimension: str, expected: dict[str, tuple[int, ...]]
) -> None:
    assert table(filled, day, dimension) == expected


def test_every_dimension_is_rolled_up(filled: Path) -> None:
    found = {row[0] for row in read(filled, "SELECT DISTINCT dimension FROM rollups WHERE day = ?", (DAY1,))}
    assert found == set(DIMENSIONS) | {"prop:plan"}


def test_another_site_is_rolled_up_apart(filled: Path) -> None:
    assert table(filled, DAY1, "all", site="blog") == {"": (1, 1, 1, 1, 1, 0)}
    assert table(filled, DAY2, "all", site="blog") == {}


def test_rebuilding_is_idempotent(filled: Path) -> None:
    before = everything(filled)
    assert run(filled, lambda db: db.write(rebuild_all)) == 3  # shop on both days, blog on the first
    assert run(filled, lambda db: db.write(lambda c: rebuild_day(c, "shop", DAY1))) == len(
        [row for row in before if row[:2] == ("shop", DAY1)]
    )
    assert everything(filled) == before


def test_rebuild_all_of_one_site_leaves_the_others(filled: Path) -> None:
    run(filled, lambda db: db.write(lambda c: c.execute("DELETE FROM rollups")))
    assert run(filled, lambda db: db.write(lambda c: rebuild_all(c, "blog"))) == 1
    assert table(filled, DAY1, "all", site="blog") == {"": (1, 1, 1, 1, 1, 0)}
    assert table(filled, DAY1, "all") == {}


def test_rebuild_dirty_rolls_up_the_marked_days_and_clears_them(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store(path, FIRST_DAY)
    assert dirty(path) == [("blog", DAY1), ("shop", DAY1)]
    assert run(path, lambda db: db.write(rebuild_dirty)) == [("blog", DAY1), ("shop", DAY1)]
    assert dirty(path) == []
    # before midnight, the newsletter visit is a one-page bounce
    assert table(path, DAY1, "all") == {"": (3, 4, 7, 9, 2, 1500)}
    assert run(path, lambda db: db.write(rebuild_dirty)) == []  # nothing new: nothing to do


def test_a_visit_continued_after_midnight_rebuilds_the_day_it_started(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store(path, FIRST_DAY)
    run(path, lambda db: db.write(rebuild_dirty))
    store(path, AFTER_MIDNIGHT)
    assert dirty(path) == [("shop", DAY2)]
    assert run(path, lambda db: db.write(rebuild_dirty)) == [("shop", DAY1), ("shop", DAY2)]
    assert dirty(path) == []
    # no longer a bounce; its duration and exit page are those of the whole visit
    assert table(path, DAY1, "all") == {"": (3, 4, 7, 9, 1, 3000)}
    assert table(path, DAY1, "exit_page")["/pricing"] == (1, 1, 2, 3, 0, 1500)


def test_a_day_without_events_has_no_rows(filled: Path) -> None:
    assert run(filled, lambda db: db.write(lambda c: rebuild_day(c, "shop", "2026-03-12"))) == 0
    assert table(filled, "2026-03-12", "all") == {}


@pytest.mark.parametrize("day", ["2026-3-10", "10.03.2026", "", "2026-03-10T00:00"])
def test_a_day_must_be_written_yyyy_mm_dd(filled: Path, day: str) -> None:
    with pytest.raises(ValueError, match="expected a day as YYYY-MM-DD"):
        run(filled, lambda db: db.write(lambda c: rebuild_day(c, "shop", day)))


def test_a_visit_dimension_takes_the_visits_first_event(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store(
        path,
        [
            event(at(DAY1, "09:00"), "a", "/", screen="laptop", **GOOGLE),
            event(at(DAY1, "09:01"), "a", "/pricing", screen="desktop", **INTERNAL),  # the window grew
        ],
    )
    run(path, lambda db: db.write(rebuild_dirty))
    assert table(path, DAY1, "screen") == {"laptop": (1, 1, 2, 2, 0, 60)}
    assert table(path, DAY1, "channel") == {"search": (1, 1, 2, 2, 0, 60)}


def test_the_roll_up_computed_on_a_reader_writes_the_same_rows(tmp_path: Path) -> None:
    from gateway.maintenance import roll_up

    reference, concurrent = tmp_path / "reference.sqlite3", tmp_path / "concurrent.sqlite3"
    for path in (reference, concurrent):
        store(path, FIRST_DAY)
    run(reference, lambda db: db.write(rebuild_dirty))
    assert run(concurrent, lambda db: roll_up(db, {})) == [("blog", DAY1), ("shop", DAY1)]
    for path in (reference, concurrent):
        store(path, AFTER_MIDNIGHT)
    run(reference, lambda db: db.write(rebuild_dirty))
    assert run(concurrent, lambda db: roll_up(db, {})) == [
        ("shop", DAY1),
        ("shop", DAY2),
    ]  # the day the visit began too
    assert everything(concurrent) == everything(reference) and everything(reference)
    assert dirty(concurrent) == []


def test_events_arriving_while_the_rollup_is_computed_keep_their_day_marked(tmp_path: Path) -> None:
    from gateway.storage.rollups import apply_plan, plan_dirty

    path = tmp_path / "gateway.sqlite3"
    store(path, FIRST_DAY)
    with reader(path) as connection:
        plan = plan_dirty(connection)  # the snapshot: FIRST_DAY only
    store(path, [event(at(DAY1, "23:59"), "late", "/late")])  # arrives before the plan is written
    run(path, lambda db: db.write(lambda connection: apply_plan(connection, plan)))
    assert dirty(path) == [("shop", DAY1)]  # still marked: the next round counts the late event
    assert table(path, DAY1, "all", site="blog")  # the other site's day is done
    run(path, lambda db: db.write(rebuild_dirty))
    assert "/late" in table(path, DAY1, "page")


def other_visitors(path: Path) -> dict[tuple[str, str, int], dict[str, int]]:
    """(site, day, k) -> dimension -> the people behind its "(other)", as the rollup stored them."""
    found: dict[tuple[str, str, int], dict[str, int]] = {}
    for site, day, k, dimension, visitors in read(
        path, "SELECT site_id, day, k, dimension, visitors FROM rollup_other_visitors ORDER BY 1, 2, 3, 4"
    ):
        found.setdefault((site, day, k), {})[dimension] = visitors
    return found


def test_the_people_behind_other_are_counted_with_the_rollups_for_the_sites_k(tmp_path: Path) -> None:
    """k = 2 on the 10th: /pricing and /signup (both visitor a) and /blog (b) are pages under k: their
    cells add up to 3, the people behind them are 2. Each source but "Direct / None" (a and b) is
    under k: Google (a) and newsletter (c); of referrers, only google.com (a). Every country is (a,
    b, c). The planner on a reader counts the same; a rebuild without a k for the site, and the
    purge of the day's rollups, take the counts away with the rollups."""
    from gateway.maintenance import roll_up
    from gateway.storage.retention import purge

    expected = {"all": 3, "page": 2, "source": 2, "referrer": 1, "channel": 2, "country": 3, "city": 3}
    reference, planned = tmp_path / "reference.sqlite3", tmp_path / "planned.sqlite3"
    for path in (reference, planned):
        store(path, FIRST_DAY)
    run(reference, lambda db: db.write(lambda c: rebuild_dirty(c, floors={"shop": 2})))
    run(planned, lambda db: roll_up(db, {}, floors={"shop": 2}))
    for path in (reference, planned):
        counted = other_visitors(path)
        assert list(counted) == [("shop", DAY1, 2)]  # the blog site has no k here: nothing counted for it
        assert {d: n for d, n in counted["shop", DAY1, 2].items() if d in expected} == expected
    assert other_visitors(planned) == other_visitors(reference)
    run(reference, lambda db: db.write(lambda c: rebuild_day(c, "shop", DAY1)))
    assert other_visitors(reference) == {}  # counted for no k now: the dashboard counts from raw events
    cut = datetime(2000, 1, 1, tzinfo=UTC)
    run(planned, lambda db: db.write(lambda c: purge(c, events_before=cut, rollups_before=DAY2, consent_before=cut)))
    assert other_visitors(planned) == {}
