"""The site dashboard: overview, full breakdowns, CSV and zip exports, realtime, goals and funnels.

Each page handler takes an ``Audience``: a signed-in viewer allowed on the site, or the reader of
a shared link (``gateway/web/shared_dashboard.py``), so both see the same pages from the same
code. A site the viewer may not see answers 404, exactly like a site that does not exist: the
dashboard does not tell anyone which site ids are configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.context import GatewayContext
from gateway.settings import SiteSettings
from gateway.stats.chart import render_chart
from gateway.stats.export import breakdown_csv, export_zip, published_rows, series_csv
from gateway.stats.filters import FilterError
from gateway.stats.period import PeriodError
from gateway.stats.query import Breakdown, FunnelStep, GoalResult, Realtime, SortKey, Stats
from gateway.storage.aggregates import PROP_PREFIX, Condition, is_dimension
from gateway.web.dashboard_auth import DashboardAuth, Viewer
from gateway.web.dashboard_view import DIMENSION_LABELS, PANELS, View, dimension_label, parse_view
from gateway.web.security import apply_security_headers

PANEL_ROWS = 9
#: Rows per page of a full breakdown: a site's long tail of pages runs to thousands.
BREAKDOWN_PAGE_ROWS = 100
_EXPORT_DIMENSIONS = tuple(DIMENSION_LABELS)


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a page is for: a signed-in viewer, or the reader of a shared link (``viewer`` None)."""

    site: SiteSettings
    base: str
    viewer: Viewer | None = None

    @property
    def read_only(self) -> bool:
        """A shared link's reader sees the statistics only: no reports, no settings, no other sites."""
        return self.viewer is None


Page = Callable[[Request, Audience], Awaitable[Response]]
#: A page or form of one site for its owners: the request, who asks, and the site.
SiteEndpoint = Callable[[Request, Viewer, SiteSettings], Awaitable[Response]]


class DashboardPages:
    def __init__(self, context: GatewayContext, auth: DashboardAuth) -> None:
        self.context = context
        self.auth = auth
        self.stats = Stats(context.database, context.clock)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"/dashboard/{{site_id}}{path}", self.auth.login_required(self.signed_in(page)), methods=["GET"])
            for path, page in self.shared_pages()
        ]

    def shared_pages(self) -> list[tuple[str, Page]]:
        """The statistics pages, as (path under the site or the link, handler): signed-in users and
        shared links see the same ones."""
        return [
            ("", self.overview),
            ("/breakdown/{dimension}", self.breakdown),
            ("/export/{name}.csv", self.export_csv),
            ("/export.zip", self.export_all),
            ("/realtime", self.realtime),
            ("/goals", self.goals),
        ]

    def signed_in(self, page: Page) -> Callable[[Request, Viewer], Awaitable[Response]]:
        async def endpoint(request: Request, viewer: Viewer) -> Response:
            site = self.site_for(request, viewer)
            if isinstance(site, Response):
                return site
            return await page(request, Audience(site, f"/dashboard/{site.id}", viewer))

        return endpoint

    def site_for(self, request: Request, viewer: Viewer) -> SiteSettings | Response:
        """The ``{site_id}`` of the URL if the viewer has a role on it, else a 404 page (the same for a
        site that does not exist: nobody learns which ids are configured)."""
        site_id = request.path_params["site_id"]
        site = self.context.site(site_id)
        if site is None or not viewer.can_see(site_id):
            return self.auth.error_page(
                request, 404, "There is no such site, or you have no role on it.", viewer=viewer
            )
        return site

    # Pages.

    async def overview(self, request: Request, audience: Audience) -> Response:
        view = self.view(request, audience)
        if isinstance(view, Response):
            return view
        query = view.query
        dimensions = [view.tab(key) for _, key, _ in PANELS]
        await self.stats.prefetch(query, dimensions)
        aggregate = await self.stats.aggregate(query)
        current = await self.stats.timeseries(query, view.interval)
        previous = await self.stats.timeseries(query, view.interval, previous=True)
        k = audience.site.min_visitors
        chart = render_chart(current, previous, k=k)
        panels = []
        # At once: what the prefetch did not answer (an "is not" view, a panel of events) is read on
        # several connections instead of one panel after another.
        results = await asyncio.gather(*(self.stats.breakdown(query, dimension) for dimension in dimensions))
        for (title, key, tabs), dimension, result in zip(PANELS, dimensions, results, strict=True):
            panels.append(
                {
                    "title": title,
                    "dimension": dimension,
                    "label": dimension_label(dimension),
                    "tabs": [
                        (dimension_label(tab), view.url(tabs={**view.tabs, key: tab}), tab == dimension) for tab in tabs
                    ],
                    "rows": self._rows(view, result, limit=PANEL_ROWS),
                    "more": view.url(f"/breakdown/{dimension}"),
                    "csv": view.url(f"/export/{dimension}.csv"),
                    "count": sum(row.figures.visitors >= k for row in result.rows),
                }
            )
        props = await self.stats.prop_keys(query)
        realtime = await self.stats.realtime(audience.site, self.context.clock.now())
        context = {
            **self.common(view, audience, "overview"),
            "aggregate": aggregate,
            "metrics": _metrics(aggregate),
            "chart": Markup(chart.svg),  # noqa: S704 - built by render_chart, every text in it escaped
            "chart_summary": chart.summary,
            "panels": panels,
            "props": [(key, view.url(f"/breakdown/{PROP_PREFIX}{key}")) for key in props],
            "realtime": _realtime(realtime, k),
            "export_all": view.url("/export.zip"),
            "series_csv": view.url("/export/timeseries.csv"),
        }
        return self._render(request, audience, "site.html", context)

    async def breakdown(self, request: Request, audience: Audience) -> Response:
        dimension = request.path_params["dimension"]
        if not is_dimension(dimension) or dimension in ("all", "hour"):
            return self._error(request, audience, 404, f"There is no breakdown by {dimension[:80]!r}.")
        view = self.view(request, audience)
        if isinstance(view, Response):
            return view
        result = await self.stats.breakdown(view.query, dimension, sort=view.sort, descending=view.descending)
        named = [row for row in result.rows if row.figures.visitors >= audience.site.min_visitors]
        pages = max(1, -(-len(named) // BREAKDOWN_PAGE_ROWS))
        number = _page_number(request.query_params.get("page"), pages)
        here = view.url(f"/breakdown/{dimension}")
        joiner = "&" if "?" in here else "?"
        columns: list[tuple[SortKey, str]] = [
            ("value", dimension_label(dimension)),
            ("visitors", "Visitors"),
            ("visits", "Visits"),
            ("pageviews", "Pageviews"),
            ("events", "Events"),
            ("bounce_rate", "Bounce rate"),
            ("visit_duration", "Visit duration"),
        ]
        context = {
            **self.common(view, audience, "breakdown"),
            "dimension": dimension,
            "label": dimension_label(dimension),
            "columns": [
                (key, label, view.sort_url(dimension, key), view.sort == key, view.descending) for key, label in columns
            ],
            "rows": self._rows(
                view,
                result,
                offset=(number - 1) * BREAKDOWN_PAGE_ROWS,
                limit=BREAKDOWN_PAGE_ROWS,
                other=number == pages,
            ),
            "raw": result.raw,
            "page_number": number,
            "pages": pages,
            "previous_page": f"{here}{joiner}page={number - 1}" if number > 1 else None,
            "next_page": f"{here}{joiner}page={number + 1}" if number < pages else None,
            "csv": view.url(f"/export/{dimension}.csv"),
            "back": view.url(),
        }
        return self._render(request, audience, "breakdown.html", context)

    async def export_csv(self, request: Request, audience: Audience) -> Response:
        name = request.path_params["name"]
        view = self.view(request, audience)
        if isinstance(view, Response):
            return view
        k = audience.site.min_visitors
        if name == "timeseries":
            text = series_csv(await self.stats.timeseries(view.query, view.interval), k)
        elif is_dimension(name) and name not in ("all", "hour"):
            text = breakdown_csv(
                await self.stats.breakdown(view.query, name, sort=view.sort, descending=view.descending), k
            )
        else:
            return self._error(request, audience, 404, f"There is no export named {name[:80]!r}.")
        filename = f"{audience.site.id}-{_file_part(name)}-{view.period.first}-{view.period.last}.csv"
        return _download(text.encode("utf-8"), "text/csv; charset=utf-8", filename)

    async def export_all(self, request: Request, audience: Audience) -> Response:
        view = self.view(request, audience)
        if isinstance(view, Response):
            return view
        k = audience.site.min_visitors
        files = {"timeseries.csv": series_csv(await self.stats.timeseries(view.query, view.interval), k)}
        for dimension in _EXPORT_DIMENSIONS:
            files[f"{dimension}.csv"] = breakdown_csv(await self.stats.breakdown(view.query, dimension), k)
        for key in await self.stats.prop_keys(view.query):
            files[f"prop-{_file_part(key)}.csv"] = breakdown_csv(
                await self.stats.breakdown(view.query, PROP_PREFIX + key), k
            )
        body = export_zip(files, self.context.clock.now())
        filename = f"{audience.site.id}-{view.period.first}-{view.period.last}.zip"
        return _download(body, "application/zip", filename)

    async def realtime(self, request: Request, audience: Audience) -> Response:
        view = self.view(request, audience)
        if isinstance(view, Response):
            return view
        realtime = await self.stats.realtime(audience.site, self.context.clock.now())
        context = {
            **self.common(view, audience, "realtime"),
            "realtime": _realtime(realtime, audience.site.min_visitors),
            "refresh": 30,
        }
        return self._render(request, audience, "realtime.html", context)

    async def goals(self, request: Request, audience: Audience) -> Response:
        view = self.view(request, audience)
        if isinstance(view, Response):
            return view
        k = audience.site.min_visitors
        funnels = [
            (funnel, _funnel_steps(await self.stats.funnel(view.query, funnel), k)) for funnel in audience.site.funnels
        ]
        context = {
            **self.common(view, audience, "goals"),
            "goals": [_goal(result, k) for result in await self.stats.goals(view.query)],
            "funnels": funnels,
        }
        return self._render(request, audience, "goals.html", context)

    # Helpers.

    def view(self, request: Request, audience: Audience) -> View | Response:
        today = self.context.clock.now().astimezone(audience.site.zone).date()
        try:
            return parse_view(audience.base, audience.site, request.query_params, today)
        except (PeriodError, FilterError) as error:
            return self._error(request, audience, 400, str(error))

    def common(self, view: View, audience: Audience, page: str) -> dict[str, Any]:
        base = audience.base
        tabs = [
            ("overview", "Overview", view.url()),
            ("goals", "Goals", view.url("/goals")),
            ("realtime", "Realtime", view.url("/realtime")),
        ]
        if not audience.read_only:
            tabs += [("consent", "Consent", view.url("/consent")), ("cookies", "Cookies", view.url("/cookies"))]
            if audience.viewer is not None and audience.viewer.is_owner(audience.site.id):
                tabs.append(("compliance", "Compliance", f"{base}/compliance"))
                tabs.append(("settings", "Settings", f"{base}/settings"))
        return {
            "site": audience.site,
            "view": view,
            "page": page,
            "site_tabs": tabs,
            "read_only": audience.read_only,
            "k": audience.site.min_visitors,
        }

    def _rows(
        self, view: View, result: Breakdown, *, offset: int = 0, limit: int | None = None, other: bool = True
    ) -> list[dict[str, Any]]:
        """Rows for a table, each with its bar's share of the largest row and the link that filters by it.

        Only rows and an "(other)" of at least k visitors are shown, and the bars' scale comes from
        them alone: a withheld row leaves no trace, not even in another row's bar.
        """
        published = published_rows(result, view.site.min_visitors)
        scale = max((row.figures.visitors for row in published), default=0)
        named = [row for row in published if not row.other]
        folded = [row for row in published if row.other]
        chosen = named[offset : offset + limit if limit is not None else None]
        rows = []
        for row in [*chosen, *(folded if other else [])]:
            visitors = row.figures.visitors
            rows.append(
                {
                    "label": row.label if row.other or row.value else "(none)",
                    "other": row.other,
                    "figures": row.figures,
                    "share": round(100 * visitors / scale, 1) if scale else 0,
                    "duration": _duration(row.figures.visit_duration),
                    "filter": None if row.other else view.with_filter(Condition(result.dimension, "is", row.value)),
                }
            )
        return rows

    def _render(self, request: Request, audience: Audience, template: str, context: dict[str, Any]) -> Response:
        return self.auth.render(request, template, context, viewer=audience.viewer)

    def _error(self, request: Request, audience: Audience, status: int, message: str) -> Response:
        return self.auth.error_page(request, status, message, viewer=audience.viewer)


def _realtime(realtime: Realtime, k: int) -> dict[str, Any]:
    """The realtime count and pages as shown: under k visitors, zero included, reads "< k"."""
    pages = [*realtime.pages, *([realtime.other] if realtime.other else [])]
    return {
        "visitors": f"< {k}" if realtime.withheld or realtime.visitors < k else f"{realtime.visitors:,}",
        "rows": [row for row in pages if row.figures.visitors >= k],
    }


def _goal(result: GoalResult, k: int) -> dict[str, Any]:
    """A goal's row; under k converting visitors (zero included) nothing but "< k" is shown, no rate either."""
    hidden = result.withheld or result.visitors < k
    return {
        "goal": result.goal,
        "withheld": hidden,
        "visitors": None if hidden else f"{result.visitors:,}",
        "events": None if hidden else f"{result.events:,}",
        "conversion_rate": None if hidden else result.conversion_rate,
    }


def _funnel_steps(steps: list[FunnelStep], k: int) -> list[dict[str, Any]]:
    """A funnel's steps as shown: a step under k visits (zero included) reads "< k", with no bar and no
    rate; a drop-off is shown only between two shown steps (it is their difference, which the core keeps
    at zero or k and more)."""
    shown = []
    for index, step in enumerate(steps):
        hidden = step.withheld or step.visits < k
        before_hidden = index > 0 and (steps[index - 1].withheld or steps[index - 1].visits < k)
        drop = f"{step.drop_off:,}" if index and not hidden and not before_hidden else None
        shown.append(
            {
                "goal": step.goal,
                "withheld": hidden,
                "visits": None if hidden else f"{step.visits:,}",
                "conversion_rate": None if hidden else step.conversion_rate,
                "drop_off": drop,
            }
        )
    return shown


def _metrics(aggregate: Any) -> list[dict[str, Any]]:
    labels = {
        "visitors": ("Unique visitors", ""),
        "visits": ("Visits", ""),
        "pageviews": ("Pageviews", ""),
        "views_per_visit": ("Views per visit", ""),
        "bounce_rate": ("Bounce rate", "%"),
        "visit_duration": ("Visit duration", "s"),
    }
    values, changes = aggregate.current.metrics(), aggregate.changes()
    metrics = []
    for name, (label, unit) in labels.items():
        value = values[name]
        shown = _duration(int(value)) if name == "visit_duration" else f"{value:,}{unit}"
        # A falling bounce rate is good news: the arrow's colour says so, not its direction.
        better = None if changes[name] is None else (changes[name] < 0 if name == "bounce_rate" else changes[name] > 0)
        metrics.append({"name": name, "label": label, "value": shown, "change": changes[name], "better": better})
    return metrics


def _duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def _page_number(text: str | None, pages: int) -> int:
    """``?page=`` clamped to the pages there are (a bookmarked page past the end shows the last)."""
    try:
        number = int(text or "1")
    except ValueError:
        number = 1
    return min(max(number, 1), pages)


def _file_part(text: str) -> str:
    """A name safe in a zip entry and a Content-Disposition header: property keys come from browsers."""
    return "".join(char if char.isascii() and (char.isalnum() or char in "-_") else "_" for char in text)[:60]


def _download(body: bytes, media_type: str, filename: str) -> Response:
    response = Response(
        body,
        media_type=media_type,
        headers={"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store"},
    )
    return apply_security_headers(response, replace=False)


def owners_only(
    auth: DashboardAuth, pages: DashboardPages, endpoint: SiteEndpoint, refusal: str
) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` for the site's owners (and admins): a login first, 404 without a role (as on every site
    page: nobody learns which ids exist), 403 with ``refusal`` for a viewer."""

    async def guarded(request: Request, viewer: Viewer) -> Response:
        site = pages.site_for(request, viewer)
        if isinstance(site, Response):
            return site
        if not viewer.is_owner(site.id):
            return auth.error_page(request, 403, refusal, viewer=viewer)
        return await endpoint(request, viewer, site)

    return auth.login_required(guarded)
