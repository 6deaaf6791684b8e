"""After ``migrate-store`` copied the rows: do both stores show the same dashboard?

Equal row counts do not prove equal figures: a column read as another type, a time compared in
another collation or a rollup generation lost would change what the dashboard shows without
changing a count. So every site's dashboard is computed on both stores, with the calls the
dashboard makes (gateway/web/dashboard.py and dashboard_reports.py), and compared value by value:
the last 30 days and the whole range of its data, each with the top line, the daily (or monthly)
series, the first tab of every overview panel, the property keys and the consent report.

A site found in the data but not in the configuration is compared under the default site
settings (UTC days, k = 5): its figures are still computed the same way on both sides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from gateway.clock import Clock
from gateway.settings import SiteSettings
from gateway.stats.consent import ConsentReport, consent_buckets
from gateway.stats.period import MAX_DAYS, Interval, Period, period_for
from gateway.stats.query import Stats, StatsQuery
from gateway.storage.consent_report import consent_cells, impressions_by_day
from gateway.storage.migrate import first_day_with_data, sites_with_data
from gateway.storage.store import Store

#: The first tab of each overview panel (gateway/web/dashboard_view.py PANELS): pages, sources,
#: locations, devices, custom events.
DIMENSIONS = ("page", "source", "country", "browser", "event")
_SHOWN = 300  # characters of a differing value printed


@dataclass(frozen=True, slots=True)
class Difference:
    site: str
    figure: str  # "30d breakdown page", "all aggregate", ...
    source: str  # the SQLite value, shortened
    target: str  # the PostgreSQL value, shortened

    def describe(self) -> str:
        return f"{self.site}: {self.figure} differs\n  sqlite:     {self.source}\n  postgresql: {self.target}"


@dataclass(frozen=True, slots=True)
class CheckReport:
    sites: tuple[str, ...]
    figures: int  # how many figures were compared
    differences: tuple[Difference, ...]


async def compare_dashboards(
    source: Store, target: Store, clock: Clock, sites: Mapping[str, SiteSettings]
) -> CheckReport:
    """Every site's dashboard figures on ``source`` and ``target``; the differences, if any."""
    ids = sorted(set(sites) | set(await sites_with_data(source)) | set(await sites_with_data(target)))
    stats = (Stats(source, clock), Stats(target, clock))
    compared, differences = 0, []
    for site_id in ids:
        site = sites.get(site_id) or SiteSettings(id=site_id, name=site_id)
        for period in await _periods(source, clock, site):
            on_source = await _dashboard(source, stats[0], site, period)
            on_target = await _dashboard(target, stats[1], site, period)
            for figure, value in on_source.items():
                compared += 1
                if value != on_target[figure]:
                    label = f"{period.label()} ({period.first} to {period.last}) {figure}"
                    differences.append(Difference(site_id, label, _short(value), _short(on_target[figure])))
    return CheckReport(tuple(ids), compared, tuple(differences))


async def _periods(store: Store, clock: Clock, site: SiteSettings) -> list[Period]:
    today = clock.now().astimezone(site.zone).date()
    periods = [period_for("30d", today)]
    first = await first_day_with_data(store, site.id)
    if first is not None:
        first = max(first - timedelta(days=1), today - timedelta(days=MAX_DAYS - 1))  # a UTC day may start earlier
        if first < periods[0].first:
            periods.append(Period("custom", first, today))
    return periods


async def _dashboard(store: Store, stats: Stats, site: SiteSettings, period: Period) -> dict[str, Any]:
    """What the overview and the consent page of ``site`` show for ``period``, as plain values; a figure
    that fails is its error's first line (so a query one store cannot run shows as a difference)."""
    query = StatsQuery(site, period)
    interval: Interval = "day" if period.length <= 93 else "month"
    days = consent_buckets(period, "day", site.zone)
    start, end = period.bounds(site.zone)

    async def consent_report() -> ConsentReport:
        return ConsentReport.build(
            days=[label for label, _, _ in days],
            totals=await consent_cells(store, site.id, "", days),
            by={
                "country": await consent_cells(store, site.id, "country", days),
                "device": await consent_cells(store, site.id, "device", days),
            },
            impressions=await impressions_by_day(store, site.id, start, end),
            interval="month" if interval == "month" else "day",
            k=site.min_visitors,
        )

    figures: dict[str, Callable[[], Awaitable[Any]]] = {
        "aggregate": lambda: stats.aggregate(query),
        f"series by {interval}": lambda: stats.timeseries(query, interval),
        f"previous series by {interval}": lambda: stats.timeseries(query, interval, previous=True),
        "property keys": lambda: stats.prop_keys(query),
        **{f"breakdown {name}": partial(stats.breakdown, query, name) for name in DIMENSIONS},
        "consent report": consent_report,
    }
    shown: dict[str, Any] = {}
    for name, compute in figures.items():
        try:
            shown[name] = _plain(await compute())
        except Exception as error:  # noqa: BLE001 - reported as the figure's value, compared like one
            shown[name] = f"error: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
    return shown


def _plain(value: Any) -> Any:
    """Dataclasses and tuples as dicts and lists; floats rounded to 9 digits (two stores may sum
    in another order, and the dashboard shows at most one decimal)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {name: _plain(item) for name, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, float):
        return round(value, 9)
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
