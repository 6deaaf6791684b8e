"""What a dashboard URL asks for: the site, the period, the filters and the chosen tabs.

Everything lives in the query string (``?period=7d&f=country==DE&pages=entry_page``), so a view
can be bookmarked, shared or opened in a new tab, and every link on the page is this view with
one thing changed (``View.url``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from gateway.settings import SiteSettings
from gateway.stats.filters import describe, filter_text, parse_filters, with_filter, without_filter
from gateway.stats.period import PERIOD_LABELS, PERIODS, Interval, Period, parse_interval, parse_period, period_for
from gateway.stats.query import SORT_KEYS, SortKey, StatsQuery
from gateway.storage.aggregates import PROP_PREFIX, Condition

DIMENSION_LABELS = {
    "page": "Page",
    "entry_page": "Entry page",
    "exit_page": "Exit page",
    "source": "Source",
    "channel": "Channel",
    "referrer": "Referrer",
    "utm_source": "UTM source",
    "utm_medium": "UTM medium",
    "utm_campaign": "UTM campaign",
    "utm_content": "UTM content",
    "utm_term": "UTM term",
    "country": "Country",
    "region": "Region",
    "city": "City",
    "browser": "Browser",
    "browser_version": "Browser version",
    "os": "Operating system",
    "os_version": "OS version",
    "device": "Device",
    "screen": "Screen size",
    "event": "Custom event",
}
#: The overview's panels: a title, the URL parameter holding the chosen tab, and the tabs.
PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Pages", "pages", ("page", "entry_page", "exit_page")),
    (
        "Sources",
        "sources",
        ("source", "channel", "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"),
    ),
    ("Locations", "locations", ("country", "region", "city")),
    ("Devices", "devices", ("browser", "browser_version", "os", "os_version", "device", "screen")),
    ("Events", "events", ("event",)),
)
_TAB_KEYS = {key for _, key, _ in PANELS}


def dimension_label(dimension: str) -> str:
    if dimension.startswith(PROP_PREFIX):
        return f"Property: {dimension.removeprefix(PROP_PREFIX)}"
    return DIMENSION_LABELS.get(dimension, dimension)


@dataclass(frozen=True, slots=True)
class View:
    base: str  # "/dashboard/shop", or "/share/TOKEN" for a shared link
    site: SiteSettings
    today: date  # in the site's time zone: the named periods count back from it
    period: Period
    interval: Interval
    filters: tuple[Condition, ...] = ()
    tabs: Mapping[str, str] = field(default_factory=dict)
    sort: SortKey = "visitors"
    descending: bool = True

    @property
    def query(self) -> StatsQuery:
        return StatsQuery(self.site, self.period, self.filters)

    def tab(self, key: str) -> str:
        default = next(tabs[0] for _, panel_key, tabs in PANELS if panel_key == key)
        return self.tabs.get(key, default)

    def parameters(self, *, keep_sort: bool = False) -> list[tuple[str, str]]:
        items = list(self.period.query().items())
        if self.interval != self.period.default_interval:
            items.append(("interval", self.interval))
        items += [("f", filter_text(condition)) for condition in self.filters]
        items += sorted(self.tabs.items())
        if keep_sort and (self.sort, self.descending) != ("visitors", True):
            items += [("sort", self.sort), ("order", "desc" if self.descending else "asc")]
        return items

    def url(self, path: str = "", **changes: object) -> str:
        """This view's URL under ``path`` (``/breakdown/page``), with ``changes`` applied to the view."""
        view = replace(self, **changes) if changes else self  # type: ignore[arg-type]
        query = urlencode(view.parameters(keep_sort=bool(path.startswith("/breakdown"))))
        return f"{self.base}{path}" + (f"?{query}" if query else "")

    def with_filter(self, condition: Condition) -> str:
        return self.url(filters=with_filter(self.filters, condition))

    def chips(self) -> list[tuple[str, str]]:
        """Each filter's words and the URL without it."""
        return [(describe(c), self.url(filters=without_filter(self.filters, c))) for c in self.filters]

    def period_links(self) -> list[tuple[str, str, bool]]:
        """Every named period, as (label, URL, current); the interval goes back to the period's default."""
        links = []
        for name in PERIODS:
            if name != "custom":
                period = period_for(name, self.today)
                links.append(
                    (
                        PERIOD_LABELS[name],
                        self.url(period=period, interval=period.default_interval),
                        name == self.period.name,
                    )
                )
        return links

    def interval_links(self) -> list[tuple[str, str, bool]]:
        allowed = [i for i in ("hour", "day", "month") if not (i == "hour" and self.period.length > 7)]
        return [(name, self.url(interval=name), name == self.interval) for name in allowed]

    def sort_url(self, dimension: str, column: SortKey) -> str:
        """The breakdown sorted by ``column``: figures largest first, names A to Z; again flips it."""
        first_descending = column != "value"
        descending = not self.descending if self.sort == column else first_descending
        return replace(self, sort=column, descending=descending).url(f"/breakdown/{dimension}")

    def hidden_fields(self, *, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """The view as hidden form fields (the custom-range form keeps the filters and tabs)."""
        return [(name, value) for name, value in self.parameters() if name not in skip]


def parse_view(base: str, site: SiteSettings, params: QueryParams, today: date) -> View:
    """The view a query string asks for; ``PeriodError``/``FilterError`` for a bad one (shown as a 400)."""
    single = {key: params[key] for key in ("period", "from", "to", "interval") if key in params}
    period = parse_period(single, today)
    interval = parse_interval(single, period)
    filters = parse_filters(params.getlist("f"))
    tabs = {
        key: value
        for key, value in params.items()
        if key in _TAB_KEYS and value in next(tabs for _, panel_key, tabs in PANELS if panel_key == key)
    }
    sort = params.get("sort", "visitors")
    return View(
        base=base,
        site=site,
        today=today,
        period=period,
        interval=interval,
        filters=filters,
        tabs=tabs,
        sort=sort if sort in SORT_KEYS else "visitors",
        descending=params.get("order", "desc") != "asc",
    )
