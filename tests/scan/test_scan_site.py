"""The scanner against a local shop (tests/scan/site.py) and the demo site, in Debian's Chromium: it finds exactly
what each page does in each consent state, and ``consent-gateway scan`` fails on the shop's deliberate violation."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.clock import SystemClock
from gateway.scan.observations import Crawl
from gateway.scan.report import build_report
from gateway.scan.run import INSTALL_HINT, ScanOptions, scan
from tests.browser.conftest import CHROMIUM, Demo, chromium
from tests.conftest import REPO
from tests.scan.site import RESOLVER_RULES, ShopSite
from tests.stores import STORES

pytestmark = [pytest.mark.browser, pytest.mark.integration]


#: The shop's gateway keeps its consent records in the test's store: its tests run on both (the conftest cannot
#: tell from this module's source, which builds its settings in tests/scan/site.py).
both_stores = pytest.mark.parametrize("store_kind", STORES, indirect=True)


@pytest.fixture
def shop(tmp_path: Path, store_kind: str) -> Iterator[ShopSite]:
    if not Path(CHROMIUM).exists():
        next(chromium())  # skips, saying how to install it
    with ShopSite(tmp_path) as site:
        yield site


def _seen(crawl: Crawl) -> dict[tuple[str, str], dict[str, set[tuple[str, ...]]]]:
    """Per (path, state): cookies as (name, set_by, path of set_by_url), storage keys, third-party requests."""
    seen = {}
    for visit in crawl.visits:
        assert visit.error is None, visit
        seen[(urlsplit(visit.url).path, visit.state)] = {
            "cookies": {
                (c.name, c.set_by, urlsplit(c.set_by_url).netloc.split(":")[0] + urlsplit(c.set_by_url).path)
                for c in visit.cookies
            },
            "storage": {(s.kind, s.key, urlsplit(s.origin).hostname or "") for s in visit.storage},
            "requests": {(r.host, r.resource_type, urlsplit(r.url).path) for r in visit.requests},
            "banner": {(str(visit.banner),)},
        }
    return seen


HOME_REQUESTS = {
    ("tracker.test", "script", "/t.js"),
    ("tracker.test", "image", "/collect"),
    ("frame.test", "document", "/widget"),
}
SESSION = ("shop_session", "header", "www.shop.test/")
TRACKER = ("_tracker_id", "script", "tracker.test/t.js")  # set before consent: the deliberate violation
CONSENT = ("cg_consent", "script", "consent.shop.test/c.js")
THEME = ("shop_theme", "script", "www.shop.test/")  # an inline script the banner runs once functional is allowed
#: Set only before a decision (and deleted by the middleware on the next request): in the rejected and accepted
#: visits it is written and gone before the click, so it is that state's no more.
AB = ("shop_ab", "script", "www.shop.test/")
CG_STATE = ("localStorage", "cg_state", "www.shop.test")  # the snippet's copy of the decision
EXPECTED = {
    ("/", "none"): {"cookies": {SESSION, TRACKER, AB}, "storage": set(), "requests": HOME_REQUESTS},
    ("/", "rejected"): {"cookies": {SESSION, TRACKER, CONSENT}, "storage": {CG_STATE}, "requests": HOME_REQUESTS},
    ("/", "accepted"): {
        "cookies": {SESSION, TRACKER, CONSENT, THEME},
        "storage": {CG_STATE, ("localStorage", "shop_recent", "www.shop.test")},
        "requests": HOME_REQUESTS,
    },
    ("/products", "none"): {"cookies": set(), "storage": set(), "requests": set()},
    ("/about", "none"): {"cookies": set(), "storage": set(), "requests": set()},
    ("/about", "rejected"): {"cookies": {CONSENT}, "storage": {CG_STATE}, "requests": set()},
    ("/about", "accepted"): {"cookies": {CONSENT}, "storage": {CG_STATE}, "requests": set()},
}


@both_stores
def test_the_scanner_finds_exactly_what_the_shop_does_in_every_state(shop: ShopSite) -> None:
    progress: list[tuple[int, int, str]] = []
    options = ScanOptions(shop.url, browser_args=(RESOLVER_RULES,))
    crawl = asyncio.run(scan(options, clock=SystemClock(), progress=lambda *args: progress.append(args)))

    # The start page, then the nested sitemap's pages, then links; never /private (robots.txt), a .pdf or another host.
    assert crawl.pages == (shop.url, f"{shop.origin}/products", f"{shop.origin}/about")
    assert [done for done, _, _ in progress] == [1, 2, 3] and progress[-1] == (3, 3, f"{shop.origin}/about")
    seen = _seen(crawl)
    assert set(seen) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        for kind in ("cookies", "storage", "requests"):
            assert seen[key][kind] == expected[kind], (key, kind)
    # /products has no banner of ours: visited before a decision only, and said so.
    assert seen[("/products", "none")]["banner"] == {("False",)} and seen[("/", "none")]["banner"] == {("True",)}
    assert crawl.site_hosts == {"www.shop.test", "shop.test", "consent.shop.test"}
    notes = "\n".join(crawl.notes)
    assert "robots.txt excluded 2 pages" in notes and "/private/hidden" in notes and "/private/account" in notes
    assert "no consent banner of ours on 1 pages" in notes and "/products" in notes
    assert "consent.shop.test" in notes

    # Attributes as the jar holds them; the tracker's cookie (deleted again by the middleware on the next request)
    # as its write set it, capped at Chromium's 400 days.
    home = {(v.state, c.name): c for v in crawl.visits if v.url == shop.url for c in v.cookies}
    session = home[("none", "shop_session")]
    assert (session.http_only, session.expires, session.domain, session.path) == (True, None, "www.shop.test", "/")
    tracker = home[("none", "_tracker_id")]
    assert tracker.expires is not None and tracker.domain == "www.shop.test" and not tracker.http_only
    assert timedelta(days=399) < tracker.expires - datetime.now(UTC) <= timedelta(days=400)
    assert home[("accepted", "shop_theme")].same_site == "Lax"


def _config(tmp_path: Path, shop: ShopSite) -> Path:
    path = tmp_path / "scan.toml"
    path.write_text(
        f"""[sites.shop]
name = "Shop"
origins = ["{shop.origin}"]

[[sites.shop.cookies]]
name = "shop_session"
category = "essential"
lifetime = "session"

[[sites.shop.cookies]]
name = "shop_theme"
category = "functional"
lifetime = "1y"

[[sites.shop.cookies]]
name = "shop_ab"
category = "analytics"
lifetime = "1d"
""",
        encoding="utf-8",
    )
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CONSENT_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "scan", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**environ, **(env or {})},
        timeout=600,
        check=False,
    )


@both_stores
def test_the_scan_command_fails_on_the_violation_and_writes_json_and_html(shop: ShopSite, tmp_path: Path) -> None:
    report_json, report_html = tmp_path / "scan.json", tmp_path / "scan.html"
    result = _cli(
        shop.url,
        "--site=shop",
        f"--config={_config(tmp_path, shop)}",
        f"--json={report_json}",
        f"--html={report_html}",
        f"--chromium-arg={RESOLVER_RULES}",
    )
    assert result.returncode == 1, result.stderr
    assert "Scanned 3 pages" in result.stdout and "_tracker_id" in result.stdout
    assert result.stderr.splitlines() == [
        f"scanned {n}/3 {url}"
        for n, url in enumerate([shop.url, f"{shop.origin}/products", f"{shop.origin}/about"], start=1)
    ]  # no TTY: a line per page
    data: dict[str, Any] = json.loads(report_json.read_text(encoding="utf-8"))
    assert data["pages"] == sorted([shop.url, f"{shop.origin}/products", f"{shop.origin}/about"])
    cookies = {cookie["name"]: cookie for cookie in data["cookies"]}
    assert set(cookies) == {"shop_session", "_tracker_id", "cg_consent", "shop_theme", "shop_ab"}
    assert cookies["shop_ab"]["states"] == ["none"]
    assert cookies["_tracker_id"]["set_by"] == "script" and cookies["_tracker_id"]["states"] == [
        "none",
        "rejected",
        "accepted",
    ]
    assert cookies["shop_theme"]["states"] == ["accepted"] and cookies["shop_session"]["set_by"] == "header"
    assert {party["host"] for party in data["third_parties"]} == {"tracker.test", "frame.test"}
    tracker_violations = {(v["kind"], v["state"]) for v in data["violations"] if v.get("name") == "_tracker_id"}
    assert {("before_decision", "none"), ("after_reject", "rejected")} <= tracker_violations
    assert not [
        v
        for v in data["violations"]
        if v.get("name") in {"shop_session", "shop_theme", "cg_consent"}
        and v["kind"] in {"before_decision", "after_reject"}
    ]
    html = report_html.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "_tracker_id" in html
    assert "http://" not in html.split("<body", 1)[0].replace(shop.origin, "")  # no external assets in the head


def test_the_scan_command_says_in_one_line_when_the_site_is_unreachable(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        next(chromium())
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://nothing-here.test:{probe.getsockname()[1]}/"
    result = _cli(url, f"--chromium-arg={RESOLVER_RULES}", "--time-limit=60")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("scanned ")]
    assert len(errors) == 1 and errors[0].startswith(f"consent-gateway: error: could not load {url}: "), errors


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org/", "https://exa mple.org/\x1b[2J", ""])
def test_the_scan_command_refuses_what_is_not_a_web_address(url: str) -> None:
    result = _cli(url)
    assert (
        result.returncode == 2 and result.stderr.startswith("consent-gateway: error: ") and "\x1b" not in result.stderr
    )


@dataclass
class _Jumping:
    """A clock 10 minutes later at each reading: the time limit passes during the first page."""

    current: datetime = field(default_factory=lambda: datetime(2026, 3, 10, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        self.current += timedelta(minutes=10)
        return self.current


@both_stores
def test_the_page_and_time_bounds_stop_the_crawl_and_say_so(shop: ShopSite) -> None:
    by_pages = asyncio.run(scan(ScanOptions(shop.url, pages=1, browser_args=(RESOLVER_RULES,)), clock=SystemClock()))
    assert by_pages.pages == (shop.url,)
    assert "stopped at 1 pages; 2 more were found and not visited" in by_pages.notes
    options = ScanOptions(shop.url, time_limit=60, browser_args=(RESOLVER_RULES,))
    by_time = asyncio.run(scan(options, clock=_Jumping()))
    assert by_time.pages == (shop.url,)
    assert "stopped at the time limit (60 s) after 1 pages" in by_time.notes


def test_the_scan_command_names_what_to_install_without_playwright_or_chromium(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked" / "playwright"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("Playwright is not installed")\n', encoding="utf-8")
    without = _cli("https://www.example.org/", env={"PYTHONPATH": str(blocked.parent)})
    assert without.returncode == 2 and without.stdout == ""
    assert without.stderr.strip() == f"consent-gateway: error: {INSTALL_HINT}"
    no_browser = _cli("https://www.example.org/", f"--chromium={tmp_path / 'no-chromium'}")
    assert no_browser.returncode == 2 and len(no_browser.stderr.strip().splitlines()) == 1
    assert "could not start Chromium" in no_browser.stderr and "apt-get install chromium" in no_browser.stderr


def test_the_demo_site_scans_without_a_violation(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        next(chromium())
    demo = Demo(tmp_path)
    with demo.gateway, demo.site:
        crawl = asyncio.run(scan(ScanOptions(demo.url), clock=SystemClock()))
        report = build_report(crawl, site=demo.settings.sites["demo"], settings=demo.settings)
    assert report.banner and [visit.error for visit in crawl.visits if visit.error] == []
    assert sorted(crawl.pages) == [demo.url, demo.url + "page-2", demo.url + "privacy"]  # its sitemap's pages
    assert report.violations == (), [(v.kind, v.name or v.host, v.state, v.detail) for v in report.violations]
