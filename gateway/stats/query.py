"""The dashboard's questions, answered from the rollups where they can be and from raw events where not.

- No filter: everything comes from the daily rollups (today's included: the maintenance task
  rolls today up every ``rollup_interval``, 5 minutes by default).
- One "is" filter: the top line and the daily or monthly series still come from the rollups (the
  rollup row of that dimension and value); breakdowns and hourly buckets need raw events.
- Anything else: raw events, one local day at a time with the rollups' own SQL
  (``gateway.storage.aggregates``), so a figure is the same whichever way it was computed.

Every answer passes the privacy floor (``gateway.stats.privacy``) before it leaves.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from gateway.clock import Clock
from gateway.settings import SiteSettings
from gateway.stats.figures import Figures, change, total
from gateway.stats.filters import OTHER_LABEL
from gateway.stats.goals import Funnel, Goal
from gateway.stats.period import Interval, Period
from gateway.stats.privacy import BreakdownRow, fold_small_rows, withheld
from gateway.stats.sums import RollupSums, Sums
from gateway.storage import stats as sql
from gateway.storage.aggregates import Condition
from gateway.storage.db import Database
from gateway.storage.rollups import day_bounds

SortKey = Literal["value", "visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"]
SORT_KEYS: tuple[SortKey, ...] = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "value")
REALTIME_WINDOW = timedelta(minutes=5)
#: Settled days of filtered answers kept per process (a 30-day view with five panels is ~200).
_SETTLED_RAW_CAPACITY = 2000


@dataclass(frozen=True, slots=True)
class StatsQuery:
    site: SiteSettings
    period: Period
    filters: tuple[Condition, ...] = ()

    @property
    def k(self) -> int:
        return self.site.min_visitors


@dataclass(frozen=True, slots=True)
class Aggregate:
    current: Figures
    previous: Figures
    #: True when the current figures stand for fewer than k visitors (then they are not shown).
    withheld: bool
    #: The same for the previous period: then no change is shown either, since a change beside a
    #: visible figure would give the hidden one away.
    previous_withheld: bool = False

    def changes(self) -> dict[str, float | None]:
        now, before = self.current.metrics(), self.previous.metrics()
        if self.previous_withheld:
            return dict.fromkeys(now)
        return {name: change(now[name], before[name]) for name in now}


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str  # "2026-03-10", "2026-03", or "2026-03-10 14:00" (local)
    start: datetime  # local
    figures: Figures
    withheld: bool


@dataclass(frozen=True, slots=True)
class Breakdown:
    dimension: str
    rows: list[BreakdownRow]  # sorted, each of at least k visitors
    other: BreakdownRow | None  # the folded small rows
    total: Figures  # of the whole period (for the bars' scale and shares)
    raw: bool  # computed from raw events (a filter the rollups cannot answer)


@dataclass(frozen=True, slots=True)
class GoalResult:
    goal: Goal
    visitors: int
    events: int
    conversion_rate: float  # percent of the period's visitors
    withheld: bool


@dataclass(frozen=True, slots=True)
class FunnelStep:
    goal: Goal
    visits: int
    drop_off: int  # visits that reached the step before but not this one
    conversion_rate: float  # percent of the visits that reached step 1
    withheld: bool


@dataclass(frozen=True, slots=True)
class Realtime:
    visitors: int
    withheld: bool
    pages: list[BreakdownRow] = field(default_factory=list)
    other: BreakdownRow | None = None


class Stats:
    """Answers for one database; one instance per app (it holds no state between calls)."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._sums = RollupSums(database)
        self._settled_raw: OrderedDict[tuple[object, ...], list[sql.Row]] = OrderedDict()

    # The top line and the series.

    async def aggregate(self, query: StatsQuery) -> Aggregate:
        current = await self._period_total(query, query.period)
        previous = await self._period_total(query, query.period.previous())
        return Aggregate(current, previous, withheld(current, query.k), withheld(previous, query.k))

    async def timeseries(self, query: StatsQuery, interval: Interval, *, previous: bool = False) -> list[Bucket]:
        period = query.period.previous() if previous else query.period
        zone = query.site.zone
        if interval == "hour":
            by_hour = await self._hours(query, period)
            buckets = []
            start, end = period.bounds(zone)
            hour = start
            while hour < end:
                figures = by_hour.get(hour.strftime("%Y-%m-%dT%H"), Figures())
                local = hour.astimezone(zone)
                buckets.append(Bucket(local.strftime("%Y-%m-%d %H:%M"), local, figures, withheld(figures, query.k)))
                hour += timedelta(hours=1)
            return buckets
        by_day = await self._days(query, period)
        groups: dict[str, list[Figures]] = defaultdict(list)
        starts: dict[str, date] = {}
        for day in period.days():
            label = day.isoformat() if interval == "day" else day.strftime("%Y-%m")
            groups[label].append(by_day.get(day.isoformat(), Figures()))
            starts.setdefault(label, day if interval == "day" else day.replace(day=1))
        buckets = []
        for label, items in groups.items():
            figures = total(items)
            start_of = datetime.combine(starts[label], datetime.min.time(), zone)
            buckets.append(Bucket(label, start_of, figures, withheld(figures, query.k)))
        return buckets

    # Breakdowns.

    async def breakdown(
        self, query: StatsQuery, dimension: str, *, sort: SortKey = "visitors", descending: bool = True
    ) -> Breakdown:
        period = query.period
        if query.filters:
            found = await self._raw(query, period, [dimension])
            rows = [(value, figures) for (name, value), figures in found.items() if name == dimension]
            raw = True
            kept, other = fold_small_rows(rows, query.k)
            everything = total(f for _, f in rows)
        else:
            sums = await self._sums.sums(query.site.id, dimension, period.first, period.last)
            kept, other, everything = _fold_sums(sums, query.k)
            raw = False
        kept.sort(key=_sort_key(sort), reverse=descending)
        return Breakdown(dimension, kept, other, everything, raw)

    async def prop_keys(self, query: StatsQuery) -> list[str]:
        return await sql.prop_keys(
            self._db, query.site.id, query.period.first.isoformat(), query.period.last.isoformat()
        )

    # Goals, funnels, realtime.

    async def goals(self, query: StatsQuery) -> list[GoalResult]:
        visitors = (await self._period_total(query, query.period)).visitors
        results = []
        for goal in query.site.goals:
            condition = goal_condition(goal)
            narrowed = StatsQuery(query.site, query.period, (*query.filters, condition))
            figures = await self._period_total(narrowed, query.period)
            rate = round(100 * figures.visitors / visitors, 1) if visitors else 0.0
            results.append(GoalResult(goal, figures.visitors, figures.events, rate, withheld(figures, query.k)))
        return results

    async def funnel(self, query: StatsQuery, funnel: Funnel) -> list[FunnelStep]:
        """Visits that completed the steps in order (others events in between allowed), per step."""
        steps = funnel.steps
        matches = [
            ("page", goal.like_pattern, goal.name) if goal.page else ("event", goal.event or "", goal.name)
            for goal in steps
        ]
        reached = [0] * len(steps)
        for day in query.period.days():
            start, stop = day_bounds(day, query.site.zone)
            rows = await sql.goal_events(self._db, query.site.id, matches, start, stop)
            progress: dict[int, int] = {}
            for visit_id, _, name, pathname in rows:
                done = progress.get(visit_id, 0)
                if done < len(steps) and _matches(steps[done], name, pathname):
                    progress[visit_id] = done + 1
            for done in progress.values():
                for index in range(done):
                    reached[index] += 1
        first = reached[0] if reached else 0
        result = []
        for index, goal in enumerate(steps):
            before = reached[index - 1] if index else reached[0]
            rate = round(100 * reached[index] / first, 1) if first else 0.0
            hidden = 0 < reached[index] < query.k
            result.append(FunnelStep(goal, reached[index], before - reached[index], rate, hidden))
        return result

    async def realtime(self, site: SiteSettings, now: datetime) -> Realtime:
        now = now.astimezone(UTC)
        visitors, pages = await sql.realtime(self._db, site.id, now - REALTIME_WINDOW, now)
        rows = [(path, Figures(visitors=count)) for path, count in pages]
        kept, other = fold_small_rows(rows, site.min_visitors)
        kept.sort(key=lambda row: (-row.figures.visitors, row.value))
        hidden = 0 < visitors < site.min_visitors
        return Realtime(visitors, hidden, kept, other)

    # Sources.

    async def _period_total(self, query: StatsQuery, period: Period) -> Figures:
        return total((await self._days(query, period)).values())

    async def _days(self, query: StatsQuery, period: Period) -> dict[str, Figures]:
        """Each local day's figures under the query's filters."""
        single = _rollup_condition(query.filters)
        if single is not None:
            dimension, value = single
            rows = await sql.rollup_series(
                self._db, query.site.id, dimension, value, period.first.isoformat(), period.last.isoformat()
            )
            return {str(row[0]): Figures.of(row[1:]) for row in rows}
        days: dict[str, Figures] = {}
        for day in period.days():
            found = await self._raw(query, Period("custom", day, day), ["all"])
            days[day.isoformat()] = found.get(("all", ""), Figures())
        return days

    async def _hours(self, query: StatsQuery, period: Period) -> dict[str, Figures]:
        """Figures per UTC hour (``YYYY-MM-DDTHH``) over the period's local days."""
        hours: dict[str, Figures] = defaultdict(Figures)
        if not query.filters:
            rows = await sql.rollup_hours(self._db, query.site.id, period.first.isoformat(), period.last.isoformat())
            for row in rows:
                hours[str(row[0])] += Figures.of(row[1:])
            return hours
        found = await self._raw(query, period, ["hour"])
        for (_, value), figures in found.items():
            hours[value] += figures
        return hours

    async def _raw(
        self, query: StatsQuery, period: Period, dimensions: Sequence[str]
    ) -> dict[tuple[str, str], Figures]:
        """``(dimension, value) -> figures`` from raw events, summed over the period's local days.

        A day's answer is remembered once the day is settled: no event is ever stamped with a past
        time, so only today's and yesterday's figures can still change (yesterday's through visits
        that go on past midnight). A filtered view costs about 10 µs per event of the period the
        first time, and only its last two days after that.
        """
        summed: dict[tuple[str, str], Figures] = defaultdict(Figures)
        settled_before = self._clock.now().astimezone(query.site.zone).date() - timedelta(days=1)
        for day in period.days():
            key = (query.site.id, str(query.site.zone), day, tuple(dimensions), query.filters)
            rows = self._settled_raw.get(key)
            if rows is None:
                start, stop = day_bounds(day, query.site.zone)
                rows = await sql.raw_figures(self._db, query.site.id, dimensions, query.filters, start, stop)
                if day < settled_before:
                    self._settled_raw[key] = rows
                    while len(self._settled_raw) > _SETTLED_RAW_CAPACITY:
                        self._settled_raw.popitem(last=False)
            else:
                self._settled_raw.move_to_end(key)
            for row in rows:
                summed[(str(row[0]), str(row[1]))] += Figures.of(row[2:])
        return summed


def _fold_sums(sums: Sums, k: int) -> tuple[list[BreakdownRow], BreakdownRow | None, Figures]:
    """``fold_small_rows`` over summed tuples: a Figures is built only for the rows that stay (a
    month of a busy site's pages is thousands of rows, most of them folded)."""
    kept = [BreakdownRow(value, Figures(*figures)) for value, figures in sums.items() if figures[0] >= k]
    small = [figures for figures in sums.values() if 0 < figures[0] < k]
    other = BreakdownRow(OTHER_LABEL, Figures(*map(sum, zip(*small, strict=True))), other=True) if small else None
    everything = Figures(*map(sum, zip(*sums.values(), strict=True))) if sums else Figures()
    return kept, other, everything


def goal_condition(goal: Goal) -> Condition:
    """A goal as a filter: its page pattern or its event name."""
    if goal.page is not None:
        return Condition("page", "matches", goal.like_pattern)
    return Condition("event", "is", goal.event or "")


def _rollup_condition(filters: Sequence[Condition]) -> tuple[str, str] | None:
    """The rollup row that answers the filters: none at all, or one "is" on a rolled-up dimension."""
    if not filters:
        return ("all", "")
    if len(filters) == 1 and filters[0].operator == "is":
        return (filters[0].dimension, filters[0].value)
    return None


def _matches(goal: Goal, name: str, pathname: str) -> bool:
    if goal.event is not None:
        return name == goal.event
    return name == "pageview" and goal.matches_path(pathname)


def _sort_key(sort: SortKey) -> Callable[[BreakdownRow], Any]:
    if sort == "value":
        return lambda row: row.value
    return lambda row: (getattr(row.figures, sort), row.figures.visitors)
