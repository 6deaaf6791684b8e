"""The time-series chart as server-side SVG: readable without JavaScript, printable, no chart library.

The current period is a line over a soft area; the previous period is a faint dashed line on the
same buckets (bucket i against bucket i). A bucket under the privacy floor, zero included, is drawn
as no data (a gap, no point) with "< k" as its title, and never counts towards the y axis: withheld
and zero read the same, and the axis's top comes from published buckets only.
Only presentation attributes are used (``fill``, ``stroke``): the dashboard's CSP refuses inline
``style``. Every bucket carries a ``<title>`` so a hover or a screen reader gets the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TypeVar

from gateway.stats.query import Bucket

T = TypeVar("T", int, float)
WIDTH, HEIGHT = 800, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 12, 28


@dataclass(frozen=True, slots=True)
class Chart:
    svg: str
    #: The text alternative: the figures of the first, highest and last buckets.
    summary: str


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1), for the y axis."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def axis_levels(top: int, *, published: bool) -> list[int]:
    """The y axis's labelled levels: 0, the middle and ``top``, each a whole number of visitors.

    With nothing published (no data, or every bucket under the floor) only the baseline is labelled:
    a scale would invent figures (it read "1, 0, 0", the middle truncated from 0.5). A middle that is
    not a whole number (a top of 5) is left out rather than rounded to a wrong label.
    """
    if not published:
        return [0]
    return [0, top // 2, top] if top % 2 == 0 else [0, top]


class Plot:
    """The chart's frame: where a bucket index and a value land, and the SVG parts every chart shares."""

    def __init__(self, count: int, top: float) -> None:
        self.count, self.top = max(count, 1), top or 1
        self.width, self.height = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def x(self, index: int) -> float:
        return _LEFT + (self.width * index / (self.count - 1) if self.count > 1 else self.width / 2)

    def y(self, value: float) -> float:
        return _TOP + self.height - self.height * value / self.top

    def opening(self, name: str, title: str) -> list[str]:
        return [
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{name}-title {name}-desc" '
            'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="none">',
            f'<title id="{name}-title">{escape(title)}</title>',
        ]

    def gridline(self, value: float, label: str) -> str:
        level = self.y(value)
        return (
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{level:.1f}" y2="{level:.1f}" stroke="#e3e6ea" />'
            f'<text x="{_LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11" fill="#5f6b7a">'
            f"{escape(label)}</text>"
        )

    def tick(self, index: int, label: str) -> str:
        return (
            f'<text x="{self.x(index):.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#5f6b7a">'
            f"{escape(tick_label(label))}</text>"
        )

    def line(self, run: Sequence[tuple[int, float]], attributes: str) -> str:
        points = " ".join(f"{self.x(i):.1f},{self.y(v):.1f}" for i, v in run)
        return f'<polyline points="{points}" fill="none" {attributes} />'

    @staticmethod
    def closing(name: str, summary: str) -> str:
        return f'<desc id="{name}-desc">{escape(summary)}</desc></svg>'


def render_chart(
    current: Sequence[Bucket],
    previous: Sequence[Bucket],
    *,
    k: int,
    metric: str = "visitors",
    title: str = "Visitors",
) -> Chart:
    values = [_value(bucket, metric, k) for bucket in current]
    before = [_value(bucket, metric, k) for bucket in previous]
    published = [v for v in values + before if v is not None]
    top = nice_ceiling(max(published, default=0))
    plot = Plot(len(values), top)
    parts = plot.opening("chart", title)
    parts += [plot.gridline(level, _short(level)) for level in axis_levels(top, published=bool(published))]
    for segment in segments(before[: len(values)]):
        parts.append(plot.line(segment, 'stroke="#9aa5b1" stroke-width="1.5" stroke-dasharray="4 4" class="previous"'))
    for segment in segments(values):
        points = " ".join(f"{plot.x(i):.1f},{plot.y(v):.1f}" for i, v in segment)
        first, last = segment[0][0], segment[-1][0]
        area = f"{plot.x(first):.1f},{plot.y(0):.1f} {points} {plot.x(last):.1f},{plot.y(0):.1f}"
        parts.append(f'<polygon points="{area}" fill="#2563eb" fill-opacity="0.12" />')
        parts.append(plot.line(segment, 'stroke="#2563eb" stroke-width="2" class="current"'))
    labels = label_indexes(len(current))
    for index, bucket in enumerate(current):
        value = values[index]
        shown = f"< {k}" if value is None else f"{value:,}"
        compared = ""
        if index < len(before) and before[index] is not None:
            compared = f"; previous period {before[index]:,}"
        parts.append(
            f'<circle cx="{plot.x(index):.1f}" cy="{plot.y(value or 0):.1f}" r="{3 if value is not None else 0}" '
            f'fill="#2563eb"><title>{escape(bucket.label)}: {escape(shown)} {escape(title.lower())}{compared}'
            "</title></circle>"
        )
        if index in labels:
            parts.append(plot.tick(index, bucket.label))
    known = [(bucket.label, v) for bucket, v in zip(current, values, strict=True) if v is not None]
    summary = "No data in this period."
    if known:
        peak = max(known, key=lambda item: item[1])
        summary = (
            f"{title}: {known[0][1]:,} on {known[0][0]}, highest {peak[1]:,} on {peak[0]}, "
            f"{known[-1][1]:,} on {known[-1][0]}."
        )
    parts.append(plot.closing("chart", summary))
    return Chart("".join(parts), summary)


def _value(bucket: Bucket, metric: str, k: int) -> int | None:
    """The bucket's figure, or None when it stands for fewer than k visitors (zero included)."""
    if bucket.withheld or bucket.figures.visitors < k:
        return None
    return int(getattr(bucket.figures, metric))


def segments(values: Sequence[T | None]) -> list[list[tuple[int, T]]]:
    """Runs of known values: a withheld bucket breaks the line rather than dropping it to zero."""
    runs: list[list[tuple[int, T]]] = []
    current: list[tuple[int, T]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        runs.append(current)
    return runs


def label_indexes(count: int, most: int = 8) -> set[int]:
    """The buckets whose label is printed under the axis: at most ``most``, evenly spread."""
    if count <= most:
        return set(range(count))
    step = -(-count // most)
    return set(range(0, count, step))


def tick_label(label: str) -> str:
    """A short axis label: "14:00" for hours, "10 Mar" style for days, "2026-03" for months."""
    if " " in label:
        return label.split(" ", 1)[1]
    if len(label) == 10:
        return label[5:]
    return label


def _short(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return str(value)
