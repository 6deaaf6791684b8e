"""The figures of the visits and events in a time window, by dimension: one SQL shape for the daily
rollups and for the dashboard's questions the rollups cannot answer (filters, the realtime view).

What a row counts, for the events in the window that carry the value:

- ``visitors``: distinct visitor ids (daily salts: the same person is a new visitor each day);
- ``visits``: distinct visits with an event in the window;
- ``pageviews``: pageview events; ``events``: all events (pageviews included);
- ``bounces``: visits among those with at most one pageview in the whole visit (a visit of
  custom events only is a bounce too);
- ``duration``: the sum over those visits of ``last_seen - started_at`` of the whole visit, in
  whole seconds (a one-event visit lasts 0 seconds).

Each visit is first reduced to one row per value, so a visit that viewed a page three times counts
one visit, one bounce or not, and its duration once for that page.

Dimensions: ``all`` (value ``""``: the totals); the event dimensions ``page`` (pathnames of
pageviews), ``event`` (custom event names), ``hour`` (the UTC hour, ``YYYY-MM-DDTHH``) and
``prop:KEY`` (the value of a custom property, pageviews included); and the visit dimensions, one
value per visit taken from its first event, as Plausible keeps them on the session: source,
channel, referrer and utm_* (so the pages viewed after arriving from Google count under Google,
not under the "Direct / None" their internal navigation would say), and country, region, city,
browser, browser_version, os, os_version, device, screen (fixed within a visit anyway: the visitor
id hashes the IP address and user agent). For a visit dimension, pageviews and events are those of
the visit in the window. ``entry_page`` and ``exit_page`` count the visits *started* in the window,
with their whole-visit pageviews, events, bounce and duration. A missing value (no referrer, an
unknown country) counts as ``""``, shown as "(none)".

Conditions (the dashboard's filters) narrow the set first: one on an event dimension keeps the
matching events (and so the visits that have one); one on a visit dimension keeps the visits
whose value matches, with all their events. ``in`` and ``not_in`` (a tuple of values) are never
typed in a URL: the privacy floor turns "contains" into the day's named values that contain the
pattern (``gateway.stats.privacy``), so a value outside them can never be matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.storage.sql import Dialect

#: ``matches`` takes a SQL LIKE pattern (``\\`` escapes): goals' page patterns, never typed in a URL;
#: ``in`` and ``not_in`` take ``Condition.values`` (the privacy floor's named values of a day).
Operator = Literal["is", "is_not", "contains", "matches", "in", "not_in"]
PROP_PREFIX = "prop:"
ALL_PROPS = "prop:*"

# The dimensions a visit has one value of, from its first event, as SQL over ``day_visits`` columns.
VISIT_DIMENSIONS: dict[str, str] = {
    "all": "''",
    "source": "source",
    "channel": "channel",
    "referrer": "coalesce(referrer_host, '')",
    "utm_source": "coalesce(utm_source, '')",
    "utm_medium": "coalesce(utm_medium, '')",
    "utm_campaign": "coalesce(utm_campaign, '')",
    "utm_content": "coalesce(utm_content, '')",
    "utm_term": "coalesce(utm_term, '')",
    "country": "coalesce(country, '')",
    "region": "coalesce(region, '')",
    "city": "coalesce(city, '')",
    "browser": "browser",
    "browser_version": "CASE WHEN browser_version = '' THEN browser ELSE browser || ' ' || browser_version END",
    "os": "os",
    "os_version": "CASE WHEN os_version = '' THEN os ELSE os || ' ' || os_version END",
    "device": "device",
    "screen": "coalesce(screen, '')",
}
#: Visit dimensions of the visits started in the window.
STARTED_VISIT_DIMENSIONS: dict[str, str] = {"entry_page": "entry_page", "exit_page": "exit_page"}
# Event dimensions: (SQL value over ``day_events``, the rows it applies to, pageviews counted).
_EVENT_DIMENSIONS: dict[str, tuple[str, str, str]] = {
    "page": ("pathname", "is_pageview", "1"),
    "event": ("name", "NOT is_pageview", "0"),
    "hour": ("substr(ts, 1, 13)", "TRUE", "CASE WHEN is_pageview THEN 1 ELSE 0 END"),
}
#: Every fixed dimension, in the order the dashboard lists them; each custom property adds ``prop:KEY``.
DIMENSIONS: tuple[str, ...] = (
    "all",
    "page",
    "entry_page",
    "exit_page",
    *(name for name in VISIT_DIMENSIONS if name != "all"),
    "event",
    "hour",
)
#: A negated operator's positive form (what ``NOT`` wraps).
_POSITIVE: dict[Operator, Operator] = {"is_not": "is", "not_in": "in"}
FIGURES = ("visitors", "visits", "pageviews", "events", "bounces", "duration")

# Where the dialects differ: a custom property's (key, value) rows, the text values of a JSON array, and
# "contains" (PostgreSQL has no instr()). Everything else here is SQL both stores run as written.
_PROPS = {
    "sqlite": "json_each({props})",
    "postgresql": "jsonb_each_text(CAST({props} AS jsonb))",  # value: the text, NULL for a JSON null
}
_CHOSEN = {
    "sqlite": "SELECT value FROM json_each(:chosen)",
    "postgresql": "SELECT jsonb_array_elements_text(CAST(:chosen AS jsonb))",
}
_CONTAINS = {
    "sqlite": "instr(lower({expression}), lower(:{name})) > 0",
    "postgresql": "strpos(lower({expression}), lower(:{name})) > 0",
}
# day_visits.bounce is a comparison: 0/1 on SQLite, a boolean on PostgreSQL, which cannot sum one.
_BOUNCES = "sum(CASE WHEN bounce THEN 1 ELSE 0 END)"


@dataclass(frozen=True, slots=True)
class Condition:
    """Keep only what has ``dimension`` ``operator`` ``value`` (``""`` is "(none)")."""

    dimension: str
    operator: Operator
    value: str
    #: The values of ``in`` and ``not_in`` (empty otherwise).
    values: tuple[str, ...] = ()


def is_dimension(name: str) -> bool:
    return name in DIMENSIONS or (name.startswith(PROP_PREFIX) and len(name) > len(PROP_PREFIX) and name != ALL_PROPS)


def figures_sql(
    dimensions: Sequence[str], conditions: Sequence[Condition] = (), *, dialect: Dialect = "sqlite"
) -> tuple[str, dict[str, str]]:
    """A SELECT of ``(dimension, value, visitors, visits, pageviews, events, bounces, duration)`` rows
    for the events of ``:site`` with ``:start <= ts < :stop`` (ISO 8601 UTC text), plus the extra
    named parameters the conditions need. ``prop:*`` asks for every custom property.

    Only constant SQL fragments chosen from the tables above are interpolated; every value a user
    can type travels as a parameter. ``dialect``: the store the SQL runs on (``store.dialect``).
    """
    event_where, visit_where, parameters = _narrowing(conditions, dialect)
    selects = []
    for dimension in dimensions:
        if dimension in VISIT_DIMENSIONS:
            selects.append(
                f"SELECT '{dimension}', {VISIT_DIMENSIONS[dimension]}, count(DISTINCT visitor_id), count(*), "
                f"sum(pageviews), sum(events), {_BOUNCES}, sum(duration) FROM day_visits GROUP BY 2"
            )
        elif dimension in STARTED_VISIT_DIMENSIONS:
            selects.append(
                f"SELECT '{dimension}', {dimension}, count(DISTINCT visitor_id), count(*), sum(visit_pageviews), "
                f"sum(visit_events), {_BOUNCES}, sum(duration) FROM day_visits "
                "WHERE started_at >= :start AND started_at < :stop GROUP BY 2"
            )
        elif not is_dimension(dimension) and dimension != ALL_PROPS:
            raise ValueError(f"no dimension {dimension!r}")
    facts = _event_facts(
        [d for d in dimensions if d in _EVENT_DIMENSIONS or d.startswith(PROP_PREFIX)], parameters, dialect
    )
    if facts:
        selects.append(
            "SELECT dimension, value, count(DISTINCT visitor_id), count(*), sum(pageviews), sum(events), "
            "sum(bounce), sum(duration) FROM per_visit GROUP BY dimension, value"
        )
    if not selects:
        raise ValueError("no dimension asked for")
    head = _with(event_where, visit_where, facts)
    return head + "\nSELECT * FROM (\n" + "\nUNION ALL ".join(selects) + "\n) AS figures", parameters


def other_visitors_sql(
    dimensions: Sequence[str],
    conditions: Sequence[Condition] = (),
    *,
    chosen: bool = False,
    dialect: Dialect = "sqlite",
) -> tuple[str, dict[str, str]]:
    """A SELECT of ``(dimension, visitors)``: for each dimension, the DISTINCT visitors whose events (or
    visits) carry one of the values left out of the named ones, the people behind a breakdown's
    "(other)" (which adds its values' cells, so one person on five small pages counts five times
    there); and the row ``('all', visitors)``: every visitor of the window, under the conditions.

    Named are the values of at least ``:k`` visitors (rows of ``figures_sql``); with ``chosen``, for one
    dimension only, the values listed in ``:chosen``, a JSON array of text (one parameter however
    many values: a busy day names thousands of pages). A dimension with no value left out may be
    missing from the rows (it has no such visitor). Same windows and conditions as ``figures_sql``.
    """
    if chosen and len(dimensions) != 1:
        raise ValueError("the chosen values belong to one dimension")
    event_where, visit_where, parameters = _narrowing(conditions, dialect)
    left_out = f"NOT IN ({_CHOSEN[dialect]})"
    selects = ["SELECT 'all', count(DISTINCT visitor_id) FROM day_visits"]
    for dimension in dimensions:
        if dimension in VISIT_DIMENSIONS or dimension in STARTED_VISIT_DIMENSIONS:
            if dimension == "all":
                continue
            expression = VISIT_DIMENSIONS.get(dimension) or dimension
            started = (
                "started_at >= :start AND started_at < :stop AND " if dimension in STARTED_VISIT_DIMENSIONS else ""
            )
            small = (
                left_out
                if chosen
                else f"IN (SELECT {expression} FROM day_visits WHERE {started}TRUE GROUP BY 1 "
                "HAVING count(DISTINCT visitor_id) < :k)"
            )
            selects.append(
                f"SELECT '{dimension}', count(DISTINCT visitor_id) FROM day_visits WHERE {started}{expression} {small}"
            )
        elif not is_dimension(dimension) and dimension != ALL_PROPS:
            raise ValueError(f"no dimension {dimension!r}")
    facts = _event_facts(
        [d for d in dimensions if d in _EVENT_DIMENSIONS or d.startswith(PROP_PREFIX)], parameters, dialect
    )
    if facts:
        small = (
            f"value {left_out}"
            if chosen
            else "(dimension, value) IN (SELECT dimension, value FROM per_visit GROUP BY dimension, value "
            "HAVING count(DISTINCT visitor_id) < :k)"
        )
        selects.append(f"SELECT dimension, count(DISTINCT visitor_id) FROM per_visit WHERE {small} GROUP BY dimension")
    head = _with(event_where, visit_where, facts)
    return head + "\nSELECT * FROM (\n" + "\nUNION ALL ".join(selects) + "\n) AS figures", parameters


def _narrowing(conditions: Sequence[Condition], dialect: Dialect) -> tuple[list[str], list[str], dict[str, str]]:
    """The WHERE clauses the conditions put on events and on visits, and their parameters."""
    parameters: dict[str, str] = {}
    event_where, visit_where = [], []
    for index, condition in enumerate(conditions):
        name = f"c{index}"
        if condition.operator in ("in", "not_in"):
            if not condition.values:
                raise ValueError("'in' and 'not_in' need at least one value")
            parameters.update({f"{name}_{n}": value for n, value in enumerate(condition.values)})
        else:
            parameters[name] = condition.value
        dimension = condition.dimension
        if dimension in VISIT_DIMENSIONS or dimension in STARTED_VISIT_DIMENSIONS:
            expression = VISIT_DIMENSIONS.get(dimension) or STARTED_VISIT_DIMENSIONS[dimension]
            visit_where.append(_compare(expression, condition.operator, name, len(condition.values), dialect))
        elif dimension in ("page", "event"):
            expression, applies, _ = _EVENT_DIMENSIONS[dimension]
            # These clauses filter the rows of ``day_events`` itself, where its ``is_pageview`` column is
            # not yet there (SQLite lets a WHERE read a column alias of its SELECT, PostgreSQL does not).
            applies = applies.replace("is_pageview", "(name = 'pageview')")
            event_where.append(
                _compare_events(expression, applies, condition.operator, name, len(condition.values), dialect)
            )
        elif dimension.startswith(PROP_PREFIX) and is_dimension(dimension):
            parameters[f"{name}k"] = dimension.removeprefix(PROP_PREFIX)
            props = _PROPS[dialect].format(props="props")
            exists = f"EXISTS (SELECT 1 FROM {props} AS p WHERE p.key = :{name}k AND {{test}})"
            negated = condition.operator in ("is_not", "not_in")
            operator: Operator = _POSITIVE.get(condition.operator, condition.operator)
            test = _compare("coalesce(CAST(p.value AS TEXT), '')", operator, name, len(condition.values), dialect)
            event_where.append(f"NOT {exists.format(test=test)}" if negated else exists.format(test=test))
        else:
            raise ValueError(f"cannot filter by {dimension!r}")
    return event_where, visit_where, parameters


def _with(event_where: list[str], visit_where: list[str], facts: list[str]) -> str:
    """The WITH clause: the window's events and visits, narrowed, and (when asked) each visit's facts."""
    head = _HEAD.format(
        event_where="".join(f"\n      AND {clause}" for clause in event_where),
        visit_where=("WHERE " + " AND ".join(visit_where)) if visit_where else "",
    )
    if facts:
        # visit conditions narrowed day_visits: keep only those visits' facts (IN builds its own index)
        kept = "\n      AND f.visit_id IN (SELECT visit_id FROM day_visits)" if visit_where else ""
        head += _FACTS.format(facts="\n    UNION ALL ".join(facts), visits_kept=kept)
    return head


def _compare(expression: str, operator: Operator, name: str, count: int = 0, dialect: Dialect = "sqlite") -> str:
    if operator in ("in", "not_in"):
        listed = ", ".join(f":{name}_{n}" for n in range(count))
        return f"{expression} {'IN' if operator == 'in' else 'NOT IN'} ({listed})"
    if operator == "is":
        return f"{expression} = :{name}"
    if operator == "is_not":
        return f"{expression} != :{name}"
    if operator == "matches":  # SQLite's LIKE ignores ASCII case; ILIKE is PostgreSQL's same match
        return f"{expression} {'ILIKE' if dialect == 'postgresql' else 'LIKE'} :{name} ESCAPE '\\'"
    return _CONTAINS[dialect].format(expression=expression, name=name)


def _compare_events(expression: str, applies: str, operator: Operator, name: str, count: int, dialect: Dialect) -> str:
    if operator in ("is_not", "not_in"):  # every other event: pageviews of other pages, and the custom events
        return f"NOT ({applies} AND {_compare(expression, _POSITIVE[operator], name, count, dialect)})"
    return f"{applies} AND {_compare(expression, operator, name, count, dialect)}"


def _event_facts(dimensions: Sequence[str], parameters: dict[str, str], dialect: Dialect) -> list[str]:
    facts = []
    for dimension in dimensions:
        if dimension in _EVENT_DIMENSIONS:
            expression, applies, pageviews = _EVENT_DIMENSIONS[dimension]
            facts.append(
                f"SELECT '{dimension}', {expression}, visit_id, visitor_id, {pageviews}, 1 FROM day_events "
                f"WHERE {applies}"
            )
        elif dimension == ALL_PROPS or is_dimension(dimension):
            key_test = ""
            if dimension != ALL_PROPS:
                key = f"k{len(parameters)}"
                parameters[key] = dimension.removeprefix(PROP_PREFIX)
                key_test = f" WHERE p.key = :{key}"
            facts.append(
                "SELECT 'prop:' || p.key, coalesce(CAST(p.value AS TEXT), ''), d.visit_id, d.visitor_id, "
                "CASE WHEN d.is_pageview THEN 1 ELSE 0 END, 1 "
                f"FROM day_events AS d, {_PROPS[dialect].format(props='d.props')} AS p{key_test}"
            )
    return facts


# One GROUP BY per visit dimension over one row per visit (cheaper than one sort of them all); the
# event dimensions first reduce each visit to one row per value, then group.
_HEAD = """
WITH
day_events AS MATERIALIZED (
    SELECT visit_id, visitor_id, ts, name, pathname, props, name = 'pageview' AS is_pageview
    FROM events
    WHERE site_id = :site AND ts >= :start AND ts < :stop{event_where}
),
day_visits AS MATERIALIZED (  -- each visit with an event in the window, once
    SELECT * FROM (
        SELECT d.visit_id, d.visitor_id, d.events, d.pageviews,
               v.pageviews <= 1 AS bounce,  -- bounce and duration are the whole visit's
               CAST(round((julianday(v.last_seen) - julianday(v.started_at)) * 86400) AS INTEGER) AS duration,
               v.started_at, v.entry_page, v.exit_page, v.pageviews AS visit_pageviews, v.events AS visit_events,
               first.source, first.channel, first.referrer_host, first.utm_source, first.utm_medium,
               first.utm_campaign, first.utm_content, first.utm_term, first.country, first.region, first.city,
               first.browser, first.browser_version, first.os, first.os_version, first.device, first.screen
        FROM (
            SELECT visit_id, max(visitor_id) AS visitor_id, count(*) AS events,
                   sum(CASE WHEN is_pageview THEN 1 ELSE 0 END) AS pageviews,
                   (SELECT min(e.id) FROM events AS e WHERE e.visit_id = day_events.visit_id) AS first_id
            FROM day_events
            GROUP BY visit_id
        ) AS d
        -- CROSS JOIN: SQLite keeps this order, each row looked up by primary key (PostgreSQL plans it)
        CROSS JOIN visits AS v
        CROSS JOIN events AS first
        WHERE v.id = d.visit_id AND first.id = d.first_id
    ) AS visits_of_the_day {visit_where}
)"""
_FACTS = """,
event_facts (dimension, value, visit_id, visitor_id, pageviews, events) AS (
    {facts}
),
per_visit AS MATERIALIZED (  -- each visit once per value; the visit looked up by primary key (a join on the
    -- day_visits CTE has no index, and the planner does not always build one: seconds per query)
    SELECT f.dimension, f.value, max(f.visitor_id) AS visitor_id, sum(f.pageviews) AS pageviews,
           sum(f.events) AS events, max(CASE WHEN v.pageviews <= 1 THEN 1 ELSE 0 END) AS bounce,
           max(CAST(round((julianday(v.last_seen) - julianday(v.started_at)) * 86400) AS INTEGER)) AS duration
    FROM event_facts AS f CROSS JOIN visits AS v
    WHERE v.id = f.visit_id{visits_kept}
    GROUP BY f.dimension, f.value, f.visit_id
)"""
