"""The privacy floor: every number the dashboard, the API, a CSV or a shared link shows stands for at
least k distinct visitors, "(other)" included; withheld and zero look the same; and no set of allowed
queries (two periods, a filter and its complement, "contains" patterns, a breakdown against its
top line) can be subtracted down to a smaller group. k is the site's ``min_visitors`` (default 5).

Visitors are counted with a daily salt, so ONE local DAY is the only place where a count of
distinct people is proven. The floor therefore works on day cells: the figures of one day, under
the query's filters, for one dimension value or for the whole site. Every published figure is a
sum of published day cells, nothing else:

1. Day floor. A day cell of fewer than k visitors publishes as zero: it adds nothing to a top
   line, a series bucket, a breakdown row, "(other)", a goal or a funnel step. A difference of
   two periods is then a sum of whole day cells of k or more visitors each, and a person returning
   alone on five days is zero on each of them, never a row of "5 visitors".
2. Named values and "(other)". A day's named values of a dimension are those with at least k
   visitors in the unfiltered rollups of that day. "(other)" shows the sum of the remaining
   values' cells (consistent with the rows), but it publishes only when those values hold at
   least k DISTINCT visitors: one visitor on five unnamed pages (events, properties, hours,
   entry pages, or two visits from two unnamed sources) adds five cells of one person, never an
   "(other)" of 5. When they hold 1..k-1 visitors, "(other)" publishes zero and the smallest named
   value (ties: by value) is withheld too, from the rows and from filters ("complementary
   suppression"), so the top line minus the named rows never leaves 1..k-1; its figures are in
   neither the rows nor "(other)", so the few people's cells reach no published number. The
   distinct visitors are counted when the day is rolled up, for the site's k; for another k (k
   changed since) from the day's raw events; once those are gone (retention), as under k. A
   filtered view's "(other)" (rule 3 narrows it to that day's named values) needs k distinct
   visitors of the view, counted from raw events, and publishes only on days whose unfiltered
   "(other)" did: else the withheld values' cells would come back in it. Realtime's "(other)"
   likewise needs k distinct visitors in the window. Buckets need nothing more: a month (or week)
   bucket adds day cells of k distinct visitors each, and an hour is a row of its day, distinct
   within the hour.
3. Filters see only named values, day by day: ``D is v`` matches nothing on a day where v is not
   named, ``D is not v`` everything, ``D contains p`` only the named values containing p (see
   ``resolve``). A site owner's goals (configuration, not a query) are exempt from this rule.
4. Drop-one. For a filtered day cell and each condition in a canonical order, when leaving the
   condition out adds 1..k-1 visitors, the condition is ignored that day (``splits_off``). A
   breakdown row is its view plus ``D is v``: a row whose remainder within the view's day cell is
   1..k-1 takes the view's cell, and that day's other rows and "(other)" publish zero
   (``publish_rows``). Hours are rows of their day; a funnel step is its previous step plus one
   condition; a goal is its view plus one condition.
5. Withheld is zero: every result under k visitors, zero included, is withheld, and its numbers
   leave ``gateway.stats.query`` as zeros.
6. Realtime (a moving 5-minute window, no day cells) rounds visitors down to a multiple of k
   (``round_down``).

What it costs in accuracy, precisely:

- a day cell of 1..k-1 visitors vanishes: a quiet day, page, hour or filtered view counts 0;
- a value's figures are under-counted by up to k-1 visitors on each day it was not named (its
  visitors then count only in that day's "(other)", or nowhere when "(other)" holds fewer than k
  distinct visitors), and on a day whose "(other)" holds 1..k-1 visitors the smallest named value
  is withheld too (it counts nowhere that day);
- a filtered cell whose condition is ignored by drop-one (and a breakdown row snapped to its
  view's cell, a funnel step snapped to the step before) over-counts by up to k-1 visitors on that
  day for each condition ignored;
- hours not named on their day are missing from the hourly chart;
- realtime figures are under-counted by up to k-1.

A published "(other)" adds its values' cells, as rows over several days add theirs: a visitor with
visits from two unnamed sources counts in both, among k or more distinct people. What the floor
does not hide: that some visitors are outside the named values (a named value withheld, a filter
ignored by drop-one is a sign that a small group exists, never of its size, values or figures);
and today's figures grow as people arrive (the rollups of today follow every ``rollup_interval``;
raw-event answers of today are live, so a filtered view of today may differ from the rollups by
the arrivals in between).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Literal, NamedTuple, TypeVar

from gateway.stats.figures import Figures
from gateway.stats.filters import OTHER_LABEL
from gateway.storage.aggregates import Condition

T = TypeVar("T")
ZERO = Figures()
#: A condition resolved against a day's named values: always true, always false, or SQL to run.
Resolved = Condition | Literal[True, False]


class BreakdownRow(NamedTuple):
    """One row of a breakdown (a named tuple: thousands are made per breakdown)."""

    value: str
    figures: Figures
    #: True for the "(other)" row that folded the small ones.
    other: bool = False

    @property
    def label(self) -> str:
        return OTHER_LABEL if self.other else self.value


class DayRows(NamedTuple):
    """One day's published cells of one dimension (rules 1, 2 and 4)."""

    #: The day's named values (rule 2): what filters may match on that day.
    named: frozenset[str]
    #: The published cell of each named value: zero, or at least k visitors.
    rows: dict[str, Figures]
    #: The published "(other)": zero, or at least k visitors.
    other: Figures
    #: True when the values outside ``named`` hold at least k distinct visitors (rule 2): only then may
    #: "(other)" of a filtered view of that day publish.
    other_of_k: bool = False


def floor(cell: Figures, k: int) -> Figures:
    """Rule 1: a day cell under k visitors publishes as zero."""
    return cell if cell.visitors >= k else ZERO


def named_values(
    cells: Mapping[str, Sequence[int]],
    k: int,
    allowed: Collection[str] | None = None,
    small: Figures | None = None,
    *,
    other_visitors: int | None,
    other_allowed: bool = True,
) -> tuple[list[tuple[str, Figures]], Figures]:
    """Rule 2: the values of at least k visitors (and in ``allowed``, when given), and "(other)".

    "(other)" adds the cells of the rest (``small``: the sum of cells of fewer than k visitors already
    added up by SQL, if any). It publishes only when the rest holds at least k DISTINCT visitors
    (``other_visitors``; None when they cannot be counted any more: fewer than k); else it is zero,
    and when the rest holds 1..k-1 visitors the smallest named value (ties: by value) is withheld too.
    ``other_allowed`` False withholds "(other)" whatever it holds (a filtered view of a day whose own
    "(other)" was withheld: its values would bring the few people's cells back in).

    Returns the named ``(value, cell)`` pairs, smallest first, and "(other)" (zero when withheld).
    ``cells`` may be plain tuples of the six figures: a Figures is made only for the named ones.
    """
    named = sorted(
        ((v, c) for v, c in cells.items() if c[0] >= k and (allowed is None or v in allowed)),
        key=lambda vc: (vc[1][0], vc[0]),
    )
    chosen = {v for v, _ in named}
    rest = [c for v, c in cells.items() if v not in chosen] if len(chosen) < len(cells) else []
    other = Figures(*map(sum, zip(*rest, strict=True))) if rest else ZERO
    if small is not None:
        other += small
    people = other_visitors
    if people is None or (other.visitors and not people):  # unknown, or counted before the cells grew
        people = min(other.visitors, k - 1)
    if people >= k:
        return [(v, c if isinstance(c, Figures) else Figures(*c)) for v, c in named], other if other_allowed else ZERO
    if people and named:
        named = named[1:]
    return [(v, c if isinstance(c, Figures) else Figures(*c)) for v, c in named], ZERO


def left_out(
    cells: Mapping[str, Sequence[int]], k: int, allowed: Collection[str] | None = None
) -> tuple[tuple[str, ...], int]:
    """The values of at least k visitors (and in ``allowed``), sorted, and the visitors of the other
    cells added up: at least as many as the distinct people behind "(other)", so when that sum is
    under k there is no need to count them (``named_values``)."""
    chosen = tuple(sorted(v for v, c in cells.items() if c[0] >= k and (allowed is None or v in allowed)))
    names = set(chosen)
    return chosen, sum(c[0] for v, c in cells.items() if v not in names)


def publish_rows(
    cells: Mapping[str, Sequence[int]],
    parent: Figures,
    k: int,
    *,
    allowed: Collection[str] | None = None,
    small: Figures | None = None,
    other_visitors: int | None,
    other_allowed: bool = True,
) -> DayRows:
    """One day's breakdown under a view whose (unfloored) day cell is ``parent``.

    ``allowed`` is the day's named values from the unfiltered rollups (rule 3); None when ``cells``
    are those unfiltered rollups themselves. Values outside it add to "(other)", as does ``small``;
    ``other_visitors`` is how many distinct people those cells hold (``named_values``).
    """
    named, other = named_values(cells, k, allowed, small, other_visitors=other_visitors, other_allowed=other_allowed)
    names, other_of_k = frozenset(v for v, _ in named), other.visitors >= k
    if parent.visitors < k:
        return DayRows(names, {}, ZERO, other_of_k)
    for value, cell in sorted(named, key=lambda vc: (-vc[1].visitors, vc[0])):
        if splits_off(parent, cell, k):  # rule 4: the row takes its view's cell, the rest publish zero
            return DayRows(names, {value: parent}, ZERO, other_of_k)
    return DayRows(names, dict(named), floor(other, k), other_of_k)


def splits_off(parent: Figures, cell: Figures, k: int) -> bool:
    """Rule 4: True when ``cell`` (its parent narrowed by one condition) leaves out 1..k-1 visitors."""
    return 0 < parent.visitors - cell.visitors < k


def resolve(condition: Condition, named: Collection[str]) -> Resolved:
    """Rule 3: a filter on one day, given that day's named values of its dimension.

    A value outside ``named`` is never matched by any pattern: "is" it matches nothing, "is not"
    it matches everything. Goals' ``matches`` (the site owner's configuration) pass unchanged.
    """
    if condition.operator == "is":
        return condition if condition.value in named else False
    if condition.operator == "is_not":
        return condition if condition.value in named else True
    if condition.operator == "contains":
        pattern = condition.value.lower()
        found = tuple(sorted(value for value in named if pattern in value.lower()))
        if not found:
            return False
        if len(found) == 1:
            return Condition(condition.dimension, "is", found[0])
        return Condition(condition.dimension, "in", "", found)
    return condition


def canonical(conditions: Iterable[Condition]) -> list[Condition]:
    """The order drop-one goes through a view's conditions: the same whatever order the URL had."""
    return sorted(conditions, key=lambda c: (c.dimension, c.operator, c.value, c.values))


def round_down(count: int, k: int) -> int:
    """Rule 6: a realtime count as a multiple of k, so one arrival changes nothing but at a multiple of k."""
    return count - count % k


def split_at_floor(rows: Iterable[T], k: int, size: Callable[[T], int]) -> tuple[list[T], list[T]]:
    """The rows whose ``size`` (visitors, consent decisions...) is at least ``k``, and the others, in order.

    The one rule every report folds by; what "(other)" then adds up is the report's own business
    (visitors' figures here, consent decisions in ``gateway/web/dashboard_reports.py``).
    """
    kept: list[T] = []
    small: list[T] = []
    for row in rows:
        (kept if size(row) >= k else small).append(row)
    return kept, small


def below_floor(count: int, k: int) -> bool:
    """True for a count of 1 to k-1: a figure that would point at a few people (zero tells about nobody)."""
    return 0 < count < k


def withheld(figures: Figures, k: int) -> bool:
    """Rule 5: True when a published figure stands for fewer than k visitors, zero included, so that
    "withheld" and "nobody" read the same."""
    return figures.visitors < k
