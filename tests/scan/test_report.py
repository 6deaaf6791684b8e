"""The scan report built from recorded crawls: classification, violations and the JSON format (no browser)."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.consent.middleware import load_catalog
from gateway.cookies.catalog import make_rule
from gateway.cookies.lifetimes import parse_lifetime
from gateway.cookies.opencookiedb import rules_to_toml
from gateway.scan.observations import STATES, Crawl, PageVisit, SeenCookie, SeenRequest, SeenStorageKey
from gateway.scan.report import ScanReport, build_report
from gateway.scan.report_json import ScanFormatError
from gateway.scan.trackers import Tracker, TrackerList, TrackerListError, load_trackers
from tests.scan.crawls import ABOUT, END, GA, HOME, SHOP_SITE, START, cookie, crawl, shop_settings, the_shop, visit


def by_name(report: ScanReport) -> dict[str, Any]:
    return {item["name"]: item for item in report.to_json()["cookies"]}  # type: ignore[attr-defined]


def violations(report: ScanReport) -> list[tuple[str, str, str, str, str]]:
    return [(v.kind, v.what, v.name or v.host or "", v.state, v.page) for v in report.violations]


def test_the_shop_report_lists_what_each_state_saw_and_every_violation() -> None:
    settings = shop_settings()
    report = build_report(the_shop(), site=settings.site("shop"), settings=settings)
    data = report.to_json()
    assert data["format"] == "consent-gateway-scan/1"
    assert data["site"] == "shop" and data["url"] == HOME and data["banner"] is True
    assert data["states_scanned"] == ["none", "rejected", "accepted"]
    assert data["pages"] == [HOME, ABOUT]
    cookies = by_name(report)
    assert list(cookies) == ["_ga", "cg_consent", "shop_session", "shop_theme"]
    assert cookies["_ga"] | {"suggestion": None, "config": None} == {
        "name": "_ga",
        "domain": "www.shop.test",
        "path": "/",
        "category": "analytics",
        "classified_by": "catalog",
        "declared": False,
        "set_by": "script",
        "set_by_url": HOME,
        "expires_days": 400.0,
        "http_only": False,
        "secure": True,
        "same_site": "Lax",
        "states": ["none", "accepted"],
        "pages": [HOME],
        "suggestion": None,
        "config": None,
    }
    assert (cookies["shop_session"]["set_by"], cookies["shop_session"]["expires_days"]) == ("header", None)
    assert cookies["shop_session"]["states"] == ["none", "rejected", "accepted"]
    assert cookies["shop_session"]["pages"] == [HOME, ABOUT]
    assert (cookies["shop_theme"]["category"], cookies["shop_theme"]["classified_by"]) == ("functional", "site")
    assert cookies["cg_consent"] | {"states": None} == cookies["cg_consent"] | {
        "category": "essential",
        "declared": True,
        "suggestion": None,
        "config": None,
        "states": None,
    }
    assert data["storage"] == [
        {"key": "cg_state", "kind": "localStorage", "category": "essential", "states": ["accepted"], "pages": [HOME]},
        {
            "key": "shop_recent_items",
            "kind": "localStorage",
            "category": "functional",
            "states": ["accepted"],
            "pages": [HOME],
        },
    ]
    assert data["third_parties"] == [
        {
            "host": "fonts.example-cdn.test",
            "category": None,
            "classified_by": None,
            "loaded": ["font"],
            "states": ["none", "rejected"],
            "pages": [HOME],
        },
        {
            "host": "www.google-analytics.com",
            "category": "analytics",
            "classified_by": "trackers",
            "loaded": ["fetch"],
            "states": ["none", "accepted"],
            "pages": [HOME],
        },
    ]
    assert violations(report) == [
        ("before_decision", "cookie", "_ga", "none", HOME),
        ("before_decision", "request", "www.google-analytics.com", "none", HOME),
        ("expiry_over_cap", "cookie", "_ga", "none", HOME),
        ("undeclared", "cookie", "_ga", "none", HOME),
    ]
    assert data["summary"] == {"pages": 2, "cookies": 4, "unknown_cookies": 0, "third_parties": 2, "violations": 4}
    assert report.violations[0].detail == f"analytics cookie set before any decision (by script {HOME})"


def test_after_reject_is_its_own_kind_and_unknown_cookies_and_storage_count() -> None:
    settings = shop_settings()
    report = build_report(
        crawl(
            visit(
                HOME,
                "rejected",
                cookie("mystery", days=2),
                storage=(SeenStorageKey("sessionStorage", "hjViewportId", "https://www.shop.test"),),
                requests=(SeenRequest("https://static.hotjar.com/c/hotjar-1.js", "static.hotjar.com", "script"),),
            )
        ),
        site=settings.site("shop"),
        settings=settings,
    )
    assert violations(report) == [
        ("after_reject", "storage", "hjViewportId", "rejected", HOME),
        ("after_reject", "cookie", "mystery", "rejected", HOME),
        ("after_reject", "request", "static.hotjar.com", "rejected", HOME),
        ("undeclared", "cookie", "mystery", "rejected", HOME),
    ]
    assert report.summary["unknown_cookies"] == 1
    assert report.cookies[0].category is None and report.cookies[0].classified_by is None


def test_nothing_is_a_violation_after_accept_but_the_cookie_facts() -> None:
    settings = shop_settings()
    report = build_report(
        crawl(visit(HOME, "accepted", cookie("shop_theme", days=365), cookie("_gid", days=1), requests=(GA,))),
        site=settings.site("shop"),
        settings=settings,
    )
    assert violations(report) == [("undeclared", "cookie", "_gid", "accepted", HOME)]


@pytest.mark.parametrize(
    ("name", "days", "caps", "over"),
    [
        pytest.param("_ga", 400, None, "13 months (the analytics cap)", id="analytics-over-the-13-month-default-cap"),
        pytest.param("_ga", 395, None, None, id="analytics-just-under-13-months"),
        pytest.param("_ga", 40, {"analytics": "30d"}, "30 days (the analytics cap)", id="a-site-cap-tighter"),
        pytest.param("_gid", 2, None, "1 day (its declared lifetime)", id="over-its-declared-24h-under-the-cap"),
        pytest.param("_gid", 0.9, None, None, id="within-its-declared-lifetime"),
        pytest.param("shop_session", 1, None, "end of session (its declared lifetime)", id="declared-session-kept"),
        pytest.param("shop_session", None, None, None, id="declared-session-and-session"),
        pytest.param("mystery", 5000, None, None, id="unknown-has-no-cap-to-exceed"),
    ],
)
def test_a_cookie_over_its_lifetime_cap(
    name: str, days: float | None, caps: dict[str, str] | None, over: str | None
) -> None:
    site = dict(SHOP_SITE) | ({"lifetime_caps": caps} if caps else {})
    settings = shop_settings(site)
    report = build_report(
        crawl(visit(HOME, "accepted", cookie(name, days=days))), site=settings.site("shop"), settings=settings
    )
    flagged = [v for v in report.violations if v.kind == "expiry_over_cap"]
    assert [v.detail.split("; ", 1)[1] for v in flagged] == ([f"it may live {over}"] if over else [])
    assert all(v.name == name for v in flagged)


def test_the_expiry_reported_once_where_first_seen_but_consent_violations_per_page() -> None:
    settings = shop_settings()
    report = build_report(
        crawl(
            visit(ABOUT, "none", cookie("_ga", days=500)),
            visit(HOME, "none", cookie("_ga", days=500)),
            visit(HOME, "accepted", cookie("_ga", days=500)),
        ),
        site=settings.site("shop"),
        settings=settings,
    )
    assert violations(report) == [
        ("before_decision", "cookie", "_ga", "none", HOME),
        ("before_decision", "cookie", "_ga", "none", ABOUT),
        ("expiry_over_cap", "cookie", "_ga", "none", HOME),
        ("undeclared", "cookie", "_ga", "none", HOME),
    ]


def test_the_site_rules_come_before_the_catalog() -> None:
    site = dict(SHOP_SITE) | {"cookies": [{"name": "_ga", "category": "essential", "lifetime": "2y"}]}
    settings = shop_settings(site)
    report = build_report(
        crawl(visit(HOME, "none", cookie("_ga", days=700))), site=settings.site("shop"), settings=settings
    )
    found = by_name(report)["_ga"]
    assert (found["category"], found["classified_by"], found["declared"]) == ("essential", "site", True)
    assert (found["suggestion"], found["config"]) == (None, None)
    assert violations(report) == []  # essential: allowed before consent; no cap on essential; declared


def test_a_service_the_site_lists_declares_its_catalog_cookies() -> None:
    service = {"id": "google-analytics", "name": "Google Analytics", "category": "analytics"}
    settings = shop_settings(dict(SHOP_SITE) | {"services": [service]})
    crawled = crawl(visit(HOME, "accepted", cookie("_ga", days=300), cookie("_fbp", days=80)))
    report = build_report(crawled, site=settings.site("shop"), settings=settings)
    cookies = by_name(report)
    assert (cookies["_ga"]["declared"], cookies["_ga"]["classified_by"], cookies["_ga"]["config"]) == (
        True,
        "catalog",
        None,
    )
    assert cookies["_fbp"]["declared"] is False  # Meta Pixel is not one of the site's services
    assert violations(report) == [("undeclared", "cookie", "_fbp", "accepted", HOME)]


def test_open_cookie_database_rules_come_last_and_say_so(tmp_path: Path) -> None:
    settings = shop_settings()
    ocd = [make_rule("_ocd_only_y", "analytics", parse_lifetime("1y"), vendor="Shopify", source="ocd.csv:12")]
    crawled = crawl(visit(HOME, "accepted", cookie("_ocd_only_y", days=300), cookie("_ga", days=300)))
    report = build_report(crawled, site=settings.site("shop"), settings=settings, opencookiedb=ocd)
    cookies = by_name(report)
    assert (cookies["_ocd_only_y"]["category"], cookies["_ocd_only_y"]["classified_by"]) == (
        "analytics",
        "opencookiedb",
    )
    assert cookies["_ga"]["classified_by"] == "catalog"
    # a catalog file written by `consent-gateway import-cookies` is the Open Cookie Database too
    imported = tmp_path / "ocd.toml"
    imported.write_text(rules_to_toml(ocd, header="Imported from ocd.csv (Open Cookie Database format): 1 rules"))
    settings = shop_settings(catalog=str(imported))
    report = build_report(crawled, site=settings.site("shop"), settings=settings)
    cookies = by_name(report)
    assert cookies["_ocd_only_y"]["classified_by"] == "opencookiedb"
    assert cookies["_ga"]["category"] is None  # that catalog replaced the shipped one


def test_the_gateway_own_cookie_and_storage_are_essential_whatever_the_catalog(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    settings = shop_settings(catalog=str(empty))
    report = build_report(
        crawl(
            visit(
                HOME,
                "none",
                cookie("cg_consent", days=180),
                storage=(
                    SeenStorageKey("localStorage", "cg_state", "https://www.shop.test"),
                    SeenStorageKey("localStorage", "cg_ignore", "https://www.shop.test"),
                ),
            )
        ),
        site=settings.site("shop"),
        settings=settings,
    )
    assert violations(report) == []
    assert [(s.key, s.category) for s in report.storage] == [("cg_ignore", "essential"), ("cg_state", "essential")]
    assert (report.cookies[0].category, report.cookies[0].declared) == ("essential", True)


def test_an_unknown_cookie_gets_a_suggestion_and_a_block_that_declares_it() -> None:
    settings = shop_settings()
    crawled = crawl(
        visit(HOME, "none", cookie("_hjSomethingNew", days=1), cookie("sessionid", days=10), cookie("zzqx", days=3))
    )
    report = build_report(crawled, site=settings.site("shop"), settings=settings)
    cookies = by_name(report)
    guess = cookies["_hjSomethingNew"]["suggestion"]
    assert guess["category"] == "analytics" and guess["source"] == "catalog" and "a guess" in guess["description"]
    # Django's sessionid is in the catalog: known, so classified, but not declared by the site
    assert cookies["sessionid"]["category"] == "essential"
    assert cookies["sessionid"]["suggestion"]["category"] == "essential"
    assert cookies["zzqx"]["suggestion"] is None
    blocks = [item["config"] for item in cookies.values()]
    assert all(blocks)
    assert blocks[0].startswith("[[sites.shop.cookies]]\n")
    # pasted into the configuration, every block parses and declares its cookie: no undeclared left
    pasted = [entry for block in blocks for entry in tomllib.loads(block)["sites"]["shop"]["cookies"]]
    site = dict(SHOP_SITE) | {"cookies": [*SHOP_SITE["cookies"], *pasted]}
    declared = shop_settings(site)
    again = build_report(crawled, site=declared.site("shop"), settings=declared)
    assert [v.kind for v in again.violations if v.kind == "undeclared"] == []
    assert {c.name: c.category for c in again.cookies} == {
        "_hjSomethingNew": "analytics",
        "sessionid": "essential",
        "zzqx": "functional",
    }
    assert {
        c.name: str(r.lifetime) for c in again.cookies for r in declared.sites["shop"].cookie_rules if r.name == c.name
    } == {
        "_hjSomethingNew": "1d",
        "sessionid": "2w",
        "zzqx": "3d",
    }


def test_a_third_party_cookie_block_binds_its_domain() -> None:
    settings = shop_settings()
    crawled = crawl(visit(HOME, "accepted", cookie("IDE", days=300, domain=".doubleclick.net")))
    report = build_report(crawled, site=settings.site("shop"), settings=settings)
    found = report.cookies[0]
    assert found.category == "advertising" and found.config is not None
    assert tomllib.loads(found.config)["sites"]["shop"]["cookies"][0]["domain"] == "doubleclick.net"


@pytest.mark.parametrize(
    "name",
    ["a b", "a;b", "a=b", "wild*card", "tab\tname", "new\nline", ""],
)
def test_no_block_for_a_name_no_rule_can_hold(name: str) -> None:
    settings = shop_settings()
    report = build_report(crawl(visit(HOME, "none", cookie(name))), site=settings.site("shop"), settings=settings)
    assert report.cookies[0].config is None
    assert report.violations[0].name == name  # still reported, as it is


@pytest.mark.parametrize("name", ['x"\\\u2028\x7f', "<script>alert(1)</script>", "'];alert(1)//", "\x00\x1b[31m"])
def test_hostile_strings_survive_the_json_as_they_are(name: str) -> None:
    settings = shop_settings()
    report = build_report(crawl(visit(HOME, "none", cookie(name))), site=settings.site("shop"), settings=settings)
    text = json.dumps(report.to_json())
    assert ScanReport.from_json(json.loads(text)) == report
    block = report.cookies[0].config
    assert block is None or tomllib.loads(block)["sites"]["shop"]["cookies"][0]["name"] == name


def test_without_a_site_there_is_no_undeclared_check_and_the_notes_say_so() -> None:
    settings = shop_settings()
    report = build_report(crawl(visit(HOME, "none", cookie("zzqx", days=3))), site=None, settings=settings)
    assert [v.kind for v in report.violations] == ["before_decision"]
    assert report.site is None
    assert any("undeclared cookies were not checked" in note for note in report.notes)
    assert report.cookies[0].config is not None and report.cookies[0].config.startswith("[[sites.ID.cookies]]")


def test_no_banner_scans_the_no_decision_state_only_and_page_errors_are_notes() -> None:
    settings = shop_settings()
    report = build_report(
        crawl(
            visit(HOME, "none", banner=False),
            visit(ABOUT, "none", banner=False, error="net::ERR_CONNECTION_REFUSED"),
            notes=("robots.txt excluded 1 page",),
        ),
        site=settings.site("shop"),
        settings=settings,
    )
    assert report.banner is False and report.states_scanned == ("none",)
    assert report.notes[0] == "robots.txt excluded 1 page"
    assert any("No consent-gateway banner found" in note for note in report.notes)
    assert f"{ABOUT} (none): net::ERR_CONNECTION_REFUSED" in report.notes


def test_third_parties_by_tracker_suffix_then_by_the_catalog_domain() -> None:
    settings = shop_settings()
    hosts = ["connect.facebook.net", "www.linkedin.com", "notgoogle-analytics.com", "cdn.example.test"]
    crawled = crawl(visit(HOME, "accepted", requests=tuple(SeenRequest(f"https://{h}/x", h, "script") for h in hosts)))
    report = build_report(crawled, site=settings.site("shop"), settings=settings)
    assert {(t.host, t.category, t.classified_by) for t in report.third_parties} == {
        ("connect.facebook.net", "advertising", "trackers"),
        ("www.linkedin.com", "advertising", "catalog"),
        ("notgoogle-analytics.com", None, None),
        ("cdn.example.test", None, None),
    }
    own = TrackerList([Tracker("example.test", "analytics", "Example")])
    report = build_report(crawled, site=settings.site("shop"), settings=settings, trackers=own)
    assert {t.host: t.category for t in report.third_parties}["cdn.example.test"] == "analytics"


def test_the_shipped_tracker_list() -> None:
    trackers = load_trackers()
    assert len(trackers) >= 50
    for host, category in [
        ("www.google-analytics.com", "analytics"),
        ("www.googletagmanager.com", "analytics"),
        ("stats.g.doubleclick.net", "advertising"),
        ("connect.facebook.net", "advertising"),
        ("static.hotjar.com", "analytics"),
        ("www.clarity.ms", "analytics"),
        ("px.ads.linkedin.com", "advertising"),
        ("analytics.tiktok.com", "advertising"),
        ("static.ads-twitter.com", "advertising"),
        ("static.criteo.net", "advertising"),
        ("cdn.taboola.com", "advertising"),
        ("widgets.outbrain.com", "advertising"),
        ("shop.matomo.cloud", "analytics"),
        ("cdn.segment.com", "analytics"),
        ("api-js.mixpanel.com", "analytics"),
        ("api2.amplitude.com", "analytics"),
    ]:
        found = trackers.classify(host)
        assert found is not None and found.category == category, host
    assert trackers.classify("com") is None and trackers.classify("example.com") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[tracker]]\nhost = "Hotjar.com"\ncategory = "analytics"', "tracker[0].host"),
        ('[[tracker]]\nhost = "x.com"\ncategory = "spying"', "tracker[0].category"),
        ('[[tracker]]\nhost = "x.com"\ncategory = "analytics"\nvndor = "X"', "unknown key 'vndor'"),
        ('tracker = "x.com"', "array of tables"),
        ("[[tracker", "not valid TOML"),
    ],
)
def test_a_bad_tracker_file_names_the_mistake(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "trackers.toml"
    path.write_text(text)
    with pytest.raises(TrackerListError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_trackers(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="consent-gateway-scan/2"), "format: expected"),
        (lambda d: d.pop("pages"), "pages: missing"),
        (lambda d: d["cookies"][0].update(states=["maybe"]), r"cookies\[0\].states: expected a list of states"),
        (lambda d: d["cookies"][0].update(expires_days="long"), r"cookies\[0\].expires_days"),
        (lambda d: d["cookies"][0]["suggestion"].update(category="x"), r"cookies\[0\].suggestion.category"),
        (lambda d: d.update(started_at="yesterday"), "started_at: expected an ISO 8601 time"),
        (lambda d: d.update(finished_at="2026-12-02T10:00:00"), "finished_at: expected an ISO 8601 time with"),
        (lambda d: d["violations"].append("<b>"), r"violations\[1\]: expected an object"),
        (lambda d: d["third_parties"][0].update(category=1), r"third_parties\[0\].category"),
    ],
)
def test_a_stored_report_that_is_not_the_format_is_refused(change: Any, message: str) -> None:
    settings = shop_settings()
    report = build_report(
        crawl(visit(HOME, "none", cookie("_hjNew", days=1), requests=(GA,))), site=None, settings=settings
    )
    data = json.loads(json.dumps(report.to_json()))
    data["violations"] = data["violations"][:1]
    change(data)
    with pytest.raises(ScanFormatError, match=message):
        ScanReport.from_json(data)
    with pytest.raises(ScanFormatError, match="expected an object"):
        ScanReport.from_json([])


# --- properties: any crawl gives a report whose JSON reads back the same, sorted and independent of order ---

_names = st.sampled_from(["_ga", "_gid", "_fbp", "cg_consent", "shop_theme", "sessionid", "IDE", "zzqx", "<b>x</b>"])
_pages = st.sampled_from([HOME, ABOUT, "https://www.shop.test/q?a='\"", "https://www.shop.test/é"])
_hosts = st.sampled_from(["www.google-analytics.com", "cdn.example.test", "connect.facebook.net", "www.linkedin.com"])
_cookies = st.builds(
    SeenCookie,
    name=_names,
    domain=st.sampled_from(["www.shop.test", ".shop.test", ".doubleclick.net"]),
    path=st.sampled_from(["/", "/cart"]),
    expires=st.none() | st.integers(0, 900 * 86400).map(lambda s: END + timedelta(seconds=s)),
    http_only=st.booleans(),
    secure=st.booleans(),
    same_site=st.sampled_from([None, "Lax", "Strict", "None"]),
    set_by=st.sampled_from(["header", "script"]),
    set_by_url=st.sampled_from(["", HOME, "https://www.googletagmanager.com/gtag/js"]),
)
_storage = st.builds(
    SeenStorageKey,
    kind=st.sampled_from(["localStorage", "sessionStorage"]),
    key=st.sampled_from(["cg_state", "_hjid", "shop_recent", "x\u2028y"]),
    origin=st.just("https://www.shop.test"),
)
_requests = st.builds(
    lambda host, kind: SeenRequest(f"https://{host}/r", host, kind), _hosts, st.sampled_from(["script", "image"])
)
_visits = st.builds(
    PageVisit,
    url=_pages,
    state=st.sampled_from(STATES),
    banner=st.booleans(),
    cookies=st.lists(_cookies, max_size=4).map(tuple),
    storage=st.lists(_storage, max_size=2).map(tuple),
    requests=st.lists(_requests, max_size=2).map(tuple),
    error=st.none() | st.just("timeout"),
)
_crawls = st.lists(_visits, max_size=6).map(lambda visits: crawl(*visits))
_SETTINGS = shop_settings()
_CATALOG = load_catalog(_SETTINGS)
_TRACKERS = load_trackers()


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crawled=_crawls, with_site=st.booleans(), shuffle=st.randoms(use_true_random=False))
def test_json_round_trips_sorted_and_stable(crawled: Crawl, with_site: bool, shuffle: Any) -> None:
    site = _SETTINGS.site("shop") if with_site else None
    report = build_report(crawled, site=site, settings=_SETTINGS, catalog=_CATALOG, trackers=_TRACKERS)
    data = report.to_json()
    text = json.dumps(data)
    assert ScanReport.from_json(json.loads(text)) == report
    assert ScanReport.from_json(json.loads(text)).to_json() == data
    cookies: list[Any] = data["cookies"]  # type: ignore[assignment]
    assert [(c["name"], c["domain"], c["path"]) for c in cookies] == sorted(
        (c["name"], c["domain"], c["path"]) for c in cookies
    )
    hosts = [t["host"] for t in data["third_parties"]]  # type: ignore[attr-defined]
    assert hosts == sorted(set(hosts))
    keys = [v.sort_key for v in report.violations]
    assert keys == sorted(set(keys))
    # the same observations in another order give the same report
    visits = list(crawled.visits)
    shuffle.shuffle(visits)
    reordered = Crawl(crawled.start_url, crawled.site_hosts, crawled.pages, tuple(visits), START, END)
    again = build_report(reordered, site=site, settings=_SETTINGS, catalog=_CATALOG, trackers=_TRACKERS).to_json()
    assert json.dumps(again, sort_keys=True) == json.dumps(data, sort_keys=True)
