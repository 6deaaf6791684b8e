"""The Compliance page on a real uvicorn: an owner starts a scan, follows its progress, reads its report
and what changed since the scan before; viewers get 403, strangers 404; CSRF; hostile report strings.

The scanner is a parameter of the app (gateway/scan/jobs.py): here one the test holds at a gate, so the
page is seen mid-scan; the last test runs the real one (Chromium) against a tiny site on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import html
import importlib.util
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.scan.jobs import PLAYWRIGHT_MISSING, ProgressCallback, ScanRequest, browser_scanner
from gateway.storage.scans import record_finished_scan
from gateway.storage.store import Store
from tests.conftest import LiveServer, make_settings, site_config
from tests.scan.test_diff import cookie, host, report, violation
from tests.waiting import wait_until
from tests.web.test_dashboard import text_of
from tests.web.test_dashboard_auth import Dashboard, Start, field, on_database

pytestmark = pytest.mark.integration
PAGE = "/dashboard/shop/compliance"
HOSTILE = "<script>alert(1)</script>"
FIRST = report(
    cookies=(cookie("_ga"), cookie("mystery", category=None), cookie(HOSTILE, category=None)),
    third_parties=(host("www.google-analytics.com"),),
    violations=(violation("before_decision", name="_ga"), violation("undeclared", name="mystery")),
)
SECOND = report(
    cookies=(cookie("_ga"), cookie("_fbp", category="advertising")),
    third_parties=(host("www.google-analytics.com"), host("connect.facebook.net", "advertising")),
    violations=(violation("before_decision", name="_ga"),),
)


class GatedScanner:
    """Reports two of three pages, then waits for ``gate`` (set from the test's thread); returns the next report."""

    def __init__(self, *reports: dict[str, Any], error: BaseException | None = None) -> None:
        self.reports = list(reports)
        self.error = error
        self.gate = threading.Event()
        self.requests: list[ScanRequest] = []

    async def __call__(self, request: ScanRequest, progress: ProgressCallback) -> dict[str, Any]:
        self.requests.append(request)
        progress(2, 3, f"{request.url}pricing?q={HOSTILE}")
        # the test's thread opens the gate: a threading.Event, waited for off the server's loop
        assert await asyncio.to_thread(self.gate.wait, 60), "the test never opened the gate"
        self.gate.clear()
        if self.error is not None:
            raise self.error
        return self.reports.pop(0)


class CompliancePage(Dashboard):
    """Sites shop and blog on a gateway whose scans ``scanner`` runs; olga owns shop, vic views it."""

    def __init__(self, tmp_path: Path, clock: FixedClock, start: Start, scanner: Any) -> None:
        sites = {
            "shop": site_config(scan_pages=3),
            "blog": site_config(name="Blog", origins=["https://blog.example.com"]),
        }
        self.settings = make_settings(tmp_path, sites=sites)
        self.clock = clock
        self.scanner = scanner
        self.server = start(create_app(self.settings, clock=clock, scanner=scanner, scan_poll_seconds=0.05))
        self.add_user("olga", roles={"shop": "owner"})
        self.add_user("vic", roles={"shop": "viewer"})
        self.add_user("bea", roles={"blog": "owner"})

    @contextmanager
    def signed_in(self, name: str) -> Iterator[httpx.Client]:
        with self.client() as client:
            assert self.login(client, name).status_code == 303
            yield client

    def start_scan(self, client: httpx.Client) -> httpx.Response:
        csrf = field(client.get(PAGE).text, "csrf")
        return client.post(f"{PAGE}/scan", data={"csrf": csrf})

    def progress(self, client: httpx.Client) -> dict[str, Any]:
        response = client.get(f"{PAGE}/progress.json")
        assert response.status_code == 200, response.text
        scan: dict[str, Any] = response.json()["scan"]
        return scan

    def wait_for(self, client: httpx.Client, status: str, pages_done: int | None = None) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            scan = self.progress(client)
            if scan and scan["status"] == status and (pages_done is None or scan["pages_done"] == pages_done):
                return scan
            return None

        found: dict[str, Any] = wait_until(
            reached, interval=0.05, message=lambda: f"never {status}: {self.progress(client)}"
        )
        return found


@pytest.fixture
def gated(tmp_path: Path, clock: FixedClock, live_server: Start) -> Iterator[CompliancePage]:
    scanner = GatedScanner(FIRST, SECOND)
    page = CompliancePage(tmp_path, clock, live_server, scanner)
    yield page
    scanner.gate.set()  # a scan still waiting ends with the server


def test_an_owner_scans_follows_the_progress_and_reads_the_report(gated: CompliancePage) -> None:
    with gated.signed_in("olga") as client:
        empty = client.get(PAGE)
        assert empty.status_code == 200, empty.text
        assert "No scan yet" in empty.text and "Scan now" in empty.text and 'http-equiv="refresh"' not in empty.text
        assert re.search(r'href="/dashboard/shop/compliance" aria-current="page">Compliance', empty.text)
        assert "style=" not in empty.text and "nonce-" in empty.headers["content-security-policy"]
        assert 'href="/dashboard/shop/compliance"' in client.get("/dashboard/shop").text  # the owner's tab

        started = gated.start_scan(client)
        assert started.status_code == 303 and started.headers["location"] == f"{PAGE}?done=queued"
        running = gated.wait_for(client, "running", pages_done=2)
        assert (running["pages_total"], running["trigger"], running["url"]) == (
            3,
            "manual",
            "https://shop.example.com/",
        )
        page = client.get(started.headers["location"])
        words = html.unescape(text_of(page.text))
        assert "The scan is queued" in words and "2 of 3 pages" in words
        assert '<meta http-equiv="refresh" content="3">' in page.text and "<progress" in page.text
        assert "Scan now" not in page.text  # one scan at a time
        assert HOSTILE not in page.text and html.escape(HOSTILE) in page.text  # the page being scanned, escaped
        again = gated.start_scan(client)
        assert again.status_code == 409 and "already running" in again.text
        request = gated.scanner.requests[0]
        assert (request.site.id, request.max_pages) == ("shop", 3)

        gated.scanner.gate.set()
        done = gated.wait_for(client, "done")
        assert done["violations"] == 2 and done["error"] is None
        page = client.get(PAGE)
        words = html.unescape(text_of(page.text))
        assert 'http-equiv="refresh"' not in page.text and "Scan now" in page.text
        assert f"Scan {done['id']}" in words and "first finished scan" in words
        for expected in ("Violations 2", "before decision", "undeclared", "www.google-analytics.com", "3 (2 unknown)"):
            assert expected in words, expected
        # one click from an unknown cookie to its rule, the suggested category prefilled
        assert 'href="/dashboard/shop/cookies/classify?name=mystery&amp;category=analytics"' in page.text
        classify = client.get("/dashboard/shop/cookies/classify", params={"name": "mystery", "category": "analytics"})
        assert classify.status_code == 200 and "[[sites.shop.cookies]]" in html.unescape(classify.text)
        assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text

        download = client.get(f"{PAGE}/scans/{done['id']}.json")
        assert download.status_code == 200 and download.headers["content-type"].startswith("application/json")
        assert "attachment" in download.headers["content-disposition"] and download.json() == FIRST

        # a second scan: what changed since the first
        assert gated.start_scan(client).status_code == 303
        gated.wait_for(client, "running", pages_done=2)
        gated.scanner.gate.set()
        second = gated.wait_for(client, "done")
        assert second["id"] != done["id"]
        words = html.unescape(text_of(client.get(PAGE).text))
        assert f"Compared with scan {done['id']}" in words
        for change in ("New cookie _fbp", "Gone cookie mystery", f"Gone cookie {HOSTILE}",
                       "New third party connect.facebook.net",
                       "Fixed: undeclared, cookie mystery (before a decision)"):  # fmt: skip
            assert change in words, change
        assert "New violation" not in words
        # the history links each scan's report; an older one is shown with its own comparison
        older = client.get(PAGE, params={"scan": str(done["id"])})
        assert older.status_code == 200 and "first finished scan" in older.text
        assert f'href="{PAGE}?scan={done["id"]}"' in older.text and f'href="{PAGE}?scan={second["id"]}"' in older.text


def test_the_html_report_is_the_scanners_own_page_sandboxed(gated: CompliancePage) -> None:
    scan_id = _finished(gated, FIRST)
    with gated.signed_in("olga") as client:
        response = client.get(f"{PAGE}/scans/{scan_id}.html")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert "sandbox" in response.headers["content-security-policy"]
        assert "<script>alert(1)" not in response.text


def _finished(page: CompliancePage, result: dict[str, Any], site_id: str = "shop") -> int:
    async def work(db: Store) -> int:
        now = page.clock.now()
        return await record_finished_scan(
            db, site_id, "https://x/", trigger="demo", report=result, started=now, now=now
        )

    return on_database(page.settings, work)


def test_viewers_strangers_and_visitors_get_nothing(gated: CompliancePage) -> None:
    scan_id = _finished(gated, FIRST)
    blog_scan = _finished(gated, SECOND, "blog")
    paths = (PAGE, f"{PAGE}/progress.json", f"{PAGE}/scans/{scan_id}.json", f"{PAGE}/scans/{scan_id}.html")
    with gated.signed_in("vic") as viewer:
        for path in paths:
            response = viewer.get(path)
            assert response.status_code == 403 and "Only an owner" in response.text, path
        csrf = field(viewer.get("/dashboard/shop").text, "csrf")
        assert viewer.post(f"{PAGE}/scan", data={"csrf": csrf}).status_code == 403
        assert 'href="/dashboard/shop/compliance"' not in viewer.get("/dashboard/shop").text  # no tab for a viewer
    with gated.signed_in("bea") as stranger:
        for path in paths:
            assert stranger.get(path).status_code == 404, path
        # her own site's scan, asked for under shop, is not found either way round
        assert stranger.get(f"/dashboard/blog/compliance/scans/{scan_id}.json").status_code == 404
        assert stranger.get(f"/dashboard/blog/compliance/scans/{blog_scan}.json").status_code == 200
    with gated.client() as visitor:
        response = visitor.get(PAGE)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
        assert visitor.post(f"{PAGE}/scan").status_code == 403
    with gated.signed_in("olga") as owner:
        assert owner.get(PAGE, params={"scan": str(blog_scan)}).status_code == 404  # another site's scan
        assert owner.get(f"{PAGE}/scans/{blog_scan}.json").status_code == 404
        assert owner.get(PAGE, params={"scan": "x' OR 1=1"}).status_code == 200  # not a number: the newest
        assert gated.progress(owner)["status"] == "done"  # nothing was queued by anyone above
    assert gated.scanner.requests == []


def test_scan_now_needs_the_forms_csrf_token(gated: CompliancePage) -> None:
    with gated.signed_in("olga") as client:
        for data in ({}, {"csrf": "forged"}):
            response = client.post(f"{PAGE}/scan", data=data)
            assert response.status_code == 403 and "CSRF" in response.text
        assert gated.progress(client) is None  # nothing queued


def test_hostile_strings_in_a_report_are_shown_escaped(gated: CompliancePage) -> None:
    attack = '"><img src=x onerror=alert(1)>'
    hostile = report(
        cookies=(
            cookie(HOSTILE, domain=attack, category=None)
            | {
                "set_by_url": f"javascript:{attack}",
                "suggestion": {"category": f"{attack}", "source": "catalog", "description": HOSTILE},
            },
        ),  # fmt: skip
        third_parties=(host(attack, None),),
        violations=(
            violation("before_decision", name=HOSTILE, page=f"javascript:alert(1)//{attack}", what="cookie")
            | {"detail": HOSTILE},
        ),  # fmt: skip
        storage=({"key": attack, "kind": "localStorage", "category": None, "states": [HOSTILE], "pages": []},),
    ) | {"notes": [HOSTILE], "url": attack, "states_scanned": [HOSTILE]}
    _finished(gated, hostile)
    with gated.signed_in("olga") as client:
        page = client.get(PAGE)
        assert page.status_code == 200, page.text
        assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
        assert 'href="javascript:' not in page.text
        assert (
            "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
        )
        # the classify link carries the hostile suggestion as an encoded query value, not markup
        assert re.search(
            r'href="/dashboard/shop/cookies/classify\?name=%3Cscript%3E[^"]*category=%22%3E%3Cimg', page.text
        )


def test_a_failed_scan_says_why_on_the_page(tmp_path: Path, clock: FixedClock, live_server: Start) -> None:
    scanner = GatedScanner(error=ModuleNotFoundError("No module named 'playwright'", name="playwright"))
    scanner.gate.set()
    page = CompliancePage(tmp_path, clock, live_server, scanner)
    with page.signed_in("olga") as client:
        assert page.start_scan(client).status_code == 303
        failed = page.wait_for(client, "failed")
        assert failed["error"] == PLAYWRIGHT_MISSING
        words = html.unescape(text_of(client.get(PAGE).text))
        assert f"The last scan failed: {PLAYWRIGHT_MISSING}" in words and "Scan now" in words


# The real scanner.


def _tiny_site() -> Starlette:
    """A plain page (no banner of ours) that sets a cookie by header and one by script, and links a second page;
    with a robots.txt and a sitemap, as a real site has."""

    async def home(request: Request) -> Response:
        response = HTMLResponse(
            "<!doctype html><html lang='en'><head><title>Tiny</title></head><body><h1>Tiny</h1>"
            "<script>document.cookie = 'tiny_pref=1; Max-Age=3600; Path=/';</script>"
            "<a href='/about'>About</a></body></html>"
        )
        response.set_cookie("tiny_session", "s", httponly=True, samesite="lax")
        return response

    async def about(request: Request) -> Response:
        return HTMLResponse("<!doctype html><html lang='en'><head><title>About</title></head><body>About</body></html>")

    async def robots(request: Request) -> Response:
        return PlainTextResponse("User-agent: *\nAllow: /\n")

    async def sitemap(request: Request) -> Response:
        base = f"{request.url.scheme}://{request.url.netloc}"
        urls = "".join(f"<url><loc>{base}{path}</loc></url>" for path in ("/", "/about"))
        body = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        return Response(body, media_type="application/xml")

    routes = [Route("/", home), Route("/about", about), Route("/robots.txt", robots), Route("/sitemap.xml", sitemap)]
    return Starlette(routes=routes)


@pytest.mark.browser
def test_a_real_scan_started_from_the_page_shows_its_result(
    tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    if not Path("/usr/bin/chromium").exists() or importlib.util.find_spec("playwright") is None:
        pytest.fail("this test needs Debian's chromium and Playwright (see tests/browser/conftest.py)")
    with LiveServer(_tiny_site()) as site:
        settings = make_settings(tmp_path, site=site_config(origins=[site.url], scan_pages=5))
        app = create_app(settings, clock=clock, scanner=browser_scanner(settings, clock), scan_poll_seconds=0.05)
        page = CompliancePage.__new__(CompliancePage)
        page.settings, page.clock, page.server = settings, clock, live_server(app)
        page.add_user("olga", roles={"shop": "owner"})
        with page.signed_in("olga") as client:
            assert page.start_scan(client).status_code == 303

            def finished() -> dict[str, Any] | None:
                scan = page.progress(client)
                return scan if scan["status"] in ("done", "failed") else None

            # Chromium on a busy 2-core machine: minutes, not seconds (a passing run takes about ten)
            scan = wait_until(
                finished, timeout=300, interval=0.1, message=lambda: f"the scan never ended: {page.progress(client)}"
            )
            assert scan["status"] == "done", scan["error"]
            result = client.get(f"{PAGE}/scans/{scan['id']}.json").json()
            assert result["format"] == "consent-gateway-scan/1" and result["url"] == f"{site.url}/"
            assert sorted(result["pages"]) == [f"{site.url}/", f"{site.url}/about"]
            found = {c["name"]: c["set_by"] for c in result["cookies"]}
            assert found == {"tiny_session": "header", "tiny_pref": "script"}
            assert result["states_scanned"] == ["none"] and not result["banner"]  # a plain page: no banner of ours
            words = html.unescape(text_of(client.get(PAGE).text))
            assert f"Scan {scan['id']}" in words and "tiny_session" in words and "tiny_pref" in words
            assert "our banner was not found" in words
            assert json.dumps(result)  # stored and served as plain JSON
