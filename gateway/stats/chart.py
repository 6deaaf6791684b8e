"""The time-series chart as server-side SVG: readable without JavaScript, printable, no chart library.

The current period is a line over a soft area; the previous period is a faint dashed line on the
same buckets (bucket i against bucket i). Withheld buckets (under the privacy floor) leave a gap.
Only presentation attributes are used (``fill``, ``stroke``): the dashboard's CSP refuses inline
``style``. Every bucket carries a ``<title>`` so a hover or a screen reader gets the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from gateway.stats.query import Bucket

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


def render_chart(
    current: Sequence[Bucket], previous: Sequence[Bucket], *, metric: str = "visitors", title: str = "Visitors"
) -> Chart:
    values = [_value(bucket, metric) for bucket in current]
    before = [_value(bucket, metric) for bucket in previous]
    top = nice_ceiling(max([v for v in values + before if v is not None], default=0))
    count = max(len(values), 1)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def x(index: int) -> float:
        return _LEFT + (plot_w * index / (count - 1) if count > 1 else plot_w / 2)

    def y(value: float) -> float:
        return _TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" '
        'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="none">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    for fraction in (0, 0.5, 1):
        level = y(top * fraction)
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{level:.1f}" y2="{level:.1f}" stroke="#e3e6ea" />'
            f'<text x="{_LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11" fill="#5f6b7a">'
            f"{_short(int(top * fraction))}</text>"
        )
    for segment in _segments(before[: len(values)]):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in segment)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="#9aa5b1" stroke-width="1.5" '
            'stroke-dasharray="4 4" class="previous" />'
        )
    for segment in _segments(values):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in segment)
        first, last = segment[0][0], segment[-1][0]
        area = f"{x(first):.1f},{y(0):.1f} {points} {x(last):.1f},{y(0):.1f}"
        parts.append(f'<polygon points="{area}" fill="#2563eb" fill-opacity="0.12" />')
        parts.append(f'<polyline points="{points}" fill="none" stroke="#2563eb" stroke-width="2" class="current" />')
    labels = _label_indexes(len(current))
    for index, bucket in enumerate(current):
        value = values[index]
        shown = "withheld (under the privacy floor)" if value is None else f"{value:,}"
        compared = ""
        if index < len(before) and before[index] is not None:
            compared = f"; previous period {before[index]:,}"
        parts.append(
            f'<circle cx="{x(index):.1f}" cy="{y(value or 0):.1f}" r="{3 if value is not None else 0}" fill="#2563eb">'
            f"<title>{escape(bucket.label)}: {shown} {escape(title.lower())}{compared}</title></circle>"
        )
        if index in labels:
            parts.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#5f6b7a">'
                f"{escape(_tick(bucket.label))}</text>"
            )
    known = [(bucket.label, v) for bucket, v in zip(current, values, strict=True) if v is not None]
    summary = "No data in this period."
    if known:
        peak = max(known, key=lambda item: item[1])
        summary = (
            f"{title}: {known[0][1]:,} on {known[0][0]}, highest {peak[1]:,} on {peak[0]}, "
            f"{known[-1][1]:,} on {known[-1][0]}."
        )
    parts.append(f'<desc id="chart-desc">{escape(summary)}</desc></svg>')
    return Chart("".join(parts), summary)


def _value(bucket: Bucket, metric: str) -> int | None:
    return None if bucket.withheld else int(getattr(bucket.figures, metric))


def _segments(values: Sequence[int | None]) -> list[list[tuple[int, int]]]:
    """Runs of known values: a withheld bucket breaks the line rather than dropping it to zero."""
    runs: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
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


def _label_indexes(count: int, most: int = 8) -> set[int]:
    if count <= most:
        return set(range(count))
    step = -(-count // most)
    return set(range(0, count, step))


def _tick(label: str) -> str:
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
