"""Each day's published cells of a dimension (``gateway.stats.privacy``), and their sums over a range,
remembered between requests.

The privacy floor works day by day, so a 30-day breakdown is the sum of 30 days of published
cells: at 10 million events a month, some 130,000 page rows to read and floor, ~150 ms each time
the overview is drawn. Yet a day's rollups change only when they are rewritten: today's every
``rollup_interval``, an earlier day's when a late visit, ``rollup --rebuild`` or the purge rewrites
it. Triggers give a day the next number in ``rollup_generations`` whenever that happens (migration
0009), so what is remembered is checked against those numbers:

- per (site, dimension, day, k): the day's published cells, with the day's generation;
- per (site, dimension, range, k): the sum of the published cells of every day of a range but the
  last, with the generations of those days. The last day (usually today) is added on each request.

A stale entry cannot be served (its generation no longer matches); a lost one costs one more read.
Each process keeps its own bounded memory; nodes sharing a database each check the same numbers.

"(other)" publishes only when its values hold k distinct visitors (``gateway.stats.privacy``, rule
2). The rollup counts them for the site's k (``rollup_other_visitors``); for a day it did not (k
changed since, or the day was rolled up before migration 0011) they are counted from that day's raw
events, for every dimension at once, and remembered per (site, day, k) with the day's generation;
when the raw events are gone (retention), "(other)" of that day reads as under k. Nothing needs
counting when the cells of "(other)" add up to fewer than k visitors: the people are fewer still.

``raw_events=True`` (benchmarks and tests only) reads every day cell from raw events instead,
remembering nothing: the same answers, the cost the rollups save.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import NamedTuple

from gateway.settings import SiteSettings
from gateway.stats.figures import Figures
from gateway.stats.privacy import ZERO, DayRows, floor, left_out, publish_rows
from gateway.storage import stats as sql
from gateway.storage.aggregates import ALL_PROPS, DIMENSIONS
from gateway.storage.rollups import day_bounds
from gateway.storage.store import Store

_DayKey = tuple[str, str, str, int]  # site, dimension, day, k
_CountKey = tuple[str, str, int]  # site, day, k
_RangeKey = tuple[str, str, str, str, int]  # site, dimension, first day, last day, k
Generations = dict[str, int]


class PublishedDay(NamedTuple):
    """One day of one dimension: the day's unfloored site total (the parent of its rows), and its rows."""

    total: Figures
    rows: DayRows


class Summed(NamedTuple):
    """Published cells added over days: every value with a published cell, and "(other)"."""

    rows: dict[str, Figures]
    other: Figures


_EMPTY = PublishedDay(ZERO, DayRows(frozenset(), {}, ZERO))


class PublishedCells:
    """The unfiltered side of the privacy floor, read from the rollups: one instance per ``Stats``."""

    def __init__(
        self,
        database: Store,
        *,
        day_capacity: int = 512,
        range_capacity: int = 48,
        count_capacity: int = 128,
        raw_events: bool = False,
    ) -> None:
        self._db = database
        self._day_capacity = day_capacity
        self._range_capacity = range_capacity
        self._count_capacity = count_capacity
        self._raw_events = raw_events
        self._days: OrderedDict[_DayKey, tuple[int, PublishedDay]] = OrderedDict()
        self._ranges: OrderedDict[_RangeKey, tuple[tuple[tuple[str, int], ...], Summed]] = OrderedDict()
        # (site, day, k) -> (generation, "(other)" visitors by dimension counted from raw events; None: gone)
        self._counted: OrderedDict[_CountKey, tuple[int, dict[str, int] | None]] = OrderedDict()

    async def days(
        self, site: SiteSettings, dimension: str, first: date, last: date, generations: Generations | None = None
    ) -> dict[date, PublishedDay]:
        """Each day's published cells from ``first`` to ``last`` (a day without rollups is empty)."""
        site_id, k = site.id, site.min_visitors
        if self._raw_events:
            return {day: await self._read_raw(site, dimension, day) for day in _each_day(first, last)}
        if generations is None:
            generations = await sql.rollup_generations(self._db, site_id, first.isoformat(), last.isoformat())
        found: dict[date, PublishedDay] = {}
        missing: list[date] = []
        day = first
        while day <= last:
            generation = generations.get(day.isoformat())
            key = (site_id, dimension, day.isoformat(), k)
            remembered = self._days.get(key)
            if generation is None:
                found[day] = _EMPTY
            elif remembered is not None and remembered[0] == generation:
                self._days.move_to_end(key)
                found[day] = remembered[1]
            else:
                missing.append(day)
            day += timedelta(days=1)
        if missing:
            read = await self._read(site, dimension, missing[0], missing[-1], generations)
            for day in missing:
                found[day] = read.get(day, _EMPTY)
                self._remember_day((site_id, dimension, day.isoformat(), k), generations[day.isoformat()], found[day])
        return found

    async def summed(self, site: SiteSettings, dimension: str, first: date, last: date) -> Summed:
        """The published cells of each value (and "(other)") added over the days ``first`` to ``last``."""
        site_id, k = site.id, site.min_visitors
        if self._raw_events:
            return add_days(day.rows for day in (await self.days(site, dimension, first, last)).values())
        generations = await sql.rollup_generations(self._db, site_id, first.isoformat(), last.isoformat())
        fresh = await self.days(site, dimension, last, last, generations)
        if first >= last:
            return add_days(day.rows for day in fresh.values())
        settled_last = last - timedelta(days=1)
        key = (site_id, dimension, first.isoformat(), settled_last.isoformat(), k)
        fingerprint = tuple(sorted((day, n) for day, n in generations.items() if day <= key[3]))
        remembered = self._ranges.get(key)
        if remembered is not None and remembered[0] == fingerprint:
            self._ranges.move_to_end(key)
            settled = remembered[1]
        else:
            days = await self.days(site, dimension, first, settled_last, generations)
            settled = add_days(day.rows for day in days.values())
            self._ranges[key] = (fingerprint, settled)
            while len(self._ranges) > self._range_capacity:
                self._ranges.popitem(last=False)
        last_day = fresh[last].rows
        if not last_day.rows and not last_day.other.visitors:
            return settled
        rows = dict(settled.rows)
        for value, cell in last_day.rows.items():
            if cell.visitors:
                before = rows.get(value)
                rows[value] = cell if before is None else before + cell
        return Summed(rows, settled.other + last_day.other)

    async def _read(
        self, site: SiteSettings, dimension: str, first: date, last: date, generations: Generations
    ) -> dict[date, PublishedDay]:
        site_id, k = site.id, site.min_visitors
        cells: dict[str, dict[str, tuple[int, ...]]] = defaultdict(dict)
        small: dict[str, Figures] = {}
        totals: dict[str, Figures] = {}
        for row in await sql.rollup_days(self._db, site_id, dimension, first.isoformat(), last.isoformat(), k):
            if row[2] is None:
                small[row[0]] = Figures(*row[3:9])
            elif row[1] == dimension:
                cells[row[0]][row[2]] = row[3:9]
            if row[1] == "all" and row[2] is not None:
                totals[row[0]] = Figures(*row[3:9])
        counted: dict[str, int] = {}
        if any(cell.visitors >= k for cell in small.values()):
            counted = await sql.other_visitors(self._db, site_id, dimension, first.isoformat(), last.isoformat(), k)
        found = {}
        for day, total in totals.items():
            rest = small.get(day, ZERO)
            people: int | None = rest.visitors
            if rest.visitors >= k:  # only then can "(other)" hold k people: count them
                people = counted.get(day)
                if people is None:
                    people = await self._count_raw(site, dimension, date.fromisoformat(day), total, generations[day])
            rows = publish_rows(cells.get(day, {}), total, k, small=small.get(day), other_visitors=people)
            found[date.fromisoformat(day)] = PublishedDay(total, rows)
        return found

    async def _count_raw(
        self, site: SiteSettings, dimension: str, day: date, total: Figures, generation: int
    ) -> int | None:
        """The people behind "(other)" of ``dimension`` on ``day`` from raw events, every dimension counted
        at once and remembered with the day's generation; None when the day's raw events are gone (fewer
        visitors than its rollups counted)."""
        key = (site.id, day.isoformat(), site.min_visitors)
        remembered = self._counted.get(key)
        if remembered is not None and remembered[0] == generation:
            self._counted.move_to_end(key)
            counts = remembered[1]
        else:
            start, stop = day_bounds(day, site.zone)
            dimensions = (*DIMENSIONS, ALL_PROPS)
            counts = await sql.raw_other_visitors(self._db, site.id, dimensions, (), start, stop, k=site.min_visitors)
            if counts.get("all", 0) < total.visitors:
                counts = None
            self._counted[key] = (generation, counts)
            self._counted.move_to_end(key)
            while len(self._counted) > self._count_capacity:
                self._counted.popitem(last=False)
        return None if counts is None else counts.get(dimension, 0)

    async def _read_raw(self, site: SiteSettings, dimension: str, day: date) -> PublishedDay:
        """One day's published cells from its raw events (``raw_events``)."""
        k = site.min_visitors
        start, stop = day_bounds(day, site.zone)
        rows = await sql.raw_figures(self._db, site.id, tuple(dict.fromkeys((dimension, "all"))), (), start, stop)
        total = next((Figures.of(row[2:]) for row in rows if row[0] == "all"), ZERO)
        if not total.visitors:
            return _EMPTY
        cells = {str(row[1]): Figures.of(row[2:]) for row in rows if row[0] == dimension}
        _, people = left_out(cells, k)
        if people >= k:
            counts = await sql.raw_other_visitors(self._db, site.id, (dimension,), (), start, stop, k=k)
            people = counts.get(dimension, 0)
        return PublishedDay(total, publish_rows(cells, total, k, other_visitors=people))

    def _remember_day(self, key: _DayKey, generation: int, day: PublishedDay) -> None:
        self._days[key] = (generation, day)
        self._days.move_to_end(key)
        while len(self._days) > self._day_capacity:
            self._days.popitem(last=False)


def _each_day(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def add_days(days: Iterable[DayRows]) -> Summed:
    """Published day cells added up (a value without any published cell is left out)."""
    rows: dict[str, Figures] = {}
    other = ZERO
    for day in days:
        for value, cell in day.rows.items():
            if cell.visitors:
                before = rows.get(value)
                rows[value] = cell if before is None else before + cell
        other += day.other
    return Summed(rows, other)


def floored_total(day: PublishedDay, k: int) -> Figures:
    """The site's published day cell (rule 1)."""
    return floor(day.total, k)
