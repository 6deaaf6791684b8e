"""The dashboard's questions, answered one local day at a time under the privacy floor
(``gateway.stats.privacy``): every figure that leaves is a sum of published day cells.

- No filter: everything comes from the daily rollups (today's included: the maintenance task
  rolls today up every ``rollup_interval``, 5 minutes by default), floored day by day and
  remembered per day (``gateway.stats.sums``).
- Filters are resolved per day against that day's named values; a view left with one "is"
  condition reads its top line and daily series from the rollup row of that value; anything else
  (and every filtered breakdown) reads raw events, one local day at a time with the rollups' own
  SQL (``gateway.storage.aggregates``), so a figure is the same whichever way it was computed.
  Rule 4 reads the view without each condition too, from the same source as the view (the
  unfiltered day from the rollups: for today they may lag the raw events by one ``rollup_interval``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from gateway.clock import Clock
from gateway.settings import SiteSettings
from gateway.stats.figures import Figures, change, total
from gateway.stats.filtered import DayCells, FilteredVisits, answers
from gateway.stats.filters import OTHER_LABEL
from gateway.stats.goals import Funnel, Goal
from gateway.stats.period import Interval, Period
from gateway.stats.privacy import (
    BreakdownRow,
    DayRows,
    canonical,
    floor,
    left_out,
    publish_rows,
    resolve,
    round_down,
    splits_off,
    withheld,
)
from gateway.stats.sums import PublishedCells, PublishedDay, Summed, add_days
from gateway.storage import stats as sql
from gateway.storage.aggregates import Condition
from gateway.storage.rollups import day_bounds
from gateway.storage.store import Store
from gateway.storage.visit_days import can_break_down

SortKey = Literal["value", "visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"]
SORT_KEYS: tuple[SortKey, ...] = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "value")
REALTIME_WINDOW = timedelta(minutes=5)
#: Settled days of filtered answers kept per process (a 30-day view with five panels is ~200).
_SETTLED_RAW_CAPACITY = 2000
#: Sums of filtered breakdowns kept (a 30-day view with its previous period and five panels is ~12).
_SUMMED_KEPT = 64


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
    #: True when the current figures stand for fewer than k visitors, zero included (then they are zeros).
    withheld: bool
    #: The same for the previous period: then no change is shown either, since a change beside a
    #: visible figure would give the hidden one away.
    previous_withheld: bool = False

    def changes(self) -> dict[str, float | None]:
        """Percent changes; none at all when either period is withheld."""
        now, before = self.current.metrics(), self.previous.metrics()
        if self.previous_withheld or self.withheld:
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
    other: BreakdownRow | None  # the published "(other)" cells added up: None, or at least k visitors
    total: Figures  # the rows and "(other)" added up (for the bars' scale and shares)
    raw: bool  # computed from raw events (a filter the rollups cannot answer)


@dataclass(frozen=True, slots=True)
class GoalResult:
    goal: Goal
    visitors: int
    events: int
    conversion_rate: float  # percent of the period's visitors
    withheld: bool  # under k visitors, zero included: then every number is 0


@dataclass(frozen=True, slots=True)
class FunnelStep:
    goal: Goal
    visits: int
    drop_off: int  # visits that reached the step before but not this one
    conversion_rate: float  # percent of the visits that reached step 1
    withheld: bool  # under k visitors, zero included: then every number is 0


@dataclass(frozen=True, slots=True)
class Realtime:
    visitors: int  # rounded down to a multiple of k
    withheld: bool
    pages: list[BreakdownRow] = field(default_factory=list)
    other: BreakdownRow | None = None


@dataclass(frozen=True, slots=True)
class _ViewDay:
    """The view on one day after rules 3 and 4: the conditions kept (None when one matches nothing) and
    the view's day cell, unfloored (the parent of its rows and goals) and published."""

    conditions: tuple[Condition, ...] | None
    cell: Figures
    published: Figures


class Stats:
    """Answers for one database; one instance per app. It remembers only what cannot change (settled
    days' answers, checked rollup sums), never anything about one request."""

    def __init__(self, database: Store, clock: Clock, *, raw_events: bool = False) -> None:
        """``raw_events``: every figure from raw events, none from the rollups (benchmarks and tests: the
        same answers the rollups give, at the cost they save)."""
        self._db = database
        self._clock = clock
        self._raw_events = raw_events
        self._cells = PublishedCells(database, raw_events=raw_events)
        self._filtered = FilteredVisits(database)
        self._summed: OrderedDict[tuple[int, ...], tuple[tuple[DayRows, ...], Summed]] = OrderedDict()
        self._settled_raw: OrderedDict[tuple[object, ...], list[sql.Row]] = OrderedDict()

    # The top line and the series.

    async def aggregate(self, query: StatsQuery) -> Aggregate:
        current = total(day.published for day in (await self._view_days(query, query.period)).values())
        previous = total(day.published for day in (await self._view_days(query, query.period.previous())).values())
        current, previous = floor(current, query.k), floor(previous, query.k)
        return Aggregate(current, previous, withheld(current, query.k), withheld(previous, query.k))

    async def timeseries(self, query: StatsQuery, interval: Interval, *, previous: bool = False) -> list[Bucket]:
        period = query.period.previous() if previous else query.period
        zone = query.site.zone
        if interval == "hour":
            by_hour: dict[str, Figures] = defaultdict(Figures)
            for rows in (await self._day_rows(query, period, "hour")).values():
                for utc_hour, cell in rows.rows.items():
                    by_hour[utc_hour] += cell
            buckets = []
            start, end = period.bounds(zone)
            hour = start
            while hour < end:
                figures = floor(by_hour.get(hour.strftime("%Y-%m-%dT%H"), Figures()), query.k)
                local = hour.astimezone(zone)
                buckets.append(Bucket(local.strftime("%Y-%m-%d %H:%M"), local, figures, withheld(figures, query.k)))
                hour += timedelta(hours=1)
            return buckets
        by_day = await self._view_days(query, period)
        groups: dict[str, list[Figures]] = defaultdict(list)
        starts: dict[str, date] = {}
        for day in period.days():
            label = day.isoformat() if interval == "day" else day.strftime("%Y-%m")
            groups[label].append(by_day[day].published)
            starts.setdefault(label, day if interval == "day" else day.replace(day=1))
        buckets = []
        for label, items in groups.items():
            figures = floor(total(items), query.k)
            start_of = datetime.combine(starts[label], datetime.min.time(), zone)
            buckets.append(Bucket(label, start_of, figures, withheld(figures, query.k)))
        return buckets

    # Breakdowns.

    async def breakdown(
        self, query: StatsQuery, dimension: str, *, sort: SortKey = "visitors", descending: bool = True
    ) -> Breakdown:
        period, k = query.period, query.k
        if query.filters:
            summed = self._add_days(list((await self._day_rows(query, period, dimension)).values()))
        else:
            summed = await self._cells.summed(query.site, dimension, period.first, period.last)
        kept = [BreakdownRow(value, cell) for value, cell in summed.rows.items() if cell.visitors >= k]
        other = BreakdownRow(OTHER_LABEL, summed.other, other=True) if summed.other.visitors >= k else None
        cells = [row.figures for row in kept] + ([other.figures] if other else [])
        everything = Figures(*map(sum, zip(*cells, strict=True))) if cells else Figures()
        kept.sort(key=_sort_key(sort), reverse=descending)
        return Breakdown(dimension, kept, other, everything, bool(query.filters))

    async def prefetch(self, query: StatsQuery, dimensions: Sequence[str]) -> None:
        """Read what a page of a filtered view needs before it is drawn: several breakdowns from the
        stored visits in one pass (so the ``breakdown`` calls of its panels find them remembered
        instead of each reading the same visits again) and, at the same time, the previous period's
        days (the comparison), on another connection. Unfiltered views read the rollups: nothing to do."""
        if query.filters:
            views = await self._view_days(query, query.period)
            await asyncio.gather(
                self._stored_rows_of(query.site, query.period, dimensions, views),
                self._view_days(query, query.period.previous()),
            )

    def _add_days(self, days: Sequence[DayRows]) -> Summed:
        """``add_days``, remembered by the very day rows added: a warm filtered view's days are the ones
        ``FilteredVisits`` keeps (the same objects), and adding 30 days of thousands of pages was most
        of its Python time at 10M events. The entry holds those objects, so their ids stay theirs."""
        key = tuple(map(id, days))
        found = self._summed.get(key)
        if found is not None and all(a is b for a, b in zip(found[0], days, strict=True)):
            self._summed.move_to_end(key)
            return found[1]
        summed = add_days(days)
        self._summed[key] = (tuple(days), summed)
        while len(self._summed) > _SUMMED_KEPT:
            self._summed.popitem(last=False)
        return summed

    async def prop_keys(self, query: StatsQuery) -> list[str]:
        """Rule 7: a key is listed only when one of its values had k visitors or more on one day."""
        period = query.period
        return await sql.prop_keys(self._db, query.site.id, period.first.isoformat(), period.last.isoformat(), query.k)

    # Goals, funnels, realtime.

    async def goals(self, query: StatsQuery) -> list[GoalResult]:
        """Each goal as its view plus one condition, day by day (rules 1 and 4; a site owner's goal is
        configuration, so it is not limited to named values)."""
        k = query.k
        views = await self._view_days(query, query.period)
        visitors = floor(total(view.published for view in views.values()), k).visitors
        results = []
        for goal in query.site.goals:
            condition = goal_condition(goal)
            reached = Figures()
            for day, view in views.items():
                if view.conditions is None or not view.published.visitors:
                    continue
                conditions = (*view.conditions, condition)
                cell = await self._cell(query.site, day, conditions, rollup=len(conditions) == 1)
                reached += floor(view.cell if splits_off(view.cell, cell, k) else cell, k)
            if withheld(reached, k):
                results.append(GoalResult(goal, 0, 0, 0.0, True))
            else:
                rate = round(100 * reached.visitors / visitors, 1) if visitors else 0.0
                results.append(GoalResult(goal, reached.visitors, reached.events, rate, False))
        return results

    async def funnel(self, query: StatsQuery, funnel: Funnel) -> list[FunnelStep]:
        """Visits that completed the steps in order (other events in between allowed), per step.

        Day by day, each step is its previous step plus one condition (the first step's parent: the
        site's day cell; a funnel counts every visit, whatever the view's filters): a step that leaves
        out 1..k-1 visitors takes its parent's cell, and a step under k visitors publishes zero. A
        drop-off is the difference of two published steps: zero or k visitors and more.
        """
        steps, k = funnel.steps, query.k
        matches = [
            ("page", goal.like_pattern, goal.name) if goal.page else ("event", goal.event or "", goal.name)
            for goal in steps
        ]
        site_days = await self._cells.days(query.site, "all", query.period.first, query.period.last)
        published = [Figures()] * len(steps)
        for day in query.period.days():
            parent = site_days[day].total
            if parent.visitors < k:
                continue
            start, stop = day_bounds(day, query.site.zone)
            rows = await sql.goal_events(self._db, query.site.id, matches, start, stop)
            progress: dict[int, tuple[int, str]] = {}
            for visit_id, visitor_id, name, pathname in rows:
                done = progress.get(visit_id, (0, ""))[0]
                if done < len(steps) and _matches(steps[done], name, pathname):
                    progress[visit_id] = (done + 1, str(visitor_id))
            for index in range(len(steps)):
                reached = [visitor for done, visitor in progress.values() if done > index]
                cell = Figures(visitors=len(set(reached)), visits=len(reached))
                parent = parent if splits_off(parent, cell, k) else cell
                published[index] += floor(parent, k)
        result = []
        first = published[0].visits
        for index, goal in enumerate(steps):
            if withheld(published[index], k):
                result.append(FunnelStep(goal, 0, 0, 0.0, True))
                continue
            visits = published[index].visits
            drop_off = published[index - 1].visits - visits if index else 0
            result.append(FunnelStep(goal, visits, drop_off, round(100 * visits / first, 1) if first else 0.0, False))
        return result

    async def realtime(self, site: SiteSettings, now: datetime) -> Realtime:
        """The last five minutes: a moving window, not a day, so there are no day cells to floor.

        Visitors, and each page's visitors, are rounded down to a multiple of k (rule 6): one arrival
        changes nothing except when it completes a multiple of k. Pages under k visitors add to
        "(other)", itself rounded down, shown only when those pages hold k distinct visitors (one
        person on five small pages is no "(other)" of 5); under k everything is withheld.
        """
        k = site.min_visitors
        now = now.astimezone(UTC)
        visitors, pages, people = await sql.realtime(self._db, site.id, now - REALTIME_WINDOW, now, k)
        shown = round_down(visitors, k)
        if shown < k:
            return Realtime(0, True)
        kept = [BreakdownRow(path, Figures(visitors=round_down(count, k))) for path, count in pages if count >= k]
        kept.sort(key=lambda row: (-row.figures.visitors, row.value))
        small = round_down(sum(count for _, count in pages if count < k), k) if people >= k else 0
        other = BreakdownRow(OTHER_LABEL, Figures(visitors=small), other=True) if small else None
        return Realtime(shown, False, kept, other)

    # The view, one day at a time.

    async def _view_days(self, query: StatsQuery, period: Period) -> dict[date, _ViewDay]:
        """Each local day's view: its filters resolved against the day's named values (rule 3), each
        condition that splits off 1..k-1 visitors ignored (rule 4), the cell floored (rule 1)."""
        k, site = query.k, query.site
        totals = await self._cells.days(site, "all", period.first, period.last)
        if not query.filters:
            return {day: _ViewDay((), total.total, floor(total.total, k)) for day, total in totals.items()}
        named: dict[str, dict[date, PublishedDay]] = {}
        for dimension in {condition.dimension for condition in query.filters}:
            named[dimension] = await self._cells.days(site, dimension, period.first, period.last)
        ordered = canonical(query.filters)
        resolved_days: dict[date, list[Condition | bool]] = {}
        for day in period.days():
            resolved = [resolve(c, named[c.dimension][day].rows.named) for c in ordered]
            resolved_days[day] = [r for r in resolved if r is not True]
        known = {
            **await self._stored_cells(site, period, resolved_days),
            **await self._one_is_cells(site, resolved_days),
        }
        views = {}
        for day, kept in resolved_days.items():
            real = [r for r in kept if isinstance(r, Condition)]
            rollup = len(real) <= 1 and all(r.operator == "is" for r in real)
            cell = await self._cell(site, day, kept, rollup=rollup, total=totals[day].total, known=known)
            for condition in list(kept):
                without = kept.copy()
                without.remove(condition)
                parent = await self._cell(site, day, without, rollup=rollup, total=totals[day].total, known=known)
                if splits_off(parent, cell, k):
                    kept, cell = without, parent
            conditions = None if False in kept else tuple(r for r in kept if isinstance(r, Condition))
            views[day] = _ViewDay(conditions, cell, floor(cell, k))
        return views

    async def _day_rows(self, query: StatsQuery, period: Period, dimension: str) -> dict[date, DayRows]:
        """Each day's published rows of ``dimension`` under the view: its named values only (rule 3),
        a row that leaves out 1..k-1 of the view's visitors snapped to the view's cell (rule 4)."""
        k = query.k
        unfiltered = await self._cells.days(query.site, dimension, period.first, period.last)
        if not query.filters:
            return {day: published.rows for day, published in unfiltered.items()}
        views = await self._view_days(query, period)
        stored = await self._stored_rows(query.site, period, dimension, views)
        found: dict[date, DayRows] = {}
        for day, view in views.items():
            if view.conditions is None or not view.published.visitors:
                continue
            if not view.conditions:
                found[day] = unfiltered[day].rows
                continue
            allowed = unfiltered[day].rows.named
            other_allowed = unfiltered[day].rows.other_of_k
            key = (k, view.cell, allowed, other_allowed)
            if day in stored:
                remembered = stored[day].published.get(key)
                if isinstance(remembered, DayRows):
                    found[day] = remembered
                    continue
                cells, small = stored[day].cells, stored[day].small
            else:
                rows = await self._raw(query.site, day, (dimension,), view.conditions)
                cells, small = {str(row[1]): Figures.of(row[2:]) for row in rows if row[0] == dimension}, None
            chosen, people = left_out(cells, k, allowed)
            people += small.visitors if small else 0
            if people >= k and view.cell.visitors >= k and day in stored:  # "(other)" may hold k people
                people = stored[day].other_visitors(chosen, k)
            elif people >= k and view.cell.visitors >= k:
                people = await self._other_visitors(query.site, day, dimension, view.conditions, chosen)
            found[day] = publish_rows(
                cells, view.cell, k, allowed=allowed, small=small, other_visitors=people, other_allowed=other_allowed
            )
            if day in stored:
                stored[day].remember(key, found[day])
        return found

    async def _one_is_cells(
        self, site: SiteSettings, resolved: dict[date, list[Condition | bool]]
    ) -> dict[tuple[date, frozenset[Condition]], Figures]:
        """The cell of each day whose view is one "is" (its rollup row, what ``_cell`` reads for it), one
        query per condition for the whole period instead of one per day: a page resolves its view once
        per panel, and one query per day and panel was most of a warm one-"is" view on PostgreSQL."""
        wanted: dict[Condition, list[date]] = {}
        for day, kept in resolved.items():
            real = [r for r in kept if isinstance(r, Condition)]
            if not self._raw_events and False not in kept and len(real) == 1 and real[0].operator == "is":
                wanted.setdefault(real[0], []).append(day)
        found: dict[tuple[date, frozenset[Condition]], Figures] = {}
        for condition, days in wanted.items():
            first, last = min(days).isoformat(), max(days).isoformat()
            rows = await sql.rollup_series(self._db, site.id, condition.dimension, condition.value, first, last)
            series = {str(row[0]): Figures.of(row[1:]) for row in rows}
            for day in days:
                found[day, frozenset((condition,))] = series.get(day.isoformat(), Figures())
        return found

    async def _stored_cells(
        self, site: SiteSettings, period: Period, resolved: dict[date, list[Condition | bool]]
    ) -> dict[tuple[date, frozenset[Condition]], Figures]:
        """Every cell the drop-one chain of each day may ask for, read from the stored visits for the whole
        period at once (``gateway.stats.filtered``); nothing for days the rollups or raw events answer."""
        views: dict[date, tuple[Condition, ...]] = {}
        for day, kept in resolved.items():
            real = tuple(r for r in kept if isinstance(r, Condition))
            if False in kept or not real or (len(real) == 1 and real[0].operator == "is"):
                continue  # nothing to read, or the rollups answer the whole chain
            views[day] = real
        if self._raw_events or not views or not all(answers(real) for real in views.values()):
            return {}
        generations = await self._filtered.generations(site, period.first, period.last)
        return await self._filtered.cells(site, views, generations)

    async def _stored_rows(
        self, site: SiteSettings, period: Period, dimension: str, views: dict[date, _ViewDay]
    ) -> dict[date, DayCells]:
        """Each day's cells of ``dimension`` under its view, from the stored visits when they answer."""
        return (await self._stored_rows_of(site, period, (dimension,), views)).get(dimension, {})

    async def _stored_rows_of(
        self, site: SiteSettings, period: Period, dimensions: Sequence[str], views: dict[date, _ViewDay]
    ) -> dict[str, dict[date, DayCells]]:
        """``_stored_rows`` of several dimensions, read together (the ones the stored visits answer)."""
        wanted = {day: view.conditions for day, view in views.items() if view.conditions and view.published.visitors}
        answered = tuple(dimension for dimension in dict.fromkeys(dimensions) if can_break_down(dimension))
        if self._raw_events or not wanted or not answered:
            return {}
        if not all(answers(conditions) for conditions in wanted.values()):
            return {}
        generations = await self._filtered.generations(site, period.first, period.last)
        return await self._filtered.rows_of(site, answered, wanted, generations)

    async def _cell(
        self,
        site: SiteSettings,
        day: date,
        conditions: Sequence[Condition | bool],
        *,
        rollup: bool,
        total: Figures | None = None,
        known: Mapping[tuple[date, frozenset[Condition]], Figures] | None = None,
    ) -> Figures:
        """The unfloored day cell under ``conditions`` (False: nothing matches), from the rollups when
        they can answer and ``rollup`` says the whole drop-one chain reads them, else from the stored
        visits (``known``: read for the whole period at once), else from raw events."""
        if False in conditions:
            return Figures()
        real = tuple(c for c in conditions if isinstance(c, Condition))
        if not real:
            if total is None:
                total = (await self._cells.days(site, "all", day, day))[day].total
            return total
        if known is not None and (day, frozenset(real)) in known:
            return known[day, frozenset(real)]
        if rollup and not self._raw_events and len(real) == 1 and real[0].operator == "is":
            rows = await sql.rollup_series(
                self._db, site.id, real[0].dimension, real[0].value, day.isoformat(), day.isoformat()
            )
            return Figures.of(rows[0][1:]) if rows else Figures()
        found = await self._raw(site, day, ("all",), real)
        return next((Figures.of(row[2:]) for row in found if row[0] == "all"), Figures())

    async def _other_visitors(
        self, site: SiteSettings, day: date, dimension: str, conditions: tuple[Condition, ...], chosen: tuple[str, ...]
    ) -> int:
        """The distinct visitors of the view on ``day`` with a value of ``dimension`` outside ``chosen``: the
        people behind a filtered breakdown's "(other)", remembered like ``_raw`` once the day is settled."""
        key = ("other", site.id, str(site.zone), day, dimension, conditions, chosen, site.min_visitors)
        rows = self._remembered(key)
        if rows is None:
            start, stop = day_bounds(day, site.zone)
            counts = await sql.raw_other_visitors(
                self._db, site.id, (dimension,), conditions, start, stop, k=site.min_visitors, chosen=chosen
            )
            rows = self._remember(site, day, key, [(counts.get(dimension, 0),)])
        return int(rows[0][0])

    def _remembered(self, key: tuple[object, ...]) -> list[sql.Row] | None:
        rows = self._settled_raw.get(key)
        if rows is not None:
            self._settled_raw.move_to_end(key)
        return rows

    def _remember(self, site: SiteSettings, day: date, key: tuple[object, ...], rows: list[sql.Row]) -> list[sql.Row]:
        """Keep ``rows`` when ``day`` is settled (see ``_raw``); returns them."""
        if day < self._clock.now().astimezone(site.zone).date() - timedelta(days=1):
            self._settled_raw[key] = rows
            while len(self._settled_raw) > _SETTLED_RAW_CAPACITY:
                self._settled_raw.popitem(last=False)
        return rows

    async def _raw(
        self, site: SiteSettings, day: date, dimensions: tuple[str, ...], conditions: tuple[Condition, ...]
    ) -> list[sql.Row]:
        """``(dimension, value, figures...)`` rows from the raw events of one local day.

        Remembered once the day is settled: no event is ever stamped with a past time, so only
        today's and yesterday's figures can still change (yesterday's through visits that go on past
        midnight). A filtered view costs about 10 µs per event of the period the first time (and one
        more query per condition, for rule 4), and only its last two days after that.
        """
        key = (site.id, str(site.zone), day, dimensions, conditions)
        rows = self._remembered(key)
        if rows is None:
            start, stop = day_bounds(day, site.zone)
            rows = self._remember(
                site, day, key, await sql.raw_figures(self._db, site.id, dimensions, conditions, start, stop)
            )
        return rows


def goal_condition(goal: Goal) -> Condition:
    """A goal as a filter: its page pattern or its event name."""
    if goal.page is not None:
        return Condition("page", "matches", goal.like_pattern)
    return Condition("event", "is", goal.event or "")


def _matches(goal: Goal, name: str, pathname: str) -> bool:
    if goal.event is not None:
        return name == goal.event
    return name == "pageview" and goal.matches_path(pathname)


def _sort_key(sort: SortKey) -> Callable[[BreakdownRow], Any]:
    if sort == "value":
        return lambda row: row.value
    return lambda row: (getattr(row.figures, sort), row.figures.visitors)
