"""The privacy floor: no figure the dashboard, the API or a CSV shows may stand for fewer than k visitors.

A breakdown row under k visitors is folded into one "(other)" row (its figures added, its value
gone); a top line or a time bucket under k is withheld (shown as "fewer than k"), because there is
nothing to fold it into. Zero is not withheld: it tells about nobody. k is the site's
``min_visitors`` (default 5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.stats.figures import Figures, total
from gateway.stats.filters import OTHER_LABEL


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    value: str
    figures: Figures
    #: True for the "(other)" row that folded the small ones.
    other: bool = False

    @property
    def label(self) -> str:
        return OTHER_LABEL if self.other else self.value


def fold_small_rows(rows: Iterable[tuple[str, Figures]], k: int) -> tuple[list[BreakdownRow], BreakdownRow | None]:
    """The rows of at least ``k`` visitors, and one "(other)" row adding up the rest (None if none)."""
    kept, small = [], []
    for value, figures in rows:
        if figures.visitors >= k:
            kept.append(BreakdownRow(value, figures))
        elif figures.visitors > 0:
            small.append(figures)
    other = BreakdownRow(OTHER_LABEL, total(small), other=True) if small else None
    return kept, other


def withheld(figures: Figures, k: int) -> bool:
    """True when a top line or bucket stands for between 1 and k-1 visitors."""
    return 0 < figures.visitors < k
