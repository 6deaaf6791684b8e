"""Daily rollups: one row per site, local day, dimension and value, rebuilt whole from raw events and visits.

A day is the site's own calendar day (its ``timezone``; UTC unless set), so the dashboard's days,
weeks and months add up rollup rows without touching raw events. What each row counts, and the
dimensions, are those of ``gateway.storage.aggregates`` over the events of that day: a visit counts
on every day it has events, so a visit across midnight counts once on each of its days; summing
days counts it twice. ``entry_page`` and ``exit_page`` count the visits started that day.

The marks in ``rollup_dirty`` name UTC days (what an insert can tell without the site's settings);
the planner turns each into the one or two local days it overlaps. Each mark carries the generation
of the batch that set it last (``mark_dirty``: a number never handed out twice), and a rebuild clears
a mark only while it still holds the generation the rebuild read. A batch that commits after the
rebuild's read (on PostgreSQL, other nodes commit at any moment, in any order of their event ids)
has given the mark a new generation, so the mark stays and the next round counts its events.

With each day's rollups goes, for the site's k (``floors``: site id -> ``min_visitors``), each
dimension's count of DISTINCT visitors with a value of fewer than k visitors (``other_visitors_sql``,
table ``rollup_other_visitors``): the people behind that day's "(other)", which the privacy floor
publishes only when they are k or more (``gateway.stats.privacy``, rule 2). A site left out of
``floors`` gets no such rows; the dashboard then counts them from raw events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, cast

from gateway.storage.aggregates import ALL_PROPS, DIMENSIONS, PROP_PREFIX, figures_sql, other_visitors_sql
from gateway.storage.sql import Connection, Cursor, Dialect, is_postgres
from gateway.storage.store import Store

__all__ = [
    "DIMENSIONS",
    "PROP_PREFIX",
    "RollupPlan",
    "apply_plan",
    "mark_dirty",
    "plan_dirty",
    "rebuild_all",
    "rebuild_day",
]

Zones = Mapping[str, tzinfo]
#: Each site's k (``min_visitors``): the day's "(other)" visitors are counted for it.
Floors = Mapping[str, int]

_DELETE_DAY = "DELETE FROM rollups WHERE site_id = :site AND day = :day"
_COUNT_DAY = "SELECT count(*) FROM rollups WHERE site_id = :site AND day = :day"
_DIALECTS: tuple[Dialect, ...] = ("sqlite", "postgresql")
_SELECT_DAY = {dialect: figures_sql((*DIMENSIONS, ALL_PROPS), dialect=dialect)[0] for dialect in _DIALECTS}
_INSERT_HEAD = (
    "INSERT INTO rollups (site_id, day, dimension, value, visitors, visits, pageviews, events, bounces, duration)"
)
_ROLL_UP_DAY = {
    dialect: sql.replace("\nSELECT * FROM (", f"\n{_INSERT_HEAD}\nSELECT :site, :day, * FROM (", 1)
    for dialect, sql in _SELECT_DAY.items()
}
_SELECT_OTHER_VISITORS = {
    dialect: other_visitors_sql((*DIMENSIONS, ALL_PROPS), dialect=dialect)[0] for dialect in _DIALECTS
}
_INSERT_OTHER_VISITORS = (
    "INSERT INTO rollup_other_visitors (site_id, day, k, dimension, visitors) VALUES (?, ?, ?, ?, ?)"
)

_DIRTY = "SELECT site_id, day, generation FROM rollup_dirty ORDER BY site_id, day"
# A mark is cleared only while it holds the generation the rebuild read: a batch that marked the day
# again since (committed after the read) gave it another, and the mark stays for the next round.
_CLEAR_DIRTY = "DELETE FROM rollup_dirty WHERE site_id = ? AND day = ? AND generation = ?"
_MARK_DIRTY = """
INSERT INTO rollup_dirty (site_id, day, generation) VALUES (?, ?, ?)
ON CONFLICT (site_id, day) DO UPDATE SET generation = excluded.generation
"""
_NEXT_GENERATION_SQLITE = "UPDATE rollup_dirty_counter SET generation = generation + 1 RETURNING generation"
# PostgreSQL: the marks as the last part of a batch's one write statement (gateway/storage/batch_visits.py,
# after its ``WITH``): ``%s`` is a JSON array of [site, day] pairs. One generation for the batch.
_BATCH_GENERATION = "batch AS MATERIALIZED (SELECT nextval('rollup_dirty_generation') AS generation)"
_MARK_DIRTY_POSTGRES = """
INSERT INTO rollup_dirty (site_id, day, generation)
SELECT m.r->>0, m.r->>1, batch.generation FROM jsonb_array_elements(CAST(%s AS jsonb)) AS m (r), batch
ORDER BY 1, 2
ON CONFLICT (site_id, day) DO UPDATE SET generation = excluded.generation
"""
#: The marks as the statement's last part.
MARK_DIRTY_POSTGRES_TAIL = f"{_BATCH_GENERATION}\n{_MARK_DIRTY_POSTGRES}"
#: The marks as its last two CTEs, for a statement that ends with a query of its own.
MARK_DIRTY_POSTGRES_CTES = f"{_BATCH_GENERATION}, marked AS ({_MARK_DIRTY_POSTGRES})"
# The planner's read transaction: one snapshot for every statement (PostgreSQL's default gives each
# statement its own).
_BEGIN_SNAPSHOT_SQLITE = "BEGIN"
_BEGIN_SNAPSHOT_POSTGRES = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# The hours of the earlier events of the visits still going on in a window: their days hold the
# visits' bounce, duration and exit page, which the new events changed.
_EARLIER_HOURS_OF_CONTINUED_VISITS = """
SELECT DISTINCT substr(e.ts, 1, 13) FROM events AS e
WHERE e.visit_id IN (
    SELECT v.id FROM visits AS v
    WHERE v.id IN (SELECT visit_id FROM events WHERE site_id = :site AND ts >= :start AND ts < :stop)
      AND v.started_at < :start
) AND e.ts < :start
"""
_HOURS_WITH_EVENTS = "SELECT DISTINCT site_id, substr(ts, 1, 13) FROM events ORDER BY 1, 2"
_HOURS_WITH_EVENTS_OF_SITE = "SELECT DISTINCT site_id, substr(ts, 1, 13) FROM events WHERE site_id = ? ORDER BY 2"
_ROWS = """
SELECT value, visitors, visits, pageviews, events, bounces, duration FROM rollups
WHERE site_id = ? AND day = ? AND dimension = ?
ORDER BY visitors DESC, visits DESC, value
"""
_INSERT_ROW = _INSERT_HEAD + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


Mark = tuple[str, str, int]  # (site, UTC day, generation)


def _dialect(connection: Connection) -> Dialect:
    return "postgresql" if is_postgres(connection) else "sqlite"


def _no_jit(connection: Connection) -> None:
    """PostgreSQL's JIT compiles the rollup SQL (twenty-odd GROUP BYs) for seconds before running it
    (measured: 55 s against 32 s for a day of 50,000 events): off until the transaction ends."""
    if is_postgres(connection):
        connection.execute("SET LOCAL jit = off")


def _execute(connection: Connection, sql: str, named: Mapping[str, object]) -> Cursor:
    """Run SQL written with ``:name`` parameters on either store (both bind a mapping by name)."""
    return connection.execute(sql, named)


def mark_dirty(connection: Connection, days: Iterable[tuple[str, str]]) -> None:
    """Mark (site, UTC day) pairs for the next rollup, under one new generation (inside the batch's transaction).

    In sorted order: two batches marking the same days lock their rows in the same order (no deadlock).
    """
    marks = sorted(set(days))
    if not marks:
        return
    if is_postgres(connection):  # a batch of events marks its days in its own statement (batch_visits.py)
        cast(Any, connection).execute_prepared("WITH " + MARK_DIRTY_POSTGRES_TAIL, (marks,))
        return
    generation = int(connection.execute(_NEXT_GENERATION_SQLITE).fetchone()[0])
    connection.executemany(_MARK_DIRTY, [(site, day, generation) for site, day in marks])


def _read_marks(connection: Connection) -> tuple[Mark, ...]:
    return tuple((str(site), str(day), int(generation)) for site, day, generation in connection.execute(_DIRTY))


def parse_day(day: str) -> date:
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"expected a day as YYYY-MM-DD, found {day!r}") from None
    if parsed.isoformat() != day:
        raise ValueError(f"expected a day as YYYY-MM-DD, found {day!r}")
    return parsed


def day_bounds(day: date, zone: tzinfo) -> tuple[str, str]:
    """The UTC instants (ISO text, comparable with stored timestamps) where ``day`` starts and ends in ``zone``."""
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    stop = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start.replace(tzinfo=None).isoformat(), stop.replace(tzinfo=None).isoformat()


def _window(site_id: str, day: str, zone: tzinfo) -> dict[str, str]:
    start, stop = day_bounds(parse_day(day), zone)
    return {"site": site_id, "day": day, "start": start, "stop": stop}


def _local_days_of_hour(hour: str, zone: tzinfo) -> set[str]:
    """The local days the UTC hour ``YYYY-MM-DDTHH`` overlaps (two where a zone's offset has minutes)."""
    start = datetime.fromisoformat(hour + ":00:00+00:00")
    last = start + timedelta(hours=1, microseconds=-1)
    return {start.astimezone(zone).date().isoformat(), last.astimezone(zone).date().isoformat()}


def _local_days_of_mark(day: str, zone: tzinfo) -> set[str]:
    """The local days a UTC day overlaps: one in UTC, two elsewhere."""
    start = datetime.combine(parse_day(day), time(), UTC)
    last = start + timedelta(days=1, microseconds=-1)
    return {start.astimezone(zone).date().isoformat(), last.astimezone(zone).date().isoformat()}


def _zone(zones: Zones | None, site_id: str) -> tzinfo:
    return (zones or {}).get(site_id, UTC)


def _days_to_roll_up(connection: Connection, dirty: Iterable[Mark], zones: Zones | None) -> set[tuple[str, str]]:
    """The local (site, day) pairs the UTC marks touch, plus the earlier days of visits they continued."""
    wanted: set[tuple[str, str]] = set()
    for site, day, _ in dirty:
        zone = _zone(zones, site)
        for local_day in _local_days_of_mark(day, zone):
            wanted.add((site, local_day))
            window = _window(site, local_day, zone)
            earlier = _execute(connection, _EARLIER_HOURS_OF_CONTINUED_VISITS, window).fetchall()
            wanted.update((site, local) for row in earlier for local in _local_days_of_hour(str(row[0]), zone))
    return wanted


def rebuild_day(
    connection: Connection, site_id: str, day: str, *, zones: Zones | None = None, floors: Floors | None = None
) -> int:
    """Replace the rollups of ``site_id`` on its local ``day`` (YYYY-MM-DD), with its "(other)" visitors
    when ``floors`` has the site; returns the rollup rows written.

    Run it inside one transaction (``Store.write``): readers see the old rows or the new, never none.
    """
    parameters = _window(site_id, day, _zone(zones, site_id))
    _no_jit(connection)
    _execute(connection, _DELETE_DAY, parameters)  # a trigger deletes the day's "(other)" visitors with it
    _execute(connection, _ROLL_UP_DAY[_dialect(connection)], parameters)
    # rowcount stays -1 for a statement that starts with WITH, and total_changes counts the triggers' rows
    written = int(_execute(connection, _COUNT_DAY, parameters).fetchone()[0])
    k = (floors or {}).get(site_id)
    if written and k is not None:
        counted = _execute(connection, _SELECT_OTHER_VISITORS[_dialect(connection)], {**parameters, "k": k}).fetchall()
        _insert_other_visitors(connection, site_id, day, k, counted)
    return written


def _insert_other_visitors(
    connection: Connection, site_id: str, day: str, k: int, counted: Iterable[Sequence[Any]]
) -> None:
    """Store a day's "(other)" visitors for ``k``; the ``all`` row marks the day as counted (0 elsewhere)."""
    rows = [(str(dimension), int(visitors)) for dimension, visitors in counted if dimension == "all" or visitors]
    connection.executemany(_INSERT_OTHER_VISITORS, [(site_id, day, k, *row) for row in rows])


def rebuild_dirty(
    connection: Connection, *, zones: Zones | None = None, floors: Floors | None = None
) -> list[tuple[str, str]]:
    """Rebuild every (site, local day) that received events since its last rollup, then clear the marks.

    A visit continued past midnight also changes the earlier days it has events on (its bounce,
    duration and exit page), so those are rebuilt too. Returns the (site, day) pairs rebuilt.
    """
    dirty = _read_marks(connection)
    days = _days_to_roll_up(connection, dirty, zones)
    for site, day in sorted(days):
        rebuild_day(connection, site, day, zones=zones, floors=floors)
    connection.executemany(_CLEAR_DIRTY, dirty)
    return sorted(days)


@dataclass(frozen=True, slots=True)
class RollupPlan:
    """Rollup rows computed from one read snapshot, to be written in a short transaction."""

    dirty: tuple[Mark, ...]  # the UTC marks the snapshot answered, with their generations
    days: dict[tuple[str, str], list[tuple[Any, ...]]]  # (site, local day) -> its full set of rollup rows
    #: (site, local day) -> (k, its "(other)" visitors by dimension), for the sites in ``floors``
    other_visitors: dict[tuple[str, str], tuple[int, list[tuple[Any, ...]]]] = field(default_factory=dict)


def plan_dirty(connection: Connection, *, zones: Zones | None = None, floors: Floors | None = None) -> RollupPlan:
    """Compute every dirty day's rollups on a read connection, in one read transaction (one snapshot).

    The heavy GROUP BYs run here, outside the write lock, so event writes go on meanwhile.
    """
    connection.execute(_BEGIN_SNAPSHOT_POSTGRES if is_postgres(connection) else _BEGIN_SNAPSHOT_SQLITE)
    try:
        _no_jit(connection)
        dirty = _read_marks(connection)
        days: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        other_visitors: dict[tuple[str, str], tuple[int, list[tuple[Any, ...]]]] = {}
        for site, day in sorted(_days_to_roll_up(connection, dirty, zones)):
            parameters = _window(site, day, _zone(zones, site))
            selected = _execute(connection, _SELECT_DAY[_dialect(connection)], parameters)
            days[(site, day)] = [(site, day, *row) for row in selected]
            k = (floors or {}).get(site)
            if days[(site, day)] and k is not None:
                counted = _execute(
                    connection, _SELECT_OTHER_VISITORS[_dialect(connection)], {**parameters, "k": k}
                ).fetchall()
                other_visitors[(site, day)] = (k, [tuple(row) for row in counted])
    finally:
        connection.execute("ROLLBACK")
    return RollupPlan(dirty, days, other_visitors)


def apply_plan(connection: Connection, plan: RollupPlan) -> list[tuple[str, str]]:
    """Write a plan's rows (inside ``Store.write``); marks of days that got newer events stay set,
    so the next round recomputes them. Returns the (site, day) pairs written."""
    for (site, day), rows in plan.days.items():
        _execute(connection, _DELETE_DAY, {"site": site, "day": day})  # the "(other)" visitors go with it
        connection.executemany(_INSERT_ROW, rows)
        if (site, day) in plan.other_visitors:
            k, counted = plan.other_visitors[(site, day)]
            _insert_other_visitors(connection, site, day, k, counted)
    connection.executemany(_CLEAR_DIRTY, plan.dirty)
    return sorted(plan.days)


def rebuild_all(
    connection: Connection,
    site_id: str | None = None,
    *,
    zones: Zones | None = None,
    floors: Floors | None = None,
) -> int:
    """Rebuild every local day that still has events (of one site, or of all); returns the number of days.

    Days whose events the retention already deleted keep their rollups: they cannot be rebuilt.
    Run it after changing a site's ``timezone``.
    """
    if site_id is None:
        hours = connection.execute(_HOURS_WITH_EVENTS).fetchall()
    else:
        hours = connection.execute(_HOURS_WITH_EVENTS_OF_SITE, (site_id,)).fetchall()
    days = {
        (str(site), local) for site, hour in hours for local in _local_days_of_hour(str(hour), _zone(zones, str(site)))
    }
    for site, day in sorted(days):
        rebuild_day(connection, site, day, zones=zones, floors=floors)
    return len(days)


async def rollup_rows(db: Store, site_id: str, day: str, dimension: str) -> list[dict[str, Any]]:
    """The rows of one dimension on one day, most visitors first, as plain dictionaries."""
    rows = await db.fetch_all(_ROWS, (site_id, day, dimension))
    return [dict(row) for row in rows]
