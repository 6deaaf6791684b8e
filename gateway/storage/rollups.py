"""Daily rollups: one row per site, UTC day, dimension and value, rebuilt whole from raw events and visits.

What a row counts, for the events of that day that carry the value:

- ``visitors``: distinct visitor ids (daily salts: the same person is a new visitor each day);
- ``visits``: distinct visits. A visit counts on every day it has events, so a visit across
  midnight counts once on each of its days; summing days counts it twice;
- ``pageviews``: pageview events; ``events``: all events (pageviews included);
- ``bounces``: visits among those with at most one pageview in the whole visit (a visit of
  custom events only is a bounce too);
- ``duration``: the sum over those visits of ``last_seen - started_at`` of the whole visit, in
  whole seconds (a one-event visit lasts 0 seconds).

Each visit is first reduced to one row per value (the per-visit CTEs), so a visit that viewed a
page three times counts one visit, one bounce or not, and its duration once for that page.

Dimensions: ``all`` (value ``""``: the day's totals); the event dimensions ``page`` (pathnames
of pageviews), ``event`` (custom event names) and ``prop:KEY`` (the value of each custom
property, pageviews included); and the visit dimensions, one value per visit taken from its
first event, as Plausible keeps them on the session: source, channel, referrer and utm_* (so the
pages viewed after arriving from Google count under Google, not under the "Direct / None" their
internal navigation would say), and country, region, city, browser, browser_version, os,
os_version, device, screen (fixed within a visit anyway: the visitor id hashes the IP address
and user agent). For a visit dimension, pageviews and events are those of the visit that day.
``entry_page`` and ``exit_page`` count the visits *started* that day, with their whole-visit
pageviews, events, bounce and duration. A missing value (no referrer, an unknown country)
rolls up as ``""``, shown as "(none)".
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from gateway.storage.db import Database

#: The fixed dimensions; every custom property key adds ``prop:KEY``.
DIMENSIONS = (
    "all",
    "page",
    "entry_page",
    "exit_page",
    "source",
    "channel",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "country",
    "region",
    "city",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device",
    "screen",
    "event",
)
PROP_PREFIX = "prop:"

_DELETE_DAY = "DELETE FROM rollups WHERE site_id = :site AND day = :day"

# The dimensions a visit has one value of, from its first event, as SQL over ``day_visits`` columns.
_VISIT_DIMENSIONS = (
    ("all", "''"),
    ("source", "source"),
    ("channel", "channel"),
    ("referrer", "coalesce(referrer_host, '')"),
    ("utm_source", "coalesce(utm_source, '')"),
    ("utm_medium", "coalesce(utm_medium, '')"),
    ("utm_campaign", "coalesce(utm_campaign, '')"),
    ("utm_content", "coalesce(utm_content, '')"),
    ("utm_term", "coalesce(utm_term, '')"),
    ("country", "coalesce(country, '')"),
    ("region", "coalesce(region, '')"),
    ("city", "coalesce(city, '')"),
    ("browser", "browser"),
    ("browser_version", "CASE WHEN browser_version = '' THEN browser ELSE browser || ' ' || browser_version END"),
    ("os", "os"),
    ("os_version", "CASE WHEN os_version = '' THEN os ELSE os || ' ' || os_version END"),
    ("device", "device"),
    ("screen", "coalesce(screen, '')"),
)
_FIGURES = "count(DISTINCT visitor_id), count(*), sum(pageviews), sum(events), sum(bounce), sum(duration)"

# Timestamps are ISO 8601 in UTC, so a day is the half-open text range [day, next day). One GROUP BY
# per visit dimension over one row per visit (cheaper than one sort of them all); the event dimensions
# (page, event, prop:KEY) first reduce each visit to one row per value, then group.
_ROLL_UP_DAY_HEAD = """
WITH
day_events AS MATERIALIZED (
    SELECT visit_id, visitor_id, name, pathname, props, name = 'pageview' AS is_pageview
    FROM events
    WHERE site_id = :site AND ts >= :day AND ts < :next_day
),
day_visits AS MATERIALIZED (  -- each visit active that day, once
    SELECT d.visit_id, d.visitor_id, d.events, d.pageviews,
           v.pageviews <= 1 AS bounce,  -- bounce and duration are the whole visit's
           CAST(round((julianday(v.last_seen) - julianday(v.started_at)) * 86400) AS INTEGER) AS duration,
           first.source, first.channel, first.referrer_host, first.utm_source, first.utm_medium,
           first.utm_campaign, first.utm_content, first.utm_term, first.country, first.region, first.city,
           first.browser, first.browser_version, first.os, first.os_version, first.device, first.screen
    FROM (
        SELECT visit_id, max(visitor_id) AS visitor_id, count(*) AS events, sum(is_pageview) AS pageviews,
               (SELECT min(e.id) FROM events AS e WHERE e.visit_id = day_events.visit_id) AS first_id
        FROM day_events
        GROUP BY visit_id
    ) AS d
    CROSS JOIN visits AS v ON v.id = d.visit_id  -- CROSS JOIN: this order, each looked up by primary key
    CROSS JOIN events AS first ON first.id = d.first_id
),
event_facts (dimension, value, visit_id, visitor_id, pageviews, events) AS (
    SELECT 'page', pathname, visit_id, visitor_id, 1, 1 FROM day_events WHERE is_pageview
    UNION ALL SELECT 'event', name, visit_id, visitor_id, 0, 1 FROM day_events WHERE NOT is_pageview
    UNION ALL SELECT 'prop:' || p.key, coalesce(CAST(p.value AS TEXT), ''), d.visit_id, d.visitor_id,
                     d.is_pageview, 1
              FROM day_events AS d, json_each(d.props) AS p
),
per_visit AS MATERIALIZED (  -- each visit once per value
    SELECT f.dimension, f.value, max(f.visitor_id) AS visitor_id, sum(f.pageviews) AS pageviews,
           sum(f.events) AS events, max(v.bounce) AS bounce, max(v.duration) AS duration
    FROM event_facts AS f CROSS JOIN day_visits AS v ON v.visit_id = f.visit_id
    GROUP BY f.dimension, f.value, f.visit_id
)
INSERT INTO rollups (site_id, day, dimension, value, visitors, visits, pageviews, events, bounces, duration)
SELECT :site, :day, * FROM (
"""
_ROLL_UP_DAY_TAIL = """
UNION ALL SELECT dimension, value, count(DISTINCT visitor_id), count(*), sum(pageviews), sum(events), sum(bounce),
                 sum(duration)
          FROM per_visit GROUP BY dimension, value
)
"""


def _roll_up_day_sql() -> str:
    """The statement, written once at import: only the constant column expressions above are interpolated."""
    by_visit = [
        f"SELECT '{name}', {expression}, {_FIGURES} FROM day_visits GROUP BY 2"  # noqa: S608 - constants only
        for name, expression in _VISIT_DIMENSIONS
    ]
    return _ROLL_UP_DAY_HEAD + "\nUNION ALL ".join(by_visit) + _ROLL_UP_DAY_TAIL


_ROLL_UP_DAY = _roll_up_day_sql()

# Entry and exit pages belong to the day the visit started; the figures are the whole visit's.
_ROLL_UP_VISITS = """
INSERT INTO rollups (site_id, day, dimension, value, visitors, visits, pageviews, events, bounces, duration)
SELECT :site, :day, :dimension, CASE :dimension WHEN 'entry_page' THEN entry_page ELSE exit_page END,
       count(DISTINCT visitor_id), count(*), sum(pageviews), sum(events), sum(pageviews <= 1),
       sum(CAST(round((julianday(last_seen) - julianday(started_at)) * 86400) AS INTEGER))
FROM visits
WHERE site_id = :site AND started_at >= :day AND started_at < :next_day
GROUP BY 2, 3, 4
"""

_DIRTY = "SELECT site_id, day FROM rollup_dirty ORDER BY site_id, day"
_CLEAR_DIRTY = "DELETE FROM rollup_dirty WHERE site_id = ? AND day = ?"
# The earlier days on which the visits still going on ``day`` have events: those days hold the
# visits' bounce, duration and exit page, which the new events changed.
_EARLIER_DAYS_OF_CONTINUED_VISITS = """
SELECT DISTINCT substr(e.ts, 1, 10) FROM events AS e
WHERE e.visit_id IN (
    SELECT v.id FROM visits AS v
    WHERE v.id IN (SELECT visit_id FROM events WHERE site_id = :site AND ts >= :day AND ts < :next_day)
      AND v.started_at < :day
) AND e.ts < :day
"""
_DAYS_WITH_EVENTS = "SELECT DISTINCT site_id, substr(ts, 1, 10) FROM events ORDER BY 1, 2"
_DAYS_WITH_EVENTS_OF_SITE = "SELECT DISTINCT site_id, substr(ts, 1, 10) FROM events WHERE site_id = ? ORDER BY 2"
_ROWS = """
SELECT value, visitors, visits, pageviews, events, bounces, duration FROM rollups
WHERE site_id = ? AND day = ? AND dimension = ?
ORDER BY visitors DESC, visits DESC, value
"""


def _day_range(site_id: str, day: str) -> dict[str, str]:
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"expected a day as YYYY-MM-DD, found {day!r}") from None
    if parsed.isoformat() != day:
        raise ValueError(f"expected a day as YYYY-MM-DD, found {day!r}")
    return {"site": site_id, "day": day, "next_day": (parsed + timedelta(days=1)).isoformat()}


def rebuild_day(connection: sqlite3.Connection, site_id: str, day: str) -> int:
    """Replace the rollups of ``site_id`` on the UTC ``day`` (YYYY-MM-DD); returns the rows written.

    Run it inside one transaction (``Database.write``): readers see the old rows or the new, never none.
    """
    parameters = _day_range(site_id, day)
    connection.execute(_DELETE_DAY, parameters)
    before = connection.total_changes  # rowcount stays -1 for a statement that starts with WITH
    connection.execute(_ROLL_UP_DAY, parameters)
    for dimension in ("entry_page", "exit_page"):
        connection.execute(_ROLL_UP_VISITS, {**parameters, "dimension": dimension})
    return connection.total_changes - before


def rebuild_dirty(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    """Rebuild every (site, day) that received events since its last rollup, then clear the marks.

    A visit continued past midnight also changes the earlier days it has events on (its bounce,
    duration and exit page), so those are rebuilt too. Returns the (site, day) pairs rebuilt.
    """
    dirty = [(str(site), str(day)) for site, day in connection.execute(_DIRTY).fetchall()]
    days = set(dirty)
    for site, day in dirty:
        earlier = connection.execute(_EARLIER_DAYS_OF_CONTINUED_VISITS, _day_range(site, day)).fetchall()
        days.update((site, str(row[0])) for row in earlier)
    for site, day in sorted(days):
        rebuild_day(connection, site, day)
    connection.executemany(_CLEAR_DIRTY, dirty)
    return sorted(days)


_INSERT_HEAD = (
    "INSERT INTO rollups (site_id, day, dimension, value, visitors, visits, pageviews, events, bounces, duration)"
)
#: The same figures as the INSERTs above, read only: computed on a reader while the writer goes on.
_SELECT_DAY = _ROLL_UP_DAY.replace(_INSERT_HEAD + "\n", "")
_SELECT_VISITS = _ROLL_UP_VISITS.replace(_INSERT_HEAD + "\n", "")
_INSERT_ROW = _INSERT_HEAD + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_LAST_EVENT = "SELECT coalesce(max(id), 0) FROM events"
# A mark is cleared only when no event of that day arrived after the snapshot the rows came from.
_CLEAR_DIRTY_IF_CURRENT = """
DELETE FROM rollup_dirty WHERE site_id = :site AND day = :day AND NOT EXISTS (
    SELECT 1 FROM events WHERE id > :last_event AND site_id = :site AND ts >= :day AND ts < :next_day
)
"""


@dataclass(frozen=True, slots=True)
class RollupPlan:
    """Rollup rows computed from one read snapshot, to be written in a short transaction."""

    last_event: int  # the newest event id the snapshot saw
    dirty: tuple[tuple[str, str], ...]  # the marks the snapshot answered
    days: dict[tuple[str, str], list[tuple[Any, ...]]]  # (site, day) -> its full set of rollup rows


def plan_dirty(connection: sqlite3.Connection) -> RollupPlan:
    """Compute every dirty day's rollups on a read connection, in one read transaction (one snapshot).

    The heavy GROUP BYs run here, outside the write lock, so event writes go on meanwhile.
    """
    connection.execute("BEGIN")
    try:
        last_event = int(connection.execute(_LAST_EVENT).fetchone()[0])
        dirty = tuple((str(site), str(day)) for site, day in connection.execute(_DIRTY).fetchall())
        wanted = set(dirty)
        for site, day in dirty:
            earlier = connection.execute(_EARLIER_DAYS_OF_CONTINUED_VISITS, _day_range(site, day)).fetchall()
            wanted.update((site, str(row[0])) for row in earlier)
        days: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for site, day in sorted(wanted):
            parameters = _day_range(site, day)
            rows = [tuple(row) for row in connection.execute(_SELECT_DAY, parameters)]
            for dimension in ("entry_page", "exit_page"):
                rows += [
                    tuple(row) for row in connection.execute(_SELECT_VISITS, {**parameters, "dimension": dimension})
                ]
            days[(site, day)] = rows
    finally:
        connection.execute("ROLLBACK")
    return RollupPlan(last_event, dirty, days)


def apply_plan(connection: sqlite3.Connection, plan: RollupPlan) -> list[tuple[str, str]]:
    """Write a plan's rows (inside ``Database.write``); marks of days that got newer events stay set,
    so the next round recomputes them. Returns the (site, day) pairs written."""
    for (site, day), rows in plan.days.items():
        connection.execute(_DELETE_DAY, {"site": site, "day": day})
        connection.executemany(_INSERT_ROW, rows)
    for site, day in plan.dirty:
        connection.execute(_CLEAR_DIRTY_IF_CURRENT, {**_day_range(site, day), "last_event": plan.last_event})
    return sorted(plan.days)


def rebuild_all(connection: sqlite3.Connection, site_id: str | None = None) -> int:
    """Rebuild every day that still has events (of one site, or of all); returns the number of days.

    Days whose events the retention already deleted keep their rollups: they cannot be rebuilt.
    """
    if site_id is None:
        days = connection.execute(_DAYS_WITH_EVENTS).fetchall()
    else:
        days = connection.execute(_DAYS_WITH_EVENTS_OF_SITE, (site_id,)).fetchall()
    for site, day in days:
        rebuild_day(connection, str(site), str(day))
    return len(days)


async def rollup_rows(db: Database, site_id: str, day: str, dimension: str) -> list[dict[str, Any]]:
    """The rows of one dimension on one day, most visitors first, as plain dictionaries."""
    rows = await db.fetch_all(_ROWS, (site_id, day, dimension))
    return [dict(row) for row in rows]
