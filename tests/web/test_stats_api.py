"""The JSON stats API on the real app: figures against the core and the hand-worked day, auth, hostile input.

The traffic is the hand-worked day of tests/storage/test_rollups.py (10 and 11 March 2026, UTC);
the expected figures are those of tests/stats/test_query.py. The shop's privacy floor is k = 2,
so single-visitor days and rows are withheld; where the hand-worked figures of one visitor are the
point, the test reads ``exact``: the same traffic with k = 1 (a value settings refuse, the floor then
changes nothing), as tests/stats/test_query.py does. Zero is withheld as well, at any k.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from gateway.accounts.api_keys import create_api_key, revoke_api_key
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.ingest.event import AnonymousEvent
from gateway.settings import Settings
from gateway.stats.filters import parse_filters
from gateway.stats.period import INTERVALS, PERIODS, Period
from gateway.stats.query import SORT_KEYS, Stats, StatsQuery
from gateway.storage.aggregates import DIMENSIONS
from gateway.storage.rollups import rebuild_dirty
from gateway.storage.store import Store
from gateway.web.openapi import CONSENT_LOG_PATH
from tests.conftest import LiveServer, make_settings, site_config
from tests.module_stores import store_kind_per_module  # noqa: F401 - the shared servers are built once per store
from tests.storage.test_rollups import AFTER_MIDNIGHT, DAY1, DAY2, FIRST_DAY, at, event, run, store

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
FIRST = {"period": "custom", "from": DAY1, "to": DAY1}
BOTH_DAYS = {"period": "custom", "from": DAY1, "to": DAY2}
SECOND = {"period": "custom", "from": DAY2, "to": DAY2}
AGGREGATE, TIMESERIES, BREAKDOWN = "/api/v1/stats/aggregate", "/api/v1/stats/timeseries", "/api/v1/stats/breakdown"
pytestmark = pytest.mark.integration
ENDPOINTS = (AGGREGATE, TIMESERIES, BREAKDOWN)
#: More pageviews on the first day, one bounce each, so the page breakdown has rows to page through:
#: /docs 5 visitors, /about 4, /pricing 1 + 2 = 3, / 2 (and /signup, /blog of 1 each fold into other).
BUSY_DAY = [
    *(event(at(DAY1, "11:00"), visitor, "/pricing") for visitor in ("d", "e")),
    *(event(at(DAY1, "12:00"), visitor, "/about") for visitor in ("f", "g", "h", "i")),
    *(event(at(DAY1, "13:00"), visitor, "/docs") for visitor in ("j", "k", "l", "m", "n")),
]


class Api:
    """The gateway on a real uvicorn, with the fixture's traffic rolled up and a key of each kind."""

    def __init__(self, tmp_path: Path, extra: Sequence[AnonymousEvent] = (), *, k: int = 2) -> None:
        """``k``: shop's ``min_visitors``; 1 (which settings refuse) leaves the hand-worked figures unfloored."""
        sites = {
            "shop": site_config(min_visitors=2),
            "blog": site_config(name="Blog", origins=["https://blog.example.com"]),
        }
        tmp_path.mkdir(exist_ok=True)
        # Many filtered requests from one key on a pinned clock: the limit is tested in test_rate_limit.py.
        self.settings: Settings = make_settings(tmp_path, sites=sites, filtered_query_limit=100_000)
        if k < 2:
            shop = replace(self.settings.sites["shop"], min_visitors=k)
            self.settings = replace(self.settings, sites={**self.settings.sites, "shop": shop})
        self.path = tmp_path / "gateway.sqlite3"  # names the settings' database on either store (tests/stores.py)
        store(self.path, FIRST_DAY, AFTER_MIDNIGHT, *([list(extra)] if extra else []))
        run(self.path, lambda db: db.write(lambda c: rebuild_dirty(c, zones=self.settings.zones)))

        async def keys(db: Store) -> tuple[str, str, str]:
            # The shop's key may also export the consent log: the contract test reaches that operation's answers.
            _, shop = await create_api_key(db, "shop", "report", now=NOW, permissions=frozenset({"consent_log"}))
            _, blog = await create_api_key(db, "blog", "report", now=NOW)
            revoked, gone = await create_api_key(db, "shop", "old", now=NOW)
            await revoke_api_key(db, "shop", revoked.id, now=NOW)
            return shop, blog, gone

        self.shop_key, self.blog_key, self.revoked_key = run(self.path, keys)
        self.app = create_app(self.settings, clock=FixedClock(NOW))
        self.server = LiveServer(self.app)
        self.client = httpx.Client(base_url=self.server.url, timeout=30)

    def __enter__(self) -> Api:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.__exit__()

    def get(self, path: str, *, key: str | None = "shop", **params: Any) -> httpx.Response:
        """``key``: "shop" or "blog" for those sites' keys, any other text sent as it is, None for no header."""
        chosen = {"shop": self.shop_key, "blog": self.blog_key}.get(key or "", key)
        headers = {"authorization": f"Bearer {chosen}"} if chosen is not None else {}
        return self.client.get(path, params={"site_id": "shop", **params}, headers=headers)

    def raw(self, target: str, *, method: str = "GET") -> httpx.Response:
        """A request with the query string exactly as written (invalid percent-encoding included)."""
        headers = {"authorization": f"Bearer {self.shop_key}"}
        return self.client.request(method, target, headers=headers)

    def core(self, work: Callable[[Stats, StatsQuery], Any], period: Period, filters: Sequence[str] = ()) -> Any:
        """What ``gateway.stats`` answers for the same question, read beside the server (WAL readers)."""
        query = StatsQuery(self.settings.sites["shop"], period, parse_filters(filters))
        return run(self.path, lambda db: work(Stats(db, FixedClock(NOW)), query))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[Api]:
    """One server for the tests that only read (API key touches aside)."""
    with Api(tmp_path_factory.mktemp("stats-api")) as shared:
        yield shared


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[Api]:
    """The same traffic with k = 1: every figure is the hand-worked one."""
    with Api(tmp_path_factory.mktemp("stats-api-exact"), k=1) as shared:
        yield shared


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    opened: list[Api] = []

    def start(extra: Sequence[AnonymousEvent] = ()) -> Api:
        started = Api(tmp_path / f"api{len(opened)}", extra).__enter__()
        opened.append(started)
        return started

    yield start
    for started in opened:
        started.__exit__()


def assert_json_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


# Figures.


def test_the_top_line_of_one_day_as_worked_out_by_hand(api: Api) -> None:
    """The 10th holds 3 visitors, over k. The 9th had nobody: zero is withheld like a count under k, so
    the previous values and the changes are null."""
    response = api.get(AGGREGATE, **FIRST)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert body["site_id"] == "shop" and body["withheld"] is False
    assert body["period"] == {"name": "custom", "from": DAY1, "to": DAY1, "timezone": "UTC"}
    # 3 visitors, 4 visits, 7 pageviews, 1 bounce, 3000 s; 9 March had nothing, so no change.
    values = {name: metric["value"] for name, metric in body["results"].items()}
    assert values == {
        "visitors": 3,
        "visits": 4,
        "pageviews": 7,
        "views_per_visit": 1.75,
        "bounce_rate": 25.0,
        "visit_duration": 750,
    }
    assert all(metric["previous"] is None and metric["change"] is None for metric in body["results"].values())


def test_a_named_period_follows_the_clock_and_compares_with_the_days_before(exact: Api) -> None:
    """At k = 1: the 11th's one visitor counts (at k = 2 that day adds nothing). The week before had
    nobody, withheld as zero is."""
    body = exact.get(AGGREGATE, period="7d").json()
    assert body["period"] == {"name": "7d", "from": "2026-03-05", "to": DAY2, "timezone": "UTC"}
    assert body["results"]["visitors"] == {"value": 4, "previous": None, "change": None}  # 3 + 1: daily salts
    assert body["results"]["bounce_rate"]["value"] == 20.0
    default = exact.get(AGGREGATE).json()
    assert default["period"]["name"] == "30d" and default["period"]["from"] == "2026-02-10"


def test_a_day_under_k_visitors_is_withheld_and_the_previous_day_shown(api: Api) -> None:
    """A day of 1..k-1 visitors and a day of nobody read the same: every value null, ``withheld`` true
    (withheld is zero). A previous period of k or more shows beside a withheld one; the change never does."""
    body = api.get(AGGREGATE, **SECOND).json()  # visitor c alone, after midnight
    assert body["withheld"] is True
    assert all(metric["value"] is None and metric["change"] is None for metric in body["results"].values())
    assert body["results"]["visitors"]["previous"] == 3  # the 10th: 3 visitors, over the floor
    after = api.get(AGGREGATE, period="custom", **{"from": "2026-03-12", "to": "2026-03-12"}).json()
    # nobody on the 12th, c alone on the 11th before it: both withheld alike
    assert after["withheld"] is True
    assert all(metric == {"value": None, "previous": None, "change": None} for metric in after["results"].values())


FILTERS = [
    pytest.param([], id="no filter: the rollups"),
    pytest.param(["page==/"], id="one is-filter: the page rollup"),
    pytest.param(["referrer=="], id="an empty value is (none)"),
    pytest.param(["referrer==", "country!=DE"], id="two filters: raw events"),
    pytest.param(["source~=GOO"], id="contains ignores case; one visitor: withheld"),
    pytest.param(["prop:plan==free"], id="a custom property"),
    pytest.param(["page==' OR 1=1 --"], id="SQL in a value is only a value"),
]


@pytest.mark.parametrize("filters", FILTERS)
def test_the_top_line_matches_the_core_with_and_without_filters(api: Api, filters: list[str]) -> None:
    period = Period("custom", date(2026, 3, 10), date(2026, 3, 11))
    expected = api.core(lambda stats, query: stats.aggregate(query), period, filters)
    body = api.get(AGGREGATE, **BOTH_DAYS, f=filters).json()
    assert body["withheld"] is expected.withheld
    for name, value in expected.current.metrics().items():
        assert body["results"][name]["value"] == (None if expected.withheld else value), name


def test_filtered_figures_by_hand(exact: Api) -> None:
    """At k = 1, where every value is named: at k = 2 the 10th's countries hold one visitor each, so no
    country is named and ``country!=DE`` matches everyone (and Google's lone visitor withholds "" of referrer)."""
    # visits 3 and 4 (a and c: no referrer, not Germany) on the 10th: 2 + 1 pageviews, 1200 + 1500 s
    results = exact.get(AGGREGATE, **FIRST, f=["referrer==", "country!=DE"]).json()["results"]
    assert {name: results[name]["value"] for name in ("visitors", "visits", "pageviews", "visit_duration")} == {
        "visitors": 2,
        "visits": 2,
        "pageviews": 3,
        "visit_duration": 1350,
    }


def test_a_filter_on_a_value_of_one_visitor_is_withheld(api: Api) -> None:
    """FR has one visitor on the 10th, under k: not named, ``country==FR`` matches nobody that day, and the
    zero is withheld (filters see only named values)."""
    body = api.get(AGGREGATE, **FIRST, f="country==FR").json()  # visitor a alone
    assert body["withheld"] is True and body["results"]["visitors"]["value"] is None


def test_a_daily_series_withholds_the_day_of_one_visitor(api: Api) -> None:
    body = api.get(TIMESERIES, **BOTH_DAYS).json()
    assert body["interval"] == "day"
    first, second = body["results"]
    assert first == {
        "bucket": DAY1,
        "start": "2026-03-10T00:00:00+00:00",
        "withheld": False,
        "visitors": 3,
        "visits": 4,
        "pageviews": 7,
        "events": 9,
        "views_per_visit": 1.75,
        "bounce_rate": 25.0,
        "visit_duration": 750,
    }
    assert second["bucket"] == DAY2 and second["withheld"] is True
    assert {
        name: value for name, value in second.items() if name not in ("bucket", "start", "withheld")
    } == dict.fromkeys(
        ("visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration")
    )


@pytest.mark.parametrize(
    ("params", "filters", "interval"),
    [
        pytest.param(FIRST, [], "hour", id="one day: hours by default"),
        pytest.param(BOTH_DAYS, ["referrer=="], "day", id="days, filtered"),
        pytest.param({"period": "custom", "from": "2026-02-20", "to": "2026-03-31"}, [], "month", id="months"),
    ],
)
def test_the_series_matches_the_core(api: Api, params: dict[str, str], filters: list[str], interval: str) -> None:
    period = Period("custom", date.fromisoformat(params["from"]), date.fromisoformat(params["to"]))
    buckets = api.core(lambda stats, query: stats.timeseries(query, interval), period, filters)  # type: ignore[arg-type]
    asked = {**params, "interval": interval} if interval == "month" else params
    body = api.get(TIMESERIES, **asked, f=filters).json()
    assert body["interval"] == interval
    assert [(b["bucket"], b["withheld"], b["visitors"]) for b in body["results"]] == [
        (b.label, b.withheld, None if b.withheld else b.figures.visitors) for b in buckets
    ]
    if interval == "hour":
        assert len(body["results"]) == 24 and body["results"][9]["bucket"] == "2026-03-10 09:00"
        assert body["results"][9]["withheld"] is True  # visitor a alone in that hour


def test_a_breakdown_folds_the_rows_under_k_into_other(make_api: Callable[..., Api]) -> None:
    """Pages of fewer than k visitors on the day fold into "(other)", which adds their cells and publishes
    because they hold k distinct visitors (a on /signup, b on /blog). d and e read /pricing, so the day
    without /pricing or without / still holds k or more: no row takes the day's cell (drop-one)."""
    api = make_api([event(at(DAY1, "11:00"), visitor, "/pricing") for visitor in ("d", "e")])
    body = api.get(BREAKDOWN, **FIRST, property="page").json()
    assert body["property"] == "page" and body["total_rows"] == 2
    assert body["results"] == [
        # (3, 4, 4, 4, 2, 1500): a's two visits, d and e bouncing
        {
            "value": "/pricing",
            "visitors": 3,
            "visits": 4,
            "pageviews": 4,
            "events": 4,
            "bounce_rate": 50.0,
            "visit_duration": 375,
        },
        {
            "value": "/",
            "visitors": 2,
            "visits": 3,
            "pageviews": 3,
            "events": 3,
            "bounce_rate": 0.0,
            "visit_duration": 1000,
        },
    ]
    # /signup (1, 1, 1, 1, 0, 300) + /blog (1, 1, 1, 1, 1, 0)
    assert body["other"] == {
        "value": "(other)",
        "visitors": 2,
        "visits": 2,
        "pageviews": 2,
        "events": 2,
        "bounce_rate": 50.0,
        "visit_duration": 150,
    }


def test_a_row_that_leaves_out_fewer_than_k_shows_the_days_cell(api: Api) -> None:
    """On the hand-worked 10th, / holds a and c: the day without / is b alone, under k. So / shows the
    whole day's cell, and the day's other rows and "(other)" publish nothing (drop-one): / against the top
    line never tells b's figures."""
    body = api.get(BREAKDOWN, **FIRST, property="page").json()
    assert body["total_rows"] == 1 and body["other"] is None
    assert body["results"] == [
        {
            "value": "/",
            "visitors": 3,
            "visits": 4,
            "pageviews": 7,
            "events": 9,
            "bounce_rate": 25.0,
            "visit_duration": 750,
        }
    ]


def test_a_breakdown_with_nothing_small_has_no_other(api: Api) -> None:
    body = api.get(BREAKDOWN, **FIRST, property="device").json()
    assert [row["value"] for row in body["results"]] == ["desktop"] and body["other"] is None


@pytest.mark.parametrize(
    ("property", "filters"),
    [
        pytest.param("source", [], id="source from the rollups"),
        pytest.param("source", ["browser==Chrome"], id="source filtered: raw events, all folded"),
        pytest.param("referrer", ["country!=DE"], id="referrer, an is-not filter"),
        pytest.param("prop:plan", [], id="a custom property"),
        pytest.param("entry_page", ["page~=pri"], id="entry pages of visits that saw the pricing"),
    ],
)
def test_breakdowns_match_the_core(api: Api, property: str, filters: list[str]) -> None:
    period = Period("custom", date(2026, 3, 10), date(2026, 3, 11))
    expected = api.core(lambda stats, query: stats.breakdown(query, property), period, filters)
    body = api.get(BREAKDOWN, **BOTH_DAYS, property=property, f=filters).json()
    assert [(row["value"], row["visitors"], row["visits"]) for row in body["results"]] == [
        (row.value, row.figures.visitors, row.figures.visits) for row in expected.rows
    ]
    if expected.other is None or expected.other.figures.visitors < 2:  # "(other)" under k = 2 is never published
        assert body["other"] is None
    else:
        assert body["other"]["visitors"] == expected.other.figures.visitors
        assert body["other"]["pageviews"] == expected.other.figures.pageviews


def test_breakdowns_page_and_sort_with_other_on_every_page(make_api: Callable[..., Api]) -> None:
    api = make_api(BUSY_DAY)
    pages = [api.get(BREAKDOWN, **FIRST, property="page", limit=2, page=n).json() for n in (1, 2, 3)]
    assert [[(row["value"], row["visitors"]) for row in page["results"]] for page in pages] == [
        [("/docs", 5), ("/about", 4)],
        [("/pricing", 3), ("/", 2)],
        [],
    ]
    assert {page["total_rows"] for page in pages} == {4}
    # /signup and /blog, one visitor each, folded; the same on every page, never split
    assert all(page["other"]["visitors"] == 2 and page["other"]["visits"] == 2 for page in pages)

    def values(**params: Any) -> list[str]:
        return [row["value"] for row in api.get(BREAKDOWN, **FIRST, property="page", **params).json()["results"]]

    assert values(sort="value", order="asc") == ["/", "/about", "/docs", "/pricing"]
    assert values(sort="value") == ["/pricing", "/docs", "/about", "/"]
    assert values(sort="visitors", order="asc") == ["/", "/pricing", "/about", "/docs"]
    # everyone new bounced; /pricing: 2 of visit 1, 3, d and e; / none
    assert values(sort="bounce_rate") == ["/docs", "/about", "/pricing", "/"]
    assert values(sort="visit_duration", limit=1) == ["/"]
    period = Period("custom", date(2026, 3, 10), date(2026, 3, 10))
    core = api.core(lambda stats, query: stats.breakdown(query, "page", sort="events", descending=False), period)
    assert values(sort="events", order="asc") == [row.value for row in core.rows]


def test_another_site_is_read_with_its_own_key(api: Api) -> None:
    body = api.get(AGGREGATE, key="blog", site_id="blog", **FIRST).json()
    # the one "blog" pageview of the 10th: a single visitor, withheld under blog's default k = 5
    assert body["site_id"] == "blog" and body["withheld"] is True


def test_the_site_time_zone_names_the_days(tmp_path: Path) -> None:
    sites = {"shop": site_config(min_visitors=2, timezone="Europe/Paris")}
    settings = make_settings(tmp_path, sites=sites)
    path = tmp_path / "gateway.sqlite3"  # the settings' database on either store
    store(path, FIRST_DAY, AFTER_MIDNIGHT)
    run(path, lambda db: db.write(lambda c: rebuild_dirty(c, zones=settings.zones)))
    _, key = run(path, lambda db: create_api_key(db, "shop", "k", now=NOW))
    with LiveServer(create_app(settings, clock=FixedClock(NOW))) as server:
        headers = {"authorization": f"Bearer {key}"}
        response = httpx.get(f"{server.url}{AGGREGATE}", params={"site_id": "shop", **FIRST}, headers=headers)
    body = response.json()
    assert body["period"]["timezone"] == "Europe/Paris"
    # UTC+1: the visit of 23:50 UTC starts on the 11th in Paris (tests/stats/test_query.py)
    assert body["results"]["visitors"]["value"] == 2 and body["results"]["pageviews"]["value"] == 6


# Authentication.


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        pytest.param(None, 'Bearer realm="consent-gateway"', id="no header"),
        pytest.param("Basic dXNlcjpwYXNz", "Bearer realm", id="another scheme"),
        pytest.param("Bearer", "Bearer realm", id="no key"),
        pytest.param("Bearer not-a-key", "Bearer realm", id="malformed"),
        pytest.param("Bearer cg_" + "A" * 43, 'error="invalid_token"', id="unknown"),
        pytest.param("Bearer cg_" + "A" * 44, 'error="invalid_token"', id="too long"),
        pytest.param("Bearer <script>alert(1)</script>", "Bearer realm", id="html"),
    ],
)
def test_without_a_valid_key_nothing_is_answered(api: Api, endpoint: str, header: str | None, challenge: str) -> None:
    headers = {"authorization": header} if header is not None else {}
    # an unknown site: without a key it still says 401, so nobody learns which sites exist
    for site_id in ("shop", "nope"):
        response = api.client.get(endpoint, params={"site_id": site_id, "property": "page"}, headers=headers)
        assert_json_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert challenge in response.headers["www-authenticate"]


def test_a_revoked_key_is_refused(api: Api) -> None:
    response = api.get(AGGREGATE, key=api.revoked_key)
    assert "revoked" in assert_json_error(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_key_reads_only_its_own_site(api: Api) -> None:
    assert "another site" in assert_json_error(api.get(AGGREGATE, key="blog"), 403)
    assert "another site" in assert_json_error(api.get(BREAKDOWN, key="shop", site_id="blog", property="page"), 403)


@pytest.mark.parametrize("site_id", ["nope", "<b>shop</b>", "shop' OR '1'='1", "shop\x00", "x" * 10_000])
def test_an_unknown_site_is_404_once_the_key_is_valid(api: Api, site_id: str) -> None:
    message = assert_json_error(api.get(TIMESERIES, site_id=site_id), 404)
    assert len(message) < 200  # the site id is quoted, cut short


def test_site_id_is_required(api: Api) -> None:
    response = api.client.get(AGGREGATE, headers={"authorization": f"Bearer {api.shop_key}"})
    assert "site_id" in assert_json_error(response, 400)


# Hostile and mistaken input.

BAD_INPUT = [
    pytest.param(AGGREGATE, {"period": "forever"}, "unknown period", id="an unknown period"),
    pytest.param(AGGREGATE, {"period": "<script>alert(1)</script>"}, "unknown period", id="html as a period"),
    pytest.param(AGGREGATE, {"period": "custom"}, "'from'", id="custom without dates"),
    pytest.param(AGGREGATE, {"period": "custom", "from": "2026-13-01", "to": DAY1}, "YYYY-MM-DD", id="month 13"),
    pytest.param(AGGREGATE, {"period": "custom", "from": DAY2, "to": DAY1}, "before", id="to before from"),
    pytest.param(AGGREGATE, {"period": "custom", "from": "2020-01-01", "to": DAY1}, "at most", id="too long a range"),
    pytest.param(AGGREGATE, {"period": "custom", "from": "0001-01-01", "to": "0001-01-02"}, "calendar", id="year 1"),
    pytest.param(AGGREGATE, {"period": "custom", "from": "9999-12-30", "to": "9999-12-31"}, "calendar", id="year 9999"),
    pytest.param(AGGREGATE, {"f": "nonsense"}, "country==DE", id="a filter without an operator"),
    pytest.param(AGGREGATE, {"f": "hour==2026-03-10T09"}, "cannot filter", id="a filter on hour"),
    pytest.param(AGGREGATE, {"f": "colour==red"}, "cannot filter", id="a filter on an unknown dimension"),
    pytest.param(AGGREGATE, {"f": "country==D\x01E"}, "control", id="a control character in a filter"),
    pytest.param(AGGREGATE, {"f": "page==" + "x" * 10_000}, "2,000", id="a 10,000-character filter value"),
    pytest.param(AGGREGATE, {"f": [f"page!=/{n}" for n in range(11)]}, "at most 10", id="eleven filters"),
    pytest.param(TIMESERIES, {"interval": "week"}, "unknown interval", id="an unknown interval"),
    pytest.param(TIMESERIES, {"interval": "hour", "period": "30d"}, "7 days", id="hours over 30 days"),
    pytest.param(BREAKDOWN, {}, "'property' is required", id="no property"),
    pytest.param(BREAKDOWN, {"property": "all"}, "cannot break down", id="property all"),
    pytest.param(BREAKDOWN, {"property": "hour"}, "cannot break down", id="property hour"),
    pytest.param(BREAKDOWN, {"property": "<img src=x onerror=alert(1)>"}, "cannot break down", id="html property"),
    pytest.param(BREAKDOWN, {"property": "page; DROP TABLE events"}, "cannot break down", id="sql property"),
    pytest.param(BREAKDOWN, {"property": "prop:"}, "cannot break down", id="prop without a key"),
    pytest.param(BREAKDOWN, {"property": "prop:" + "k" * 101}, "cannot break down", id="prop key too long"),
    pytest.param(BREAKDOWN, {"property": "prop:a\x07b"}, "cannot break down", id="prop key with a control"),
    pytest.param(BREAKDOWN, {"property": "page", "sort": "random()"}, "cannot sort", id="an unknown sort"),
    pytest.param(BREAKDOWN, {"property": "page", "order": "up"}, "asc or desc", id="an unknown order"),
    pytest.param(BREAKDOWN, {"property": "page", "limit": "0"}, "'limit'", id="limit 0"),
    pytest.param(BREAKDOWN, {"property": "page", "limit": "1001"}, "'limit'", id="limit over 1000"),
    pytest.param(BREAKDOWN, {"property": "page", "limit": "-5"}, "'limit'", id="a negative limit"),
    pytest.param(BREAKDOWN, {"property": "page", "limit": "1e3"}, "'limit'", id="limit 1e3"),
    pytest.param(BREAKDOWN, {"property": "page", "limit": "\u0663"}, "'limit'", id="an Arabic-Indic digit"),
    pytest.param(BREAKDOWN, {"property": "page", "limit": "9" * 5000}, "'limit'", id="a 5000-digit limit"),
    pytest.param(BREAKDOWN, {"property": "page", "page": "0"}, "'page'", id="page 0"),
    pytest.param(BREAKDOWN, {"property": "page", "page": "two"}, "'page'", id="page two"),
    pytest.param(BREAKDOWN, {"property": "page", "page": "1000001"}, "'page'", id="page over the documented maximum"),
    # The document's enums, formats and integers exclude the empty string: absent is the default, empty a mistake.
    pytest.param(AGGREGATE, {"period": ""}, "'period' is empty", id="an empty period"),
    pytest.param(AGGREGATE, {"period": "custom", "from": "", "to": DAY1}, "'from' is empty", id="an empty from"),
    pytest.param(AGGREGATE, {"to": ""}, "'to' is empty", id="an empty to with a named period"),
    pytest.param(TIMESERIES, {"interval": ""}, "'interval' is empty", id="an empty interval"),
    pytest.param(BREAKDOWN, {"property": "page", "sort": ""}, "'sort' is empty", id="an empty sort"),
    pytest.param(BREAKDOWN, {"property": "page", "order": ""}, "'order' is empty", id="an empty order"),
    pytest.param(BREAKDOWN, {"property": "page", "limit": ""}, "'limit' is empty", id="an empty limit"),
    pytest.param(BREAKDOWN, {"property": "page", "page": ""}, "'page' is empty", id="an empty page"),
    pytest.param(BREAKDOWN, {"property": ""}, "'property' is required", id="an empty property"),
    pytest.param(AGGREGATE, {"f": ""}, "country==DE", id="an empty filter"),
    pytest.param(AGGREGATE, {"f": ["country==DE", ""]}, "country==DE", id="an empty filter beside a good one"),
    pytest.param(TIMESERIES, {"f": "prop:*==x"}, "cannot filter", id="a filter on every property at once"),
    # RFC 3339 full-date only (what `format: date` says), checked with any period.
    pytest.param(
        AGGREGATE, {"period": "custom", "from": "20260310", "to": DAY1}, "YYYY-MM-DD", id="a basic-format day"
    ),
    pytest.param(AGGREGATE, {"period": "custom", "from": "2026-W11-2", "to": DAY1}, "YYYY-MM-DD", id="an ISO week day"),
    pytest.param(AGGREGATE, {"period": "7d", "to": "yesterday"}, "'to' is a day", id="a malformed to with 7d"),
    pytest.param(AGGREGATE, {"from": "2026-02-30"}, "'from' is a day", id="30 February with the default period"),
    pytest.param(AGGREGATE, {"period": "custom", "from": "0000-01-01", "to": DAY1}, "'from' is a day", id="year 0"),
]


@pytest.mark.parametrize(("endpoint", "params", "words"), BAD_INPUT)
def test_every_bad_input_is_a_400_that_says_why(api: Api, endpoint: str, params: dict[str, Any], words: str) -> None:
    asked = {"property": "page", **params} if endpoint == BREAKDOWN and params else params
    assert words in assert_json_error(api.get(endpoint, **asked), 400)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("f=country%3D%3D%ZZ", id="invalid percent-encoding in a filter value"),
        pytest.param("f=page%3D%3D%ff%fe", id="bytes that are not UTF-8"),
        pytest.param("f=page%3D%3D%3Cscript%3E%22%27", id="html in a filter value"),
        pytest.param("f=page%3D%3D%E2%80%AE%F0%9F%92%A5", id="bidi override and emoji"),
        pytest.param("f=page~%3D%25", id="a LIKE wildcard is only a character"),
        pytest.param("unknown=%00&limit=", id="unknown parameters are ignored"),
        pytest.param("%=%&&=&site_id", id="broken pairs"),
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_hostile_query_strings_answer_json_never_500(api: Api, query: str, endpoint: str) -> None:
    response = api.raw(f"{endpoint}?site_id=shop&property=page&{query}")
    assert response.status_code in (200, 400), response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    json.loads(response.text)


def test_a_named_period_ignores_well_formed_days(api: Api) -> None:
    """``from`` and ``to`` are read only for a custom period (the document says so); well-formed, they pass."""
    body = api.get(AGGREGATE, period="7d", **{"from": DAY1, "to": DAY1}).json()
    assert body["period"]["name"] == "7d" and body["period"]["from"] == "2026-03-05"


def test_invalid_percent_encoding_in_the_period_is_a_400(api: Api) -> None:
    response = api.raw(f"{AGGREGATE}?site_id=shop&period=%ZZ%ff")
    assert "unknown period" in assert_json_error(response, 400)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
@pytest.mark.parametrize("path", [*ENDPOINTS, "/api/v1/openapi.json"])
def test_other_methods_are_a_json_405(api: Api, method: str, path: str) -> None:
    response = api.client.request(method, path, params={"site_id": "shop"})
    assert "GET" in assert_json_error(response, 405)
    assert response.headers["allow"] == "GET, HEAD"


def test_head_answers_like_get_without_a_body(api: Api) -> None:
    response = api.client.head(
        AGGREGATE, params={"site_id": "shop"}, headers={"authorization": f"Bearer {api.shop_key}"}
    )
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/api/v1/stats/aggregat", "/api/v1/stats/", "/api/v1/stats/breakdown/page"])
def test_an_unknown_endpoint_is_a_json_404(api: Api, path: str) -> None:
    assert "/api/v1/stats/aggregate" in assert_json_error(api.get(path), 404)


# The OpenAPI document.


def openapi(api: Api) -> dict[str, Any]:
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    document: dict[str, Any] = json.loads(response.text)
    return document


def test_the_openapi_document_lists_every_endpoint_and_parameter(api: Api) -> None:
    document = openapi(api)
    assert document["openapi"] == "3.1.0"
    served = {r.path for r in api.app.routes if isinstance(r, Route) and r.path.startswith("/api/v1/stats/")}
    assert served == set(ENDPOINTS)
    assert set(document["paths"]) == {*ENDPOINTS, CONSENT_LOG_PATH}  # and the consent log export
    assert CONSENT_LOG_PATH in {r.path for r in api.app.routes if isinstance(r, Route)}
    export = document["paths"].pop(CONSENT_LOG_PATH)["get"]
    assert [(p["name"], p["in"], p["required"]) for p in export["parameters"]] == [
        ("site_id", "path", True),
        ("from", "query", True),
        ("to", "query", True),
        ("format", "query", False),
        ("revisions", "query", False),
    ]
    assert {"text/csv", "application/json"} == set(export["responses"]["200"]["content"])
    common = ["site_id", "period", "from", "to", "f"]
    expected = {
        AGGREGATE: common,
        TIMESERIES: [*common, "interval"],
        BREAKDOWN: [*common, "property", "sort", "order", "limit", "page"],
    }
    for path, item in document["paths"].items():
        operation = item["get"]
        assert [parameter["name"] for parameter in operation["parameters"]] == expected[path]
        assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])
        assert all(parameter["in"] == "query" for parameter in operation["parameters"])
    parameters = {p["name"]: p for p in document["paths"][BREAKDOWN]["get"]["parameters"]}
    assert parameters["site_id"]["required"] is True and parameters["property"]["required"] is True
    assert parameters["period"]["schema"]["enum"] == list(PERIODS)
    assert parameters["sort"]["schema"]["enum"] == list(SORT_KEYS)
    dimensions, prop = parameters["property"]["schema"]["anyOf"]
    assert dimensions["enum"] == [name for name in DIMENSIONS if name not in ("all", "hour")]
    assert prop["pattern"].startswith("^prop:")
    interval = next(p for p in document["paths"][TIMESERIES]["get"]["parameters"] if p["name"] == "interval")
    assert interval["schema"]["enum"] == list(INTERVALS)


def test_every_reference_in_the_openapi_document_resolves(api: Api) -> None:
    document = openapi(api)

    def references(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for name, value in node.items():
                if name == "$ref":
                    yield value
                else:
                    yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    found = set(references(document))
    assert found
    for reference in found:
        target: Any = document
        for part in reference.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict)
    assert document["components"]["securitySchemes"]["bearerKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerKey"]["description"],
    }


def test_the_openapi_document_is_valid_openapi_3_1(api: Api) -> None:
    from openapi_spec_validator import validate

    validate(openapi(api))  # raises with the path of the first mistake


def test_the_documented_responses_are_the_ones_served(api: Api) -> None:
    """The keys of each answer are the schema's required properties (the document says what clients get)."""
    schemas = openapi(api)["components"]["schemas"]
    aggregate = api.get(AGGREGATE, **FIRST).json()
    assert set(aggregate) == set(schemas["Aggregate"]["required"])
    assert set(aggregate["results"]["visitors"]) == set(schemas["Metric"]["required"])
    series = api.get(TIMESERIES, **FIRST).json()
    assert set(series) == set(schemas["Timeseries"]["required"])
    assert set(series["results"][0]) == set(schemas["Bucket"]["required"])
    breakdown = api.get(BREAKDOWN, **FIRST, property="page").json()
    assert set(schemas["Breakdown"]["required"]) <= set(breakdown) <= set(schemas["Breakdown"]["properties"])
    assert set(breakdown["results"][0]) == set(schemas["BreakdownRow"]["required"])
    assert set(aggregate["period"]) == set(schemas["Period"]["required"])
