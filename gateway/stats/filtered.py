"""Filtered day cells and rows from each day's stored visits (``gateway.storage.visit_days``), for a
whole period at once and remembered by the day's build generation.

The privacy floor (``gateway.stats.privacy``) needs, for each day of a filtered view, the view's cell
and its drop-one parents (rule 4), then each breakdown's rows under the view. Asked one cell at a time
from raw events, a 30-day view of a busy site took minutes. Here every cell of every day comes from
one statement over the days' visits (each subset of the view's conditions a column group of the same
pass), every row of a breakdown from one more, and what was read is remembered per (site, day,
generation, conditions): a day's visits are rebuilt, under a new generation, only when its rollups
are rewritten or purged, so a stale entry can never be served; a lost one costs one more read. Each
process (each node) keeps its own bounded memory and checks the same generations in the database.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from datetime import date
from itertools import combinations
from typing import NamedTuple

from gateway.settings import SiteSettings
from gateway.stats.figures import Figures
from gateway.storage import stats as sql
from gateway.storage import visit_days
from gateway.storage.aggregates import Condition
from gateway.storage.rollups import day_bounds
from gateway.storage.store import Store

#: Conditions whose every subset is read in one pass (2**4 - 1 = 15 column groups at most).
MAX_CONDITIONS = 4
_CAPACITY = 4000  # entries: a 30-day view with its previous period and five panels is ~300
_PUBLISHED_PER_DAY = 4
_Key = tuple[object, ...]


def _read_groups(dimensions: Sequence[str], *, driver: bool) -> list[tuple[str, ...]]:
    """The statements a set of breakdowns is read in, run at once on the store's readers.

    Through an index (``driver``), finding each visit is most of the cost: read them once for every
    dimension (split in two statements that each find them, it was slower: 2.7 s to 4.3 s at 10M).
    Without one, the days' visits are read in order; materialising all of them (a busy "is not")
    cost more than reading them again per dimension, so each dimension is a statement of its own."""
    if driver:
        return [tuple(dimensions)]
    return [(dimension,) for dimension in dimensions]


class DayCells(NamedTuple):
    """One day's cells of a dimension under a view, and the visitor numbers (within the day) of each
    cell of fewer than k visitors: "(other)"'s distinct people are the union of its small cells'.

    Make one with ``DayCells.of``: it counts the union of every small cell once (``small_people``),
    because the published values are never small cells, so that union is what "(other)" holds on
    every warm request; counted per request it was half the time of a warm 30-day "is not" view
    (thousands of pages under k, one set union each)."""

    cells: dict[str, Figures]
    small: dict[str, frozenset[int]]
    #: The distinct visitors of all small cells together.
    small_people: int
    #: The values of k visitors or more, in ``cells``' order.
    large: tuple[str, ...]
    #: What ``gateway.stats.query`` published from these cells, by everything else it read to publish
    #: them (a pure function of the cells and that key): a warm view publishes each day once.
    published: dict[tuple[object, ...], object]

    @classmethod
    def of(cls, cells: dict[str, Figures], small: dict[str, frozenset[int]]) -> DayCells:
        people: set[int] = set()
        for numbers in small.values():
            people |= numbers
        return cls(cells, small, len(people), tuple(value for value in cells if value not in small), {})

    def remember(self, key: tuple[object, ...], value: object) -> None:
        """Keep ``value`` published under ``key`` (a few at most: one view cell per day and generation)."""
        if len(self.published) >= _PUBLISHED_PER_DAY:
            self.published.clear()
        self.published[key] = value

    def other_visitors(self, chosen: Collection[str], k: int) -> int:
        """The distinct visitors of the cells outside ``chosen``: exact under k, at least k otherwise
        (a cell of k visitors or more left out makes "(other)" hold k people whatever the rest)."""
        named = chosen if isinstance(chosen, (set, frozenset)) else frozenset(chosen)
        for value in self.large:
            if value not in named:
                return max(self.cells[value].visitors, k)
        if not any(value in self.small for value in named):
            return self.small_people
        people: set[int] = set()  # a small cell among the chosen (not what publish_rows asks): count the rest
        for value, numbers in self.small.items():
            if value not in named:
                people |= numbers
        return len(people)


def answers(conditions: Sequence[Condition]) -> bool:
    """Whether stored visits answer a view under ``conditions``."""
    return len(conditions) <= MAX_CONDITIONS and visit_days.answers(conditions)


class FilteredVisits:
    """Reads of the stored visits for ``gateway.stats.query.Stats``; one per ``Stats``."""

    def __init__(self, database: Store) -> None:
        self._db = database
        self._memory: OrderedDict[_Key, object] = OrderedDict()

    async def generations(self, site: SiteSettings, first: date, last: date) -> dict[date, int]:
        """Each day's build generation, building first the days whose rollups changed since (or that
        were never built): the same visits maintenance builds after rolling up."""
        for day, generation in await visit_days.stale_days(self._db, site.id, first.isoformat(), last.isoformat()):
            start, stop = day_bounds(date.fromisoformat(day), site.zone)
            await visit_days.build_day(self._db, site.id, day, generation, start, stop)
        built = await visit_days.built_generations(self._db, site.id, first.isoformat(), last.isoformat())
        return {date.fromisoformat(day): generation for day, generation in built.items()}

    async def cells(
        self, site: SiteSettings, views: dict[date, tuple[Condition, ...]], generations: dict[date, int]
    ) -> dict[tuple[date, frozenset[Condition]], Figures]:
        """The cell of every non-empty subset of each day's conditions (the view and its drop-one parents).

        A subset of one "is" is that value's rollup row; one "is not" on an indexed column is the day's
        rollups minus that value's row plus its visitors who also came otherwise (``mixed_visitors``);
        any other subset is read from the visits that hold its most selective "is", every subset that
        shares it in the same pass."""
        found: dict[tuple[date, frozenset[Condition]], Figures] = {}
        wanted: dict[tuple[Condition, ...], list[date]] = {}
        for day, conditions in views.items():
            subsets = list(_subsets(conditions))
            cached = [self._get(("cell", site.id, day, generations.get(day), subset)) for subset in subsets]
            if all(cell is not None for cell in cached):
                found.update({(day, subset): cell for subset, cell in zip(subsets, cached, strict=True)})  # type: ignore[misc]
            else:
                wanted.setdefault(conditions, []).append(day)
        for conditions, days in wanted.items():
            first, last = min(days).isoformat(), max(days).isoformat()
            read: dict[tuple[date, frozenset[Condition]], Figures] = {}
            passes: dict[Condition | None, list[frozenset[Condition]]] = {}
            for subset in _subsets(conditions):
                (only,) = subset if len(subset) == 1 else (None,)
                if only is not None and only.operator == "is":
                    series = await self._series(site, only.dimension, only.value, first, last)
                    read.update({(day, subset): series.get(day, Figures()) for day in days})
                elif only is not None and only.operator == "is_not" and only.dimension in visit_days.INDEXED:
                    read.update(await self._complement(site, only, days))
                else:
                    passes.setdefault(await self._driver(site, subset, first, last), []).append(subset)
            for driver, subsets in passes.items():
                rows = await visit_days.cells(
                    self._db, site.id, [d.isoformat() for d in days], [tuple(s) for s in subsets], driver=driver
                )
                for day in days:
                    row = rows.get(day.isoformat())
                    for index, subset in enumerate(subsets):
                        read[day, subset] = Figures(*row[index]) if row else Figures()
            for (day, subset), cell in read.items():
                found[day, subset] = cell
                self._put(("cell", site.id, day, generations.get(day), subset), cell)
        return found

    async def rows(
        self,
        site: SiteSettings,
        dimension: str,
        views: dict[date, tuple[Condition, ...]],
        generations: dict[date, int],
    ) -> dict[date, DayCells]:
        """Each day's cells of ``dimension`` under that day's conditions, with the visitor numbers of the
        cells under k (their union is "(other)"'s people: no query per day for them)."""
        return (await self.rows_of(site, (dimension,), views, generations))[dimension]

    async def rows_of(
        self,
        site: SiteSettings,
        dimensions: Sequence[str],
        views: dict[date, tuple[Condition, ...]],
        generations: dict[date, int],
    ) -> dict[str, dict[date, DayCells]]:
        """``rows`` of several dimensions, what is not remembered read in one pass per set of conditions
        (``visit_days.breakdowns``): a page of panels finds its visits once."""
        found: dict[str, dict[date, DayCells]] = {dimension: {} for dimension in dimensions}
        wanted: dict[tuple[Condition, ...], dict[date, list[str]]] = {}
        k = site.min_visitors
        for dimension in found:
            for day, conditions in views.items():
                cached = self._get(self._rows_key(site, day, generations, dimension, conditions))
                if cached is not None:
                    found[dimension][day] = cached  # type: ignore[assignment]
                else:
                    wanted.setdefault(conditions, {}).setdefault(day, []).append(dimension)
        for conditions, by_day in wanted.items():
            days = sorted(by_day)
            first, last = days[0].isoformat(), days[-1].isoformat()
            asked = tuple(dimension for dimension in found if any(dimension in names for names in by_day.values()))
            driver = await self._driver(site, conditions, first, last)
            read: dict[str, list[visit_days.Row]] = {}
            for part in await asyncio.gather(
                *(
                    visit_days.breakdowns(
                        self._db, site.id, [d.isoformat() for d in days], group, conditions, k, driver=driver
                    )
                    for group in _read_groups(asked, driver=driver is not None)
                )
            ):
                read |= part
            for dimension in asked:
                by_value = visit_days.figures_by_day(read[dimension])
                for day, names in by_day.items():
                    if dimension not in names:
                        continue
                    values = by_value.get(day.isoformat(), {})
                    cells = DayCells.of(
                        {value: Figures.of(row) for value, (row, _) in values.items()},
                        {value: people for value, (_, people) in values.items() if people is not None},
                    )
                    found[dimension][day] = cells
                    self._put(self._rows_key(site, day, generations, dimension, conditions), cells)
        return found

    @staticmethod
    def _rows_key(
        site: SiteSettings, day: date, generations: dict[date, int], dimension: str, conditions: tuple[Condition, ...]
    ) -> _Key:
        return ("rows", site.id, day, generations.get(day), dimension, frozenset(conditions), site.min_visitors)

    async def _series(
        self, site: SiteSettings, dimension: str, value: str, first: str, last: str
    ) -> dict[date, Figures]:
        rows = await sql.rollup_series(self._db, site.id, dimension, value, first, last)
        return {date.fromisoformat(str(row[0])): Figures.of(row[1:]) for row in rows}

    async def _complement(
        self, site: SiteSettings, condition: Condition, days: Sequence[date]
    ) -> dict[tuple[date, frozenset[Condition]], Figures]:
        """``dimension != value`` on each day: the day's cell minus the value's, plus the value's visitors
        who also came another way that day (counted in both cells, they stay in the complement)."""
        first, last = min(days).isoformat(), max(days).isoformat()
        everyone = await self._series(site, "all", "", first, last)
        excluded = await self._series(site, condition.dimension, condition.value, first, last)
        mixed = await visit_days.mixed_visitors(self._db, site.id, first, last, condition.dimension, condition.value)
        found = {}
        for day in days:
            whole, part = everyone.get(day, Figures()), excluded.get(day, Figures())
            rest = Figures(*(a - b for a, b in zip(whole, part, strict=True)))
            found[day, frozenset((condition,))] = rest._replace(visitors=rest.visitors + mixed.get(day.isoformat(), 0))
        return found

    async def _driver(
        self, site: SiteSettings, conditions: Iterable[Condition], first: str, last: str
    ) -> Condition | None:
        """The "is" condition on an indexed column with the fewest visits over the days (by the rollups):
        the index a pass reads. None when there is none (the pass reads every visit of the days)."""
        best: tuple[int, Condition] | None = None
        for condition in conditions:
            if condition.operator == "is" and condition.dimension in visit_days.INDEXED:
                visits = sum(
                    cell.visits
                    for cell in (await self._series(site, condition.dimension, condition.value, first, last)).values()
                )
                if best is None or visits < best[0]:
                    best = (visits, condition)
        return best[1] if best else None

    def _get(self, key: _Key) -> object | None:
        if key[3] is None:  # a day never built: nothing to remember
            return None
        found = self._memory.get(key)
        if found is not None:
            self._memory.move_to_end(key)
        return found

    def _put(self, key: _Key, value: object) -> None:
        if key[3] is None:
            return
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > _CAPACITY:
            self._memory.popitem(last=False)


def _subsets(conditions: Sequence[Condition]) -> Iterable[frozenset[Condition]]:
    for size in range(len(conditions), 0, -1):
        for subset in combinations(conditions, size):
            yield frozenset(subset)
