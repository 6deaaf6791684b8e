"""The dashboard in real Chromium: login, periods, filters, breakdowns, exports, settings, shared links,
keyboard, accessibility and a phone-sized screen, over 40 days of realistic traffic.

One gateway and one database serve the whole module: ``bench/dashboard_data.py`` writes 20,000 events
of site ``shop`` (with their rollups) ending on the pinned clock's day, so every panel has rows, the
long tails page and the goals convert. The site's privacy floor is k = 2, the lowest settings accept:
a value is a row only on days it had k visitors or more, and at the default k = 5 these 500 events a
day would name 3 custom events and 17 entry pages in 30 days (10 times the events to name what k = 2
names here, too slow for a browser test); the walk is about the pages, not the floor. Each test
opens its own browser context, already signed in (the session cookie of one login through the form),
and ends with ``Tour.check``: no console error, no uncaught exception, and no request to any host but
the gateway's.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bench.dashboard_data import generate
from gateway import create_app
from gateway.accounts.sessions import SESSION_COOKIE
from gateway.clock import FixedClock
from gateway.storage.db import Database
from gateway.storage.users import add_user, grant
from gateway.web.dashboard_auth import WRONG_LOGIN
from tests.browser.conftest import AXE, SCREENSHOTS, Watched, chromium, screenshot
from tests.conftest import LiveServer, make_settings, site_config
from tests.web.test_dashboard_auth import PASSWORD, PASSWORD_HASH, on_database

pytestmark = [
    pytest.mark.browser,
    pytest.mark.sqlite_only(
        reason="the pages are the same on both stores (tests/web runs them on PostgreSQL); the 20,000 events "
        "behind them come from the bench generator, which writes a SQLite file"
    ),
]
NOW = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)
GOALS = [{"name": "Signup", "event": "Signup"}, {"name": "Pricing", "page": "/pricing"}]
FUNNELS = [{"name": "Sign up", "steps": ["Pricing", "Signup"]}]
OVERVIEW = "/dashboard/shop"
KEY = re.compile(r"cg_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    signed_in: dict[str, Any]  # the storage state of a browser that logged in as "ann" (admin)

    @property
    def origin(self) -> str:
        return urlsplit(self.url).netloc


class Tour:
    """One browser context of the walk: its page's errors and every request any of its pages made."""

    def __init__(self, browser: Any, served: Served, *, signed_in: bool = True, **options: Any) -> None:
        self.served = served
        self.context = browser.new_context(storage_state=served.signed_in if signed_in else None, **options)
        self.requests: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.watched = Watched(self.context)
        self.page = self.watched.page

    def open(self, path: str) -> Any:
        """Open ``path`` and land on it: a page that sends a lost session to the login form fails here."""
        response = self.page.goto(self.served.url + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        assert urlsplit(self.page.url).path == urlsplit(path).path, (path, self.page.url)
        return response

    def check(self, *, statuses: tuple[int, ...] = ()) -> None:
        """No error on any page, and no request to a third party: only the gateway (and data: URLs).

        ``statuses``: error statuses the test asked for (a wrong password's 401), which Chromium
        reports on the console as "Failed to load resource"; nothing else may be there.
        """
        expected = tuple(f"the server responded with a status of {status} " for status in statuses)
        assert [error for error in self.watched.errors if not any(text in error for text in expected)] == []
        assert self.requests, "the tour made requests"
        origin = self.served.origin
        foreign = [url for url in self.requests if not url.startswith("data:") and urlsplit(url).netloc != origin]
        assert foreign == []


OpenTour = Callable[..., Tour]


class _AppOnItsPort:
    """The gateway, built once the server holds its port: ``public_url`` (the start of every shared link the
    settings page shows) is the address the browser reaches, port included."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    deferred = _AppOnItsPort()
    server = LiveServer(deferred)
    site = site_config(goals=GOALS, funnels=FUNNELS, min_visitors=2)
    settings = make_settings(tmp_path_factory.mktemp("dashboard"), site=site, public_url=server.url)
    generate(Path(settings.database), events=20_000, days=40, end=NOW.date(), site_id="shop")
    clock = FixedClock(NOW)

    async def accounts(db: Database) -> None:
        await add_user(db, "ann", PASSWORD_HASH, is_admin=True, now=clock.now())
        await add_user(db, "vic", PASSWORD_HASH, is_admin=False, now=clock.now())
        await grant(db, "vic", "shop", "viewer")

    on_database(settings, accounts)
    deferred.app = create_app(settings, clock=clock)
    with server:
        yield Served(server.url, {})


@pytest.fixture(scope="module")
def browser_and_state(served: Served) -> Iterator[tuple[Any, Served]]:
    """One Chromium for the module, and the session of one login through the form, for every context."""
    for browser in chromium():
        context = browser.new_context()
        page = context.new_page()
        page.goto(served.url + "/login")
        _log_in(page, "ann")
        page.wait_for_url(served.url + "/dashboard")
        state = context.storage_state()
        context.close()
        yield browser, Served(served.url, state)


@pytest.fixture
def tour(browser_and_state: tuple[Any, Served]) -> Iterator[OpenTour]:
    browser, served = browser_and_state
    opened: list[Tour] = []

    def open_tour(**options: Any) -> Tour:
        opened.append(Tour(browser, served, **options))
        return opened[-1]

    yield open_tour
    for started in opened:
        started.context.close()


def _log_in(page: Any, name: str, password: str = PASSWORD) -> None:
    page.locator("#name").fill(name)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Log in").click()


def _panel(page: Any, title: str) -> Any:
    return page.locator("section.panel").filter(has=page.get_by_role("heading", name=title, exact=True))


def _number(text: str) -> int:
    return int(text.strip().replace(",", ""))


def _query(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def _header(page: Any) -> str:
    return str(page.locator(".site-title .muted").inner_text())


def _visitors(page: Any) -> int:
    metric = page.locator(".metric").filter(has_text="Unique visitors").locator(".metric-value")
    return _number(metric.inner_text())


def test_login_shows_a_wrong_password_then_lands_on_the_page_asked_for(tour: OpenTour) -> None:
    walk = tour(signed_in=False)
    page = walk.page
    page.goto(walk.served.url + "/dashboard/shop/goals?period=7d")
    assert urlsplit(page.url).path == "/login" and _query(page)["next"] == ["/dashboard/shop/goals?period=7d"]
    _log_in(page, "vic", "not the password")
    page.locator(".notice-error").wait_for()
    assert WRONG_LOGIN in page.locator(".notice-error").inner_text()
    assert page.locator("#name").input_value() == "vic"  # kept for the next try
    screenshot(page, "dashboard-login-error")
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(walk.served.url + "/dashboard/shop/goals?period=7d")
    assert page.get_by_role("heading", name="Goals").is_visible()
    assert page.locator(".who").inner_text() == "vic"
    walk.check(statuses=(401,))


def test_the_overview_and_its_periods(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    walk.open(OVERVIEW)
    assert _header(page).startswith("Last 30 days · 2026-03-02 to 2026-03-31")
    labels = page.locator(".metric-label").all_text_contents()  # CSS upper-cases them
    assert labels == ["Unique visitors", "Visits", "Pageviews", "Views per visit", "Bounce rate", "Visit duration"]
    assert _visitors(page) > 1_000
    assert page.locator("svg.chart").is_visible() and page.locator("svg.chart polyline, svg.chart path").count() >= 1
    for title in ("Pages", "Sources", "Locations", "Devices", "Events"):
        assert _panel(page, title).locator("tbody tr").count() >= 5, title
    screenshot(page, "dashboard-overview")
    thirty_days = _visitors(page)

    page.locator(".periods").get_by_role("link", name="Last 7 days").click()
    page.wait_for_url(re.compile(r"period=7d"))
    assert _header(page).startswith("Last 7 days · 2026-03-25 to 2026-03-31")
    assert _visitors(page) < thirty_days

    page.locator("input[name=from]").fill("2026-03-10")
    page.locator("input[name=to]").fill("2026-03-12")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"period=custom"))
    assert _query(page)["from"] == ["2026-03-10"] and _query(page)["to"] == ["2026-03-12"]
    assert "2026-03-10 to 2026-03-12" in _header(page)
    screenshot(page, "dashboard-custom-range")
    walk.check()


def test_rows_filter_the_dashboard_and_the_chips_take_them_off(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    walk.open(OVERVIEW)
    everyone = _visitors(page)
    country = _panel(page, "Locations").locator("tbody a").first
    code = country.inner_text()
    country.click()
    page.wait_for_url(re.compile(r"[?&]f="))
    assert _query(page)["f"] == [f"country=={code}"]
    assert page.locator(".chip").count() == 1 and code in page.locator(".chip").inner_text()
    in_country = _visitors(page)
    assert 0 < in_country < everyone

    browser_row = _panel(page, "Devices").locator("tbody a").first
    family = browser_row.inner_text()
    browser_row.click()
    page.wait_for_function("() => document.querySelectorAll('.chip').length === 2")
    assert sorted(_query(page)["f"]) == sorted([f"country=={code}", f"browser=={family}"])
    assert _visitors(page) < in_country
    screenshot(page, "dashboard-two-filters")

    page.get_by_role("link", name=re.compile(r"^Remove filter: .*country", re.IGNORECASE)).click()
    page.wait_for_function("() => document.querySelectorAll('.chip').length === 1")
    assert _query(page)["f"] == [f"browser=={family}"]

    page.get_by_role("link", name="Clear all").click()
    page.wait_for_function("() => document.querySelectorAll('.chip').length === 0")
    assert "f" not in _query(page) and _visitors(page) == everyone
    walk.check()


def test_a_panel_tab_and_its_details_sort_and_page(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    walk.open(OVERVIEW)
    pages = _panel(page, "Pages")
    pages.get_by_role("link", name="Entry page", exact=True).click()
    page.wait_for_url(re.compile(r"pages=entry_page"))
    assert _panel(page, "Pages").locator("thead th").first.text_content() == "Entry page"
    _panel(page, "Pages").get_by_role("link", name=re.compile(r"^Details")).click()
    page.wait_for_url(re.compile(r"/breakdown/entry_page"))
    assert page.get_by_role("heading", name="Entry page", exact=True).is_visible()

    def pageviews() -> list[int]:
        cells = page.locator("table.full tbody tr:not(.other-row) td.num:nth-of-type(3)").all_inner_texts()
        return [_number(text) for text in cells]

    header = page.locator("table.full thead th").filter(has_text="Pageviews")
    header.get_by_role("link").click()
    page.wait_for_url(re.compile(r"sort=pageviews"))
    assert header.get_attribute("aria-sort") == "descending"
    first = pageviews()
    assert len(first) > 10 and first == sorted(first, reverse=True)
    header.get_by_role("link").click()
    page.wait_for_url(re.compile(r"order=asc"))
    assert header.get_attribute("aria-sort") == "ascending"
    again = pageviews()
    assert again == sorted(again) and again[0] <= first[-1]
    screenshot(page, "dashboard-breakdown-sorted")

    pager = page.locator(".pager")
    assert pager.count() == 1, "the entry pages run over 100 rows: they page"
    assert "Page 1 of" in pager.inner_text()
    pager.get_by_role("link", name=re.compile("Next")).click()
    page.wait_for_url(re.compile(r"page=2"))
    assert "Page 2 of" in page.locator(".pager").inner_text()
    assert _query(page)["sort"] == ["pageviews"] and _query(page)["order"] == ["asc"]  # the sort is kept
    walk.check()


def test_csv_and_zip_exports_download_what_the_tables_show(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    walk.open(OVERVIEW)
    pages = _panel(page, "Pages")
    first_row = pages.locator("tbody tr").first
    label, visitors = first_row.locator("th a").inner_text(), _number(first_row.locator("td").first.inner_text())
    with page.expect_download() as started:
        pages.get_by_role("link", name="CSV", exact=True).click()
    download = started.value
    assert download.suggested_filename == "shop-page-2026-03-02-2026-03-31.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0][:2] == ["page", "visitors"]
    assert rows[1][:2] == [label, str(visitors)]

    with page.expect_download() as started:
        page.get_by_role("link", name=re.compile(r"^Export everything")).click()
    archive = zipfile.ZipFile(started.value.path())
    assert {"timeseries.csv", "page.csv"} <= set(archive.namelist())
    assert archive.read("page.csv").decode("utf-8").splitlines()[1].startswith(f"{label},{visitors},")
    walk.check()


def test_realtime_refreshes_itself_and_goals_show_the_funnel(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    walk.open(OVERVIEW)
    tabs = page.get_by_role("navigation", name="Shop pages")
    tabs.get_by_role("link", name="Realtime").click()
    page.wait_for_url(re.compile(r"/realtime"))
    assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "30"
    assert page.get_by_role("heading", name="Visitors in the last 5 minutes").is_visible()

    page.get_by_role("navigation", name="Shop pages").get_by_role("link", name="Goals").click()
    page.wait_for_url(re.compile(r"/goals"))
    goals = page.locator("table.full tbody th").all_inner_texts()
    assert [name.split(" (")[0] for name in goals] == ["Signup", "Pricing"]
    assert _number(page.locator("table.full tbody tr").first.locator("td").first.inner_text()) > 0
    funnel = page.locator("section").filter(has=page.get_by_role("heading", name="Funnel: Sign up"))
    steps = funnel.locator("ol.funnel li")
    assert steps.count() == 2 and "dropped off" in steps.nth(1).inner_text()
    screenshot(page, "dashboard-goals")
    walk.check()


def test_reports_settings_and_a_shared_link_opened_without_an_account(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    walk.open("/dashboard/shop/consent")
    assert page.get_by_role("heading", name="Shop", level=1).is_visible()
    walk.open("/dashboard/shop/cookies")
    assert page.get_by_role("heading", name="Shop", level=1).is_visible()

    walk.open("/dashboard/shop/settings")
    page.locator("form[action$='/settings/keys'] input[name=name]").fill("weekly report")
    page.get_by_role("button", name="Create a key").click()
    page.locator("#new-key").wait_for()
    key = page.locator("#new-key").input_value()
    assert KEY.fullmatch(key)
    screenshot(page, "dashboard-settings-new-key")
    walk.open("/dashboard/shop/settings")
    assert page.locator("#new-key").count() == 0 and key not in page.content()  # shown once
    assert page.get_by_role("row", name=re.compile("weekly report")).locator("code").inner_text() == key[:8] + "…"

    page.locator("form[action$='/settings/links'] input[name=label]").fill("for the board")
    page.get_by_role("button", name="Create a link").click()
    page.locator("#new-link").wait_for()
    link = page.locator("#new-link").input_value()
    assert link.startswith(walk.served.url + "/share/")
    walk.check()

    stranger = tour(signed_in=False)
    shared = stranger.page
    response = shared.goto(link)
    assert response is not None and response.status == 200
    assert _visitors(shared) > 1_000 and shared.locator("svg.chart").is_visible()
    assert shared.locator("nav.account").count() == 0 and shared.locator(".site-switcher").count() == 0
    tabs = shared.get_by_role("navigation", name="Shop pages").get_by_role("link").all_inner_texts()
    assert tabs == ["Overview", "Goals", "Realtime"]
    assert SESSION_COOKIE not in {cookie["name"] for cookie in stranger.context.cookies()}
    screenshot(shared, "dashboard-shared-link")
    stranger.check()


def test_log_out_ends_the_session(tour: OpenTour) -> None:
    """Its own login: sessions live on the server, and ending the module's shared one would sign out the
    tests that run after this one."""
    walk = tour(signed_in=False)
    page = walk.page
    walk.open("/login")
    _log_in(page, "ann")
    page.wait_for_url(walk.served.url + "/dashboard")
    assert SESSION_COOKIE in {cookie["name"] for cookie in walk.context.cookies()}
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login$"))
    assert SESSION_COOKIE not in {cookie["name"] for cookie in walk.context.cookies()}
    page.goto(walk.served.url + "/dashboard")
    assert urlsplit(page.url).path == "/login" and _query(page)["next"] == ["/dashboard"]
    walk.check()


def test_no_page_of_the_walk_requests_a_third_party(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    for path in (
        "/dashboard",
        OVERVIEW,
        "/dashboard/shop/breakdown/source",
        "/dashboard/shop/goals",
        "/dashboard/shop/realtime",
        "/dashboard/shop/consent",
        "/dashboard/shop/cookies",
        "/dashboard/shop/cookies/classify?name=_ga",
        "/dashboard/shop/settings",
        "/admin/users",
    ):
        walk.open(path)
        page.wait_for_load_state("networkidle")
    assert any(url.endswith("/dashboard/static/dashboard.css") for url in walk.requests)
    walk.check()


_FOCUSED = """() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  const kind = element.closest('.periods') ? 'period'
    : element.closest('.chip') ? 'chip'
    : element.closest('.panel tbody') ? 'row' : null;
  return {kind, text: element.textContent.trim(), focusVisible: element.matches(':focus-visible'),
          outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};
}"""


def test_the_keyboard_reaches_periods_rows_and_chips_with_a_visible_focus(tour: OpenTour) -> None:
    walk = tour()
    page = walk.page
    walk.open(OVERVIEW)
    walk.open(_panel(page, "Locations").locator("tbody a").first.get_attribute("href"))  # a chip to reach
    assert page.locator(".chip").count() == 1
    reached: dict[str, dict[str, Any]] = {}
    for _ in range(120):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        if focused["kind"] and focused["kind"] not in reached:
            reached[focused["kind"]] = focused
            if focused["kind"] == "row":
                screenshot(page, "dashboard-keyboard-focus")
        if len(reached) == 3:
            break
    assert set(reached) == {"period", "row", "chip"}, reached
    for kind, focused in reached.items():
        assert focused["focusVisible"], kind
        assert focused["outline"] != "none" and focused["width"] >= 2, (kind, focused)
    walk.check()


def _axe_violations(page: Any) -> list[str]:
    """Serious and critical axe-core findings. The dashboard's CSP runs only nonce'd scripts, so
    ``add_script_tag`` would be refused; ``page.evaluate`` runs axe's source through the DevTools
    protocol, which the CSP does not govern, and the page keeps its real CSP for the audit."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed: `make test` installs it from the npm registry into .cache/npm")
    if not page.evaluate("() => typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => JSON.stringify(n.target)).join(' '))"
    )
    return list(results)


def test_axe_finds_no_serious_violations(tour: OpenTour) -> None:
    walk = tour()
    for path in (OVERVIEW, "/dashboard/shop/breakdown/page", "/dashboard/shop/settings"):
        walk.open(path)
        assert _axe_violations(walk.page) == [], path
    walk.check()
    stranger = tour(signed_in=False)
    stranger.open("/login")
    assert _axe_violations(stranger.page) == []
    stranger.check()


def test_a_phone_sized_screen_does_not_scroll_sideways(tour: OpenTour) -> None:
    # Not ``is_mobile``: a mobile viewport zooms out to fit a too-wide page, and innerWidth grows with it.
    walk = tour(viewport={"width": 390, "height": 844})
    page = walk.page
    walk.open(OVERVIEW)
    width, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    screenshot(page, "dashboard-overview-phone")
    assert inner == 390 and width <= inner, f"the page is {width} px wide on a {inner} px screen"
    page.screenshot(path=str(SCREENSHOTS / "dashboard-overview-phone-full.png"), full_page=True)
    walk.check()
