"""The privacy floor: no figure the dashboard, the API or a CSV shows may stand for fewer than k visitors.

A breakdown row under k visitors is folded into one "(other)" row (its figures added, its value
gone); a top line or a time bucket under k is withheld (shown as "fewer than k"), because there is
nothing to fold it into. Zero is not withheld: it tells about nobody. k is the site's
``min_visitors`` (default 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

from gateway.stats.figures import Figures, total
from gateway.stats.filters import OTHER_LABEL

T = TypeVar("T")


class BreakdownRow(NamedTuple):
    """One row of a breakdown (a named tuple: thousands are made per breakdown)."""

    value: str
    figures: Figures
    #: True for the "(other)" row that folded the small ones.
    other: bool = False

    @property
    def label(self) -> str:
        return OTHER_LABEL if self.other else self.value


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


def fold_small_rows(rows: Iterable[tuple[str, Figures]], k: int) -> tuple[list[BreakdownRow], BreakdownRow | None]:
    """The rows of at least ``k`` visitors, and one "(other)" row adding up the rest (None if none)."""
    kept, small = split_at_floor(rows, k, lambda row: row[1].visitors)
    folded = [figures for _, figures in small if figures.visitors > 0]
    other = BreakdownRow(OTHER_LABEL, total(folded), other=True) if folded else None
    return [BreakdownRow(value, figures) for value, figures in kept], other


def below_floor(count: int, k: int) -> bool:
    """True for a count of 1 to k-1: a figure that would point at a few people (zero tells about nobody)."""
    return 0 < count < k


def withheld(figures: Figures, k: int) -> bool:
    """True when a top line or bucket stands for between 1 and k-1 visitors."""
    return below_floor(figures.visitors, k)
