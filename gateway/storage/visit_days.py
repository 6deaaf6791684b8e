"""Each local day's visits, built once into the day's pack (``gateway.storage.day_packs``), so a filtered
view reads visits, not events.

A filter the rollups cannot answer (two conditions, an "is not", a breakdown under a filter) used to
run ``gateway.storage.aggregates.figures_sql`` over every raw event of each day, once per cell the
privacy floor needed: ~10 us an event, a minute for a 30-day view of a busy site. Here a day's visits
are reduced once, with that module's own SQL (so a figure is the same whichever way it is read), to
one row per visit (its figures and its visit dimensions' values) and one row per visit and page or
custom event, packed as columns (migration 0026; until then, rows of ``visit_days``: migration 0016).

A day's pack carries the rollup generation (migration 0009) it was built at; ``stale_days`` says
which days need building again (their rollups were rewritten or purged since, or a visit of theirs was
deleted), ``build_day`` builds one in a write transaction. Maintenance builds them right after the
rollups; a view that finds a stale day builds it first. Conditions on visit dimensions only (``is``,
``is_not``, ``in``, ``not_in``): an event condition (``page``, ``event``, ``prop:``) keeps the
raw-event path.
"""

# Builds SQL from its own constant fragments and column names; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, date, tzinfo
from typing import Any

from gateway.storage.aggregates import (
    STARTED_VISIT_DIMENSIONS,
    VISIT_DIMENSIONS,
    Condition,
    _with,
)
from gateway.storage.rollups import day_bounds
from gateway.storage.sql import Connection
from gateway.storage.store import Store

Row = tuple[Any, ...]
#: Conditions this module answers: on a visit dimension, by one of these operators.
OPERATORS = ("is", "is_not", "in", "not_in")
#: Breakdowns it answers: every visit dimension (a column each) and these event dimensions.
EVENT_DIMENSIONS = ("page", "event")
_COLUMNS = tuple(name for name in VISIT_DIMENSIONS if name != "all") + tuple(STARTED_VISIT_DIMENSIONS)

# aggregates' day_visits (each visit with an event in the window, its whole-visit bounce and duration,
# its first event's visit dimensions), with the dimensions' values as computed. The visitor's number
# within the day is added in Python (``_numbered``): window functions over these rows took three
# times the whole SELECT on SQLite.
_SELECT_VISITS = (
    _with([], [], [])
    + f"""
SELECT visit_id, visitor_id, pageviews, events, CASE WHEN bounce THEN 1 ELSE 0 END, duration,
       CASE WHEN started_at >= :start AND started_at < :stop THEN 1 ELSE 0 END, visit_pageviews, visit_events,
       {", ".join(VISIT_DIMENSIONS.get(name, name) for name in _COLUMNS)}
FROM day_visits"""
)
# aggregates' event facts of ``page`` and ``event``: one row per visit and value (of the visits above:
# ``day_packs.pack`` keeps those).
_SELECT_FACTS = """
SELECT visit_id, 'page', pathname, count(*), count(*) FROM events
WHERE site_id = :site AND ts >= :start AND ts < :stop AND name = 'pageview'
GROUP BY visit_id, pathname
UNION ALL
SELECT visit_id, 'event', name, 0, count(*) FROM events
WHERE site_id = :site AND ts >= :start AND ts < :stop AND name != 'pageview'
GROUP BY visit_id, name
"""
_MARK = """
INSERT INTO visit_day_generations (site_id, day, generation) VALUES (?, ?, ?)
ON CONFLICT (site_id, day) DO UPDATE SET generation = excluded.generation
"""
# Days whose rollups exist but whose visits were built at another generation (or never), or whose
# pack is gone (a visit of the day was deleted: migration 0026).
_STALE = """
SELECT r.day, r.generation FROM rollup_generations AS r
LEFT JOIN visit_day_generations AS v ON v.site_id = r.site_id AND v.day = r.day
LEFT JOIN visit_day_packs AS p ON p.site_id = r.site_id AND p.day = r.day
WHERE r.site_id = ? AND r.day >= ? AND r.day <= ?
  AND (v.generation IS NULL OR v.generation != r.generation OR p.day IS NULL)
ORDER BY r.day
"""
_GENERATION = "SELECT generation FROM rollup_generations WHERE site_id = ? AND day = ?"
_BUILT = "SELECT day, generation FROM visit_day_generations WHERE site_id = ? AND day >= ? AND day <= ?"


def answers(conditions: Sequence[Condition]) -> bool:
    """Whether a day's pack can answer a view under ``conditions`` (visit dimensions only)."""
    return all(c.operator in OPERATORS and c.dimension in _COLUMNS for c in conditions)


def can_break_down(dimension: str) -> bool:
    return dimension in _COLUMNS or dimension in EVENT_DIMENSIONS or dimension == "all"


async def stale_days(db: Store, site_id: str, first: str, last: str) -> list[tuple[str, int]]:
    """``(day, rollup generation)`` of the days from ``first`` to ``last`` whose visits need building."""
    return [(str(row[0]), int(row[1])) for row in await db.fetch_all(_STALE, (site_id, first, last))]


async def built_generations(db: Store, site_id: str, first: str, last: str) -> dict[str, int]:
    """``day -> generation`` the stored visits of each day were built at."""
    return {str(row[0]): int(row[1]) for row in await db.fetch_all(_BUILT, (site_id, first, last))}


async def build_day(db: Store, site_id: str, day: str, generation: int, start: str, stop: str) -> None:
    """Store the visits of ``day`` (``[start, stop)`` in UTC ISO text) as its pack for rollup
    ``generation``, replacing any older one.

    The visits are read on a reader and packed on a worker thread; only the pack's write takes the
    writer (at 10M events a day's reads take seconds, and on the writer ingest waited that long), and
    only while the day's rollups are still at ``generation``: a build that lost a race to a newer
    rollup writes nothing (the newer one builds the day). Two nodes building the same day write the
    same pack: the second replaces the first's."""
    from gateway.storage import day_packs  # numpy: imported where packs are built, not by every process

    parameters = {"site": site_id, "start": start, "stop": stop}
    visits = await db.fetch_all(_SELECT_VISITS, parameters)
    facts = await db.fetch_all(_SELECT_FACTS, parameters)
    packed = await asyncio.to_thread(_pack, visits, facts)

    def write(connection: Connection) -> None:
        current = connection.execute(_GENERATION, (site_id, day)).fetchone()
        if current is None or int(current[0]) != generation:
            return
        day_packs.store(connection, site_id, day, packed)
        connection.execute(_MARK, (site_id, day, generation))

    await db.write(write)


def _pack(visits: Sequence[Row], facts: Sequence[Row]) -> bytes:
    from gateway.storage import day_packs

    by_dimension: dict[str, list[Row]] = {dimension: [] for dimension in EVENT_DIMENSIONS}
    for fact in facts:
        by_dimension[str(fact[1])].append((fact[0], *tuple(fact)[2:]))
    return day_packs.pack(_numbered(visits), _COLUMNS, by_dimension)


def _numbered(visits: Sequence[Row]) -> list[Row]:
    """The visits in id order, each as ``day_packs.pack`` takes it: its id, the visitor's number within the
    day (in visitor id order) instead of the visitor id, then the rest of its columns."""
    numbers = {visitor: number for number, visitor in enumerate(sorted({str(visit[1]) for visit in visits}), start=1)}
    return [
        (visit[0], numbers[str(visit[1])], *tuple(visit)[2:])
        for visit in sorted(visits, key=lambda visit: int(visit[0]))
    ]


async def build_stale(db: Store, zones: Mapping[str, tzinfo], rolled_up: Sequence[tuple[str, str]]) -> int:
    """Build the stored visits of the days just rolled up (``(site, local day)`` pairs) whose generation
    moved, as the maintenance leader does after each rollup, so a filtered view finds them ready. Only
    the leader calls it; a view that still finds a stale day builds it itself. Returns the days built."""
    built = 0
    by_site: dict[str, list[str]] = {}
    for site_id, day in rolled_up:
        by_site.setdefault(site_id, []).append(day)
    for site_id, days in by_site.items():
        zone = zones.get(site_id, UTC)
        for day, generation in await stale_days(db, site_id, min(days), max(days)):
            start, stop = day_bounds(date.fromisoformat(day), zone)
            await build_day(db, site_id, day, generation, start, stop)
            built += 1
    return built
