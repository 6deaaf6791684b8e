"""The chart's y axis: whole-number levels from published buckets only, and no invented scale when none is."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from gateway.stats.chart import axis_levels, render_chart
from gateway.stats.figures import Figures
from gateway.stats.query import Bucket

K = 5


def _buckets(*visitors: int, withheld: bool = False) -> list[Bucket]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        Bucket(f"2026-03-{day + 1:02d}", start + timedelta(days=day), Figures(visitors=n, visits=n), withheld)
        for day, n in enumerate(visitors)
    ]


def _axis(svg: str) -> list[str]:
    """The y axis's labels, bottom first (the gridlines' texts are the end-anchored ones)."""
    return re.findall(r'<text [^>]*text-anchor="end"[^>]*>([^<]*)</text>', svg)


@pytest.mark.parametrize(
    ("current", "previous", "withheld"),
    [
        ((), (), False),  # no bucket at all
        ((0, 0, 0), (0, 0), False),  # an empty period: zero everywhere
        ((1, 3, 4), (2,), False),  # every bucket under the floor of 5
        ((40, 50), (), True),  # withheld by the privacy core
    ],
    ids=["no-buckets", "all-zero", "under-the-floor", "withheld"],
)
def test_a_chart_with_nothing_published_labels_only_its_baseline(
    current: tuple[int, ...], previous: tuple[int, ...], withheld: bool
) -> None:
    chart = render_chart(_buckets(*current, withheld=withheld), _buckets(*previous), k=K)
    assert _axis(chart.svg) == ["0"]  # it read "0, 0, 1" bottom up: a scale made of nothing
    assert chart.summary == "No data in this period."


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ((5, 7, 9), ["0", "5", "10"]),
        ((5, 5), ["0", "5"]),  # a top of 5: no "2" for a middle of 2.5
        ((12, 20), ["0", "10", "20"]),
        ((120, 180), ["0", "100", "200"]),
        ((3_400, 4_100), ["0", "2.5k", "5k"]),
        ((1_500_000,), ["0", "1M", "2M"]),
    ],
)
def test_published_buckets_get_whole_number_levels(current: tuple[int, ...], expected: list[str]) -> None:
    assert _axis(render_chart(_buckets(*current), [], k=K).svg) == expected


def test_the_previous_period_counts_towards_the_top_only_where_published() -> None:
    # 3 in the previous period is under k: it neither raises the top nor shows.
    assert _axis(render_chart(_buckets(6, 8), _buckets(3, 18), k=K).svg) == ["0", "10", "20"]
    assert _axis(render_chart(_buckets(6, 8), _buckets(3, 4), k=K).svg) == ["0", "5", "10"]


@pytest.mark.parametrize("top", [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
def test_every_level_is_a_whole_number_at_or_under_the_top(top: int) -> None:
    levels = axis_levels(top, published=True)
    assert levels[0] == 0 and levels[-1] == top and levels == sorted(set(levels))
    assert all(2 * level in (0, top, 2 * top) for level in levels)
