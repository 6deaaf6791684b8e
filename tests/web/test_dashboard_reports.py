"""The consent report, the cookie report and the classify page on a real uvicorn.

The consent traffic is counted by hand below, under a privacy floor of k = 3 decisions:

    2026-03-09  FR desktop: accept_all, accept_all, reject_all, custom (functional + analytics)
    2026-03-10  DE mobile: accept_all; US mobile: gpc (functional only); FR desktop: a withdrawal
    impressions: 03-09 FR desktop 8; 03-10 DE mobile 3, US mobile 1 (12 in all)

The floor applies per day to people who decided: the 10th (2 people) is under it and adds nothing
to any figure. So the two days publish the 9th: 4 decisions by 4 people of 12 impressions (33.3 %):
accept all 2 (50.0 %), reject all and custom 1 each (25.0 %), GPC 0.0 %; functional allowed by 3
(75.0 %), analytics by 3 (75.0 %), advertising by 2 (50.0 %); the withdrawal (on the 10th) reads
"< 3". France (4) shows; Germany and the US are nowhere, not even in "(other)".
"""

from __future__ import annotations

import html
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway import create_app
from gateway.clock import FixedClock
from gateway.consent.records import ConsentRecord
from gateway.settings import settings_from_dict
from gateway.stats.consent import ConsentReport, Tally, consent_buckets, fold_day
from gateway.stats.period import Period
from gateway.storage.consent_log import append_record
from gateway.storage.consent_report import ConsentCell, ImpressionCount, add_impressions
from gateway.storage.cookie_report import CookieTally, add_cookie_tallies
from gateway.storage.store import Store
from gateway.web.dashboard_reports import human_duration, rule_toml, toml_string
from tests.conftest import make_settings, site_config
from tests.web.test_dashboard import text_of
from tests.web.test_dashboard_auth import Dashboard, Start, on_database

pytestmark = pytest.mark.integration
TWO_DAYS = {"period": "custom", "from": "2026-03-09", "to": "2026-03-10"}
MARCH_10 = {"period": "custom", "from": "2026-03-10", "to": "2026-03-10"}
ALL = {"functional": True, "analytics": True, "advertising": True}
NONE = {"functional": False, "analytics": False, "advertising": False}
FUNCTIONAL = {"functional": True, "analytics": False, "advertising": False}
FUNCTIONAL_ANALYTICS = {"functional": True, "analytics": True, "advertising": False}
HOSTILE = '<script>alert("x")</script>\n\\\x7f'
TWO_YEARS = 2 * 365 * 86400


def decision(when: str, method: str, categories: dict[str, bool], country: str, device: str, n: int) -> ConsentRecord:
    return ConsentRecord(
        consent_id=f"visitor-{n}",
        site_id="shop",
        recorded_at=datetime.fromisoformat(f"{when}+00:00"),
        method=method,
        policy_revision=1,
        banner_hash="a" * 64,
        categories=categories,  # type: ignore[arg-type]
        services={},
        gpc=method == "gpc",
        country=country,
        device=device,
    )


RECORDS = [
    decision("2026-03-09T08:00", "accept_all", ALL, "FR", "desktop", 1),
    decision("2026-03-09T09:00", "accept_all", ALL, "FR", "desktop", 2),
    decision("2026-03-09T10:00", "reject_all", NONE, "FR", "desktop", 3),
    decision("2026-03-09T11:00", "custom", FUNCTIONAL_ANALYTICS, "FR", "desktop", 4),
    decision("2026-03-10T08:00", "accept_all", ALL, "DE", "mobile", 5),
    decision("2026-03-10T08:30", "gpc", FUNCTIONAL, "US", "mobile", 6),
    decision("2026-03-10T09:00", "withdraw", NONE, "FR", "desktop", 1),
]
IMPRESSIONS = [
    ImpressionCount("shop", date(2026, 3, 9), "FR", "desktop", 8),
    ImpressionCount("shop", date(2026, 3, 10), "DE", "mobile", 3),
    ImpressionCount("shop", date(2026, 3, 10), "US", "mobile", 1),
]


def tally(name: str, times_set: int, *, category: str | None = None, longest: int | None = None) -> CookieTally:
    first = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return CookieTally("shop", name, category, times_set, times_set // 2, 1, longest, first, first + timedelta(days=8))


class ReportDashboard(Dashboard):
    def __init__(self, tmp_path: Path, clock: FixedClock, start: Start) -> None:
        sites = {
            "shop": site_config(min_visitors=3),
            "blog": site_config(name="Blog", origins=["https://blog.example.com"]),
        }
        self.settings = make_settings(tmp_path, sites=sites)
        self.clock = clock
        self.server = start(create_app(self.settings, clock=clock))

    def fill(self) -> None:
        async def work(db: Store) -> None:
            for record in RECORDS:
                await append_record(db, record)
            await add_impressions(db, IMPRESSIONS)
            await add_cookie_tallies(
                db,
                [
                    tally("_ga", 40, category="analytics", longest=TWO_YEARS),
                    tally("shop_theme", 9, category="functional", longest=365 * 86400),
                    tally("mystery", 5, longest=30 * 86400),
                    tally(HOSTILE, 2, longest=TWO_YEARS),
                    tally("sid", 70),
                ],
            )

        on_database(self.settings, work)


@pytest.fixture
def reports(tmp_path: Path, clock: FixedClock, live_server: Start) -> Iterator[tuple[ReportDashboard, httpx.Client]]:
    dashboard = ReportDashboard(tmp_path, clock, live_server)
    dashboard.add_user("ann", roles={"shop": "viewer"})
    dashboard.add_user("vic", roles={"blog": "owner"})
    dashboard.fill()
    with dashboard.client() as client:
        assert dashboard.login(client, "ann").status_code == 303
        yield dashboard, client


def test_the_consent_top_line_matches_the_figures_counted_by_hand(
    reports: tuple[ReportDashboard, httpx.Client],
) -> None:
    _, client = reports
    page = client.get("/dashboard/shop/consent", params=TWO_DAYS)
    assert page.status_code == 200, page.text
    words = text_of(page.text)
    for expected in (
        "Banner impressions 12",
        "Decisions 4",
        "Decision rate 33.3%",
        "Accept all 50.0%",
        "Reject all 25.0%",
        "Custom 25.0%",
        "GPC 0.0%",
        "Withdrawals &lt; 3",
        "Functional 75.0%",
        "Analytics 75.0%",
        "Advertising 50.0%",
    ):
        assert expected in words, expected
    assert 'aria-current="page">Consent' in page.text  # the site tabs, with this page current
    assert "style=" not in page.text and "nonce-" in page.headers["content-security-policy"]


def test_small_countries_and_devices_fold_into_other(reports: tuple[ReportDashboard, httpx.Client]) -> None:
    _, client = reports
    words = text_of(client.get("/dashboard/shop/consent", params=TWO_DAYS).text)
    # FR: 4 decisions, 2 accept all; functional 3/4, analytics 3/4, advertising 2/4.
    assert "FR 4 50.0% 75.0% 75.0% 50.0%" in words
    # DE + US decided on the 10th, a day of 2 people: not even an "(other)" of 2.
    page = client.get("/dashboard/shop/consent", params=TWO_DAYS).text
    assert "other-row" not in page and " DE " not in words and " US " not in words
    assert "desktop 4 50.0%" in words and " mobile " not in words


def test_a_bucket_under_the_floor_is_a_gap_and_a_thin_period_is_withheld(
    reports: tuple[ReportDashboard, httpx.Client],
) -> None:
    _, client = reports
    page = client.get("/dashboard/shop/consent", params=TWO_DAYS)
    assert "2026-03-09: functional 75.0%, analytics 75.0%, advertising 50.0% of 4 decisions" in page.text
    assert "2026-03-10: &lt; 3 decisions" in page.text
    assert '<svg class="chart"' in page.text
    thin = text_of(client.get("/dashboard/shop/consent", params=MARCH_10).text)
    assert "&lt; 3 consent decisions" in thin
    assert "Decisions 2" not in thin and "50.0%" not in thin and "(other) 2" not in thin  # no table either
    monthly = client.get("/dashboard/shop/consent", params={**TWO_DAYS, "interval": "month"})
    assert "2026-03: functional 75.0%, analytics 75.0%, advertising 50.0% of 4 decisions" in monthly.text


def test_filters_do_not_apply_and_the_page_says_so(reports: tuple[ReportDashboard, httpx.Client]) -> None:
    _, client = reports
    page = client.get("/dashboard/shop/consent", params={**TWO_DAYS, "f": "country==DE"})
    words = text_of(page.text)
    assert "Filters do not apply to the consent report" in words and "Decisions 4" in words
    assert "Filters do not apply" not in text_of(client.get("/dashboard/shop/consent", params=TWO_DAYS).text)


def test_the_cookie_report_lists_unknown_cookies_first_with_a_classify_link(
    reports: tuple[ReportDashboard, httpx.Client],
) -> None:
    _, client = reports
    page = client.get("/dashboard/shop/cookies")
    assert page.status_code == 200, page.text
    names = [html.unescape(name) for name in re.findall(r'<th scope="row"><code>(.*?)</code></th>', page.text, re.S)]
    assert names == ["sid", "mystery", HOSTILE, "_ga", "shop_theme"]  # unknown by times set, then known
    words = text_of(page.text)
    # k = 3: a count under it, here "capped 1" and "blocked 2", reads "< 3".
    assert "_ga analytics Google 40 20 &lt; 3 2 years 2026-03-01 12:00 2026-03-09 12:00" in words
    assert "shop_theme functional Shop 9 4 &lt; 3 1 year" in words
    assert "mystery unknown Classify – 5 &lt; 3 &lt; 3 1 month" in words
    assert "so no row is folded" in words
    assert len(re.findall(r">Classify</a>", page.text)) == 3
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


def test_classify_writes_a_toml_block_the_settings_accept_even_for_a_hostile_name(
    reports: tuple[ReportDashboard, httpx.Client], tmp_path: Path
) -> None:
    _, client = reports
    listing = client.get("/dashboard/shop/cookies").text
    links = [html.unescape(link) for link in re.findall(r'<a href="([^"]*/cookies/classify\?[^"]*)">Classify', listing)]
    hostile_link = next(link for link in links if "script" in link)
    page = client.get(hostile_link)
    assert page.status_code == 200, page.text
    assert "<script>alert" not in page.text and "unknown" in text_of(page.text)
    assert "2 years" in text_of(page.text)  # what the middleware saw it ask for
    assert 'value="730d"' in page.text  # suggested: the longest lifetime asked
    assert 'href="https://github.com/search?type=code&amp;q=repo%3Ajkwakman%2FOpen-Cookie-Database' in page.text
    assert 'rel="noreferrer"' in page.text and "this page writes nothing" in text_of(page.text)

    vendor, purpose = 'Acme "Ads"\ninc', "tracks \\ things"
    form = {"name": HOSTILE, "category": "advertising", "lifetime": "13mo", "vendor": vendor, "purpose": purpose}
    result = client.get("/dashboard/shop/cookies/classify", params=form)
    found = re.search(r'<pre class="toml"><code>(.*?)</code></pre>', result.text, re.S)
    assert found, result.text
    assert "<script>alert" not in result.text
    block = html.unescape(found.group(1))
    assert block.startswith("[[sites.shop.cookies]]\n")
    [entry] = tomllib.loads(block)["sites"]["shop"]["cookies"]
    assert entry == {"name": HOSTILE, "category": "advertising", "lifetime": "13mo", "vendor": vendor.strip(),
                     "purpose": purpose}  # fmt: skip
    settings = settings_from_dict(
        {"secret_keys": ["a-test-secret-key"], "database": str(tmp_path / "other.sqlite3"),
         "sites": {"shop": site_config(cookies=[entry])}},
        source="pasted",
    )  # fmt: skip
    [rule] = settings.sites["shop"].cookie_rules
    assert (rule.name, rule.category, str(rule.lifetime), rule.vendor) == (HOSTILE, "advertising", "13mo", vendor)
    assert "consent-gateway serve" in text_of(result.text)


def test_classify_shows_what_the_catalog_says_and_refuses_a_bad_lifetime(
    reports: tuple[ReportDashboard, httpx.Client],
) -> None:
    _, client = reports
    words = html.unescape(text_of(client.get("/dashboard/shop/cookies/classify", params={"name": "_ga"}).text))
    assert "Category analytics" in words and "the exact name '_ga' in the cookie catalog" in words
    assert "Declared lifetime 2 years ( 2y ); capped to 13 months on this site" in words and "Vendor Google" in words
    words = html.unescape(text_of(client.get("/dashboard/shop/cookies/classify", params={"name": "shop_theme"}).text))
    assert "this site's rules" in words
    bad = client.get(
        "/dashboard/shop/cookies/classify", params={"name": "mystery", "category": "analytics", "lifetime": "forever"}
    )
    assert bad.status_code == 200 and "Lifetime: expected a lifetime" in text_of(bad.text)
    assert '<pre class="toml">' not in bad.text
    assert client.get("/dashboard/shop/cookies/classify").status_code == 400


@pytest.mark.parametrize("path", ["/consent", "/cookies", "/cookies/classify?name=_ga"])
def test_a_viewer_without_a_role_and_an_unknown_site_get_404(
    reports: tuple[ReportDashboard, httpx.Client], path: str
) -> None:
    dashboard, client = reports
    assert client.get(f"/dashboard/blog{path}").status_code == 404  # ann has no role on blog
    assert client.get(f"/dashboard/nowhere{path}").status_code == 404
    with dashboard.client() as vic:
        assert dashboard.login(vic, "vic").status_code == 303
        assert vic.get(f"/dashboard/shop{path}").status_code == 404
        assert vic.get(f"/dashboard/blog{path}").status_code == 200
    with dashboard.client() as anonymous:
        assert anonymous.get(f"/dashboard/shop{path}").status_code == 303  # to the login form


# The pure pieces.


def cell(label: str, key: str, people: int, accept_all: int = 0) -> ConsentCell:
    return ConsentCell(label, key, people, people, accept_all, people - accept_all, 0, 0, 0, (accept_all, 0, 0))


def test_fold_day_folds_the_smallest_named_row_until_other_reaches_k() -> None:
    cells = {"FR": Tally.of(cell("d", "FR", 9)), "DE": Tally.of(cell("d", "DE", 6)), "US": Tally.of(cell("d", "US", 1))}
    named, other = fold_day(cells, 5)
    assert list(named) == ["FR"] and other.deciders == 7  # US alone (1) would be an "(other)" of one person
    named, other = fold_day({"FR": Tally.of(cell("d", "FR", 9))}, 5)
    assert list(named) == ["FR"] and other.deciders == 0


def _report(cells: list[ConsentCell], k: int = 5) -> ConsentReport:
    days = ["2026-03-09", "2026-03-10"]
    totals = [cell(label, "", sum(c.deciders for c in cells if c.label == label), 0) for label in days]
    return ConsentReport.build(
        days=days, totals=[t for t in totals if t.deciders], by={"country": cells}, impressions={}, interval="day", k=k
    )


def test_a_lone_decision_changes_nothing_published() -> None:
    """World A has one more decision (a lone visitor from CN) than world B, on a busy day or alone."""
    busy = [cell("2026-03-09", "FR", 6, 3), cell("2026-03-09", "DE", 5, 1)]
    for lone in (cell("2026-03-09", "CN", 1, 1), cell("2026-03-10", "CN", 1, 1)):
        world_a, world_b = _report([*busy, lone]), _report(busy)
        if lone.label == "2026-03-10":  # a day of one person adds nothing: the two worlds read the same
            assert world_a == world_b
        else:  # the busy day takes the lone decision into a folded "(other)" of at least k, never alone
            rows = world_a.tables["country"]
            assert all(row.figures.decisions >= 5 for row in rows) and "CN" not in [row.value for row in rows]
            assert world_b.tables["country"][-1].value != "(other)"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (TWO_YEARS, "2 years"),
        (13 * 2629746, "13 months"),
        (30 * 86400, "1 month"),
        (100 * 86400, "100 days"),
        (86400, "1 day"),
        (5400, "90 minutes"),
        (45, "45 seconds"),
        (1, "1 second"),
    ],
)
def test_human_duration(seconds: int, words: str) -> None:
    assert human_duration(seconds) == words


def test_buckets_are_local_days_or_clipped_months() -> None:
    paris = ZoneInfo("Europe/Paris")
    days = consent_buckets(Period("custom", date(2026, 3, 28), date(2026, 3, 30)), "hour", paris)
    assert [label for label, _, _ in days] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert days[1][1].astimezone(UTC).hour == 23 and days[1][2] - days[1][1] == timedelta(hours=23)  # DST day
    months = consent_buckets(Period("custom", date(2026, 1, 15), date(2026, 3, 2)), "month", UTC)
    assert [(label, start.date(), end.date()) for label, start, end in months] == [
        ("2026-01", date(2026, 1, 15), date(2026, 2, 1)),
        ("2026-02", date(2026, 2, 1), date(2026, 3, 1)),
        ("2026-03", date(2026, 3, 1), date(2026, 3, 3)),
    ]


@pytest.mark.parametrize(
    "text", ["plain", 'a "quote"', "back\\slash", "new\nline\ttab", "del\x7f", "émoji 🍪", "\x00\x1f"]
)
def test_toml_strings_read_back_unchanged(text: str) -> None:
    assert tomllib.loads(f"x = {toml_string(text)}")["x"] == text
    block = rule_toml("shop", {"name": text, "category": "analytics", "vendor": ""})
    assert tomllib.loads(block) == {"sites": {"shop": {"cookies": [{"name": text, "category": "analytics"}]}}}
