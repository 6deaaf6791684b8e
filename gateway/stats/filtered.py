"""Filtered day cells and rows from each day's pack of visits (``gateway.storage.day_packs``, built by
``gateway.storage.visit_days``), for a whole period at once and remembered by the day's build generation.

The privacy floor (``gateway.stats.privacy``) needs, for each day of a filtered view, the view's cell
and its drop-one parents (rule 4), then each breakdown's rows under the view. Asked one cell at a time
from raw events, a 30-day view of a busy site took minutes. Here every cell and breakdown row of
every day is counted from the days' packs, read once (``gateway.stats.pack_figures``), and what was
read is remembered per (site, day, generation, conditions): a day's visits are rebuilt, under a new
generation, only when its rollups are rewritten or purged, so a stale entry can never be served; a
lost one costs one more read. Each process (each node) keeps its own bounded memory and checks the
same generations in the database.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date
from itertools import combinations
from typing import TYPE_CHECKING, NamedTuple

from gateway.settings import SiteSettings
from gateway.stats.figures import Figures
from gateway.storage import stats as sql
from gateway.storage import visit_days
from gateway.storage.aggregates import Condition
from gateway.storage.rollups import day_bounds
from gateway.storage.store import Store

if TYPE_CHECKING:  # numpy's modules: imported by the first filtered view, not by every process (16 MB)
    from gateway.stats import pack_figures
    from gateway.storage.day_packs import DayPack

#: Conditions whose every subset is counted (2**4 - 1 = 15 cells a day at most).
MAX_CONDITIONS = 4
_CAPACITY = 4000  # entries: a 30-day view with its previous period and five panels is ~300
_PUBLISHED_PER_DAY = 4
#: Bytes of day packs kept read (a 30-day view at 10M events reads ~90 MB: kept for its breakdowns).
_PACK_BYTES = 128 * 2**20
_Key = tuple[object, ...]


class DayCells(NamedTuple):
    """One day's cells of a dimension under a view: those of k visitors or more by value, and the others
    added up with their distinct visitors (``pack_figures.Rows``). The cells under k are never named
    (rule 2), so they are all in "(other)", whose people are then counted once per day when the day is
    read, not per request (a set union per page under k was half of a warm 30-day "is not" view)."""

    cells: Mapping[str, Sequence[int]]
    #: The cells under k visitors added up.
    small: Figures
    #: The distinct visitors of all small cells together.
    small_people: int
    #: What ``gateway.stats.query`` published from these cells, by everything else it read to publish
    #: them (a pure function of the cells and that key): a warm view publishes each day once.
    published: dict[tuple[object, ...], object]

    @classmethod
    def of(cls, rows: pack_figures.Rows) -> DayCells:
        return cls(rows.large, rows.small, rows.small_people, {})

    def remember(self, key: tuple[object, ...], value: object) -> None:
        """Keep ``value`` published under ``key`` (a few at most: one view cell per day and generation)."""
        if len(self.published) >= _PUBLISHED_PER_DAY:
            self.published.clear()
        self.published[key] = value

    def other_visitors(self, chosen: Collection[str], k: int) -> int:
        """The distinct visitors of the cells outside ``chosen``: exact under k, at least k otherwise
        (a cell of k visitors or more left out makes "(other)" hold k people whatever the rest)."""
        named = chosen if isinstance(chosen, (set, frozenset)) else frozenset(chosen)
        for value, cell in self.cells.items():
            if value not in named:
                return max(cell[0], k)
        return self.small_people


def answers(conditions: Sequence[Condition]) -> bool:
    """Whether stored visits answer a view under ``conditions``."""
    return len(conditions) <= MAX_CONDITIONS and visit_days.answers(conditions)


class FilteredVisits:
    """Reads of the stored visits for ``gateway.stats.query.Stats``; one per ``Stats``."""

    def __init__(self, database: Store) -> None:
        self._db = database
        self._memory: OrderedDict[_Key, object] = OrderedDict()
        self._kept_packs: OrderedDict[tuple[str, date, int | None], DayPack] = OrderedDict()
        self._kept_bytes = 0

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
            counted: list[frozenset[Condition]] = []
            for subset in _subsets(conditions):
                (only,) = subset if len(subset) == 1 else (None,)
                if only is not None and only.operator == "is":
                    series = await self._series(site, only.dimension, only.value, first, last)
                    read.update({(day, subset): series.get(day, Figures()) for day in days})
                else:
                    counted.append(subset)
            if counted:
                packs = await self._packs(site, days, generations)
                read.update(await asyncio.to_thread(_count_cells, packs, days, counted))
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
        """``rows`` of several dimensions, what is not remembered counted from the days' packs once per set
        of conditions: a page of panels selects its visits once per day."""
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
            packs = await self._packs(site, days, generations)
            halves = (dict(list(by_day.items())[half::2]) for half in (0, 1))  # numpy's sorts share the cores
            counted: dict[date, dict[str, DayCells]] = {}
            for part in await asyncio.gather(
                *(asyncio.to_thread(_count_rows, packs, days, conditions, k) for days in halves)
            ):
                counted |= part
            for day, by_dimension in counted.items():
                for dimension, cells in by_dimension.items():
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

    async def _packs(
        self, site: SiteSettings, days: Sequence[date], generations: dict[date, int]
    ) -> dict[date, DayPack]:
        """The days' packs, the last ones read kept up to ``_PACK_BYTES`` by (site, day, generation): a
        filtered overview reads its days' cells, then their breakdowns, from the same packs. A pack read
        just after its generation was is that generation's or a newer one's; never an older one."""
        found: dict[date, DayPack] = {}
        missing: list[date] = []
        for day in days:
            key = (site.id, day, generations.get(day))
            kept = self._kept_packs.get(key)
            if kept is None:
                missing.append(day)
            else:
                self._kept_packs.move_to_end(key)
                found[day] = kept
        from gateway.storage import day_packs

        read = await day_packs.read(self._db, site.id, [day.isoformat() for day in missing])
        for day in missing:
            pack = read.get(day.isoformat())
            if pack is None:
                continue
            found[day] = pack
            if generations.get(day) is not None:
                self._kept_packs[site.id, day, generations[day]] = pack
                self._kept_bytes += pack.size
        while self._kept_bytes > _PACK_BYTES:
            self._kept_bytes -= self._kept_packs.popitem(last=False)[1].size
        return found

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


def _count_cells(
    packs: dict[date, DayPack], days: Sequence[date], subsets: Sequence[frozenset[Condition]]
) -> dict[tuple[date, frozenset[Condition]], Figures]:
    """Each day's cell under each subset of conditions, counted from the day's pack (a day without one
    had no visits)."""
    from gateway.stats import pack_figures

    found = {}
    for day in days:
        pack = packs.get(day)
        for subset in subsets:
            found[day, subset] = (
                pack_figures.cell(pack, pack_figures.matching(pack, tuple(subset))) if pack else Figures()
            )
    return found


def _count_rows(
    packs: dict[date, DayPack], by_day: dict[date, list[str]], conditions: Sequence[Condition], k: int
) -> dict[date, dict[str, DayCells]]:
    """Each day's ``DayCells`` of the dimensions asked for it under ``conditions``, from the day's pack."""
    from gateway.stats import pack_figures

    found: dict[date, dict[str, DayCells]] = {}
    for day, dimensions in by_day.items():
        pack = packs.get(day)
        chosen = pack_figures.matching(pack, conditions) if pack else None
        found[day] = {}
        for dimension in dimensions:
            rows = pack_figures.breakdown(pack, dimension, chosen, k) if pack and chosen is not None else None
            found[day][dimension] = DayCells.of(rows or pack_figures.Rows({}, Figures(), 0))
    return found
