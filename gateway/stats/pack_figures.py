"""Figures of a day's visits under conditions, counted from its pack (``gateway.storage.day_packs``).

The same figures ``gateway.storage.aggregates`` defines and ``visit_days`` stored row by row: a cell is
(distinct visitors, visits, pageviews, events, bounces, duration) of the visits that hold every
condition; entry and exit pages count the visits started that day with the whole visit's pageviews
and events; a page or custom event row counts each visit with it once, with that value's pageviews
and events and the visit's bounce and duration. Visitors are numbers within the day, so a distinct
count is a count of distinct (value, number) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from gateway.stats.figures import Figures
from gateway.storage.aggregates import STARTED_VISIT_DIMENSIONS, Condition
from gateway.storage.day_packs import Array, DayPack


class Rows(NamedTuple):
    """A day's breakdown: the cells of k visitors or more by value (the six figures as plain tuples), and
    the cells under k added up, with their distinct visitors. Those are never named, so "(other)" holds
    them all (``gateway.stats.privacy.named_values``): a month of a busy site's pages is 140,000 cells,
    nearly all under k, and neither SQL nor the floor needs them one by one."""

    large: dict[str, tuple[int, ...]]
    small: Figures
    small_people: int


class Selection(NamedTuple):
    """The visits of a day that hold a view's conditions: a boolean per visit, and their indexes (a
    gather by index is several times faster than by mask, and every figure and dimension gathers)."""

    mask: Array
    positions: Array


def matching(pack: DayPack, conditions: Sequence[Condition]) -> Selection:
    """The visits that hold every condition (visit dimensions; ``is``, ``is_not``, ``in``, ``not_in``)."""
    chosen = np.ones(pack.visits, dtype=bool)
    for condition in conditions:
        column = pack.columns[condition.dimension]
        values = condition.values if condition.operator in ("in", "not_in") else (condition.value,)
        codes = [code for code in map(column.code_of, values) if code is not None]
        found = np.isin(column.codes, codes) if len(codes) > 1 else column.codes == (codes[0] if codes else -1)
        chosen &= ~found if condition.operator in ("is_not", "not_in") else found
    return Selection(chosen, np.flatnonzero(chosen))


def cell(pack: DayPack, chosen: Selection) -> Figures:
    """The day cell of the visits ``chosen``."""
    if not chosen.positions.size:
        return Figures()
    take = chosen.positions
    figures = pack.figures
    return Figures(
        int(_distinct(figures["visitor"].take(take)).size),
        int(take.size),
        int(figures["pageviews"].take(take).sum(dtype=np.int64)),
        int(figures["events"].take(take).sum(dtype=np.int64)),
        int(figures["bounce"].take(take).sum(dtype=np.int64)),
        int(figures["duration"].take(take).sum(dtype=np.int64)),
    )


def breakdown(pack: DayPack, dimension: str, chosen: Selection, k: int) -> Rows:
    """``dimension``'s cells over the visits ``chosen``, split at k visitors (``Rows``)."""
    figures = pack.figures
    if dimension in pack.facts:
        facts = pack.facts[dimension]
        kept = np.flatnonzero(chosen.mask[facts.visit])
        visit = facts.visit.take(kept)
        return _rows(
            facts.column.codes.take(kept),
            facts.column.words,
            figures["visitor"].take(visit),
            (
                facts.pageviews.take(kept),
                facts.events.take(kept),
                figures["bounce"].take(visit),
                figures["duration"].take(visit),
            ),
            k,
        )
    take = chosen.positions
    if dimension in STARTED_VISIT_DIMENSIONS:
        take = take[figures["started"].take(take) == 1]
        sums = ("visit_pageviews", "visit_events", "bounce", "duration")
    else:
        sums = ("pageviews", "events", "bounce", "duration")
    if dimension == "all":
        codes: Array = np.zeros(take.size, dtype=np.uint8)
        words: tuple[str, ...] = ("",)
    else:
        column = pack.columns[dimension]
        codes, words = column.codes.take(take), column.words
    return _rows(codes, words, figures["visitor"].take(take), tuple(figures[name].take(take) for name in sums), k)


def _distinct(numbers: Array) -> Array:
    """``numbers`` sorted, each once (``np.unique`` hashes: twenty times slower on these arrays)."""
    ordered = np.sort(numbers)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if ordered.size else ordered


def _rows(codes: Array, words: tuple[str, ...], visitors: Array, sums: tuple[Array, ...], k: int) -> Rows:
    """Group rows by code: the cells of k visitors or more, and the rest added up with their people."""
    if not codes.size:
        return Rows({}, Figures(), 0)
    size = len(words)
    visits = np.bincount(codes, minlength=size)
    width = int(visitors.max()) + 1
    pairs = _distinct(codes.astype(np.int64) * width + visitors)
    pair_codes = pairs // width
    people = np.bincount(pair_codes, minlength=size)
    totals = [people, visits, *(np.bincount(codes, weights=values, minlength=size) for values in sums)]
    large = np.flatnonzero(people >= k)
    columns = [total[large].astype(np.int64).tolist() for total in totals]
    cells = dict(zip([words[code] for code in large.tolist()], zip(*columns, strict=True), strict=True))
    under = (people > 0) & (people < k)
    if not under.any():
        return Rows(cells, Figures(), 0)
    small = Figures._make(int(total[under].sum()) for total in totals)
    return Rows(cells, small, int(_distinct(pairs[under[pair_codes]] % width).size))
