"""The figures every statistic is made of, and the rates derived from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple


class Figures(NamedTuple):
    """Sums over visits: what a rollup row holds, and what adding rows gives.

    Visitors of several days add up: the visitor id changes every day by design (daily salts), so
    nobody, the gateway included, can tell that Monday's visitor came back on Tuesday.

    A named tuple rather than a frozen dataclass: a month of a busy site's pages is thousands of
    these per breakdown, and a tuple is made several times faster. ``+`` adds figure by figure
    (never tuple concatenation).
    """

    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    events: int = 0
    bounces: int = 0
    duration: int = 0  # seconds, summed over visits

    @classmethod
    def of(cls, row: Sequence[object]) -> Figures:
        """From the six numbers of a rollup-shaped row (NULL sums of no rows are 0)."""
        return cls(*(int(value or 0) for value in row[:6]))  # type: ignore[call-overload]

    def __add__(self, other: Figures) -> Figures:  # type: ignore[override]
        return Figures(
            self.visitors + other.visitors,
            self.visits + other.visits,
            self.pageviews + other.pageviews,
            self.events + other.events,
            self.bounces + other.bounces,
            self.duration + other.duration,
        )

    @property
    def views_per_visit(self) -> float:
        return round(self.pageviews / self.visits, 2) if self.visits else 0.0

    @property
    def bounce_rate(self) -> float:
        """Percent of visits with at most one pageview."""
        return round(100 * self.bounces / self.visits, 1) if self.visits else 0.0

    @property
    def visit_duration(self) -> int:
        """Mean seconds per visit."""
        return round(self.duration / self.visits) if self.visits else 0

    def metrics(self) -> dict[str, float | int]:
        """The dashboard's top line."""
        return {
            "visitors": self.visitors,
            "visits": self.visits,
            "pageviews": self.pageviews,
            "views_per_visit": self.views_per_visit,
            "bounce_rate": self.bounce_rate,
            "visit_duration": self.visit_duration,
        }


def total(figures: Iterable[Figures]) -> Figures:
    result = Figures()
    for item in figures:
        result = result + item
    return result


def change(current: float, previous: float) -> float | None:
    """Percent change against the previous period; None when there is nothing to compare with."""
    if not previous:
        return None
    return round(100 * (current - previous) / previous, 1)
