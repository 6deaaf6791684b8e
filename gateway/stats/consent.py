"""The consent report's figures under the privacy floor: day cells, complementary folding, the opt-in chart.

The floor counts distinct consent ids that decided, and it is applied to each local day before
anything is added up (``ConsentReport.build``):

- a day with fewer than k deciders contributes nothing, to any figure: two periods that differ by
  that day read the same, so subtracting them isolates nobody;
- inside a published day, a country or device under k is folded into "(other)", and while
  "(other)" is under k (but not empty) the smallest named row is folded into it too
  (complementary suppression), so the day's total minus its named rows never leaves a small group;
- a period's rows, "(other)" and top line are sums of those published cells, so each is 0 or at
  least k, and the tables add up to the top line;
- banner impressions (counted per UTC day) count only for days of k or more impressions;
- every rate (decision rate, shares, opt-in per category) is made from published counts only, and
  the decision rate never exceeds 100 %.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from html import escape

from gateway.categories import CONSENT_CATEGORIES
from gateway.stats.chart import Chart, Plot, label_indexes, segments
from gateway.stats.filters import OTHER_LABEL
from gateway.stats.period import Interval, Period
from gateway.storage.consent_report import ConsentCell, ConsentFigures

UNKNOWN_LABEL = "(unknown)"
#: One colour per category line; presentation attributes, since the CSP refuses inline styles.
CATEGORY_COLOURS: Mapping[str, str] = {"functional": "#2563eb", "analytics": "#1e8e3e", "advertising": "#d97706"}


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts that add up (cells of several days or keys); shares are made from them at the end."""

    deciders: int = 0
    decisions: int = 0
    accept_all: int = 0
    reject_all: int = 0
    custom: int = 0
    gpc: int = 0
    withdrawals: int = 0
    allowed: tuple[int, ...] = field(default_factory=lambda: (0,) * len(CONSENT_CATEGORIES))

    @classmethod
    def of(cls, cell: ConsentCell) -> Tally:
        return cls(
            cell.deciders,
            cell.decisions,
            cell.accept_all,
            cell.reject_all,
            cell.custom,
            cell.gpc,
            cell.withdrawals,
            tuple(cell.allowed),
        )

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.deciders + other.deciders,
            self.decisions + other.decisions,
            self.accept_all + other.accept_all,
            self.reject_all + other.reject_all,
            self.custom + other.custom,
            self.gpc + other.gpc,
            self.withdrawals + other.withdrawals,
            tuple(a + b for a, b in zip(self.allowed, other.allowed, strict=True)),
        )

    def figures(self, impressions: int = 0) -> ConsentFigures:
        decided = self.decisions
        return ConsentFigures(
            impressions=impressions,
            decisions=decided,
            accept_all=self.accept_all,
            reject_all=self.reject_all,
            custom=self.custom,
            gpc=self.gpc,
            withdrawals=self.withdrawals,
            opt_in={c: n / decided if decided else 0.0 for c, n in zip(CONSENT_CATEGORIES, self.allowed, strict=True)},
        )


def add_up(tallies: Iterable[Tally]) -> Tally:
    result = Tally()
    for tally in tallies:
        result = result + tally
    return result


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
    """One point of the opt-in chart; ``rates`` None when withheld (fewer than k deciders, none included)."""

    label: str
    decisions: int
    rates: Mapping[str, float] | None
    withheld: bool


def fold_day(cells: Mapping[str, Tally], k: int) -> tuple[dict[str, Tally], Tally]:
    """One published day's cells by key: the named ones of at least ``k`` deciders, and "(other)".

    Complementary suppression: while "(other)" holds someone but fewer than ``k``, the smallest
    named cell joins it, so neither "(other)" nor the day's total minus the named cells is a small
    group. The caller only passes days of at least ``k`` deciders, so "(other)" ends empty or >= k.
    """
    named = {key: tally for key, tally in cells.items() if tally.deciders >= k}
    other = add_up(tally for key, tally in cells.items() if key not in named)
    while 0 < other.deciders < k and named:
        smallest = min(named, key=lambda key: (named[key].deciders, named[key].decisions, key))
        other = other + named.pop(smallest)
    return named, other


@dataclass(frozen=True, slots=True)
class ConsentReport:
    """What the consent page publishes; None for a figure that is withheld (fewer than k, zero included)."""

    top: ConsentFigures | None
    impressions: int | None
    decision_rate: float | None
    withdrawals: int | None
    series: list[RateBucket]
    tables: dict[str, list[ConsentRow]]

    @classmethod
    def build(
        cls,
        *,
        days: Sequence[str],
        totals: Iterable[ConsentCell],
        by: Mapping[str, Iterable[ConsentCell]],
        impressions: Mapping[date, int],
        interval: Interval,
        k: int,
    ) -> ConsentReport:
        """``days``: the period's local days (ISO labels) in order; ``totals``: their "" cells; ``by``: the
        cells per dimension ("country", "device"); ``impressions``: per UTC day."""
        per_day = {cell.label: Tally.of(cell) for cell in totals}
        published = {label: tally for label, tally in per_day.items() if tally.deciders >= k}
        total = add_up(published.values())
        shown_impressions = sum(count for count in impressions.values() if count >= k)
        tables: dict[str, list[ConsentRow]] = {}
        for dimension, cells in by.items():
            day_cells: dict[str, dict[str, Tally]] = defaultdict(dict)
            for cell in cells:
                if cell.label in published:
                    day_cells[cell.label][cell.key] = Tally.of(cell)
            named: dict[str, Tally] = defaultdict(Tally)
            other = Tally()
            for keyed in day_cells.values():
                kept, folded = fold_day(keyed, k)
                for key, tally in kept.items():
                    named[key] = named[key] + tally
                other = other + folded
            rows = [ConsentRow(key, tally.figures()) for key, tally in named.items()]
            rows.sort(key=lambda row: (-row.figures.decisions, row.value))
            if other.decisions:
                rows.append(ConsentRow(OTHER_LABEL, other.figures(), other=True))
            tables[dimension] = rows
        if not published:
            return cls(None, None, None, None, _series(days, published, interval), tables)
        rate = min(1.0, total.deciders / shown_impressions) if shown_impressions else None
        return cls(
            top=total.figures(shown_impressions),
            impressions=shown_impressions if shown_impressions else None,
            decision_rate=rate,
            withdrawals=total.withdrawals if total.withdrawals >= k else None,
            series=_series(days, published, interval),
            tables=tables,
        )


def _series(days: Sequence[str], published: Mapping[str, Tally], interval: Interval) -> list[RateBucket]:
    """The chart's buckets: each day, or each month of published days; a bucket without any reads withheld."""
    groups: dict[str, Tally] = {}
    for day in days:
        label = day[:7] if interval == "month" else day
        groups.setdefault(label, Tally())
        if day in published:
            groups[label] = groups[label] + published[day]
    buckets = []
    for label, tally in groups.items():
        if tally.decisions:
            buckets.append(RateBucket(label, tally.decisions, dict(tally.figures().opt_in), False))
        else:
            buckets.append(RateBucket(label, 0, None, True))
    return buckets


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


def render_rate_chart(buckets: Sequence[RateBucket], *, k: int, title: str = "Opt-in rate per category") -> Chart:
    """One line per consent category on a 0-100 % axis; a withheld bucket (zero included) leaves a gap."""
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
            f'fill="transparent"><title>{escape(_bucket_words(bucket, k))}</title></rect>'
        )
        if index in labels:
            parts.append(plot.tick(index, bucket.label))
    shown = [b for b in buckets if b.rates is not None]
    summary = "No day or month has enough decisions to show."
    if shown:
        ends = [shown[0]] if len(shown) == 1 else [shown[0], shown[-1]]
        summary = f"{len(shown)} of {len(buckets)} shown. " + "; ".join(_bucket_words(b, k) for b in ends) + "."
    parts.append(plot.closing("rate", summary))
    return Chart("".join(parts), summary)


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _bucket_words(bucket: RateBucket, k: int) -> str:
    if bucket.rates is None:
        return f"{bucket.label}: < {k} decisions"
    rates = ", ".join(f"{c} {percent(bucket.rates[c])}" for c in CONSENT_CATEGORIES)
    return f"{bucket.label}: {rates} of {bucket.decisions:,} decisions"


def _midnight(day: date, zone: tzinfo) -> datetime:
    """The UTC instant of local midnight: aware arithmetic in a zone would count a DST day as 24 hours."""
    return datetime.combine(day, time(), zone).astimezone(UTC)
