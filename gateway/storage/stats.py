"""SQL the dashboard reads: the rollups first, raw events for what rollups cannot answer.

Values in, plain tuples out: ``gateway.stats`` turns them into figures, folds small rows and
never sees SQL. Each function runs one statement (or one per day) on the read connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.storage.aggregates import Condition, figures_sql, other_visitors_sql
from gateway.storage.store import Store

Row = tuple[Any, ...]

_SERIES = """
SELECT day, visitors, visits, pageviews, events, bounces, duration FROM rollups
WHERE site_id = ? AND dimension = ? AND value = ? AND day >= ? AND day <= ?
ORDER BY day
"""
# The values under the floor are added up per day in SQL: a month of a busy site's pages is some
# 130,000 rows, most of them the long tail that only ever adds to "(other)".
_DAYS = """
SELECT day, dimension, value, visitors, visits, pageviews, events, bounces, duration FROM rollups
WHERE site_id = :site AND dimension IN (:dimension, 'all') AND day >= :first AND day <= :last
  AND (visitors >= :k OR dimension = 'all')
UNION ALL
SELECT day, dimension, NULL, sum(visitors), sum(visits), sum(pageviews), sum(events), sum(bounces), sum(duration)
FROM rollups
WHERE site_id = :site AND dimension = :dimension AND day >= :first AND day <= :last AND visitors < :k
GROUP BY day, dimension
"""
# INDEXED BY (SQLite): its planner would walk every dimension of those days by the primary key.
_PROP_KEYS = """
SELECT DISTINCT substr(dimension, 6) FROM rollups {hint}
WHERE site_id = ? AND dimension >= 'prop:' AND dimension < 'prop;' AND day >= ? AND day <= ? AND visitors >= ?
ORDER BY 1
"""
_PROP_KEYS_HINT = {"sqlite": "INDEXED BY rollups_by_dimension", "postgresql": ""}
# Any write or delete of a day's rollups gives that day the next (highest) generation number.
_GENERATIONS = "SELECT day, generation FROM rollup_generations WHERE site_id = ? AND day >= ? AND day <= ?"
_REALTIME_VISITORS = "SELECT count(DISTINCT visitor_id) FROM events WHERE site_id = ? AND ts >= ? AND ts <= ?"
# The visitors of the pages under k in the window: the people behind realtime's "(other)".
_REALTIME_OTHER_VISITORS = """
SELECT count(DISTINCT visitor_id) FROM events
WHERE site_id = :site AND ts >= :since AND ts <= :until AND name = 'pageview' AND pathname IN (
    SELECT pathname FROM events
    WHERE site_id = :site AND ts >= :since AND ts <= :until AND name = 'pageview'
    GROUP BY pathname HAVING count(DISTINCT visitor_id) < :k
)
"""
# A day's "(other)" visitors of one dimension for k, counted with its rollups (migration 0011): the
# "all" row marks a day as counted, a dimension without a row there has none.
_OTHER_VISITORS = """
SELECT day, coalesce(max(CASE WHEN dimension = :dimension THEN visitors END), 0) FROM rollup_other_visitors
WHERE site_id = :site AND day >= :first AND day <= :last AND k = :k AND dimension IN (:dimension, 'all')
GROUP BY day
HAVING max(CASE WHEN dimension = 'all' THEN 1 ELSE 0 END) = 1
"""
_REALTIME_PAGES = """
SELECT pathname, count(DISTINCT visitor_id) AS visitors FROM events
WHERE site_id = ? AND ts >= ? AND ts <= ? AND name = 'pageview'
GROUP BY pathname
"""
_GOAL_EVENTS = """
SELECT visit_id, visitor_id, name, pathname FROM events
WHERE site_id = :site AND ts >= :start AND ts < :stop AND ({matches})
ORDER BY visit_id, id
"""


async def rollup_series(db: Store, site_id: str, dimension: str, value: str, first: str, last: str) -> list[Row]:
    """``(day, figures...)`` of one dimension's value on each day from ``first`` to ``last`` that has a row."""
    return [tuple(row) for row in await db.fetch_all(_SERIES, (site_id, dimension, value, first, last))]


async def rollup_days(db: Store, site_id: str, dimension: str, first: str, last: str, k: int) -> list[Row]:
    """``(day, dimension, value, figures...)`` of one dimension and of ``all`` on each day from ``first``
    to ``last``, unsorted: the privacy floor works day by day (``gateway.stats.privacy``). Values of
    fewer than ``k`` visitors come as one row per day with the value NULL: their sum."""
    parameters = {"site": site_id, "dimension": dimension, "first": first, "last": last, "k": k}
    return [tuple(row) for row in await db.fetch_all(_DAYS, parameters)]


async def rollup_generations(db: Store, site_id: str, first: str, last: str) -> dict[str, int]:
    """``day -> generation`` of the days with rollups: a day's number changes whenever its rollups
    are rewritten or purged (triggers of migration 0009)."""
    rows = await db.fetch_all(_GENERATIONS, (site_id, first, last))
    return {str(row[0]): int(row[1]) for row in rows}


async def other_visitors(db: Store, site_id: str, dimension: str, first: str, last: str, k: int) -> dict[str, int]:
    """``day -> visitors`` behind each day's "(other)" of ``dimension`` for ``k``, as the rollups counted
    them (distinct visitors with a value of fewer than k); a day they were not counted for is missing."""
    parameters = {"site": site_id, "dimension": dimension, "first": first, "last": last, "k": k}
    rows = await db.fetch_all(_OTHER_VISITORS, parameters)
    return {str(row[0]): int(row[1]) for row in rows}


async def raw_other_visitors(
    db: Store,
    site_id: str,
    dimensions: Sequence[str],
    conditions: Sequence[Condition],
    start: str,
    stop: str,
    *,
    k: int,
    chosen: Sequence[str] | None = None,
) -> dict[str, int]:
    """``dimension -> visitors`` behind "(other)" from raw events in ``[start, stop)``, narrowed by
    ``conditions``: values of fewer than ``k`` visitors, or (one dimension) every value not in ``chosen``;
    ``all``: every visitor. A dimension left out has no such visitor."""
    sql, extra = other_visitors_sql(dimensions, conditions, chosen=chosen is not None, dialect=db.dialect)
    parameters: dict[str, Any] = {"site": site_id, "start": start, "stop": stop, "k": k, **extra}
    if chosen is not None:
        parameters["chosen"] = json.dumps(list(chosen))
    return {str(row[0]): int(row[1]) for row in await db.fetch_all(sql, parameters)}


async def prop_keys(db: Store, site_id: str, first: str, last: str, min_visitors: int) -> list[str]:
    """Custom property keys with at least one value of ``min_visitors`` visitors on one day."""
    sql = _PROP_KEYS.format(hint=_PROP_KEYS_HINT[db.dialect])
    return [str(row[0]) for row in await db.fetch_all(sql, (site_id, first, last, min_visitors))]


async def raw_figures(
    db: Store,
    site_id: str,
    dimensions: Sequence[str],
    conditions: Sequence[Condition],
    start: str,
    stop: str,
) -> list[Row]:
    """``(dimension, value, figures...)`` computed from raw events in ``[start, stop)`` (ISO UTC text),
    the way a rollup would, narrowed by ``conditions``."""
    sql, extra = figures_sql(dimensions, conditions, dialect=db.dialect)
    parameters: dict[str, Any] = {"site": site_id, "start": start, "stop": stop, **extra}
    return [tuple(row) for row in await db.fetch_all(sql, parameters)]


async def realtime(
    db: Store, site_id: str, since: datetime, until: datetime, k: int
) -> tuple[int, list[tuple[str, int]], int]:
    """Visitors with an event between ``since`` and ``until``, the pages they viewed (visitors per page),
    and the distinct visitors of the pages of fewer than ``k`` visitors."""
    window = (site_id, since.isoformat(), until.isoformat())
    visitors = await db.fetch_all(_REALTIME_VISITORS, window)
    pages = await db.fetch_all(_REALTIME_PAGES, window)
    named = {"site": site_id, "since": window[1], "until": window[2], "k": k}
    other = await db.fetch_all(_REALTIME_OTHER_VISITORS, named)
    return int(visitors[0][0]), [(str(row[0]), int(row[1])) for row in pages], int(other[0][0])


async def goal_events(
    db: Store, site_id: str, matches: Sequence[tuple[str, str, str]], start: str, stop: str
) -> list[Row]:
    """``(visit_id, visitor_id, name, pathname)`` of the events matching any goal, in visit order.

    ``matches`` holds ``(kind, value, _)`` with kind ``page`` (a LIKE pattern, ``\\`` escaping) or
    ``event`` (a name); the values travel as parameters. SQLite's LIKE ignores the case of ASCII
    letters; PostgreSQL's ILIKE is its twin, so a goal matches the same pages on both stores.
    """
    like = "ILIKE" if db.dialect == "postgresql" else "LIKE"
    clauses, parameters = [], {"site": site_id, "start": start, "stop": stop}
    for index, (kind, value, _) in enumerate(matches):
        parameters[f"g{index}"] = value
        if kind == "page":
            clauses.append(f"(name = 'pageview' AND pathname {like} :g{index} ESCAPE '\\')")
        else:
            clauses.append(f"name = :g{index}")
    sql = _GOAL_EVENTS.format(matches=" OR ".join(clauses) or "1 = 0")
    return [tuple(row) for row in await db.fetch_all(sql, parameters)]
