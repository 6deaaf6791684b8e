"""The consent report's figures: countries and devices folded under the floor, the opt-in chart.

The privacy floor counts decisions here: a country or device with fewer than k decisions is
folded into "(other)", a time bucket or a top line under k decisions is withheld.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from html import escape

from gateway.categories import CONSENT_CATEGORIES
from gateway.stats.chart import Chart, Plot, label_indexes, segments
from gateway.stats.filters import OTHER_LABEL
from gateway.stats.period import Interval, Period
from gateway.stats.privacy import below_floor, split_at_floor
from gateway.storage.consent_report import ConsentFigures

UNKNOWN_LABEL = "(unknown)"
#: One colour per category line; presentation attributes, since the CSP refuses inline styles.
CATEGORY_COLOURS: Mapping[str, str] = {"functional": "#2563eb", "analytics": "#1e8e3e", "advertising": "#d97706"}


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """A country or device of the consent report; ``other`` for the row that folded the small ones."""

    value: str
    figures: ConsentFigures
    other: bool = False

    @property
    def label(self) -> str:
        return OTHER_LABEL if self.other else (self.value or UNKNOWN_LABEL)


@dataclass(frozen=True, slots=True)
class RateBucket:
    """One point of the opt-in chart; ``rates`` None when withheld or without any decision."""

    label: str
    decisions: int
    rates: Mapping[str, float] | None
    withheld: bool


def combine(figures: Sequence[ConsentFigures]) -> ConsentFigures:
    """The figures of several rows together; the opt-in shares are re-weighted by their decisions."""
    decisions = sum(f.decisions for f in figures)
    allowed = {c: sum(round(f.opt_in.get(c, 0.0) * f.decisions) for f in figures) for c in CONSENT_CATEGORIES}
    return ConsentFigures(
        impressions=sum(f.impressions for f in figures),
        decisions=decisions,
        accept_all=sum(f.accept_all for f in figures),
        reject_all=sum(f.reject_all for f in figures),
        custom=sum(f.custom for f in figures),
        gpc=sum(f.gpc for f in figures),
        withdrawals=sum(f.withdrawals for f in figures),
        opt_in={c: allowed[c] / decisions if decisions else 0.0 for c in CONSENT_CATEGORIES},
    )


def fold_consent_rows(rows: Iterable[tuple[str, ConsentFigures]], k: int) -> tuple[list[ConsentRow], ConsentRow | None]:
    """The rows of at least ``k`` decisions, and one "(other)" row adding up the rest (None if none).

    A value with impressions but no decision is folded too: its shares would be empty anyway.
    """
    kept, small = split_at_floor(rows, k, lambda row: row[1].decisions)
    other = ConsentRow(OTHER_LABEL, combine([figures for _, figures in small]), other=True) if small else None
    return [ConsentRow(value, figures) for value, figures in kept], other


def consent_buckets(period: Period, interval: Interval, zone: tzinfo) -> list[tuple[str, datetime, datetime]]:
    """The (label, start, end) of each local day or month of ``period``; hours are too thin for consent."""
    buckets: list[tuple[str, datetime, datetime]] = []
    day = period.first
    while day <= period.last:
        if interval == "month":
            following = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
            end = min(following, period.last + timedelta(days=1))
            label = day.strftime("%Y-%m")
        else:
            end, label = day + timedelta(days=1), day.isoformat()
        buckets.append((label, _midnight(day, zone), _midnight(end, zone)))
        day = end
    return buckets


def rate_buckets(series: Iterable[tuple[str, ConsentFigures]], k: int) -> list[RateBucket]:
    return [
        RateBucket(
            label,
            figures.decisions,
            None if figures.decisions < k else dict(figures.opt_in),
            below_floor(figures.decisions, k),
        )
        for label, figures in series
    ]


def render_rate_chart(buckets: Sequence[RateBucket], *, title: str = "Opt-in rate per category") -> Chart:
    """One line per consent category on a 0-100 % axis; a withheld or empty bucket leaves a gap."""
    plot = Plot(len(buckets), 1.0)
    parts = plot.opening("rate", title)
    parts += [plot.gridline(fraction, f"{int(fraction * 100)}%") for fraction in (0, 0.5, 1)]
    for category in CONSENT_CATEGORIES:
        colour = CATEGORY_COLOURS[category]
        for run in segments([None if b.rates is None else b.rates[category] for b in buckets]):
            parts.append(plot.line(run, f'stroke="{colour}" stroke-width="2"'))
            parts += [f'<circle cx="{plot.x(i):.1f}" cy="{plot.y(v):.1f}" r="2.5" fill="{colour}" />' for i, v in run]
    labels = label_indexes(len(buckets))
    for index, bucket in enumerate(buckets):
        parts.append(
            f'<rect x="{plot.x(index) - 4:.1f}" y="{plot.y(1):.1f}" width="8" height="{plot.height}" '
            f'fill="transparent"><title>{escape(_bucket_words(bucket))}</title></rect>'
        )
        if index in labels:
            parts.append(plot.tick(index, bucket.label))
    shown = [b for b in buckets if b.rates is not None]
    summary = "No day or month has enough decisions to show."
    if shown:
        ends = [shown[0]] if len(shown) == 1 else [shown[0], shown[-1]]
        summary = f"{len(shown)} of {len(buckets)} shown. " + "; ".join(_bucket_words(b) for b in ends) + "."
    parts.append(plot.closing("rate", summary))
    return Chart("".join(parts), summary)


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _bucket_words(bucket: RateBucket) -> str:
    if bucket.rates is None:
        why = "withheld (under the privacy floor)" if bucket.withheld else "no decision"
        return f"{bucket.label}: {why}"
    rates = ", ".join(f"{c} {percent(bucket.rates[c])}" for c in CONSENT_CATEGORIES)
    return f"{bucket.label}: {rates} of {bucket.decisions:,} decisions"


def _midnight(day: date, zone: tzinfo) -> datetime:
    """The UTC instant of local midnight: aware arithmetic in a zone would count a DST day as 24 hours."""
    return datetime.combine(day, time(), zone).astimezone(UTC)
