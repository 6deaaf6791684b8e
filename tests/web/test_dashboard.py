"""The site dashboard on a real uvicorn: figures, filters in the URL, breakdowns, exports, realtime,
goals, access per site, and hostile strings from events rendered as text.

The traffic is the hand-worked day of tests/storage/test_rollups.py; the site's privacy floor is
k = 2, so its 3 visitors show while single-visitor rows fold into "(other)". A test that reads figures
of one visitor adds ordinary visitors until its cells hold k, or runs on ``exact_site`` (k = 1, a value
settings refuse: the floor then changes nothing) when the hand-worked figures are the point.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.clock import FixedClock
from gateway.ingest.event import AnonymousEvent
from gateway.storage.events import insert_events
from gateway.storage.rollups import rebuild_dirty
from gateway.storage.store import Store
from tests.conftest import make_settings, site_config
from tests.storage.test_rollups import AFTER_MIDNIGHT, FIRST_DAY, at, event
from tests.web.test_dashboard_auth import Dashboard, on_database

pytestmark = pytest.mark.integration
DAY1 = {"period": "custom", "from": "2026-03-10", "to": "2026-03-10"}
HOSTILE_PATH = "/<script>alert(1)</script>?q=' OR 1=1 --"
FORMULA_PATH = '=HYPERLINK("http://evil.example")'


class SiteDashboard(Dashboard):
    def __init__(self, tmp_path: Path, clock: FixedClock, start: Any, *, k: int = 2) -> None:
        """``k``: shop's ``min_visitors``; 1 (which settings refuse) shows the hand-worked figures unfloored."""
        goals = [{"name": "Signup", "event": "signup"}, {"name": "Pricing", "page": "/pricing*"}]
        funnels = [{"name": "Sign up", "steps": ["Pricing", "Signup"]}]
        sites = {
            "shop": site_config(min_visitors=max(k, 2), goals=goals, funnels=funnels),
            "blog": site_config(name="Blog", origins=["https://blog.example.com"], min_visitors=2),
        }
        self.settings = make_settings(tmp_path, sites=sites)
        if k < 2:
            shop = replace(self.settings.sites["shop"], min_visitors=k)
            self.settings = replace(self.settings, sites={**self.settings.sites, "shop": shop})
        self.clock = clock
        self.server = start(create_app(self.settings, clock=clock))

    def store(self, *events: AnonymousEvent) -> None:
        async def work(db: Store) -> None:
            await db.write(lambda c: insert_events(c, list(events)))
            await db.write(lambda c: rebuild_dirty(c, zones=self.settings.zones))

        on_database(self.settings, work)


def _signed_in(dashboard: SiteDashboard) -> Iterator[tuple[SiteDashboard, httpx.Client]]:
    dashboard.add_user("ann", roles={"shop": "viewer"})
    dashboard.store(*FIRST_DAY, *AFTER_MIDNIGHT)
    with dashboard.client() as client:
        assert dashboard.login(client, "ann").status_code == 303
        yield dashboard, client


@pytest.fixture
def site(tmp_path: Path, clock: FixedClock, live_server: Any) -> Iterator[tuple[SiteDashboard, httpx.Client]]:
    yield from _signed_in(SiteDashboard(tmp_path, clock, live_server))


@pytest.fixture
def exact_site(tmp_path: Path, clock: FixedClock, live_server: Any) -> Iterator[tuple[SiteDashboard, httpx.Client]]:
    """The same site and traffic with k = 1: every figure is the hand-worked one."""
    yield from _signed_in(SiteDashboard(tmp_path, clock, live_server, k=1))


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_overview_shows_the_top_line_chart_and_panels(site: tuple[SiteDashboard, httpx.Client]) -> None:
    _, client = site
    page = client.get("/dashboard/shop", params=DAY1)
    assert page.status_code == 200, page.text
    words = text_of(page.text)
    for expected in ("Unique visitors 3", "Visits 4", "Pageviews 7", "Views per visit 1.75", "Bounce rate 25.0%",
                     "Visit duration 12m 30s"):  # fmt: skip
        assert expected in words
    assert '<svg class="chart"' in page.text and "2026-03-10 09:00: &lt; 2 visitors" in page.text  # 1 visitor < k
    assert "2026-03-10 03:00: &lt; 2 visitors" in page.text  # an hour of nobody reads the same
    assert "(other)" in words  # the single-visitor pages fold
    assert page.headers["x-frame-options"] == "DENY" and "nonce-" in page.headers["content-security-policy"]
    assert "style=" not in page.text  # the CSP refuses inline styles


def test_a_row_filters_the_whole_dashboard_and_the_filter_lives_in_the_url(
    site: tuple[SiteDashboard, httpx.Client],
) -> None:
    """d enters on /pricing and e on /blog, so each entry page of the day has k = 2 visitors (nothing is
    withheld) and the day without / holds 3 (b, d, e): a filter leaving out fewer than k would be ignored."""
    dashboard, client = site
    dashboard.store(event(at("2026-03-10", "11:00"), "d", "/pricing"), event(at("2026-03-10", "11:30"), "e", "/blog"))
    page = client.get("/dashboard/shop", params={**DAY1, "pages": "entry_page"})
    link = re.search(r'href="([^"]*f=entry_page%3D%3D%2F&[^"]*)"', page.text.replace("&amp;", "&"))
    assert link, "the / row links to a filter"
    filtered = client.get(link.group(1))
    words = text_of(filtered.text)
    assert "entry page is /" in words and "Unique visitors 2" in words  # visits 1 and 4 entered on /
    assert "pages=entry_page" in link.group(1)  # the chosen tab is kept
    removed = re.search(r'href="([^"]*)" aria-label="Remove filter', filtered.text)
    assert removed and "f=" not in removed.group(1)


def test_a_breakdown_page_sorts_and_exports(site: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, client = site
    dashboard.store(*(event(at("2026-03-10", "11:00"), v, "/pricing") for v in ("d", "e")))
    page = client.get("/dashboard/shop/breakdown/page", params={**DAY1, "sort": "value", "order": "asc"})
    assert page.status_code == 200
    assert text_of(page.text).index("/ 2") < text_of(page.text).index("/pricing 3")
    exported = client.get("/dashboard/shop/export/page.csv", params=DAY1)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["page", "visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"]
    assert rows[1][:2] == ["/pricing", "3"] and rows[-1][0] == "(other)"


def test_export_all_is_a_zip_of_every_breakdown_and_the_series(site: tuple[SiteDashboard, httpx.Client]) -> None:
    """d and e sign up for pro too: a property key is exported only when one of its values had k visitors
    on a day, and a and c alone leave plan's values at one visitor each."""
    dashboard, client = site
    dashboard.store(
        *(event(at("2026-03-10", "11:00"), v, "/pricing", name="signup", props={"plan": "pro"}) for v in ("d", "e"))
    )
    response = client.get("/dashboard/shop/export.zip", params=DAY1)
    assert response.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert {"timeseries.csv", "page.csv", "country.csv", "utm_campaign.csv", "prop-plan.csv"} <= set(names)


def test_hostile_strings_render_as_text_and_never_run_in_a_spreadsheet(
    site: tuple[SiteDashboard, httpx.Client],
) -> None:
    dashboard, client = site
    hostile = [event(at("2026-03-10", "12:00"), v, HOSTILE_PATH) for v in ("h1", "h2")]
    formula = [event(at("2026-03-10", "12:30"), v, FORMULA_PATH) for v in ("h3", "h4")]
    dashboard.store(*hostile, *formula)
    page = client.get("/dashboard/shop/breakdown/page", params=DAY1)
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    exported = client.get("/dashboard/shop/export/page.csv", params=DAY1)
    assert "'=HYPERLINK(" in exported.text and ",=HYPERLINK" not in exported.text and '"=HYPERLINK' not in exported.text


def test_a_goal_of_one_visitor_is_withheld(site: tuple[SiteDashboard, httpx.Client]) -> None:
    """A goal is its view plus one condition, a day cell like any other: under k visitors it reads "< k"."""
    _, client = site
    words = text_of(client.get("/dashboard/shop/goals", params=DAY1).text)
    assert "Signup (Event signup) &lt; 2 &lt; 2 –" in words  # signup: only visitor a on the 10th, no rate


def test_goals_and_funnels(exact_site: tuple[SiteDashboard, httpx.Client]) -> None:
    """The hand-worked figures of both days, at k = 1: each day's signups are one visitor."""
    _, client = exact_site
    both = {"period": "custom", "from": "2026-03-10", "to": "2026-03-11"}
    words = text_of(client.get("/dashboard/shop/goals", params=both).text)
    assert "Signup (Event signup) 2 3 50.0%" in words
    assert "Funnel: Sign up" in words and "3 visits · 100.0%" in words


def test_realtime_refreshes_itself_and_withholds_a_lone_visitor(site: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, client = site
    dashboard.store(event(at("2026-03-10", "09:28"), "live", "/live"))  # the clock says 09:30
    page = client.get("/dashboard/shop/realtime")
    assert '<meta http-equiv="refresh" content="30">' in page.text
    assert "&lt; 2" in text_of(page.text)
    assert "/live" not in page.text  # the lone visitor's page is not named either


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"period": "fortnight"}, "unknown period"),
        ({"period": "custom", "from": "2026-03-10"}, "needs &#39;to&#39;"),
        ({"f": "colour==red"}, "cannot filter by"),
        ({"f": "country=DE"}, "a filter reads like"),
        ({"interval": "hour", "period": "30d"}, "hourly buckets cover at most 7 days"),
    ],
)
def test_a_bad_view_is_a_readable_400(
    site: tuple[SiteDashboard, httpx.Client], query: dict[str, str], message: str
) -> None:
    _, client = site
    page = client.get("/dashboard/shop", params=query)
    assert page.status_code == 400 and message in page.text


def test_every_site_page_is_404_for_a_site_the_user_has_no_role_on(site: tuple[SiteDashboard, httpx.Client]) -> None:
    _, client = site
    for path in ("", "/breakdown/page", "/export/page.csv", "/export.zip", "/realtime", "/goals"):
        for site_id in ("blog", "nope"):
            response = client.get(f"/dashboard/{site_id}{path}")
            assert response.status_code == 404, (site_id, path)
            assert "Blog" not in response.text or site_id != "blog"
    assert client.get("/dashboard/shop/breakdown/colour").status_code == 404


def test_the_pages_need_a_login(site: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, _ = site
    with dashboard.client() as anonymous:
        response = anonymous.get("/dashboard/shop/export.zip")
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
