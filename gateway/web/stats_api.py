"""``/api/v1/stats/*``: the dashboard's statistics as JSON, for scripts holding a site's API key.

The same core as the dashboard (``gateway.stats``): the same periods in the site's time zone, the
same filters (Plausible's v1 syntax), the same privacy floor. Whatever a client sends answers a
JSON ``{"error": ...}`` with a 4xx status, never a 500 or an HTML page, and nothing is cached
(``no-store``: the figures are private and change every few minutes).

The order of the checks leaks as little as possible: without a valid key nothing else is looked
at (401), so only a key holder learns whether a site id exists (404), and a key reads only its own
site (403).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

from gateway.context import GatewayContext
from gateway.settings import SiteSettings
from gateway.stats.figures import Figures
from gateway.stats.filters import FilterError, parse_filters
from gateway.stats.period import Period, PeriodError, parse_day, parse_interval, parse_period
from gateway.stats.privacy import BreakdownRow, withheld
from gateway.stats.query import SORT_KEYS, SortKey, Stats, StatsQuery
from gateway.web.api_auth import presented_key
from gateway.web.consent_log_api import consent_log_export
from gateway.web.errors import ClientError
from gateway.web.openapi import (
    BREAKDOWN_DIMENSIONS,
    CONSENT_LOG_PATH,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_PAGE,
    METRICS,
    OPENAPI_PATH,
    PROPERTY_PATTERN,
    ROW_FIGURES,
    STATS_PREFIX,
    openapi_document,
)
from gateway.web.rate_limit import FilteredQueryLimit

Answer = Callable[[Request], Awaitable[Response]]
_ALLOWED = "GET, HEAD"
_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: int() would also take "٣" and " 5"
_BUCKET_FIGURES = ("visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration")


def stats_api_routes(context: GatewayContext, *, limit: FilteredQueryLimit | None = None) -> list[BaseRoute]:
    """The three stats endpoints, the consent log export, the OpenAPI document, and a JSON 404 for other
    paths under the stats prefix.

    ``limit``: the per-key limit on filtered queries (made here from the settings unless given).
    """
    limit = limit or FilteredQueryLimit(limit=context.settings.filtered_query_limit, clock=context.clock)
    api = _StatsApi(context, limit)
    document = json.dumps(openapi_document(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def openapi(request: Request) -> Response:
        headers = {"cache-control": "public, max-age=300"}
        return Response(document, media_type="application/json", headers=headers)

    return [
        Route(f"{STATS_PREFIX}/aggregate", _JsonEndpoint(api.aggregate), name="stats_aggregate"),
        Route(f"{STATS_PREFIX}/timeseries", _JsonEndpoint(api.timeseries), name="stats_timeseries"),
        Route(f"{STATS_PREFIX}/breakdown", _JsonEndpoint(api.breakdown), name="stats_breakdown"),
        Route(OPENAPI_PATH, _JsonEndpoint(openapi), name="openapi"),
        Route(
            CONSENT_LOG_PATH, _JsonEndpoint(lambda request: consent_log_export(context, request)), name="consent_log"
        ),
        Mount(STATS_PREFIX, app=_no_such_endpoint),
    ]


class _JsonEndpoint:
    """A GET endpoint as a plain ASGI app, so any other method gets a JSON 405 (Starlette's is text).

    A ``Route`` given a class instance instead of a function matches every method and leaves the
    method check to the app.
    """

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            if request.method not in ("GET", "HEAD"):
                raise ClientError(
                    405, f"{request.method[:20]} is not allowed here: use GET", headers={"allow": _ALLOWED}
                )
            response = await self.answer(request)
        except ClientError as error:
            response = error.response()
        response.headers.setdefault("cache-control", "no-store")
        response.headers["x-content-type-options"] = "nosniff"
        await response(scope, receive, send)


async def _no_such_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        await WebSocketClose()(scope, receive, send)
        return
    names = ", ".join(f"{STATS_PREFIX}/{name}" for name in ("aggregate", "timeseries", "breakdown"))
    response = JSONResponse(
        {"error": f"there is no such endpoint: the stats API has {names}"},
        status_code=404,
        headers={"cache-control": "no-store", "x-content-type-options": "nosniff"},
    )
    await response(scope, receive, send)


class _StatsApi:
    def __init__(self, context: GatewayContext, limit: FilteredQueryLimit) -> None:
        self.context = context
        self.stats = Stats(context.database, context.clock)
        self.limit = limit

    async def aggregate(self, request: Request) -> Response:
        site, query = await self._query(request)
        result = await self.stats.aggregate(query)
        now, before = result.current.metrics(), result.previous.metrics()
        # The previous period is under the same floor (zero included: withheld and zero read the same),
        # and a change of +50% next to a shown value would tell a withheld one.
        previous_withheld = result.previous_withheld or withheld(result.previous, query.k)
        changes = result.changes()
        metrics = {}
        for name in METRICS:
            value = None if result.withheld else now[name]
            previous = None if previous_withheld else before[name]
            shown = None if value is None or previous is None else changes[name]
            metrics[name] = {"value": value, "previous": previous, "change": shown}
        return JSONResponse(
            {"site_id": site.id, "period": _period(query.period, site), "withheld": result.withheld, "results": metrics}
        )

    async def timeseries(self, request: Request) -> Response:
        site, query = await self._query(request)
        _refuse_empty(request.query_params, ("interval",))
        try:
            interval = parse_interval(request.query_params, query.period)
        except PeriodError as error:
            raise ClientError(400, str(error)) from None
        buckets = await self.stats.timeseries(query, interval)
        results = [
            {
                "bucket": bucket.label,
                "start": bucket.start.isoformat(),
                "withheld": bucket.withheld,
                **_figures(bucket.figures, _BUCKET_FIGURES, hidden=bucket.withheld),
            }
            for bucket in buckets
        ]
        return JSONResponse(
            {"site_id": site.id, "period": _period(query.period, site), "interval": interval, "results": results}
        )

    async def breakdown(self, request: Request) -> Response:
        site, query = await self._query(request)
        params = request.query_params
        dimension = _dimension(params.get("property"))
        _refuse_empty(params, ("sort", "order", "limit", "page"))
        sort = _sort(params.get("sort"))
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ClientError(400, f"'order' is asc or desc, found {order[:40]!r}")
        limit = _number(params.get("limit"), "limit", DEFAULT_LIMIT, MAX_LIMIT)
        page = _number(params.get("page"), "page", 1, MAX_PAGE)
        result = await self.stats.breakdown(query, dimension, sort=sort, descending=order == "desc")
        k = query.k
        # Only rows and an "(other)" of at least k visitors leave (the core folds them so; this is the
        # last check before the wire): "(other)" under k is null, exactly as when there is none.
        published = [row for row in result.rows if row.figures.visitors >= k]
        other = result.other if result.other is not None and result.other.figures.visitors >= k else None
        chosen = published[(page - 1) * limit : page * limit]
        return JSONResponse(
            {
                "site_id": site.id,
                "period": _period(query.period, site),
                "property": dimension,
                "sort": sort,
                "order": order,
                "limit": limit,
                "page": page,
                "results": [_row(row) for row in chosen],
                "other": _row(other) if other is not None else None,
                "total_rows": len(published),
            }
        )

    # What every endpoint checks first.

    async def _query(self, request: Request) -> tuple[SiteSettings, StatsQuery]:
        site, key_id = await self._site(request)
        params = request.query_params
        if params.getlist("f"):
            # Before anything else is parsed: a malformed filter costs a probe as much as a good one.
            wait = self.limit.reserve(f"api-key:{key_id}")
            if wait:
                raise ClientError(
                    429,
                    f"too many filtered queries for this API key: at most {self.limit.limit} per 10 minutes; "
                    f"retry in {wait} seconds",
                    headers={"retry-after": str(wait)},
                )
        _refuse_empty(params, ("period", "from", "to"))
        today = self.context.clock.now().astimezone(site.zone).date()
        try:
            for name in ("from", "to"):  # read only for a custom period, but never a malformed day passed over
                if name in params:
                    parse_day(params[name], name)
            period = parse_period(params, today)
            filters = parse_filters(params.getlist("f"))
        except (PeriodError, FilterError) as error:
            raise ClientError(400, str(error)) from None
        _check_in_calendar(period, site)
        return site, StatsQuery(site, period, filters)

    async def _site(self, request: Request) -> tuple[SiteSettings, int]:
        """The site asked for, once the key is valid and belongs to it (401, then 400, 404, 403)."""
        key = await presented_key(self.context, request)
        site_id = request.query_params.get("site_id", "")
        if not site_id:
            raise ClientError(400, "'site_id' is required")
        site = self.context.site(site_id)
        if site is None:
            raise ClientError(404, f"there is no site {site_id[:80]!r}")
        if key.site_id != site.id:
            raise ClientError(403, f"this API key belongs to another site than {site.id!r}")
        return site, key.id


def _refuse_empty(params: QueryParams, names: tuple[str, ...]) -> None:
    """A 400 for ``period=`` and the like: absent means the default, empty is a mistake.

    The document's enums, formats and integers exclude the empty string; answering the default would
    hide a script's unset variable behind plausible figures.
    """
    for name in names:
        if "" in params.getlist(name):
            raise ClientError(400, f"'{name}' is empty: give a value, or leave it out for the default")


def _check_in_calendar(period: Period, site: SiteSettings) -> None:
    """A 400 for custom dates whose comparison period or UTC bounds fall off the calendar (year 1, 9999)."""
    try:
        period.bounds(site.zone)
        period.previous().bounds(site.zone)
    except (OverflowError, ValueError):
        raise ClientError(400, "'from' and 'to' are too close to the ends of the calendar") from None


def _dimension(text: str | None) -> str:
    if not text:
        raise ClientError(400, "'property' is required: a dimension such as page, source, country or prop:KEY")
    if text in BREAKDOWN_DIMENSIONS or re.fullmatch(PROPERTY_PATTERN, text):
        return text
    raise ClientError(
        400, f"cannot break down by {text[:80]!r}: expected one of {', '.join(BREAKDOWN_DIMENSIONS)} or prop:KEY"
    )


def _sort(text: str | None) -> SortKey:
    for key in SORT_KEYS:
        if key == (text or "visitors"):
            return key
    raise ClientError(400, f"cannot sort by {(text or '')[:40]!r}: expected one of {', '.join(SORT_KEYS)}")


def _number(text: str | None, name: str, default: int, highest: int) -> int:
    if text is None:
        return default
    value = int(text) if _NUMBER.fullmatch(text) else 0
    if not 1 <= value <= highest:
        raise ClientError(400, f"'{name}' is a whole number from 1 to {highest}, found {text[:40]!r}")
    return value


def _period(period: Period, site: SiteSettings) -> dict[str, str]:
    return {
        "name": period.name,
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": site.timezone,
    }


def _figures(figures: Figures, names: tuple[str, ...], *, hidden: bool = False) -> dict[str, float | int | None]:
    every = {**figures.metrics(), "events": figures.events}
    return {name: None if hidden else every[name] for name in names}


def _row(row: BreakdownRow) -> dict[str, Any]:
    return {"value": row.label, **_figures(row.figures, ROW_FIGURES)}
