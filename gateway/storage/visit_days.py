"""Each local day's visits, kept once (migration 0016), so a filtered view reads visits, not events.

A filter the rollups cannot answer (two conditions, an "is not", a breakdown under a filter) used to
run ``gateway.storage.aggregates.figures_sql`` over every raw event of each day, once per cell the
privacy floor needed: ~10 us an event, a minute for a 30-day view of a busy site. Here a day's visits
are reduced once, with that module's own SQL (so a figure is the same whichever way it is read), to
one row per visit (``visit_days``: its figures and its visit dimensions' values) and one row per visit
and page or custom event (``visit_day_values``). The questions then read one row per visit, every day
of a period in one statement, every cell the floor needs in the same pass.

A day's rows carry the rollup generation (migration 0009) they were built at; ``stale_days`` says
which days need building again (their rollups were rewritten or purged since), ``build_day`` builds
one in a write transaction. Maintenance builds them right after the rollups; a view that finds a
stale day builds it first. Conditions on visit dimensions only (``is``, ``is_not``, ``in``,
``not_in``): an event condition (``page``, ``event``, ``prop:``) keeps the raw-event path.
"""

# Builds SQL from its own constant fragments and column names; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, tzinfo
from typing import Any

from gateway.storage.aggregates import (
    STARTED_VISIT_DIMENSIONS,
    VISIT_DIMENSIONS,
    Condition,
    _with,
)
from gateway.storage.rollups import _execute, day_bounds
from gateway.storage.sql import Connection
from gateway.storage.store import Store

Row = tuple[Any, ...]
#: Conditions this module answers: on a visit dimension, by one of these operators.
OPERATORS = ("is", "is_not", "in", "not_in")
#: Breakdowns it answers: every visit dimension (a column each) and these event dimensions.
EVENT_DIMENSIONS = ("page", "event")
_COLUMNS = tuple(name for name in VISIT_DIMENSIONS if name != "all") + tuple(STARTED_VISIT_DIMENSIONS)
#: Filter columns with an index of their own (migration 0016), in the order of their ``mixed`` bits.
INDEXED = ("country", "device", "browser", "os", "channel", "source")

_DELETE = (
    "DELETE FROM visit_days WHERE site_id = ? AND day = ?",
    "DELETE FROM visit_day_values WHERE site_id = ? AND day = ?",
)
# aggregates' day_visits (each visit with an event in the window, its whole-visit bounce and duration,
# its first event's visit dimensions), with the dimensions' values as computed. The visitor's number
# within the day and its mixed bits are added in Python (``_numbered``): window functions over these
# rows took three times the whole SELECT on SQLite.
_SELECT_VISITS = (
    _with([], [], [])
    + f"""
SELECT visit_id, visitor_id, pageviews, events, CASE WHEN bounce THEN 1 ELSE 0 END, duration,
       CASE WHEN started_at >= :start AND started_at < :stop THEN 1 ELSE 0 END, visit_pageviews, visit_events,
       {", ".join(VISIT_DIMENSIONS.get(name, name) for name in _COLUMNS)}
FROM day_visits"""
)
_INSERT_VISITS = f"""
INSERT INTO visit_days (
    site_id, day, visit_id, visitor, mixed, pageviews, events, bounce, duration, started, visit_pageviews,
    visit_events, {", ".join(_COLUMNS)}
) VALUES ({", ".join("?" * (12 + len(_COLUMNS)))})"""
#: The partial indexes of the mixed visitors (migration 0016), by column.
_MIXED_INDEXES = {column: f"visit_days_{column}_mixed" for column in ("country", "device", "browser", "os")}
_FIXED = 9  # the columns of _SELECT_VISITS before the dimensions
_MIXED_AT = tuple(_FIXED + _COLUMNS.index(column) for column in INDEXED)
# aggregates' event facts of ``page`` and ``event``, one row per visit and value, with the visit's visitor
# number (the visit's row above).
_INSERT_VALUES = """
INSERT INTO visit_day_values (site_id, day, visit_id, dimension, value, visitor, pageviews, events)
SELECT v.site_id, v.day, v.visit_id, f.dimension, f.value, v.visitor, f.pageviews, f.events
FROM (
    SELECT visit_id, 'page' AS dimension, pathname AS value, count(*) AS pageviews, count(*) AS events FROM events
    WHERE site_id = :site AND ts >= :start AND ts < :stop AND name = 'pageview'
    GROUP BY visit_id, pathname
    UNION ALL
    SELECT visit_id, 'event', name, 0, count(*) FROM events
    WHERE site_id = :site AND ts >= :start AND ts < :stop AND name != 'pageview'
    GROUP BY visit_id, name
) AS f
JOIN visit_days AS v ON v.site_id = :site AND v.day = :day AND v.visit_id = f.visit_id
"""
_MARK = """
INSERT INTO visit_day_generations (site_id, day, generation) VALUES (?, ?, ?)
ON CONFLICT (site_id, day) DO UPDATE SET generation = excluded.generation
"""
# Days whose rollups exist but whose visits were built at another generation (or never).
_STALE = """
SELECT r.day, r.generation FROM rollup_generations AS r
LEFT JOIN visit_day_generations AS v ON v.site_id = r.site_id AND v.day = r.day
WHERE r.site_id = ? AND r.day >= ? AND r.day <= ? AND (v.generation IS NULL OR v.generation != r.generation)
ORDER BY r.day
"""
_BUILT = "SELECT day, generation FROM visit_day_generations WHERE site_id = ? AND day >= ? AND day <= ?"
_CELL = (
    "count(DISTINCT CASE WHEN {where} THEN visitor END)",
    "count(CASE WHEN {where} THEN 1 END)",
    "sum(CASE WHEN {where} THEN pageviews END)",
    "sum(CASE WHEN {where} THEN events END)",
    "sum(CASE WHEN {where} THEN bounce END)",
    "sum(CASE WHEN {where} THEN duration END)",
)
#: The columns of a stored visit the figures of a breakdown read (``_FIGURES``, entry and exit pages).
_VISIT_FIGURES = (
    "day",
    "visit_id",
    "visitor",
    "pageviews",
    "events",
    "bounce",
    "duration",
    "started",
    "visit_pageviews",
    "visit_events",
)
_FIGURES = "count(DISTINCT {c}visitor), count(*), sum({f}pageviews), sum({f}events), sum({v}bounce), sum({v}duration)"
# The visitor numbers of a row of fewer than k visitors (NULL for the others): "(other)"'s people are
# the union of its small rows' visitors, so they are counted in the breakdown's own pass.
_SMALL_VISITORS = {
    "sqlite": "CASE WHEN count(DISTINCT {c}visitor) < ? THEN group_concat(DISTINCT {c}visitor) END",
    "postgresql": (
        "CASE WHEN count(DISTINCT {c}visitor) < ? THEN string_agg(DISTINCT CAST({c}visitor AS TEXT), ',') END"
    ),
}


def answers(conditions: Sequence[Condition]) -> bool:
    """Whether these tables can answer a view under ``conditions`` (visit dimensions only)."""
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
    """Store the visits of ``day`` (``[start, stop)`` in UTC ISO text) for rollup ``generation``, replacing
    any older rows, in one transaction. Two nodes building the same day write the same rows: on
    PostgreSQL the second waits on the first's deleted rows and replaces them."""
    parameters = {"site": site_id, "day": day, "start": start, "stop": stop}

    def build(connection: Connection) -> None:
        for statement in _DELETE:
            connection.execute(statement, (site_id, day))
        visits = _execute(connection, _SELECT_VISITS, parameters).fetchall()
        connection.executemany(_INSERT_VISITS, _numbered(site_id, day, visits))
        _execute(connection, _INSERT_VALUES, parameters)
        connection.execute(_MARK, (site_id, day, generation))

    await db.write(build)


def _numbered(site_id: str, day: str, visits: Sequence[Row]) -> list[Row]:
    """The visits' rows as stored: the visitor id replaced by its number within the day (in id order),
    and the bits of the indexed columns whose value differs between the visitor's visits."""
    seen: dict[str, tuple[Any, ...]] = {}
    mixed: dict[str, int] = {}
    for visit in visits:
        visitor = str(visit[1])
        values = tuple(visit[index] for index in _MIXED_AT)
        first = seen.setdefault(visitor, values)
        if first is not values:
            bits = sum(1 << bit for bit, (a, b) in enumerate(zip(first, values, strict=True)) if a != b)
            mixed[visitor] = mixed.get(visitor, 0) | bits
    numbers = {visitor: number for number, visitor in enumerate(sorted(seen), start=1)}
    return [
        (site_id, day, visit[0], numbers[str(visit[1])], mixed.get(str(visit[1]), 0), *tuple(visit)[2:])
        for visit in sorted(visits, key=lambda visit: int(visit[0]))
    ]


def _where(conditions: Sequence[Condition], prefix: str = "") -> tuple[str, list[str]]:
    """SQL that holds when every condition does (``1 = 1`` for none), and its parameters."""
    clauses: list[str] = []
    parameters: list[str] = []
    for condition in conditions:
        column = prefix + condition.dimension
        if condition.operator in ("in", "not_in"):
            marks = ", ".join("?" * len(condition.values))
            clauses.append(f"{column} {'IN' if condition.operator == 'in' else 'NOT IN'} ({marks})")
            parameters.extend(condition.values)
        else:
            clauses.append(f"{column} {'=' if condition.operator == 'is' else '!='} ?")
            parameters.append(condition.value)
    return " AND ".join(clauses) or "1 = 1", parameters


def _visits(db: Store, driver: Condition | None, index: str = "", alias: str = "") -> str:
    """``visit_days`` in a FROM clause, read through ``driver``'s index on SQLite (``INDEXED BY``: without
    statistics its planner prefers the primary key's day range, every visit of the days). PostgreSQL's
    planner has statistics and chooses by itself."""
    name = f"visit_days AS {alias}" if alias else "visit_days"
    if db.dialect != "sqlite" or (driver is None and not index):
        return name
    return f"{name} INDEXED BY {index or f'visit_days_{driver.dimension}' if driver else index}"


def _days(first: str, last: str, prefix: str = "") -> tuple[str, list[str]]:
    return f"{prefix}day >= ? AND {prefix}day <= ?", [first, last]


async def cells(
    db: Store,
    site_id: str,
    days: Sequence[str],
    variants: Sequence[Sequence[Condition]],
    *,
    driver: Condition | None = None,
) -> dict[str, list[Row]]:
    """``day -> [figures of each variant]``: the day cell under each set of conditions, every day and
    every variant in one pass over the days' visits that hold every variant's shared conditions (read
    through ``driver``'s index: the most selective "is"). A day without a visit in any variant is missing."""
    if not days or not variants:
        return {}
    shared = [c for c in variants[0] if all(c in variant for variant in variants[1:])]
    selects: list[str] = []
    parameters: list[str] = []
    for variant in variants:
        where, values = _where([c for c in variant if c not in shared])
        selects.append(", ".join(template.format(where=where) for template in _CELL))
        parameters.extend(values * 6)
    in_days, day_values = _days(min(days), max(days))
    narrowed, shared_values = _where(shared)
    sql = (
        f"SELECT day, {', '.join(selects)} FROM {_visits(db, driver)}"
        f" WHERE site_id = ? AND {in_days} AND {narrowed} GROUP BY day"
    )
    parameters.extend([site_id, *day_values, *shared_values])
    wanted = set(days)
    found: dict[str, list[Row]] = {}
    for row in await db.fetch_all(sql, parameters):
        if str(row[0]) not in wanted:
            continue
        numbers = [int(value or 0) for value in tuple(row)[1:]]
        found[str(row[0])] = [tuple(numbers[index : index + 6]) for index in range(0, len(numbers), 6)]
    return found


async def mixed_visitors(db: Store, site_id: str, first: str, last: str, dimension: str, value: str) -> dict[str, int]:
    """``day -> visitors`` with a visit of ``dimension`` = ``value`` and another visit without it, that
    day (an indexed dimension). Read from the index alone but for those visitors' rows: the day's
    cell under ``dimension != value`` is the day minus the value's cell plus these people."""
    index = _MIXED_INDEXES.get(dimension, f"visit_days_{dimension}")
    # The bit is written into the SQL, as in the partial index's WHERE, so the planner can match them.
    sql = (
        f"SELECT day, count(DISTINCT visitor) FROM {_visits(db, None, index)}"
        f" WHERE site_id = ? AND {dimension} = ?"
        f" AND day >= ? AND day <= ? AND (mixed & {1 << INDEXED.index(dimension)}) != 0 GROUP BY day"
    )
    rows = await db.fetch_all(sql, (site_id, value, first, last))
    return {str(row[0]): int(row[1]) for row in rows}


async def breakdown(
    db: Store,
    site_id: str,
    days: Sequence[str],
    dimension: str,
    conditions: Sequence[Condition],
    k: int,
    *,
    driver: Condition | None = None,
) -> list[Row]:
    """``(day, value, figures..., small visitors)`` of ``dimension`` under ``conditions`` on each of
    ``days``, the way ``figures_sql`` counts them (entry and exit pages: the visits started that day);
    the last column lists the visitor numbers of a row of fewer than ``k`` visitors (else NULL)."""
    found = await breakdowns(db, site_id, days, (dimension,), conditions, k, driver=driver)
    return found.get(dimension, [])


async def breakdowns(
    db: Store,
    site_id: str,
    days: Sequence[str],
    dimensions: Sequence[str],
    conditions: Sequence[Condition],
    k: int,
    *,
    driver: Condition | None = None,
) -> dict[str, list[Row]]:
    """``breakdown``'s rows of several dimensions under the same conditions, in one statement: the
    matching visits are read once (a materialised CTE) and grouped once per dimension. A filtered
    overview asks five panels; read one by one, each found the same visits through the index again
    (a table lookup per visit), most of a 30-day view's first request at 10M events."""
    if not days or not dimensions:
        return {}
    in_days, day_values = _days(min(days), max(days), "v.")
    where, values = _where(conditions, "v.")
    small = _SMALL_VISITORS[db.dialect]
    columns = (*_VISIT_FIGURES, *sorted({name for name in dimensions if name in _COLUMNS}))
    matched = (
        f"SELECT {', '.join(f'v.{column}' for column in columns)} FROM {_visits(db, driver, alias='v')}"
        f" WHERE v.site_id = ? AND {in_days} AND {where}"
    )
    parameters: list[Any] = [site_id, *day_values, *values]
    parts = []
    for index, dimension in enumerate(dimensions):
        if dimension in EVENT_DIMENSIONS:
            parts.append(
                f"SELECT {index}, v.day, f.value, {_FIGURES.format(c='f.', v='v.', f='f.')}, {small.format(c='f.')}"
                " FROM matched AS v JOIN visit_day_values AS f"
                " ON f.site_id = ? AND f.day = v.day AND f.visit_id = v.visit_id AND f.dimension = ?"
                " GROUP BY v.day, f.value"
            )
            parameters.extend([k, site_id, dimension])
        else:
            started = dimension in STARTED_VISIT_DIMENSIONS
            value = "''" if dimension == "all" else f"v.{dimension}"
            figures = _FIGURES.format(c="v.", v="v.", f="v.visit_" if started else "v.")
            parts.append(
                f"SELECT {index}, v.day, {value}, {figures}, {small.format(c='v.')} FROM matched AS v"
                f"{' WHERE v.started = 1' if started else ''} GROUP BY v.day, {value}"
            )
            parameters.append(k)
    materialized = "MATERIALIZED " if len(dimensions) > 1 else ""
    sql = f"WITH matched AS {materialized}({matched}) " + " UNION ALL ".join(parts)
    wanted = set(days)
    found: dict[str, list[Row]] = {dimension: [] for dimension in dimensions}
    for row in await db.fetch_all(sql, parameters):
        if str(row[1]) in wanted:
            found[dimensions[int(row[0])]].append(tuple(row)[1:])
    return found


def figures_by_day(rows: Sequence[Row]) -> Mapping[str, dict[str, tuple[Row, frozenset[int] | None]]]:
    """``(day, value, figures..., small visitors)`` rows as ``day -> value -> (figures, visitor numbers
    of a row under k, else None)``."""
    found: dict[str, dict[str, tuple[Row, frozenset[int] | None]]] = {}
    for row in rows:
        people = None if row[8] is None else frozenset(int(number) for number in str(row[8]).split(","))
        found.setdefault(str(row[0]), {})[str(row[1])] = (tuple(row[2:8]), people)
    return found


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
