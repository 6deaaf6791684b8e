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
from typing import Any

from gateway.storage.aggregates import (
    STARTED_VISIT_DIMENSIONS,
    VISIT_DIMENSIONS,
    Condition,
    _with,
)
from gateway.storage.sql import Connection
from gateway.storage.store import Store

Row = tuple[Any, ...]
#: Conditions this module answers: on a visit dimension, by one of these operators.
OPERATORS = ("is", "is_not", "in", "not_in")
#: Breakdowns it answers: every visit dimension (a column each) and these event dimensions.
EVENT_DIMENSIONS = ("page", "event")
_COLUMNS = tuple(name for name in VISIT_DIMENSIONS if name != "all") + tuple(STARTED_VISIT_DIMENSIONS)

_DELETE = (
    "DELETE FROM visit_days WHERE site_id = ? AND day = ?",
    "DELETE FROM visit_day_values WHERE site_id = ? AND day = ?",
)
# aggregates' day_visits (each visit with an event in the window, its whole-visit bounce and
# duration, its first event's visit dimensions), stored with the dimensions' values as computed.
_INSERT_VISITS = (
    _with([], [], [])
    + f"""
INSERT INTO visit_days (
    site_id, day, visit_id, visitor_id, pageviews, events, bounce, duration, started, visit_pageviews, visit_events,
    {", ".join(_COLUMNS)}
)
SELECT :site, :day, visit_id, visitor_id, pageviews, events, CASE WHEN bounce THEN 1 ELSE 0 END, duration,
       CASE WHEN started_at >= :start AND started_at < :stop THEN 1 ELSE 0 END, visit_pageviews, visit_events,
       {", ".join(VISIT_DIMENSIONS[name] if name in VISIT_DIMENSIONS else name for name in _COLUMNS)}
FROM day_visits"""
)
# aggregates' event facts of ``page`` and ``event``, one row per visit and value.
_INSERT_VALUES = """
INSERT INTO visit_day_values (site_id, day, visit_id, dimension, value, visitor_id, pageviews, events)
SELECT :site, :day, visit_id, 'page', pathname, max(visitor_id), count(*), count(*) FROM events
WHERE site_id = :site AND ts >= :start AND ts < :stop AND name = 'pageview'
GROUP BY visit_id, pathname
UNION ALL
SELECT :site, :day, visit_id, 'event', name, max(visitor_id), 0, count(*) FROM events
WHERE site_id = :site AND ts >= :start AND ts < :stop AND name != 'pageview'
GROUP BY visit_id, name
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
    "count(DISTINCT CASE WHEN {where} THEN visitor_id END)",
    "count(CASE WHEN {where} THEN 1 END)",
    "sum(CASE WHEN {where} THEN pageviews END)",
    "sum(CASE WHEN {where} THEN events END)",
    "sum(CASE WHEN {where} THEN bounce END)",
    "sum(CASE WHEN {where} THEN duration END)",
)
_FIGURES = (
    "count(DISTINCT {v}visitor_id), count(*), sum({f}pageviews), sum({f}events), sum({v}bounce), sum({v}duration)"
)


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
    any older rows, in one transaction (two nodes building the same day write the same rows)."""
    parameters = {"site": site_id, "day": day, "start": start, "stop": stop}

    def build(connection: Connection) -> None:
        for statement in _DELETE:
            connection.execute(statement, (site_id, day))
        connection.execute(_INSERT_VISITS, parameters)  # type: ignore[arg-type]
        connection.execute(_INSERT_VALUES, parameters)  # type: ignore[arg-type]
        connection.execute(_MARK, (site_id, day, generation))

    await db.write(build)


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


def _days(days: Sequence[str], prefix: str = "") -> tuple[str, list[str]]:
    return f"{prefix}day IN ({', '.join('?' * len(days))})", list(days)


async def cells(
    db: Store, site_id: str, days: Sequence[str], variants: Sequence[Sequence[Condition]]
) -> dict[str, list[Row]]:
    """``day -> [figures of each variant]``: the view's day cell under each set of conditions, every
    day and every variant (the privacy floor's drop-one parents) in one pass over the days' visits.
    A day without a visit in any variant is missing."""
    if not days or not variants:
        return {}
    selects: list[str] = []
    parameters: list[str] = []
    wheres: list[tuple[str, list[str]]] = []
    for variant in variants:
        where, values = _where(variant)
        selects.append(", ".join(template.format(where=where) for template in _CELL))
        parameters.extend(values * 6)
        wheres.append((where, values))
    in_days, day_values = _days(days)
    any_variant = " OR ".join(f"({where})" for where, _ in wheres)
    sql = (
        f"SELECT day, {', '.join(selects)} FROM visit_days "
        f"WHERE site_id = ? AND {in_days} AND ({any_variant}) GROUP BY day"
    )
    parameters.extend([site_id, *day_values])
    for _, values in wheres:
        parameters.extend(values)
    found: dict[str, list[Row]] = {}
    for row in await db.fetch_all(sql, parameters):
        numbers = [int(value or 0) for value in tuple(row)[1:]]
        found[str(row[0])] = [tuple(numbers[index : index + 6]) for index in range(0, len(numbers), 6)]
    return found


async def breakdown(
    db: Store, site_id: str, days: Sequence[str], dimension: str, conditions: Sequence[Condition]
) -> list[Row]:
    """``(day, value, figures...)`` of ``dimension`` under ``conditions`` on each of ``days``, the way
    ``figures_sql`` counts them (entry and exit pages: the visits started that day)."""
    if not days:
        return []
    in_days, day_values = _days(days, "v.")
    where, values = _where(conditions, "v.")
    if dimension in EVENT_DIMENSIONS:
        sql = (
            "SELECT v.day, f.value, "
            + _FIGURES.format(v="v.", f="f.").replace("count(DISTINCT v.visitor_id)", "count(DISTINCT f.visitor_id)")
            + " FROM visit_days AS v JOIN visit_day_values AS f ON f.site_id = v.site_id AND f.day = v.day"
            " AND f.visit_id = v.visit_id AND f.dimension = ?"
            f" WHERE v.site_id = ? AND {in_days} AND {where} GROUP BY v.day, f.value"
        )
        parameters: list[Any] = [dimension, site_id, *day_values, *values]
    else:
        started = dimension in STARTED_VISIT_DIMENSIONS
        value = "''" if dimension == "all" else f"v.{dimension}"
        figures = _FIGURES.format(v="v.", f="v.visit_" if started else "v.")
        sql = (
            f"SELECT v.day, {value}, {figures} FROM visit_days AS v WHERE v.site_id = ? AND {in_days} AND {where}"
            f"{' AND v.started = 1' if started else ''} GROUP BY v.day, {value}"
        )
        parameters = [site_id, *day_values, *values]
    return [tuple(row) for row in await db.fetch_all(sql, parameters)]


async def other_visitors(
    db: Store, site_id: str, day: str, dimension: str, conditions: Sequence[Condition], chosen: Sequence[str]
) -> int:
    """The distinct visitors of the view on ``day`` with a value of ``dimension`` outside ``chosen``: the
    people behind a filtered breakdown's "(other)" (``gateway.stats.privacy``, rule 2)."""
    where, values = _where(conditions, "v.")
    marks = ", ".join("?" * len(chosen))
    left_out = f"NOT IN ({marks})" if chosen else "IS NOT NULL"
    if dimension in EVENT_DIMENSIONS:
        sql = (
            "SELECT count(DISTINCT f.visitor_id) FROM visit_days AS v JOIN visit_day_values AS f"
            " ON f.site_id = v.site_id AND f.day = v.day AND f.visit_id = v.visit_id AND f.dimension = ?"
            f" WHERE v.site_id = ? AND v.day = ? AND {where} AND f.value {left_out}"
        )
        parameters: list[Any] = [dimension, site_id, day, *values, *chosen]
    else:
        started = " AND v.started = 1" if dimension in STARTED_VISIT_DIMENSIONS else ""
        sql = (
            "SELECT count(DISTINCT v.visitor_id) FROM visit_days AS v"
            f" WHERE v.site_id = ? AND v.day = ? AND {where}{started} AND v.{dimension} {left_out}"
        )
        parameters = [site_id, day, *values, *chosen]
    rows = await db.fetch_all(sql, parameters)
    return int(rows[0][0]) if rows else 0


def figures_by_day(rows: Sequence[Row]) -> Mapping[str, dict[str, Row]]:
    """``(day, value, figures...)`` rows as ``day -> value -> figures``."""
    found: dict[str, dict[str, Row]] = {}
    for row in rows:
        found.setdefault(str(row[0]), {})[str(row[1])] = tuple(row[2:8])
    return found
