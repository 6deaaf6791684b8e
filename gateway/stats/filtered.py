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

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import date
from itertools import combinations

from gateway.settings import SiteSettings
from gateway.stats.figures import Figures
from gateway.storage import visit_days
from gateway.storage.aggregates import Condition
from gateway.storage.rollups import day_bounds
from gateway.storage.store import Store

#: Conditions whose every subset is read in one pass (2**4 - 1 = 15 column groups at most).
MAX_CONDITIONS = 4
_CAPACITY = 4000  # entries: a 30-day view with its previous period and five panels is ~300
_Key = tuple[object, ...]


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
        """The cell of every non-empty subset of each day's conditions (the view and its drop-one parents)."""
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
            subsets = list(_subsets(conditions))
            read = await visit_days.cells(self._db, site.id, [d.isoformat() for d in days], [tuple(s) for s in subsets])
            for day in days:
                row = read.get(day.isoformat())
                for index, subset in enumerate(subsets):
                    cell = Figures(*row[index]) if row else Figures()
                    found[day, subset] = cell
                    self._put(("cell", site.id, day, generations.get(day), subset), cell)
        return found

    async def rows(
        self,
        site: SiteSettings,
        dimension: str,
        views: dict[date, tuple[Condition, ...]],
        generations: dict[date, int],
    ) -> dict[date, dict[str, Figures]]:
        """Each day's cells of ``dimension`` under that day's conditions."""
        found: dict[date, dict[str, Figures]] = {}
        wanted: dict[tuple[Condition, ...], list[date]] = {}
        for day, conditions in views.items():
            key = ("rows", site.id, day, generations.get(day), dimension, frozenset(conditions))
            cached = self._get(key)
            if cached is not None:
                found[day] = cached  # type: ignore[assignment]
            else:
                wanted.setdefault(conditions, []).append(day)
        for conditions, days in wanted.items():
            read = await visit_days.breakdown(self._db, site.id, [d.isoformat() for d in days], dimension, conditions)
            by_day = visit_days.figures_by_day(read)
            for day in days:
                cells = {value: Figures.of(row) for value, row in by_day.get(day.isoformat(), {}).items()}
                found[day] = cells
                self._put(("rows", site.id, day, generations.get(day), dimension, frozenset(conditions)), cells)
        return found

    async def other_visitors(
        self,
        site: SiteSettings,
        day: date,
        generation: int | None,
        dimension: str,
        conditions: tuple[Condition, ...],
        chosen: tuple[str, ...],
    ) -> int:
        """The view's distinct visitors on ``day`` with a value of ``dimension`` outside ``chosen``."""
        key = ("other", site.id, day, generation, dimension, frozenset(conditions), chosen)
        cached = self._get(key)
        if cached is None:
            cached = await visit_days.other_visitors(self._db, site.id, day.isoformat(), dimension, conditions, chosen)
            self._put(key, cached)
        return cached if isinstance(cached, int) else 0

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
